#!/usr/bin/env python3
"""RAIL's recalibration (pz-rail-calib) on the default estimator's PDFs, against ``mlp``'s own map.

Issue 19 names ``pz-rail-calib`` as a calibration step that may serve. Version 0.1 (the only
release) has one algorithm in two flavours: every object is put in a redshift cell (50 cells of
0.06 over 0-3) by its PDF's mode (``pz_mode``) or by the cell holding most of its probability
(``pz_max_cell_p``); the informer histograms the true redshifts of a labelled sample per cell,
and the estimator replaces each object's PDF by its cell's histogram (300 bins of 0.01).  The
result is calibrated per cell by construction, but every object of a cell gets the same PDF.

The informer files each true redshift with ``searchsorted(z_grid, z, side="left")``, the index of
the bin's upper edge, i.e. one bin too high: the recalibrated PDFs sit 0.01 above the truth's
histogram.  The rows marked "truth - 1 bin" inform with every true redshift lowered by one bin,
which undoes that, to measure the method rather than the off-by-one.

The measurement, on the fixed split of ``bench_pipeline.py`` and its unseen set:
- the fixed split's 31,011 training galaxies are cut 80/20 (seed 1): ``mlp`` trains on the 80 %
  (its own calibration hold-out and map inside it, as shipped), and the other 20 % (6,203
  galaxies, never seen by ``mlp``) inform pz-rail-calib, as the recalibration needs labelled
  galaxies the corrected model did not train on;
- the test sets (10,338 and 10,420 galaxies) are estimated by ``mlp`` and then recalibrated;
- ``mlp``'s PDFs reach RAIL as a ``qp`` quantile ensemble (its 17 levels) with ``zmode``;
- the recalibrated PDFs come back through the same conversion as pzvo's ``rail`` adapter (``ppf``
  at the 17 levels; ``z_phot`` the median, ``z_mode`` the histogram's mode).

Usage: .venv/bin/pip install 'pz-rail-calib>=0.1' (the ``rail-calib`` extra);
.venv/bin/python -W ignore benchmarks/bench_rail_calib.py
(about a minute on 2 cores; needs the fixed split and the unseen set that ``bench_pipeline.py``
writes under its work directory).
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_pipeline import WORK  # noqa: E402 - after sys.path.insert
from pipeline.catalog import read_training_set  # noqa: E402 - after sys.path.insert
from pipeline.estimators import make_estimator  # noqa: E402 - after sys.path.insert
from pipeline.estimators.base import pdf_columns  # noqa: E402 - after sys.path.insert
from pipeline.pdf import LEVELS  # noqa: E402 - after sys.path.insert
from pipeline.quality import evaluate_columns  # noqa: E402 - after sys.path.insert

#: pz-rail-calib's defaults (zmin 0, zmax 3, 300 z bins, 50 cells), named here so the output says them.
CALIB_CONFIG = {"zmin": 0.0, "zmax": 3.0, "nzbins": 300, "ncells": 50}
#: The quantile levels' ends, as in pzvo's ``rail`` adapter: qp's ppf is unbounded at 0 and 1.
TAIL = 1e-4


def to_qp(columns: dict[str, np.ndarray]):  # -> qp.Ensemble (qp: an optional dependency)
    """``mlp``'s quantile PDFs as a qp ensemble, with the mode as ``zmode`` (what ``pz_mode`` reads)."""
    import qp

    locs = np.maximum.accumulate(np.asarray(columns["z_pdf"], dtype=np.float64), axis=1)
    locs = locs + np.arange(locs.shape[1]) * 1e-7  # strictly increasing, as qp's quant interpolation needs
    ens = qp.Ensemble(qp.quant, data={"quants": LEVELS, "locs": locs})
    ens.set_ancil({"zmode": np.asarray(columns["z_mode"], dtype=np.float64)})
    return ens


def columns_of(ensemble) -> dict[str, np.ndarray]:
    """The pipeline's columns from a recalibrated ensemble (the same conversion as pzvo's ``rail`` adapter)."""
    zmin, zmax = CALIB_CONFIG["zmin"], CALIB_CONFIG["zmax"]
    locs = np.asarray(ensemble.ppf(np.clip(LEVELS, TAIL, 1.0 - TAIL)), dtype=np.float64)
    locs = np.maximum.accumulate(np.clip(np.nan_to_num(locs, nan=zmin), zmin, zmax), axis=1)
    mode = np.asarray(ensemble.mode(np.linspace(zmin, zmax, 3 * CALIB_CONFIG["nzbins"] + 1)), dtype=np.float64)
    return pdf_columns(locs, mode.reshape(-1))


