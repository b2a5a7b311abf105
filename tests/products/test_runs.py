"""The pipeline-run records through the products package's public API (``PipelineRunStore``):
start, progress, finish and fail write ``registry.pipeline_runs``; get and list read it back."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from tests.products.conftest import unique_name
from vo_service.products import PipelineRunStore, RunNotFoundError


@pytest.fixture
def runs(database):
    from vo_service.core.database import owner_engine

    store = PipelineRunStore(owner_engine(database))
    release = unique_name("runs")
    yield store, release
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM registry.pipeline_runs WHERE release = :r"), {"r": release})


def _start(store: PipelineRunStore, release: str, **over: object) -> str:
    fields = {"release": release, "table_name": "pz.photoz_runs_api", "fingerprint": "f" * 32,
              "estimator": {"name": "toy", "version": "1.0", "params": {"scale": float("nan")}},
              "inputs": {"objects": "objects/", "training": "training.parquet"}, "output_dir": "/tmp/out"}
    return store.start(**{**fields, **over})  # type: ignore[arg-type]


def test_a_run_goes_from_start_through_progress_to_completed(runs) -> None:
    store, release = runs
    run_id = _start(store, release)
    doc = store.get(run_id)
    assert (doc["phase"], doc["done"], doc["total"], doc["rows"], doc["progress"]) == ("EXECUTING", 0, None, 0, None)
    assert doc["release"] == release and doc["table_name"] == "pz.photoz_runs_api" and doc["output_dir"] == "/tmp/out"
    assert doc["estimator"] == {"name": "toy", "version": "1.0", "params": {"scale": None}}  # NaN: jsonb has none
    assert doc["finished"] is None and doc["error"] is None and doc["summary"] is None

    store.progress(run_id, done=3, total=8, rows=30_000)
    doc = store.get(run_id)
    assert (doc["phase"], doc["done"], doc["total"], doc["rows"], doc["progress"]) == ("EXECUTING", 3, 8, 30_000, 3 / 8)
    assert doc["finished"] is None and doc["updated"] >= doc["started"]

    store.finish(run_id, done=8, total=8, rows=80_000, summary={"computed": 8, "quality": {"bias": float("inf")}})
    doc = store.get(run_id)
    assert (doc["phase"], doc["done"], doc["progress"], doc["error"]) == ("COMPLETED", 8, 1.0, None)
    assert doc["finished"] is not None and doc["summary"] == {"computed": 8, "quality": {"bias": None}}


def test_a_failed_run_says_why(runs) -> None:
    store, release = runs
    run_id = _start(store, release)
    store.fail(run_id, error="partition objects/zz.parquet failed: ArrowInvalid", done=1, total=8, rows=10_000)
    doc = store.get(run_id)
    assert doc["phase"] == "ERROR" and "zz.parquet" in doc["error"] and doc["finished"] is not None
    assert (doc["done"], doc["total"], doc["rows"]) == (1, 8, 10_000)


def test_runs_are_listed_newest_first_and_filtered(runs) -> None:
    store, release = runs
    first = _start(store, release)
    given = str(uuid.uuid4())
    assert _start(store, release, run_id=given) == given
    store.finish(first, done=8, total=8, rows=80_000)
    items, total = store.list(release=release)
    assert total == 2 and [r["run_id"] for r in items] == [given, first]
    assert store.list(release=release, phase="COMPLETED") == ([store.get(first)], 1)
    items, total = store.list(release=release, page=2, page_size=1)
    assert total == 2 and [r["run_id"] for r in items] == [first]


def test_unknown_runs_are_not_found(runs) -> None:
    store, _ = runs
    for bad in ("not-a-uuid", str(uuid.uuid4())):
        with pytest.raises(RunNotFoundError):
            store.get(bad)
