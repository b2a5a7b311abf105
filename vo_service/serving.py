"""How pzvo faces clients: nginx in front of gunicorn, plus the async TAP workers.

gunicorn's threaded workers give a request a thread as soon as its first bytes arrive, so a
client that sends its headers or body slowly holds that thread for as long as it likes; ten
such sockets froze the service (issue 14).  A buffering proxy reads every request whole before
the application sees it and takes the response as fast as the application writes it, so slow
or idle clients cost a few kilobytes of nginx memory instead of a request thread.  nginx was
chosen over an event-loop Python front (waitress) by measurement: ``benchmarks/bench_front.py``,
figures and reasons in docs/performance.md and docs/security.md.

The layout, all under ``var/front/<name>/`` (one directory per listening address, so the tests'
and benchmarks' services never share files with ``make run``'s)::

    nginx.conf   generated from the settings at every start
    app.sock     gunicorn's unix socket, reachable only through nginx
    tmp/         request bodies and responses nginx spools to disk

``pzvo serve --front none`` serves gunicorn alone on the address (a deployment that has its
own buffering proxy, such as the RSP's ingress, or a measurement of the difference).
"""
from __future__ import annotations

import grp
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from vo_service.core.settings import PROJECT_ROOT, Settings

log = logging.getLogger("vo_service.serving")

FRONTS = ("nginx", "none")

#: One JSON object per request in gunicorn's access log (the client address nginx forwarded).
ACCESS_LOG_FORMAT = ('{"event":"access","remote":"%({x-forwarded-for}i)s","request":"%(r)s",'
                     '"status":%(s)s,"bytes":"%(B)s","ms":%(M)s}')
DIRECT_ACCESS_LOG_FORMAT = ACCESS_LOG_FORMAT.replace("%({x-forwarded-for}i)s", "%(h)s")

#: Environment variable that tells the WSGI app it sits behind the front (trust X-Forwarded-*).
BEHIND_FRONT_ENV = "PZVO_BEHIND_FRONT"

NGINX = "/usr/sbin/nginx"
#: Seconds nginx keeps an idle connection to gunicorn for the next request (saves a connect and
#: gunicorn's accept per request; measured in docs/performance.md).
UPSTREAM_KEEPALIVE_S = 10
WORKER_ARGV = (sys.executable, "-m", "vo_service.cli", "worker")


@dataclass(frozen=True)
class Layout:
    """The files of one service instance."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "nginx.conf"

    @property
    def socket(self) -> Path:
        return self.root / "app.sock"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"


def layout_for(settings: Settings, bind: str) -> Layout:
    return Layout(settings.var_dir / "front" / bind.replace(":", "_").replace("/", "_"))


def gunicorn_argv(settings: Settings, bind: str, *, workers: int, threads: int,
                  behind_front: bool) -> list[str]:
    """The gunicorn command line: ``bind`` is ``HOST:PORT`` or ``unix:PATH``."""
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    # gthread workers tick their heartbeat from the main loop, not per request: --timeout
    # catches a hung process, not a long query.
    return [gunicorn, "vo_service.wsgi:app", "--bind", bind, "--workers", str(workers),
            "--worker-class", "gthread", "--threads", str(threads),
            "--timeout", "120", "--graceful-timeout", "10",
            # longer than nginx keeps an idle upstream connection, so nginx always closes first
            "--keep-alive", str(UPSTREAM_KEEPALIVE_S * 2),
            "--access-logfile", "-", "--access-logformat",
            ACCESS_LOG_FORMAT if behind_front else DIRECT_ACCESS_LOG_FORMAT]


def _longest_silence_s(settings: Settings) -> int:
    """Longest time a healthy request may send nothing back: a query before its first row, a
    blocking WAIT, a product download running with an async job's limit."""
    return int(max(settings.query_timeout_s, settings.uws_wait_max_s,
                   settings.uws_max_execution_duration_s)) + 30


