#!/usr/bin/env python3
"""Positional crossmatch joins through /tap/sync (issue 20), beside DaCHS 2.7's figures.

The service as `make run` serves it (nginx + gunicorn) on `bench.photoz` (1,000,000 rows, `pzvo
bench-load --rows 1000000`, which `make bench` runs first):

* the three join forms of ../shared/bench/README.md ("Crossmatch joins"): 2,000 positions of the
  table itself (a subquery with TOP and ORDER BY) joined back to the whole table within 2 arcsec,
  each request timed from POST to the last byte of the BINARY2 result;
* a 100,000-row TAP_UPLOAD (positions of the table moved by up to 3 arcsec, seeded) crossmatched
  against the 1,000,000-row table within 2 arcsec, end to end: the upload written, POSTed, loaded,
  joined and the result read.

Best and median of --repeat runs after one warm-up.  DaCHS's figures are those of the shared
README (same machine, same table, 2026-12-03); the goal is every form at most 1/3 of DaCHS's best
form (206 ms: about 70 ms) and the upload crossmatch under 2 s.

Usage: .venv/bin/python benchmarks/bench_crossmatch.py [--repeat 5] [--upload-rows 100000]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import machine, service  # noqa: E402
from vo_service.tap import decode_binary2, encode_binary2  # noqa: E402

SUBQUERY = "(SELECT TOP 2000 object_id, ra, dec FROM bench.photoz WHERE object_id < 3000 ORDER BY object_id) AS s"
FORMS = [
    ("DISTANCE(POINT(p), POINT(s)) < 2/3600", 206,
     "DISTANCE(POINT('ICRS', p.ra, p.dec), POINT('ICRS', s.ra, s.dec)) < 2.0/3600"),
    ("1=CONTAINS(POINT(p), CIRCLE(s, 2/3600))", 244,
     "1=CONTAINS(POINT('ICRS', p.ra, p.dec), CIRCLE('ICRS', s.ra, s.dec, 2.0/3600))"),
    ("1=CONTAINS(POINT(s), CIRCLE(p, 2/3600))", None,
     "1=CONTAINS(POINT('ICRS', s.ra, s.dec), CIRCLE('ICRS', p.ra, p.dec, 2.0/3600))"),
]
UPLOAD_JOIN = ("SELECT u.uid, p.object_id, p.z_phot FROM TAP_UPLOAD.mine AS u JOIN bench.photoz AS p "
               "ON DISTANCE(POINT('ICRS', u.ra, u.dec), POINT('ICRS', p.ra, p.dec)) < 2.0/3600")


def post(url: str, query: str, files: dict[str, bytes] | None = None) -> bytes:
    data = {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query, "MAXREC": "2000000",
            "RESPONSEFORMAT": "votable/b2"}
    if files:
        data["UPLOAD"] = ";".join(f"{name},param:{name}" for name in files)
    response = requests.post(url + "/tap/sync", data=data, timeout=120,
                             files={k: (f"{k}.vot", v) for k, v in (files or {}).items()} or None)
    if response.status_code != 200 or b'value="ERROR"' in response.content:
        raise SystemExit(f"query failed: {response.text[:500]}")
    return response.content


def upload_positions(url: str, rows: int) -> tuple[bytes, int]:
    """``rows`` positions of bench.photoz moved by up to 3 arcsec (seeded), as BINARY2."""
    table = decode_binary2(post(url, f"SELECT TOP {rows} ra, dec FROM bench.photoz ORDER BY object_id"))
    assert table is not None
    ra, dec = (np.asarray(v, dtype=np.float64) for v in table.values)
    rng = np.random.default_rng(20)
    shift, angle = rng.uniform(0, 3.0 / 3600, rows), rng.uniform(0, 2 * np.pi, rows)
    dec = np.clip(dec + shift * np.cos(angle), -90, 90)
    ra = (ra + shift * np.sin(angle) / np.maximum(np.cos(np.radians(dec)), 1e-6)) % 360
    document = encode_binary2(pa.table({"uid": np.arange(rows, dtype=np.int64), "ra": ra, "dec": dec}),
                              name="mine")
    assert document is not None
    return document, rows


def timed(fn, repeat: int) -> tuple[float, float, int]:
    fn()  # warm-up
    walls, rows = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        body = fn()
        walls.append(time.perf_counter() - t0)
        decoded = decode_binary2(body)
        rows = decoded.rows if decoded is not None else -1
    return min(walls), statistics.median(walls), rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--upload-rows", type=int, default=100_000)
    parser.add_argument("--port", type=int, default=8772)
    args = parser.parse_args()
    print("machine:", machine())
    print(f"command: python benchmarks/bench_crossmatch.py --repeat {args.repeat} --upload-rows {args.upload_rows}")
    with service(port=args.port, env={"PZVO_UPLOAD_MAX_BYTES": str(64 * 1024 * 1024)}) as url:
        print(f"{'form (2,000 x 1,000,000, 2 arcsec)':44} {'best ms':>8} {'median':>8} {'pairs':>7} {'DaCHS ms':>9}")
        for label, dachs, condition in FORMS:
            query = f"SELECT s.object_id, p.object_id FROM {SUBQUERY} JOIN bench.photoz AS p ON {condition}"
            best, median, rows = timed(lambda q=query: post(url, q), args.repeat)
            shown = f"{dachs}" if dachs is not None else "time limit"
            print(f"{label:44} {best * 1e3:8.1f} {median * 1e3:8.1f} {rows:7,} {shown:>9}")
        document, rows = upload_positions(url, args.upload_rows)
        best, median, pairs = timed(lambda: post(url, UPLOAD_JOIN, {"mine": document}), args.repeat)
        print(f"{f'TAP_UPLOAD of {rows:,} rows x 1,000,000 (DISTANCE)':44} {best * 1e3:8.1f} {median * 1e3:8.1f} "
              f"{pairs:7,} {'-':>9}  (upload {len(document) / 2**20:.1f} MiB, end to end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
