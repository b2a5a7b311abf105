"""``pzvo pipeline evaluate`` prints one JSON object with the metrics."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.photometry import BANDS, njy_to_mag

VENV_BIN = Path(sys.executable).parent


def magnitude_file(source: Path, target: Path, errors: bool) -> Path:
    t = pq.read_table(source)
    cols = {b: njy_to_mag(t[f"{b}_cModelFlux"].to_numpy()) for b in BANDS}
    if errors:
        cols.update({f"{b}_err": 1.0857 * t[f"{b}_cModelFluxErr"].to_numpy() / t[f"{b}_cModelFlux"].to_numpy()
                     for b in BANDS})
    cols["redshift"] = t["redshift"].to_numpy()
    pq.write_table(pa.table(cols), target)
    return target


@pytest.mark.parametrize("errors", [True, False])
def test_evaluate_prints_metrics(demo_inputs: dict[str, Path], tmp_path: Path, errors: bool) -> None:
    train = magnitude_file(demo_inputs["training"], tmp_path / "train.parquet", errors)
    test = magnitude_file(demo_inputs["validation"], tmp_path / "test.parquet", errors)
    proc = subprocess.run([str(VENV_BIN / "pzvo"), "pipeline", "evaluate", "--train", str(train),
                           "--test", str(test)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert {"n", "sigma_mad", "bias", "outlier_fraction"} <= set(report)
    assert report["n"] == pq.read_metadata(test).num_rows
    assert report["errors_used"] is errors
    assert 0 < report["sigma_mad"] < 0.03 and report["outlier_fraction"] < 0.07
    assert np.isfinite(report["bias"])