def _worker_user(root: Path) -> tuple[str, str] | None:
    """The user and group of nginx's worker processes when the service starts as root:
    ``nobody``, unless some folder above ``root`` is closed to others (a checkout under
    ``/root``), where ``nobody`` could not reach gunicorn's socket; then root, as the service.
    None when not started as root (nginx then keeps the current user)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("nobody")
        grp.getgrnam("nogroup")
    except KeyError:
        return ("root", "root")
    for folder in (root, *root.parents):
        if folder.exists() and not folder.stat().st_mode & 0o001:
            log.warning("nginx workers run as root: nobody cannot enter this folder",
                        extra={"folder": str(folder)})
            return ("root", "root")
    return ("nobody", "nogroup")


def nginx_config(settings: Settings, listen: str, layout: Layout) -> str:
    """The nginx configuration for one instance, generated from the settings.

    Request limits: the TAP endpoints and everything else take at most the TAP upload limit
    plus 1 MiB of form fields; only ``POST /api/products`` takes a whole product upload.  A
    body over the limit is refused by nginx before it is stored, in the protocol's own form.
    """
    mib = 1024 * 1024
    tap_body = settings.upload_max_bytes + mib
    product_body = settings.product_max_bytes + mib
    user = _worker_user(layout.root)
    silence = _longest_silence_s(settings)
    tmp = layout.tmp
    tap_413 = _xml_escape(
        f"Request body too large: the limit is {tap_body} bytes (uploads "
        f"{settings.upload_max_bytes} bytes plus 1 MiB of parameters).")
    product_413 = (f"The request body is larger than the limit of {product_body} bytes "
                   f"(product uploads {settings.product_max_bytes} bytes plus 1 MiB).")
    api_413 = f"The request body is larger than the limit of {tap_body} bytes."
    return f"""# generated by vo_service/serving.py at every start; edits are lost
{f"user {user[0]} {user[1]};" if user else ""}
worker_processes 1;
worker_rlimit_nofile 16384;
pid {layout.root / "nginx.pid"};
error_log {layout.root / "error.log"} warn;
worker_shutdown_timeout 10s;
events {{
    worker_connections 8192;
}}
http {{
    access_log off;
    server_tokens off;
    client_body_temp_path {tmp / "body"};
    proxy_temp_path {tmp / "proxy"};
    fastcgi_temp_path {tmp / "fastcgi"};
    uwsgi_temp_path {tmp / "uwsgi"};
    scgi_temp_path {tmp / "scgi"};

    client_header_timeout 10s;
    client_body_timeout 30s;
    send_timeout 60s;
    keepalive_timeout 15s;
    keepalive_requests 1000;
    client_header_buffer_size 4k;
    large_client_header_buffers 4 32k;
    client_body_buffer_size 256k;
    client_max_body_size {tap_body};

    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Forwarded-Proto $pzvo_proto;
    proxy_set_header X-Forwarded-Host $http_host;
    proxy_request_buffering on;
    proxy_buffering on;
    proxy_buffer_size 64k;
    proxy_buffers 16 64k;
    proxy_busy_buffers_size 128k;
    proxy_max_temp_file_size 256m;
    proxy_read_timeout {silence}s;
    proxy_send_timeout 60s;
    proxy_connect_timeout 10s;
    proxy_next_upstream off;

    map $http_x_forwarded_proto $pzvo_proto {{
        default $http_x_forwarded_proto;
        "" $scheme;
    }}

    upstream pzvo_app {{
        server unix:{layout.socket} fail_timeout=0;
        keepalive 32;
        keepalive_timeout {UPSTREAM_KEEPALIVE_S}s;
    }}

    server {{
        listen {listen};
        location / {{
            proxy_pass http://pzvo_app;
        }}
        location /tap {{
            error_page 413 = @tap_413;
            error_page 502 504 = @tap_unavailable;
            proxy_pass http://pzvo_app;
        }}
        location = /api/products {{
            client_max_body_size {product_body};
            auth_request /_pzvo/upload-permission;
            error_page 413 = @product_413;
            error_page 401 = @api_401;
            error_page 502 504 = @api_unavailable;
            proxy_pass http://pzvo_app;
        }}
        location = /_pzvo/upload-permission {{
            internal;
            client_max_body_size 0;
            proxy_pass http://pzvo_app/api/upload-permission;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-Method $request_method;
        }}
        location /api/ {{
            error_page 413 = @api_413;
            error_page 502 504 = @api_unavailable;
            proxy_pass http://pzvo_app;
        }}
        location @tap_413 {{
            default_type application/x-votable+xml;
            return 413 '<?xml version="1.0" encoding="UTF-8"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE type="results"><INFO name="QUERY_STATUS" value="ERROR">{tap_413}</INFO></RESOURCE></VOTABLE>
';
        }}
        location @api_413 {{
            default_type application/problem+json;
            return 413 '{{"type": "about:blank", "title": "Payload Too Large", "status": 413, "detail": "{api_413}"}}
';
        }}
        location @api_401 {{
            default_type application/problem+json;
            add_header WWW-Authenticate 'Bearer realm="pzvo"' always;
            return 401 '{{"type": "about:blank", "title": "Unauthorized", "status": 401, "detail": "Uploading a product needs a user: send Authorization: Bearer <token> (a token from pzvo user add)."}}
';
        }}
        location @api_unavailable {{
            default_type application/problem+json;
            return 503 '{{"type": "about:blank", "title": "Service Unavailable", "status": 503, "detail": "The service is restarting or overloaded; try again in a moment."}}
';
        }}
        location @tap_unavailable {{
            default_type application/x-votable+xml;
            return 503 '<?xml version="1.0" encoding="UTF-8"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE type="results"><INFO name="QUERY_STATUS" value="ERROR">The service is restarting or overloaded; try again in a moment.</INFO></RESOURCE></VOTABLE>
';
        }}
        location @product_413 {{
            default_type application/problem+json;
            return 413 '{{"type": "about:blank", "title": "Payload Too Large", "status": 413, "detail": "{product_413}"}}
';
        }}
    }}
}}
"""  # noqa: E501 - nginx's error bodies are one line each


def _check_free(bind: str) -> None:
    host, _, port = bind.rpartition(":")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nginx and gunicorn do
        try:
            probe.bind((host.strip("[]"), int(port)))
        except OSError as exc:
            raise RuntimeError(f"{bind} is in use ({exc.strerror}): is another `pzvo serve` "
                               "running there?") from None


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _prepare(layout: Layout) -> None:
    """A fresh spool directory for one start; nginx's workers (``nobody``) own only ``tmp/``."""
    shutil.rmtree(layout.tmp, ignore_errors=True)
    layout.tmp.mkdir()
    user = _worker_user(layout.root)
    if user is not None:
        os.chown(layout.tmp, pwd.getpwnam(user[0]).pw_uid, grp.getgrnam(user[1]).gr_gid)
    layout.socket.unlink(missing_ok=True)


