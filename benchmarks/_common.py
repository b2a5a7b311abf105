"""Shared pieces of the benchmark scripts: machine description, the service as `make run` serves it, medians."""
from __future__ import annotations

import os
import platform
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
def service(port: int = 8765, workers: int = 2, env: dict[str, str] | None = None,
            start_timeout: float = 60, front: str = "nginx") -> Iterator[str]:
    """The service as `make run` serves it (``front`` nginx, or ``none`` for gunicorn alone),
    on a loopback port, for the duration of a benchmark."""
    sys.path.insert(0, str(ROOT))
    from vo_service.core.settings import load_settings
    from vo_service.serving import running_service

    full_env = {"PZVO_LOG_LEVEL": "WARNING", "PZVO_MAXREC_LIMIT": "2000000",
                "PZVO_PUBLIC_READ": "true", **(env or {})}
    settings = load_settings(**{k[5:].lower(): v for k, v in full_env.items()
                                if k in ("PZVO_DB_NAME",)})
    with running_service(settings, f"127.0.0.1:{port}", front=front, web_workers=workers,
                         web_threads=4, env=full_env, quiet=True,
                         ready_timeout_s=start_timeout) as proc:
        yield proc.url
