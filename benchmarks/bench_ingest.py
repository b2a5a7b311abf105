#!/usr/bin/env python3
"""Ingest throughput against the server's own binary COPY of the same data, side by side.

A Parquet file of --rows rows x 10 numeric columns (generated once under var/bench, fixed seed)
is loaded into a logged table without indexes (a) by pzvo's path (pyarrow row groups -> pgpq
binary COPY encoding -> psycopg2 copy_expert, `ingest/load.py:copy_arrow`) and (b) by the
server reading a binary COPY file of the same rows (`COPY ... FROM '/file' (FORMAT binary)`),
the upper bound for any client.  Goal: (a) >= 80 % of (b).  Also reports the client's peak RSS.
Needs the private cluster (server-side COPY writes a file in var/pg).

Usage: .venv/bin/python benchmarks/bench_ingest.py [--rows 10000000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import text

from _common import machine
from ingest.columns import plan_columns
from ingest.load import copy_arrow
from ingest.readers import open_table
from vo_service.core.database import owner_engine
from vo_service.core.settings import load_settings

COLUMNS = 10


def make_parquet(path, rows: int) -> None:
    rng = np.random.default_rng(7)
    writer = None
    for start in range(0, rows, 1_000_000):
        n = min(1_000_000, rows - start)
        data = {"object_id": np.arange(start, start + n, dtype=np.int64)}
        for i in range(COLUMNS - 1):
            data[f"v{i}"] = rng.normal(size=n)
        table = pa.table(data)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=128_000)
    writer.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    settings = load_settings()
    if not settings.uses_private_cluster:
        print("needs the private cluster (server-side COPY file)")
        return 0
    work = settings.var_dir / "bench"
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"ingest_{args.rows}.parquet"
    if not path.exists():
        make_parquet(path, args.rows)
    engine = owner_engine(settings)
    source = open_table(path)
    specs = plan_columns(source.columns)
    ddl = ", ".join(f'"{c.name}" {c.sql_type}' for c in specs)
    server_file = settings.pg_dir.resolve() / "bench_ingest.bin"
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS benchwork"))
        conn.execute(text(f"DROP TABLE IF EXISTS benchwork.src; CREATE TABLE benchwork.src ({ddl})"))
        copy_arrow(conn, "benchwork.src", specs, source.batches())
        conn.execute(text(f"COPY benchwork.src TO '{server_file}' (FORMAT binary)"))
        conn.execute(text("DROP TABLE benchwork.src"))

    def load(kind: str) -> float:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS benchwork.t; CREATE TABLE benchwork.t ({ddl})"))
        started = time.perf_counter()
        with engine.begin() as conn:
            if kind == "server":
                conn.execute(text(f"COPY benchwork.t FROM '{server_file}' (FORMAT binary)"))
            else:
                copy_arrow(conn, "benchwork.t", specs, open_table(path).batches())
        return time.perf_counter() - started

    results = {"server binary COPY": [], "pzvo (Parquet -> pgpq -> COPY)": []}
    for _ in range(args.repeat):
        for kind, key in (("server", "server binary COPY"), ("pzvo", "pzvo (Parquet -> pgpq -> COPY)")):
            results[key].append(load(kind))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA benchwork CASCADE"))
    server_file.unlink(missing_ok=True)
    print(f"{args.rows:,} rows x {COLUMNS} numeric columns, logged table without indexes; median of {args.repeat}")
    base = statistics.median(results["server binary COPY"])
    for key, samples in results.items():
        med = statistics.median(samples)
        print(f"{key:34} {med:7.2f} s  {args.rows / med / 1e6:5.2f} M rows/s  {base / med * 100:5.1f} %")
    print(f"client peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(machine())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