def _program(proc: subprocess.Popen) -> str:
    """The program a process runs (each is started from an argument list)."""
    return str(proc.args[0]) if isinstance(proc.args, list) else str(proc.args)


class ServiceProcesses:
    """The processes of one service: nginx (unless ``front="none"``), gunicorn, workers."""

    def __init__(self, settings: Settings, bind: str, *, front: str = "nginx",
                 web_workers: int | None = None, web_threads: int | None = None,
                 async_workers: int = 0, env: dict[str, str] | None = None,
                 quiet: bool = False) -> None:
        if front not in FRONTS:
            raise ValueError(f"front must be one of {', '.join(FRONTS)}, not {front!r}")
        if front == "nginx" and not Path(NGINX).exists():
            raise RuntimeError(f"{NGINX} is missing: run `make deps` as root (Debian package "
                               "nginx), or serve without a front: --front none")
        self.settings = settings
        self.bind = bind
        self.front = front
        self.layout = layout_for(settings, bind)
        self.web_workers = web_workers or settings.web_workers
        self.web_threads = web_threads or settings.web_threads
        self.async_workers = async_workers
        self.env = dict(os.environ, **(env or {}))
        self.env["PZVO_WEB_THREADS"] = str(self.web_threads)
        self._quiet = quiet
        self.web: subprocess.Popen | None = None
        self.nginx: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []

    def _popen(self, argv: Sequence[str], env: dict[str, str] | None = None,
               new_session: bool = False) -> subprocess.Popen:
        """A child process; ``quiet`` sends its output to ``service.log`` in the layout.
        nginx gets a session of its own, so that its workers can be killed with it."""
        if not self._quiet:
            return subprocess.Popen(list(argv), cwd=PROJECT_ROOT, env=env or self.env,
                                    start_new_session=new_session)
        with (self.layout.root / "service.log").open("ab") as out:
            return subprocess.Popen(list(argv), cwd=PROJECT_ROOT, env=env or self.env,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=new_session)

    def start(self) -> None:
        """Start every process; refuses an address already served (a second ``pzvo serve`` on
        it would otherwise take the running instance's socket and spool directory)."""
        _check_free(self.bind)
        self.layout.root.mkdir(parents=True, exist_ok=True)
        (self.layout.root / "service.log").unlink(missing_ok=True)
        if self.front == "nginx":
            _prepare(self.layout)
            self.layout.config.write_text(nginx_config(self.settings, self.bind, self.layout))
            self.web = self._popen(
                gunicorn_argv(self.settings, f"unix:{self.layout.socket}",
                              workers=self.web_workers, threads=self.web_threads, behind_front=True),
                env=dict(self.env, **{BEHIND_FRONT_ENV: "1"}))
            self.nginx = self._popen([NGINX, "-e", str(self.layout.root / "error.log"),
                                      "-p", str(self.layout.root), "-c", str(self.layout.config),
                                      "-g", "daemon off;"], new_session=True)
        else:
            self.web = self._popen(gunicorn_argv(self.settings, self.bind, workers=self.web_workers,
                                                 threads=self.web_threads, behind_front=False))
        self.workers = [self._popen(WORKER_ARGV) for _ in range(self.async_workers)]
        log.info("serving", extra={"bind": self.bind, "front": self.front,
                                   "web_pid": self.web.pid,
                                   "nginx_pid": self.nginx.pid if self.nginx else None,
                                   "worker_pids": [w.pid for w in self.workers]})

    @property
    def url(self) -> str:
        return f"http://{self.bind}"

    def pids(self) -> list[int]:
        return [p.pid for p in self._all() if p.poll() is None]

    def _all(self) -> list[subprocess.Popen]:
        return [p for p in (self.nginx, self.web, *self.workers) if p is not None]

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until ``/tap/availability`` answers through the front (gunicorn boots its workers
        after it listens, so a refused or timed-out request means not ready yet)."""
        deadline = time.monotonic() + timeout_s
        while True:
            for proc in self._all():
                if proc.poll() is not None:
                    raise RuntimeError(f"{_program(proc)} exited with status {proc.returncode} "
                                       "while the service started")
            try:
                if requests.get(self.url + "/tap/availability", timeout=5).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service on {self.bind} did not become ready")
            time.sleep(0.2)

    def supervise(self) -> int:
        """Until gunicorn or nginx exits: restart async workers that die (crash, OOM kill; the
        jobs they held go back to the queue when their lease expires), forward SIGINT and
        SIGTERM to every child."""
        stopping = False

        def forward(signum: int, _frame: object) -> None:
            nonlocal stopping
            stopping = True
            for proc in self._all():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGQUIT if proc is self.nginx else signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        code = 0
        while True:
            ended = [p for p in (self.web, self.nginx) if p is not None and p.poll() is not None]
            if ended:
                code = ended[0].returncode
                break
            for index, proc in enumerate(self.workers):
                status = proc.poll()
                if status is not None and not stopping:
                    log.warning("worker exited; starting another",
                                extra={"pid": proc.pid, "status": status})
                    time.sleep(1.0)
                    self.workers[index] = self._popen(WORKER_ARGV)
            time.sleep(0.5)
        self.stop()
        return code

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop everything: nginx first (no new requests), then gunicorn and the workers."""
        for proc in self._all():
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT if proc is self.nginx else signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self._all():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                if proc is self.nginx:
                    os.killpg(proc.pid, signal.SIGKILL)  # its workers too
                else:
                    proc.kill()
                proc.wait()


@contextmanager
def running_service(settings: Settings, bind: str, ready_timeout_s: float = 60.0,
                    **kwargs: object) -> Iterator[ServiceProcesses]:
    """The service as ``pzvo serve`` runs it, for tests and benchmarks; stopped and its files
    removed on exit."""
    service = ServiceProcesses(settings, bind, **kwargs)  # type: ignore[arg-type]
    service.start()
    try:
        service.wait_ready(ready_timeout_s)
        yield service
    finally:
        service.stop()
        shutil.rmtree(service.layout.root, ignore_errors=True)
