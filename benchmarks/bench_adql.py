#!/usr/bin/env python3
"""What the ADQL layer adds to a query: translate_adql time on the real catalogue.

The catalogue is read from the running database's TAP_SCHEMA (as the service does); each query
is translated --repeat times and the median reported, with the sqlglot version.

Usage: .venv/bin/python benchmarks/bench_adql.py [--repeat 2000]
"""
from __future__ import annotations

import argparse
import statistics
import time

import sqlglot

from _common import machine
from vo_service.core.pool import ConnectionPool
from vo_service.core.settings import load_settings
from vo_service.tap._storage import load_catalog
from vo_service.tap.adql import translate_adql

QUERIES = {
    "point lookup": "SELECT TOP 10 * FROM bench.photoz WHERE object_id = 123456",
    "count range": "SELECT COUNT(*) FROM bench.photoz WHERE z_phot BETWEEN 0.5 AND 0.6",
    "100k rows": "SELECT TOP 100000 object_id, ra, dec, z_phot FROM bench.photoz",
    "cone": "SELECT * FROM bench.photoz WHERE 1=CONTAINS(POINT('ICRS',ra,dec), CIRCLE('ICRS',150,2,0.5))",
    "crossmatch": ("SELECT TOP 1000 s.id, s.z, p.z_phot FROM pz.specz_demo AS s JOIN pz.photoz_demo AS p "
                   "ON 1 = CONTAINS(POINT('ICRS', p.ra, p.dec), CIRCLE('ICRS', s.ra, s.dec, 1.0/3600)) "
                   "WHERE s.z_flag >= 3"),
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2000)
    args = ap.parse_args()
    pool = ConnectionPool(load_settings().query_url(), size=1)
    with pool.connection() as conn:
        catalog = load_catalog(conn)
    print(f"sqlglot {sqlglot.__version__}; median of {args.repeat} translations")
    print(f"{'query':14} {'median ms':>10} {'p95 ms':>8}")
    for name, adql in QUERIES.items():
        samples = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            translate_adql(adql, catalog, row_limit=2_000_001)
            samples.append((time.perf_counter() - t) * 1e3)
        samples.sort()
        print(f"{name:14} {statistics.median(samples):10.3f} {samples[int(0.95 * len(samples))]:8.3f}")
    print(machine())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
