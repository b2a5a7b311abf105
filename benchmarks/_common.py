"""Shared pieces of the benchmark scripts: machine description, a gunicorn service, medians."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def machine() -> dict[str, object]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_gib, 1),
            "python": platform.python_version(), "os": platform.platform()}


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e3, 2)


@contextmanager
def gunicorn_service(port: int = 8765, workers: int = 2, env: dict[str, str] | None = None,
                     start_timeout: float = 60) -> Iterator[str]:
    """The service as `make run` serves it, on a loopback port, for the duration of a benchmark."""
    gunicorn = Path(sys.executable).parent / "gunicorn"
    full_env = dict(os.environ, PZVO_LOG_LEVEL="WARNING", PZVO_MAXREC_LIMIT="2000000",
                    PZVO_PUBLIC_READ="true", **(env or {}))
    proc = subprocess.Popen([str(gunicorn), "vo_service.wsgi:app", "--bind", f"127.0.0.1:{port}",
                             "--workers", str(workers), "--worker-class", "gthread", "--threads", "4",
                             "--log-level", "warning"],
                            cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if requests.get(url + "/tap/availability", timeout=10).ok:
                    break
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or no worker booted yet
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the service did not start")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
