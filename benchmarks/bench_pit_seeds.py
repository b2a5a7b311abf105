#!/usr/bin/env python3
"""How much of the fixed split's PIT statistic is the training draw: the default estimator, seeds 1..N.

The quality goal of the pipeline (issue 7) asks for a PIT histogram "flat within 5 %" on one
fixed-seed test set of 10,338 galaxies.  Multinomial noise alone puts 3 % on each of its 10 bins,
so a perfectly calibrated estimator passes in well under half of the draws (printed below).  This
script measures the other part: the default estimator trained with ``seed`` = 1 .. N (the seed
picks the 20 % calibration hold-out and the networks' initial weights; everything else is the
shipped recipe) on the same training set, evaluated on the same test set.  Every one of these is
an equally valid training of the same estimator; the spread of their PIT statistics is what the
fixed-split number varies by with nothing changed but the random draw.

Usage: .venv/bin/python benchmarks/bench_pit_seeds.py [--seeds 5] [--json FILE]
(about two minutes per seed on 2 cores).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_pipeline import SOURCE, WORK, flat_pit_deviations  # noqa: E402 - after sys.path.insert
from pipeline.catalog import read_training_set, write_demo_catalog  # noqa: E402 - after sys.path.insert
from pipeline.estimators import DEFAULT_ESTIMATOR, make_estimator  # noqa: E402 - after sys.path.insert
from pipeline.quality import evaluate_columns  # noqa: E402 - after sys.path.insert

QUALITY = WORK / "quality"  # the fixed split of bench_pipeline.py


def flat_reference(n: int, draws: int = 20_000) -> dict[str, float]:
    """For a perfectly flat PIT of ``n`` galaxies: the chance that every bin is within 5 %, and the
    median and 95th percentile of the largest bin deviation."""
    dev = flat_pit_deviations(n, draws)
    return {"p_within_5pc": float(np.mean(dev <= 0.05)), "median": float(np.median(dev)),
            "p95": float(np.quantile(dev, 0.95))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    from _common import machine

    if not (QUALITY / "training.parquet").exists():
        write_demo_catalog(SOURCE, QUALITY / "objects", QUALITY / "training.parquet", QUALITY / "validation.parquet")
    tr, ztr = read_training_set(QUALITY / "training.parquet")
    te, zte = read_training_set(QUALITY / "validation.parquet")
    runs = []
    print(f"machine: {machine()['cpu']}; {DEFAULT_ESTIMATOR} on {len(ztr):,} training and {len(zte):,} test galaxies")
    print("| seed | sigma_MAD | outliers | PIT max deviation | chi-square (p) | PIT histogram (10 bins) |")
    print("|---:|---:|---:|---:|---:|---|")
    for seed in range(1, args.seeds + 1):
        t0 = time.perf_counter()
        with threadpool_limits(2):
            est = make_estimator(DEFAULT_ESTIMATOR, {"seed": seed}).fit(tr, ztr)
        r = evaluate_columns(est.estimate(te), zte)
        r.update(seed=seed, fit_seconds=time.perf_counter() - t0)
        runs.append(r)
        print(f"| {seed} | {r['sigma_mad']:.4f} | {100 * r['outlier_fraction']:.2f} % | "
              f"{100 * r['pit_max_deviation']:.1f} % | {r['pit_chi2']:.1f} ({r['pit_chi2_p']:.3f}) | "
              f"{' '.join(map(str, r['pit_histogram']))} |", flush=True)
    dev = np.array([r["pit_max_deviation"] for r in runs])
    mean_hist = np.mean([r["pit_histogram"] for r in runs], axis=0)
    ref = flat_reference(len(zte))
    print(f"PIT max deviation over {len(runs)} seeds: {100 * dev.min():.1f} - {100 * dev.max():.1f} % "
          f"(median {100 * np.median(dev):.1f} %); within 5 %: {int(np.sum(dev <= 0.05))} of {len(runs)}")
    print("mean histogram over the seeds (relative to flat): "
          + " ".join(f"{v:+.1%}" for v in mean_hist / mean_hist.mean() - 1))
    print(f"a perfectly flat PIT of {len(zte):,} galaxies: within 5 % in {100 * ref['p_within_5pc']:.0f} % of draws, "
          f"largest deviation median {100 * ref['median']:.1f} %, 95th percentile {100 * ref['p95']:.1f} %")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "runs": runs, "flat": ref}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
