#!/usr/bin/env python3
"""How to get 100,000 rows x 4 columns out of PostgreSQL: the result path's driver choice.

Times, on bench.photoz, the ways the service could fetch a result: ADBC to Arrow (the chosen
path), psycopg 3 binary COPY (raw bytes only, no decoding), psycopg2 fetchall and a psycopg2
named (server-side) cursor.  Median of --repeat runs, connection already open.

Usage: .venv/bin/python benchmarks/bench_fetch.py [--repeat 15]
"""
from __future__ import annotations

import argparse
import time

import adbc_driver_postgresql.dbapi as adbc
import psycopg
import psycopg2

from _common import machine, median_ms
from vo_service.core.settings import load_settings

SQL = "SELECT object_id, ra, dec, z_phot FROM bench.photoz LIMIT 100000"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    url = load_settings().query_url()
    results = {}

    with adbc.connect(url) as conn, conn.cursor() as cur:
        def run_adbc() -> None:
            cur.execute(SQL)
            cur.fetch_arrow_table()
        results["ADBC -> Arrow table"] = run_adbc

        with psycopg.connect(url) as pconn:
            def run_copy() -> None:
                with pconn.cursor() as c, c.copy(f"COPY ({SQL}) TO STDOUT (FORMAT binary)") as cp:
                    for _ in cp:
                        pass
            results["psycopg binary COPY (bytes)"] = run_copy

            p2 = psycopg2.connect(url)

            def run_fetchall() -> None:
                with p2.cursor() as c:
                    c.execute(SQL)
                    c.fetchall()

            def run_named() -> None:
                with p2.cursor(name="bench") as c:
                    c.itersize = 20000
                    c.execute(SQL)
                    for _ in c:
                        pass
                p2.rollback()
            results["psycopg2 fetchall"] = run_fetchall
            results["psycopg2 named cursor"] = run_named

            print(f"{'method':32} {'median ms':>10}")
            for name, fn in results.items():
                fn()
                samples = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    fn()
                    samples.append(time.perf_counter() - t)
                print(f"{name:32} {median_ms(samples):10.1f}")
            p2.close()
    print(machine())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
