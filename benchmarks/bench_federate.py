#!/usr/bin/env python3
"""Federated upload join (issue 17): 1,000,000 ids from a TAP service joined with a PZ table.

The service as `make run` serves it (nginx + gunicorn, on a loopback port) plays both sides:
the source query ``SELECT object_id FROM bench.photoz`` (1,000,000 ids, the remote Object
selection of a real federation) and the target query joining them, uploaded as
``TAP_UPLOAD.ids``, with ``bench.photoz`` (``make bench``'s 1,000,000-row table).  Through
``vo_service.federation.federate``, end to end: fetch the ids, write the BINARY2 upload, POST
it, let the service load and join it, read the joined VOTable.  Once whole (one upload of
1,000,000 rows, the service's upload_max_rows) and in chunks of --chunk-rows ordered by
object_id.  Reports wall time, joined rows/s, the client's peak RSS and the service processes'
peak RSS growth (psutil, sampled).  Goal: >= 500,000 joined rows/s, memory bounded.

Usage: .venv/bin/python benchmarks/bench_federate.py [--rows 1000000] [--chunk-rows 200000] [--repeat 5]
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import machine, service  # noqa: E402
from vo_service.federation import TapEndpoint, federate  # noqa: E402

TABLE_ROWS = 1_000_000  # bench.photoz, as `pzvo bench-load --rows 1000000` makes it
JOIN = ("SELECT u.object_id, p.z_phot, p.z_err FROM TAP_UPLOAD.ids AS u "
        "JOIN bench.photoz AS p ON p.object_id = u.object_id")


class ServerMemory:
    """Peak RSS of the service's processes (gunicorn workers), sampled every 50 ms."""

    def __init__(self) -> None:
        self.procs = [p for p in psutil.process_iter(["cmdline"])
                      if any("gunicorn" in part for part in (p.info["cmdline"] or []))]
        self.base = sum(p.memory_info().rss for p in self.procs)
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, sum(p.memory_info().rss for p in self.procs))
            except psutil.Error:  # a process may end; keep the last peak
                pass

    def __enter__(self) -> ServerMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def one_run(url: str, rows: int, chunk_rows: int | None) -> tuple[float, int, int, int]:
    side = TapEndpoint(url + "/tap", label="local")
    # Chunks page through the source query by key; a TOP inside it would make every page
    # first produce all of its rows, so the whole table is selected without one.
    query = (f"SELECT TOP {rows} object_id FROM bench.photoz" if rows < TABLE_ROWS
             else "SELECT object_id FROM bench.photoz")
    chunks = [0]
    with ServerMemory() as memory:
        t0 = time.perf_counter()
        joined = federate(side, query, name="ids", query=JOIN, target=side,
                          chunk_by="object_id" if chunk_rows else None, chunk_rows=chunk_rows, maxrec=rows,
                          progress=lambda p: chunks.__setitem__(0, p.chunk))
        wall = time.perf_counter() - t0
    return wall, len(joined), chunks[0], memory.peak - memory.base


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--port", type=int, default=8771)
    args = parser.parse_args()
    print("machine:", machine())
    print(f"command: python benchmarks/bench_federate.py --rows {args.rows} --chunk-rows {args.chunk_rows} "
          f"--repeat {args.repeat}")
    with service(port=args.port, env={"PZVO_UPLOAD_MAX_BYTES": str(64 * 1024 * 1024)}) as url:
        federate(TapEndpoint(url + "/tap"), "SELECT TOP 10 object_id FROM bench.photoz", name="ids", query=JOIN,
                 target=TapEndpoint(url + "/tap"))  # warm the pools and caches
        for label, chunk in (("one upload", None), (f"chunks of {args.chunk_rows:,}", args.chunk_rows)):
            runs = [one_run(url, args.rows, chunk) for _ in range(args.repeat)]
            wall, joined, chunks, server_growth = min(runs)
            median = statistics.median(r[0] for r in runs)
            print(f"{label:22} best of {args.repeat}: {wall:6.2f} s, {joined:,} joined rows in {chunks} upload(s), "
                  f"{joined / wall:,.0f} joined rows/s (median {joined / median:,.0f}); "
                  f"service RSS growth {server_growth / 2**20:,.0f} MiB "
                  f"(walls {', '.join(f'{r[0]:.2f}' for r in runs)})")
    print(f"client peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
