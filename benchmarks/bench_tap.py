#!/usr/bin/env python3
"""The five peer queries of ../shared/bench/README.md against pzvo, timed as the peer was.

Each request is a new HTTP connection (as the DaCHS figures were taken), MAXREC=2000000, the whole
body read; the median of --repeat runs after one warm-up.  Also the time to the first byte of
the 100,000-row result, to show that it streams.  Needs `pzvo bench-load --rows 1000000` first
(`make bench` does both).

Usage: .venv/bin/python benchmarks/bench_tap.py [--repeat 21] [--front nginx|none] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import time

import requests

from _common import machine, median_ms, service

QUERIES = [
    ("point lookup", "SELECT TOP 10 * FROM bench.photoz WHERE object_id = 123456", "votable", 30),
    ("count range", "SELECT COUNT(*) FROM bench.photoz WHERE z_phot BETWEEN 0.5 AND 0.6", "votable", 36),
    ("100k rows BINARY2", "SELECT TOP 100000 object_id, ra, dec, z_phot FROM bench.photoz", "votable", 344),
    ("100k rows CSV", "SELECT TOP 100000 object_id, ra, dec, z_phot FROM bench.photoz", "csv", 369),
    ("cone 0.5 deg", "SELECT * FROM bench.photoz WHERE 1=CONTAINS(POINT('ICRS',ra,dec), "
                     "CIRCLE('ICRS',150,2,0.5))", "votable", 49),
]


def timed_request(url: str, query: str, fmt: str) -> tuple[float, float, int]:
    """(total s, first byte s, bytes) for one request on a fresh connection."""
    started = time.perf_counter()
    first = None
    size = 0
    with requests.Session() as session:
        with session.post(url + "/tap/sync", stream=True, timeout=120,
                          data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query,
                                "MAXREC": 2000000, "RESPONSEFORMAT": fmt}) as resp:
            resp.raise_for_status()
            for chunk in resp.iter_content(chunk_size=1 << 16):
                if first is None:
                    first = time.perf_counter()
                size += len(chunk)
    end = time.perf_counter()
    return end - started, (first or end) - started, size


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--json")
    ap.add_argument("--front", choices=("nginx", "none"), default="nginx",
                    help="what faces the client: nginx (as `make run`) or gunicorn alone")
    args = ap.parse_args()
    rows = []
    with service(front=args.front) as url:
        for name, query, fmt, peer_ms in QUERIES:
            timed_request(url, query, fmt)
            samples = [timed_request(url, query, fmt) for _ in range(args.repeat)]
            total = median_ms([s[0] for s in samples])
            first = median_ms([s[1] for s in samples])
            rows.append({"query": name, "adql": query, "format": fmt, "median_ms": total,
                         "first_byte_ms": first, "bytes": samples[0][2], "dachs_ms": peer_ms,
                         "speedup": round(peer_ms / total, 1)})
    print(f"{'query':20} {'median ms':>10} {'1st byte':>9} {'DaCHS ms':>9} {'speed-up':>8}")
    for r in rows:
        print(f"{r['query']:20} {r['median_ms']:10.1f} {r['first_byte_ms']:9.1f} {r['dachs_ms']:9d} "
              f"{r['speedup']:7.1f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine(), "front": args.front, "repeat": args.repeat,
                       "results": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
