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


def magnitude_file(source: Path, target: Path, errors: bool, every: int = 1) -> Path:
    """The set as magnitudes (with errors or without), keeping one row in ``every``."""
    t = pq.read_table(source)
    t = t.take(np.arange(0, t.num_rows, every))
    cols = {b: njy_to_mag(t[f"{b}_cModelFlux"].to_numpy()) for b in BANDS}
    if errors:
        cols.update({f"{b}_err": 1.0857 * t[f"{b}_cModelFluxErr"].to_numpy() / t[f"{b}_cModelFlux"].to_numpy()
                     for b in BANDS})
    cols["redshift"] = t["redshift"].to_numpy()
    pq.write_table(pa.table(cols), target)
    return target


def _evaluate(train: Path, test: Path, *options: str) -> dict:
    proc = subprocess.run([str(VENV_BIN / "pzvo"), "pipeline", "evaluate", "--train", str(train),
                           "--test", str(test), *options], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert {"n", "sigma_mad", "bias", "outlier_fraction"} <= set(report)
    assert report["n"] == pq.read_metadata(test).num_rows
    assert np.isfinite(report["bias"])
    return report


def test_evaluate_prints_metrics(demo_inputs: dict[str, Path], tmp_path: Path) -> None:
    """The whole demo sets, with magnitude errors, through the kNN estimator (seconds, where the
    default one trains for minutes; its quality on these sets is test_run.py's default run)."""
    report = _evaluate(magnitude_file(demo_inputs["training"], tmp_path / "train.parquet", True),
                       magnitude_file(demo_inputs["validation"], tmp_path / "test.parquet", True),
                       "--estimator", "knn")
    assert report["errors_used"] is True
    assert 0 < report["sigma_mad"] < 0.03 and report["outlier_fraction"] < 0.07


def test_evaluate_without_magnitude_errors(demo_inputs: dict[str, Path], tmp_path: Path) -> None:
    """Files without error columns train without them: a fifth of the sets and the fast kNN
    estimator are enough to show it (the default estimator's quality is the test above's)."""
    report = _evaluate(magnitude_file(demo_inputs["training"], tmp_path / "train.parquet", False, 5),
                       magnitude_file(demo_inputs["validation"], tmp_path / "test.parquet", False, 5),
                       "--estimator", "knn")
    assert report["errors_used"] is False
    assert 0 < report["sigma_mad"] < 0.06 and report["outlier_fraction"] < 0.15


def _pzvo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "pzvo"), "pipeline", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("text,fragment", [
    ("release: [unclosed\n", "while parsing"),
    ("- a list\n", ""),
    ("objects: x\ntraining: y\noutput: z\n", "release"),
    ("release: r\nobjects: /nonexistent/objects\ntraining: /nonexistent/t.parquet\noutput: /tmp/x\n"
     "estimator: {name: nope}\n", "no such file or directory: /nonexistent/t.parquet"),
])
def test_bad_configuration_is_one_message(tmp_path: Path, text: str, fragment: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    proc = _pzvo("run", str(cfg), "--no-progress", "--no-publish")
    last = proc.stderr.strip().splitlines()[-1]  # after the JSON log lines
    assert proc.returncode == 1 and proc.stdout == ""
    assert last.startswith("pzvo pipeline run: ") and "Traceback" not in proc.stderr, proc.stderr
    assert fragment in last


def test_missing_config_file_says_so(tmp_path: Path) -> None:
    proc = _pzvo("run", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"no such file or directory: {tmp_path / 'nope.yaml'}" in proc.stderr


def test_evaluate_bad_inputs_are_one_message(demo_inputs: dict[str, Path], tmp_path: Path) -> None:
    train = magnitude_file(demo_inputs["training"], tmp_path / "train.parquet", False)
    empty = tmp_path / "empty.parquet"
    pq.write_table(pq.read_table(train).slice(0, 0), empty)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not parquet")
    no_y = tmp_path / "no_y.parquet"
    pq.write_table(pq.read_table(train).slice(0, 100).drop(["y"]), no_y)
    for test, fragment in ((empty, "no galaxies"), (broken, "broken.parquet"), (no_y, "needs the columns")):
        proc = _pzvo("evaluate", "--train", str(train), "--test", str(test))
        last = proc.stderr.strip().splitlines()[-1]
        assert proc.returncode == 1 and proc.stdout == "", (test, proc.stdout)
        assert last.startswith("pzvo pipeline evaluate: ") and "Traceback" not in proc.stderr
        assert fragment in last, proc.stderr


def test_parser_default_estimator_is_the_pipelines() -> None:
    """The parser names the default without importing the estimators; it must stay the same one."""
    from pipeline import cli
    from pipeline.estimators import DEFAULT_ESTIMATOR

    assert cli.DEFAULT_ESTIMATOR == DEFAULT_ESTIMATOR
