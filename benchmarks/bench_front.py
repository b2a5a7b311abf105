#!/usr/bin/env python3
"""Which front faces clients: gunicorn alone, nginx before gunicorn, or waitress.

For each candidate, on the same database (``bench.photoz``, `make bench` loads it):

* idle: the median of the five peer queries of ``bench_tap.py`` (new connection each);
* under attack: 100 connections trickling request headers, 100 trickling request bodies and
  50 blocking ``WAIT=20`` requests on a pending job, all open at once; then ten normal queries
  (``TOP 5`` of the demo table), each given 5 s: their median and worst time and how many
  failed.  Issue 14 asks for every one under 1 s.

gunicorn alone and nginx are what ``pzvo serve --front none|nginx`` starts (2 processes x 4
threads); waitress (an event-loop server that buffers whole requests before a thread sees
them) runs one process with 8 threads.  waitress is not a project dependency: install it in
the venv to measure it (``.venv/bin/pip install waitress``); without it its row is skipped.

Usage: .venv/bin/python benchmarks/bench_front.py [--repeat 11] [--json OUT]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests

from _common import ROOT, machine, median_ms, service
from _hostile import Tricklers, blocking_waits
from bench_tap import QUERIES, timed_request

QUICK = {"LANG": "ADQL", "QUERY": "SELECT TOP 5 objectId, z_phot FROM pz.photoz_demo"}
ENV = {"PZVO_LOG_LEVEL": "WARNING", "PZVO_MAXREC_LIMIT": "2000000", "PZVO_PUBLIC_READ": "true"}


@contextmanager
def waitress_service(port: int) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}",
                             "--threads=8", "--connection-limit=1000", "vo_service.wsgi:app"], cwd=ROOT,
                            env=dict(os.environ, **ENV), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/tap/availability", timeout=5).ok:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("waitress did not start")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def quick(url: str) -> float | None:
    started = time.perf_counter()
    try:
        resp = requests.post(url + "/tap/sync", data=QUICK, timeout=5)
    except requests.RequestException:
        return None
    return time.perf_counter() - started if resp.status_code == 200 else None


def measure(url: str, repeat: int) -> dict[str, object]:
    idle = {}
    for name, query, fmt, _peer in QUERIES:
        timed_request(url, query, fmt)
        idle[name] = median_ms([timed_request(url, query, fmt)[0] for _ in range(repeat)])
    with blocking_waits(url, 50), Tricklers(url, headers=100, bodies=100) as tricklers:
        time.sleep(2.0)
        samples = [quick(url) for _ in range(10)]
        reopened = tricklers.reopened
    done = [s for s in samples if s is not None]
    return {"idle_median_ms": idle,
            "attack": {"ok": len(done), "failed": len(samples) - len(done),
                       "median_ms": round(statistics.median(done) * 1e3, 1) if done else None,
                       "max_ms": round(max(done) * 1e3, 1) if done else None,
                       "tricklers_reopened": reopened}}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--json")
    args = ap.parse_args()
    results: dict[str, object] = {}
    for name, front in (("gunicorn alone", "none"), ("nginx + gunicorn", "nginx")):
        with service(port=8766, env=ENV, front=front) as url:
            results[name] = measure(url, args.repeat)
    if importlib.util.find_spec("waitress") is not None:
        with waitress_service(8766) as url:
            results["waitress"] = measure(url, args.repeat)
    names = [q[0] for q in QUERIES]
    print(f"{'front':18} " + " ".join(f"{n[:12]:>12}" for n in names)
          + f" {'attack ok':>9} {'med ms':>8} {'max ms':>8}")
    for front, r in results.items():
        attack = r["attack"]  # type: ignore[index]
        print(f"{front:18} " + " ".join(f"{r['idle_median_ms'][n]:12.1f}" for n in names)  # type: ignore[index]
              + f" {attack['ok']:>6}/10 {attack['median_ms'] or '-':>8} {attack['max_ms'] or '-':>8}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine(), "repeat": args.repeat, "results": results}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
