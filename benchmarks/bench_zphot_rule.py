#!/usr/bin/env python3
"""The point-estimate rule of the default estimator on the pooled 4-fold cross-validation.

``mlp``'s ``z_phot`` is the PDF median unless a candidate redshift scores more than ``tolerance``
higher, score = P(not an outlier) + ``core_weight`` P(|dz|/(1+z) <= ``core_width``).  The rule's
parameters act after training, so the four fold models of ``bench_pipeline.py``'s
cross-validation are trained once and the rule is varied on them: the table of sigma_MAD and
outliers over ``core_weight`` x ``tolerance`` from which the defaults were chosen
(docs/pipeline.md).  The PIT and CDE loss do not depend on the rule; they are printed once.

Usage: .venv/bin/python benchmarks/bench_zphot_rule.py [--params JSON]
(about 3 minutes on 2 cores; needs the fixed split that ``bench_pipeline.py`` writes).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_pipeline import WORK, cv_folds  # noqa: E402 - after sys.path.insert
from pipeline.catalog import read_training_set  # noqa: E402 - after sys.path.insert
from pipeline.estimators import make_estimator  # noqa: E402 - after sys.path.insert
from pipeline.quality import evaluate_columns, point_metrics  # noqa: E402 - after sys.path.insert

CORE_WEIGHTS = (0.03, 0.05, 0.07, 0.10)
TOLERANCES = (0.0, 0.005, 0.01, 0.02)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=json.loads, default={}, help="mlp parameters, JSON (default: shipped)")
    args = parser.parse_args()
    quality = WORK / "quality"
    if not (quality / "training.parquet").exists():
        print(f"run benchmarks/bench_pipeline.py first: it writes {quality}")
        return 1
    tr, ztr = read_training_set(quality / "training.parquet")
    te, zte = read_training_set(quality / "validation.parquet")
    everything, z, fold = cv_folds(tr, ztr, te, zte)
    models = []
    for f in range(fold.max() + 1):
        held = np.flatnonzero(fold == f)
        models.append((make_estimator("mlp", args.params).fit(everything.take(fold != f), z[fold != f]),
                       everything.take(held), held))

    def pooled(core_weight: float | None = None, tolerance: float | None = None) -> dict[str, np.ndarray]:
        columns: dict[str, np.ndarray] = {}
        for est, phot, held in models:
            if core_weight is not None:
                est.core_weight, est.tolerance = core_weight, tolerance
                est._prepare_candidates()  # the candidates' scoring windows carry core_weight
            for key, values in est.estimate(phot).items():
                columns.setdefault(key, np.empty((len(z),) + values.shape[1:], values.dtype))[held] = values
        return columns

    shipped = evaluate_columns(pooled(), z)
    print(f"mlp {models[0][0].version} {json.dumps(args.params)}, pooled over {len(z):,} gold galaxies: shipped rule "
          f"sigma_MAD {shipped['sigma_mad']:.4f}, outliers {100 * shipped['outlier_fraction']:.2f} %, "
          f"PIT p {shipped['pit_chi2_p']:.3f}, CDE {shipped['cde_loss']:.2f}")
    print("| tolerance \\ core_weight | " + " | ".join(f"{w:g}" for w in CORE_WEIGHTS) + " |")
    print("|---" * (len(CORE_WEIGHTS) + 1) + "|")
    for tolerance in TOLERANCES:
        cells = []
        for weight in CORE_WEIGHTS:
            r = point_metrics(pooled(weight, tolerance)["z_phot"], z)
            cells.append(f"{r['sigma_mad']:.4f} / {100 * r['outlier_fraction']:.2f} %")
        print(f"| {tolerance:g} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
