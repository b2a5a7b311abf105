"""The job record writes the registry's copy through ``vo_service.products.PipelineRunStore``
(start, progress, finish, fail), best effort; a run that needs the registry is given it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from pipeline.config import parse_config
from pipeline.run import JobRecord, Progress, run_pipeline

BASE = {"release": "rec-1", "estimator": {"name": "toy", "version": "1.0"}, "fingerprint": "f" * 32,
        "inputs": {"objects": "objects/"}, "table": "pz.photoz_record"}


class FakeRuns:
    """A PipelineRunStore that remembers its calls."""

    def __init__(self, broken: bool = False) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.broken = broken

    def _call(self, name: str, run_id: str, **kw: Any) -> str:
        if self.broken:
            raise OperationalError("UPDATE", {}, Exception("connection lost"))
        self.calls.append((name, run_id, kw))
        return run_id

    def start(self, *, run_id: str, **kw: Any) -> str:
        return self._call("start", run_id, **kw)

    def progress(self, run_id: str, **kw: Any) -> None:
        self._call("progress", run_id, **kw)

    def finish(self, run_id: str, **kw: Any) -> None:
        self._call("finish", run_id, **kw)

    def fail(self, run_id: str, **kw: Any) -> None:
        self._call("fail", run_id, **kw)


def test_a_completed_run_is_started_advanced_and_finished(tmp_path: Path) -> None:
    runs = FakeRuns()
    record = JobRecord(tmp_path / "run.json", BASE, runs=runs)  # type: ignore[arg-type]
    run_id = record.record["run_id"]
    record(Progress(8, 8, 80_000, "part-8.parquet"))
    record.finish("COMPLETED", rows=80_000, computed=8, quality={"bias": float("nan")})
    names = [name for name, _, _ in runs.calls]
    assert names == ["start", "progress", "progress", "finish"] and {r for _, r, _ in runs.calls} == {run_id}
    start = runs.calls[0][2]
    assert start == {"release": "rec-1", "table_name": "pz.photoz_record", "estimator": BASE["estimator"],
                     "fingerprint": "f" * 32, "inputs": BASE["inputs"], "output_dir": tmp_path}
    assert runs.calls[2][2] == {"done": 8, "total": 8, "rows": 80_000, "summary": None}
    assert runs.calls[3][2] == {"done": 8, "total": 8, "rows": 80_000, "phase": "COMPLETED",
                                "summary": {"computed": 8, "quality": {"bias": None}}}
    assert json.loads((tmp_path / "run.json").read_text())["phase"] == "COMPLETED"


def test_a_failed_run_is_failed_with_its_error(tmp_path: Path) -> None:
    runs = FakeRuns()
    record = JobRecord(tmp_path / "run.json", BASE, runs=runs)  # type: ignore[arg-type]
    record.finish("ERROR", error="ValueError('broken')")
    name, _, kw = runs.calls[-1]
    assert name == "fail" and kw["error"] == "ValueError('broken')" and kw["done"] == 0


def test_the_registry_copy_is_best_effort(tmp_path: Path) -> None:
    record = JobRecord(tmp_path / "run.json", BASE, runs=FakeRuns(broken=True))  # type: ignore[arg-type]
    record(Progress(1, 2, 10))
    record.finish("COMPLETED")
    assert json.loads((tmp_path / "run.json").read_text())["phase"] == "COMPLETED"


@pytest.mark.parametrize("over,needs,missing", [
    ({"publish": {"enabled": True}}, "publishing", "no registry and no owner"),
    ({"training": "product:some_training"}, "the training set", "no registry given")])
def test_a_run_that_needs_the_registry_must_be_given_it(tmp_path: Path, over: dict, needs: str,
                                                        missing: str) -> None:
    raw = {"release": "rec-1", "objects": str(tmp_path / "objects"), "training": str(tmp_path / "t.parquet"),
           "output": str(tmp_path / "out"), "table": {"schema": "pz", "name": "photoz_record"},
           "estimator": {"name": "toy"}, **over}
    with pytest.raises(ValueError, match=f"{needs}.*{missing}"):
        run_pipeline(parse_config(raw))
    assert not (tmp_path / "out" / "run.json").exists()
