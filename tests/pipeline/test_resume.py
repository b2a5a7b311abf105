"""Resume: kill a run half-way, rerun, and get the same output as an uninterrupted run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

VENV_BIN = Path(sys.executable).parent


def write_config(path: Path, inputs: dict[str, Path], out: Path, delay: float) -> Path:
    path.write_text(yaml.safe_dump({
        "release": "resume-test", "objects": str(inputs["objects"]), "training": str(inputs["training"]),
        "output": str(out), "estimator": {"name": "toy", "params": {"delay": delay}},
        "dask": {"workers": 1, "processes": False}, "publish": {"enabled": False}}))
    return path


def run_cli(cfg: Path) -> dict:
    proc = subprocess.run([str(VENV_BIN / "pzvo"), "pipeline", "run", str(cfg), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_kill_and_resume_gives_same_output(demo_inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "slow.yaml", demo_inputs, out, delay=0.6)
    proc = subprocess.Popen([str(VENV_BIN / "pzvo"), "pipeline", "run", str(cfg), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list((out / "data").glob("*.parquet"))) < 3:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    done_before = len(list((out / "data").glob("*.parquet")))
    assert 3 <= done_before < 8
    assert json.loads((out / "run.json").read_text())["phase"] == "EXECUTING"

    resumed = run_cli(write_config(tmp_path / "fast.yaml", demo_inputs, out, delay=0.0))
    assert resumed["skipped"] == done_before and resumed["computed"] == 8 - done_before
    assert not list((out / "data").glob("*.tmp-*"))

    clean = run_cli(write_config(tmp_path / "clean.yaml", demo_inputs, tmp_path / "clean", delay=0.0))
    assert clean["computed"] == 8
    for path in sorted((out / "data").glob("*.parquet")):
        assert pq.read_table(path).equals(pq.read_table(tmp_path / "clean" / "data" / path.name))


def test_changed_estimator_recomputes(demo_inputs: dict[str, Path], tmp_path: Path) -> None:
    from pipeline.config import parse_config
    from pipeline.run import run_pipeline

    raw = {"release": "r", "objects": str(demo_inputs["objects"]), "training": str(demo_inputs["training"]),
           "output": str(tmp_path), "estimator": {"name": "toy"}, "dask": {"workers": 1, "processes": False}}
    assert run_pipeline(parse_config(raw)).computed == 8
    assert run_pipeline(parse_config(raw)).skipped == 8
    raw["estimator"] = {"name": "toy", "params": {"slope": 0.3}}
    assert run_pipeline(parse_config(raw)).computed == 8


def _toy(inputs: dict[str, Path], objects: Path, out: Path):
    from pipeline.config import parse_config

    return parse_config({"release": "r", "objects": str(objects), "training": str(inputs["training"]),
                         "output": str(out), "estimator": {"name": "toy"},
                         "dask": {"workers": 1, "processes": False}})


def test_replaced_input_file_is_estimated_again(demo_inputs: dict[str, Path], tmp_path: Path) -> None:
    """Same names, other content: a rerun must not keep the output made from the old file."""
    import shutil

    from pipeline.run import run_pipeline

    objects = tmp_path / "objects"
    shutil.copytree(demo_inputs["objects"], objects)
    assert run_pipeline(_toy(demo_inputs, objects, tmp_path / "out")).computed == 8
    replaced = sorted(objects.glob("*.parquet"))[3]
    pq.write_table(pq.read_table(replaced).slice(0, 1000), replaced)
    again = run_pipeline(_toy(demo_inputs, objects, tmp_path / "out"))
    assert (again.computed, again.skipped, again.rows) == (1, 7, 71_000)
    out = pq.read_table(tmp_path / "out" / "data" / replaced.name)
    assert out["objectId"].to_pylist() == pq.read_table(replaced)["objectId"].to_pylist()


def test_partial_outputs_of_a_killed_run_are_removed(demo_inputs: dict[str, Path], tmp_path: Path) -> None:
    """A task killed while writing leaves ``<file>.tmp-<pid>``: the rerun removes it, so the
    output directory reads as one Parquet dataset."""
    from pipeline.run import run_pipeline

    out = tmp_path / "out"
    run_pipeline(_toy(demo_inputs, demo_inputs["objects"], out))
    victim = sorted((out / "data").glob("*.parquet"))[1]
    partial = victim.with_name(victim.name + ".tmp-99999")
    partial.write_bytes(victim.read_bytes()[:1000])
    victim.unlink()
    again = run_pipeline(_toy(demo_inputs, demo_inputs["objects"], out))
    assert (again.computed, again.skipped) == (1, 7)
    assert not partial.exists() and pq.read_table(out / "data").num_rows == 80_000


def test_partition_keys_are_unique(demo_inputs: dict[str, Path], tmp_path: Path) -> None:
    """``a/b.parquet`` and ``a__b.parquet`` are two partitions, two Dask tasks, two outputs."""
    from pipeline.run import run_pipeline

    objects = tmp_path / "objects"
    (objects / "a").mkdir(parents=True)
    first, second = sorted(demo_inputs["objects"].glob("*.parquet"))[:2]
    (objects / "a" / "b.parquet").write_bytes(first.read_bytes())
    (objects / "a__b.parquet").write_bytes(second.read_bytes())
    result = run_pipeline(_toy(demo_inputs, objects, tmp_path / "out"))
    assert (result.computed, result.rows) == (2, 20_000)
    assert (tmp_path / "out" / "data" / "a" / "b.parquet").exists()
    assert (tmp_path / "out" / "data" / "a__b.parquet").exists()
