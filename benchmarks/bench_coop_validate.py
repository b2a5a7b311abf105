#!/usr/bin/env python3
"""Validating a 1,000,000-object Cooperative submission with quantile PDFs (issue 18: under 30 s).

Builds a validation set and a submission (Parquet: id, z_phot and the PDF as z_q_<level>
columns at the pipeline's 17 levels, float32), then times what the validation does with a file:
read it into the standard form (pipeline.coop.formats), check it against the validation set's
ids (pipeline.coop.checks), align it with the truth and compute every metric overall and in bins
of true redshift and i magnitude (pipeline.coop.metrics).  Building the files is not timed.

Usage: .venv/bin/python benchmarks/bench_coop_validate.py [--objects 1000000] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.stats import norm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import machine  # noqa: E402 - after sys.path.insert
from pipeline.coop.checks import check_submission  # noqa: E402 - after sys.path.insert
from pipeline.coop.formats import read_submission  # noqa: E402 - after sys.path.insert
from pipeline.coop.metrics import validate  # noqa: E402 - after sys.path.insert
from pipeline.pdf import LEVELS  # noqa: E402 - after sys.path.insert

GOAL_S = 30.0


def build(work: Path, n: int, seed: int = 18) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    """The submission file, and the validation set's ids, true redshifts and i magnitudes."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(n, dtype=np.int64) * 7 + 1_000_000)
    z_true = rng.gamma(2.0, 0.35, n).clip(0.01, 3.5)
    mag_i = rng.uniform(19.0, 25.5, n)
    scatter = 0.04 * (1 + z_true)
    z_phot = np.abs(z_true + scatter * rng.standard_normal(n))
    locs = np.maximum(z_phot[:, None] + scatter[:, None] * norm.ppf(np.clip(LEVELS, 1e-6, 1 - 1e-6))[None, :], 0)
    order = rng.permutation(n)  # the participant's row order is not the validation set's
    columns = {"id": ids[order], "z_phot": z_phot[order].astype(np.float32)}
    columns.update({f"z_q_{level:g}": locs[order, i].astype(np.float32) for i, level in enumerate(LEVELS)})
    path = work / "submission.parquet"
    pq.write_table(pa.table(columns), path, compression="zstd")
    return path, ids, z_true, mag_i


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pzvo-bench-coop-") as work:
        path, ids, z_true, mag_i = build(Path(work), args.objects)
        steps: dict[str, float] = {}
        start = time.perf_counter()
        sub = read_submission(path)
        steps["read"] = time.perf_counter() - start
        mark = time.perf_counter()
        check_submission(sub, ids)
        steps["check"] = time.perf_counter() - mark
        mark = time.perf_counter()
        order = np.argsort(ids)
        where = order[np.searchsorted(ids[order], sub.ids)]
        metrics = validate(sub, z_true[where], mag_i[where])
        steps["validate"] = time.perf_counter() - mark
        total = time.perf_counter() - start
        size_mb = path.stat().st_size / 1e6
    result = {"objects": args.objects, "file_mb": round(size_mb, 1), "seconds": round(total, 2),
              "steps_s": {k: round(v, 2) for k, v in steps.items()}, "goal_s": GOAL_S, "met": total < GOAL_S,
              "sigma_mad": metrics["sigma_mad"], "pit_chi2_p": metrics["pit_chi2_p"], "machine": machine()}
    print(f"{args.objects:,} objects ({size_mb:.0f} MB Parquet): read {steps['read']:.2f} s, check "
          f"{steps['check']:.2f} s, validate {steps['validate']:.2f} s; total {total:.2f} s "
          f"(goal < {GOAL_S:.0f} s: {'met' if total < GOAL_S else 'NOT met'})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
