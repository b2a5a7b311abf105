"""``pzvo serve`` with async workers: gunicorn and ``pzvo worker`` processes side by side.

No external supervisor is needed for ``make run``: this parent starts gunicorn and
``uws_workers`` worker processes, restarts a worker that exits (a crash or an OOM kill; the
jobs it held are requeued by the other workers' reaper once its lease expires), forwards
SIGINT/SIGTERM to all children, and exits with gunicorn's status when gunicorn stops.  In a
deployment with its own process manager (systemd, Kubernetes), run ``pzvo serve
--async-workers 0`` and ``pzvo worker`` as separate units instead.
"""
from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time

log = logging.getLogger("vo_service.uws.supervisor")


def supervise(web_argv: list[str], workers: int) -> int:
    """Run the web server and ``workers`` worker processes until the web server exits."""
    worker_argv = [sys.executable, "-m", "vo_service.cli", "worker"]
    web = subprocess.Popen(web_argv)
    children: list[subprocess.Popen] = [subprocess.Popen(worker_argv) for _ in range(workers)]
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in [web, *children]:
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    log.info("serving", extra={"web_pid": web.pid, "worker_pids": [c.pid for c in children]})
    while True:
        code = web.poll()
        if code is not None:
            break
        for index, proc in enumerate(children):
            status = proc.poll()
            if status is not None and not stopping:
                log.warning("worker exited; starting another",
                            extra={"pid": proc.pid, "status": status})
                time.sleep(1.0)
                children[index] = subprocess.Popen(worker_argv)
        time.sleep(0.5)
    for proc in children:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 15
    for proc in children:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
    return code