def stage(cls: type, label: str, **kwargs):
    """A stage writing its outputs in the working directory: pz-rail-calib 0.1's informer fails
    with ``output_mode: return`` (it finalizes an assignment file it never opened)."""
    return cls.make_stage(name=f"bench_{label}", hdf5_groupname="", **CALIB_CONFIG, **kwargs)


def line(label: str, r: dict) -> str:
    return (f"| {label} | {r['sigma_mad']:.4f} | {100 * r['outlier_fraction']:.2f} % | {r['pit_chi2']:.1f} "
            f"| {r['pit_chi2_p']:.2g} | {r['cde_loss']:.2f} | {' '.join(str(c) for c in r['pit_histogram'])} |")


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    try:
        from rail.calib import cell_assignment_estimator as cae
    except ImportError:
        print("pz-rail-calib is not installed: .venv/bin/pip install 'pz-rail-calib>=0.1'")
        return 1
    from importlib import metadata

    quality = WORK / "quality"
    unseen_file = WORK / "unseen.parquet"
    if not (quality / "training.parquet").exists() or not unseen_file.exists():
        print(f"run benchmarks/bench_pipeline.py first: it writes {quality} and {unseen_file}")
        return 1
    train, z_train = read_training_set(quality / "training.parquet")
    tests = {"fixed split": read_training_set(quality / "validation.parquet"),
             "unseen set": read_training_set(unseen_file)}
    order = np.random.default_rng(1).permutation(len(z_train))
    n_recal = int(0.2 * len(z_train))
    recal, fit_rows = np.sort(order[:n_recal]), np.sort(order[n_recal:])
    os.chdir(tempfile.mkdtemp(prefix="bench_rail_calib_"))  # RAIL's stage files go there
    started = time.perf_counter()
    est = make_estimator("mlp").fit(train.take(fit_rows), z_train[fit_rows])
    print(f"pz-rail-calib {metadata.version('pz-rail-calib')}, qp {metadata.version('qp-prob')}; "
          f"mlp {est.version} trained on {len(fit_rows):,} galaxies in {time.perf_counter() - started:.1f} s; "
          f"recalibration informed on {n_recal:,} others; config {CALIB_CONFIG}")
    recal_pdfs = to_qp(est.estimate(train.take(recal)))
    bin_width = (CALIB_CONFIG["zmax"] - CALIB_CONFIG["zmin"]) / CALIB_CONFIG["nzbins"]
    truths = {"": {"redshift": z_train[recal]}, ", truth - 1 bin": {"redshift": z_train[recal] - bin_width}}
    print("| PDFs | sigma_MAD (median) | outliers | PIT chi-square | p | CDE loss | PIT histogram (10 bins) |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, (phot, z) in tests.items():
        columns = est.estimate(phot)
        base = dict(columns, z_phot=np.asarray(columns["z_pdf"])[:, LEVELS.size // 2])
        print(line(f"{name}: `mlp` (its own map), `z_phot`", evaluate_columns(columns, z)))
        print(line(f"{name}: `mlp`, PDF median", evaluate_columns(base, z)))
        for flavour, (inform_cls, estimate_cls) in {
                "pz_mode": (cae.PZModeCellAssignmentPzInformer, cae.PZModeCellAssignmentPzEstimator),
                "pz_max_cell_p": (cae.PZMaxCellPCellAssignmentPzInformer, cae.PZMaxCellPCellAssignmentPzEstimator),
        }.items():
            for shifted, truth in truths.items():
                informer = stage(inform_cls, f"inform_{flavour}")
                informer.inform(recal_pdfs, truth)
                t0 = time.perf_counter()
                estimator = stage(estimate_cls, f"estimate_{flavour}", model=informer.get_data("model"))
                out = columns_of(estimator.estimate(to_qp(columns)).data)
                rate = len(z) / (time.perf_counter() - t0)
                print(line(f"{name}: `mlp` + pz-rail-calib `{flavour}`{shifted} ({rate:,.0f} objects/s), median",
                           evaluate_columns(out, z)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
