"""Time every output encoder on 100,000 rows x 4 columns, and astropy's VOTable BINARY2 writer.

Run: .venv/bin/python benchmarks/bench_encoders.py [--rows N] [--batches K] [--repeat R]
Prints the best of R runs per encoder (wall-clock, whole response joined in memory).
"""
from __future__ import annotations

import argparse
import io
import os
import platform
import time
import warnings

import numpy as np
import pyarrow as pa

from vo_service.core.columns import Column
from vo_service.tap.formats import OUTPUT_FORMATS
from vo_service.tap.results import ResultStatus

FIELDS = [
    Column("object_id", "long", ucd="meta.id;meta.main"),
    Column("ra", "double", unit="deg", ucd="pos.eq.ra;meta.main"),
    Column("dec", "double", unit="deg", ucd="pos.eq.dec;meta.main"),
    Column("z_phot", "float", ucd="src.redshift.phot"),
]


def make_batches(rows: int, batches: int, seed: int = 1) -> list[pa.RecordBatch]:
    rng = np.random.default_rng(seed)
    table = pa.table(
        {
            "object_id": pa.array(np.arange(rows, dtype=np.int64) + 10**15),
            "ra": pa.array(rng.uniform(0, 360, rows)),
            "dec": pa.array(np.degrees(np.arcsin(rng.uniform(-1, 1, rows)))),
            "z_phot": pa.array(rng.uniform(0, 3, rows).astype(np.float32)),
        }
    )
    return table.to_batches(max_chunksize=-(-rows // batches))


def best_of(repeat: int, run) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        size = run()
        best = min(best, time.perf_counter() - start)
    return best, size


def astropy_binary2(batches: list[pa.RecordBatch]) -> int:
    from astropy.io.votable import from_table
    from astropy.table import Table

    arrow = pa.Table.from_batches(batches)
    table = Table({name: arrow.column(name).to_numpy() for name in arrow.column_names})
    votable = from_table(table)
    votable.get_first_table().format = "binary2"
    sink = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        votable.to_xml(sink)
    return len(sink.getvalue())


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    batches = make_batches(args.rows, args.batches)
    print(f"{args.rows} rows x 4 columns in {len(batches)} batch(es); best of {args.repeat}")
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}; "
          f"Python {platform.python_version()}, pyarrow {pa.__version__}")
    print(f"{'encoder':<28}{'ms':>10}{'MB':>10}")
    for fmt in OUTPUT_FORMATS:
        def run(fmt=fmt) -> int:
            return sum(len(c) for c in fmt.encode(FIELDS, iter(batches), ResultStatus(rows=args.rows)))
        seconds, size = best_of(args.repeat, run)
        print(f"{fmt.key:<28}{seconds * 1000:>10.1f}{size / 1e6:>10.2f}")
    seconds, size = best_of(max(1, min(args.repeat, 2)), lambda: astropy_binary2(batches))
    print(f"{'astropy votable binary2':<28}{seconds * 1000:>10.1f}{size / 1e6:>10.2f}")


if __name__ == "__main__":
    main()
