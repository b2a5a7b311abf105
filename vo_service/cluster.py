"""The private PostgreSQL cluster under ``var/pg``: the default, embedded-style database.

``pzvo db start`` creates the cluster on first use (initdb with SCRAM passwords kept in
``var/secrets``), listens on 127.0.0.1 only, and when invoked as root runs every server
process as the unprivileged ``postgres`` OS user that Debian's package creates.  Setting
``PZVO_DATABASE_URL`` bypasses all of this: the project then uses that server as it is.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import psycopg2
from psycopg2 import sql

from vo_service.core.settings import Settings, _secret

PG_VERSION = "15"
SERVICE_USER = "postgres"


class ClusterError(RuntimeError):
    """The private cluster could not be created, started or reached."""


def pg_bindir() -> Path:
    """The PostgreSQL 15 server binaries from Debian's ``postgresql-15`` package."""
    for candidate in (Path(f"/usr/lib/postgresql/{PG_VERSION}/bin"),):
        if (candidate / "postgres").exists():
            return candidate
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise ClusterError("PostgreSQL 15 server binaries not found: run `make deps` (installs postgresql-15)")


def _reachable_by_service_user(path: Path) -> bool:
    probe = subprocess.run(["runuser", "-u", SERVICE_USER, "--", "test", "-x", str(path)],
                           capture_output=True)
    return probe.returncode == 0


class PrivateCluster:
    """Create, start, stop and inspect the cluster that lives under ``settings.var_dir``."""

    def __init__(self, *, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.pg_dir

    @property
    def data(self) -> Path:
        """The data directory, through the ``var/pg`` link when there is one."""
        return self.root.resolve() / "data"

    @property
    def log(self) -> Path:
        return self.root.resolve() / "postgresql.log"

    # -- OS-level helpers -------------------------------------------------------------------
    def _as_service_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        return ["runuser", "-u", SERVICE_USER, "--", *argv]

    def _run(self, argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._as_service_user(argv), check=True, text=True,
                              capture_output=True, cwd="/", **kw)  # type: ignore[call-overload]

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, SERVICE_USER, SERVICE_USER)

    def _prepare_root(self) -> None:
        """Create ``var/pg`` where the service user can reach it.

        A checkout under a directory the ``postgres`` user cannot traverse (``/root``, say)
        cannot hold its data directory; then the cluster lives in ``/var/lib/pzvo/<id>`` and
        ``var/pg`` is a symbolic link to it, so ``var/`` still holds (or points to) everything.
        """
        if self.root.exists() or self.root.is_symlink():
            return
        self.root.parent.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and not _reachable_by_service_user(self.root.parent):
            digest = hashlib.sha1(str(self.root.resolve()).encode()).hexdigest()[:12]
            target = Path("/var/lib/pzvo") / digest
            target.mkdir(parents=True, exist_ok=True)
            self._chown(target)
            self.root.symlink_to(target, target_is_directory=True)
        else:
            self.root.mkdir(parents=True)
            self._chown(self.root)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def init(self) -> None:
        """Run initdb once: superuser ``pzvo`` with a generated password, SCRAM on TCP."""
        if self.initialized:
            return
        self._prepare_root()
        pwfile = self.root.resolve() / ".pwfile"
        pwfile.write_text(_secret(self.settings, "owner") + "\n")
        pwfile.chmod(0o600)
        self._chown(pwfile)
        try:
            self._run([str(pg_bindir() / "initdb"), "-D", str(self.data), "-U", "pzvo",
                       f"--pwfile={pwfile}", "--auth-local=peer", "--auth-host=scram-sha-256",
                       "-E", "UTF8", "--locale=C.UTF-8"])
        except subprocess.CalledProcessError as exc:
            raise ClusterError(f"initdb failed: {exc.stderr.strip()}") from exc
        finally:
            pwfile.unlink(missing_ok=True)
        conf = self.data / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write(
                "\n# pzvo private cluster\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.settings.db_port}\n"
                "unix_socket_directories = ''\n"
                "shared_buffers = '512MB'\n"
                "work_mem = '64MB'\n"
                "maintenance_work_mem = '512MB'\n"
                "max_connections = 200\n"
                "random_page_cost = 1.1\n"
                "jit = off\n"
            )

    def is_running(self) -> bool:
        if not self.initialized:
            return False
        result = subprocess.run(self._as_service_user(
            [str(pg_bindir() / "pg_ctl"), "-D", str(self.data), "status"]),
            capture_output=True, text=True, cwd="/")
        return result.returncode == 0

    def start(self) -> None:
        """Initialise if needed, start if stopped, and make sure the database exists."""
        self.init()
        if not self.is_running():
            try:
                self._run([str(pg_bindir() / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                           "-w", "-t", "60", "start"])
            except subprocess.CalledProcessError as exc:
                tail = self.log.read_text()[-2000:] if self.log.exists() else ""
                raise ClusterError(f"PostgreSQL did not start: {exc.stderr.strip()}\n{tail}") from exc
        self.wait_ready()
        self.create_database(self.settings.db_name)

    def stop(self) -> None:
        if self.is_running():
            self._run([str(pg_bindir() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg2.connect(self.admin_dsn("postgres")).close()
                return
            except psycopg2.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ClusterError(f"PostgreSQL not reachable: {exc}") from exc
                time.sleep(0.2)

    def admin_dsn(self, dbname: str) -> str:
        return (f"host=127.0.0.1 port={self.settings.db_port} user=pzvo dbname={dbname} "
                f"password={_secret(self.settings, 'owner')}")

    def create_database(self, name: str) -> bool:
        """Create database ``name`` unless it exists; return whether it was created."""
        conn = psycopg2.connect(self.admin_dsn("postgres"))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone():
                    return False
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                return True
        finally:
            conn.close()

    def drop_database(self, name: str) -> None:
        conn = psycopg2.connect(self.admin_dsn("postgres"))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))
        finally:
            conn.close()

    def status(self) -> str:
        if not self.initialized:
            return f"not initialised ({self.data})"
        state = "running" if self.is_running() else "stopped"
        return f"{state}: {self.data} on 127.0.0.1:{self.settings.db_port}"
