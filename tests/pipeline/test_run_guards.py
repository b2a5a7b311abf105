"""What a run checks before and around its work: the output directory is its own, the validation
set and the database are usable before hours of estimation, the fingerprint covers everything
that decides the outputs, and publishing takes only this run's files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.config import ConfigError, parse_config
from pipeline.publish import publish_run
from pipeline.run import FINGERPRINT_KEY, OutputBusyError, output_lock, run_pipeline

VENV_BIN = Path(sys.executable).parent
TOY = {"estimator": {"name": "toy"}, "dask": {"workers": 1, "processes": False}}


def raw_config(inputs: dict[str, Path], out: Path, **over: object) -> dict:
    raw = {"release": "guards-1", "objects": str(inputs["objects"]), "training": str(inputs["training"]),
           "output": str(out), "table": {"schema": "pz", "name": "photoz_guards_test"}, **TOY}
    raw.update(over)
    return raw


def run_cli(raw: dict, tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    return subprocess.run([str(VENV_BIN / "pzvo"), "pipeline", "run", str(cfg), "--no-progress"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def one_line_failure(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("pzvo pipeline run: ")
    return last


def test_a_second_run_in_the_same_output_directory_is_refused(demo_inputs, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with output_lock(out):
        with pytest.raises(OutputBusyError, match="another pipeline run is writing"):
            run_pipeline(parse_config(raw_config(demo_inputs, out)))
        last = one_line_failure(run_cli(raw_config(demo_inputs, out), tmp_path))
        assert f"another pipeline run is writing {out}" in last
    assert not (out / "data").exists()  # nothing was estimated
    result = run_pipeline(parse_config(raw_config(demo_inputs, out)))  # released: runs
    assert result.computed == 8


def test_an_empty_validation_set_fails_before_any_estimation(demo_inputs, tmp_path: Path) -> None:
    table = pq.read_table(demo_inputs["validation"]).slice(0, 50)
    empty = tmp_path / "no-redshifts.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("redshift"), "redshift",
                                    pa.array([float("nan")] * 50)), empty)
    out = tmp_path / "out"
    last = one_line_failure(run_cli(raw_config(demo_inputs, out, validation=str(empty)), tmp_path))
    assert "no galaxies with a redshift to validate on" in last
    missing = tmp_path / "missing.parquet"
    last = one_line_failure(run_cli(raw_config(demo_inputs, out, validation=str(missing)), tmp_path))
    assert f"no such file or directory: {missing}" in last
    assert not list(out.rglob("*.parquet"))


def test_an_unreachable_database_fails_before_training(demo_inputs, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli(raw_config(demo_inputs, out, publish={"enabled": True}), tmp_path,
                   env={"PZVO_DATABASE_URL": "postgresql://pzvo:wrong@127.0.0.1:9/nowhere"})
    last = one_line_failure(proc)
    assert last.startswith("pzvo pipeline run: database: ") and "connection" in last.lower()
    assert "wrong" not in proc.stderr  # the password is not echoed
    assert not list(out.rglob("*.parquet"))


@pytest.mark.parametrize("table,fragment", [({"name": "PhotoZ"}, "table name 'PhotoZ'"),
                                            ({"name": "p" * 33}, "at most 32 characters"),
                                            ({"schema": "pz; drop", "name": "x"}, "table schema")])
def test_table_names_that_cannot_be_products_are_refused(demo_inputs, tmp_path: Path, table: dict,
                                                         fragment: str) -> None:
    with pytest.raises(ConfigError, match="table"):
        parse_config(raw_config(demo_inputs, tmp_path / "out", table=table))
    assert fragment in one_line_failure(run_cli(raw_config(demo_inputs, tmp_path / "out", table=table), tmp_path))


def test_publish_workers_must_be_positive(demo_inputs, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        parse_config(raw_config(demo_inputs, tmp_path, publish={"enabled": True, "workers": 0}))


def test_changing_the_redshift_column_estimates_every_partition_again(demo_inputs, tmp_path: Path) -> None:
    table = pq.read_table(demo_inputs["training"])
    training = tmp_path / "training.parquet"
    pq.write_table(table.append_column("z_spec", pa.array(table["redshift"].to_numpy() * 0.5)), training)
    out = tmp_path / "out"
    first = run_pipeline(parse_config(raw_config(demo_inputs, out, training=str(training))))
    again = run_pipeline(parse_config(raw_config(demo_inputs, out, training=str(training))))
    other = run_pipeline(parse_config(raw_config(demo_inputs, out, training=str(training), redshift_column="z_spec")))
    assert (first.computed, again.computed, other.computed) == (8, 0, 8)
    assert other.fingerprint != first.fingerprint
    assert other.inputs["redshift_column"] == "z_spec"
    assert json.loads((out / "run.json").read_text())["inputs"]["redshift_column"] == "z_spec"


def test_publishing_refuses_outputs_of_another_run(demo_inputs, database, tmp_path: Path, registry, operator) -> None:
    result = run_pipeline(parse_config(raw_config(demo_inputs, tmp_path / "out")))
    victim = next(result.data_dir.glob("*.parquet"))
    table = pq.read_table(victim)
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, FINGERPRINT_KEY: b"another-run"}), victim)
    with pytest.raises(ValueError, match=r"1 output file\(s\) are missing or not this run's"):
        publish_run(registry, result, owner=operator, partitions=2, workers=2)
    victim.unlink()
    with pytest.raises(ValueError, match="missing or not this run's"):
        publish_run(registry, result, owner=operator, partitions=2, workers=2)

