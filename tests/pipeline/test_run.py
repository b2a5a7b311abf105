"""End to end: Parquet object files -> Dask -> Parquet + YAML + felis -> PostgreSQL -> TAP_SCHEMA."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import requests
from sqlalchemy import text

from pipeline.config import parse_config
from pipeline.estimators import DEFAULT_ESTIMATOR
from pipeline.pdf import LEVELS
from pipeline.photometry import njy_to_mag
from pipeline.run import PartitionError, run_pipeline
from vo_service.core.database import owner_engine

VENV_BIN = Path(sys.executable).parent


def config(inputs: dict[str, Path], out: Path, **over: object):
    raw = {"release": "test-1", "objects": str(inputs["objects"]), "training": str(inputs["training"]),
           "validation": str(inputs["validation"]), "output": str(out),
           "table": {"schema": "pz", "name": over.pop("table", "photoz_pipeline_test"),
                     **({"object_key": over.pop("object_key")} if "object_key" in over else {})},
           "estimator": over.pop("estimator", {}), "dask": over.pop("dask", {"workers": 2}),
           "publish": over.pop("publish", {"enabled": False})}
    raw.update(over)
    return parse_config(raw)


def drop_published(database, *tables: str) -> None:
    """Delete the products a test published (table, TAP_SCHEMA rows; provenance stays)."""
    from vo_service.auth import User
    from vo_service.products import ProductRegistry

    registry = ProductRegistry(engine=owner_engine(database), storage_dir=database.products_dir)
    for table in tables:
        for version in registry.versions(table.split(".", 1)[1]):
            registry.delete(table.split(".", 1)[1], version, User("pzvo", is_admin=True))


@pytest.fixture(scope="module")
def default_run(demo_inputs: dict[str, Path], database, tmp_path_factory: pytest.TempPathFactory, registry, operator):
    """The default estimator over the 8 demo files on a 2-worker LocalCluster, published."""
    out = tmp_path_factory.mktemp("default-run")
    # Two ensemble members instead of four: half the training time, and the quality bounds
    # below still hold (sigma_MAD 0.024 -> 0.025 on this split).
    cfg = config(demo_inputs, out, estimator={"name": "mlp", "params": {"members": 2}},
                 publish={"enabled": True, "partitions": 4, "workers": 2})
    yield run_pipeline(cfg, registry=registry, owner=operator)
    drop_published(database, "pz.photoz_pipeline_test", "pz.photoz_pipeline_test_quality")


def test_one_output_file_per_input_file(default_run, demo_inputs) -> None:
    inputs = sorted(p.name for p in demo_inputs["objects"].glob("*.parquet"))
    outputs = sorted(p.name for p in default_run.data_dir.glob("*.parquet"))
    assert inputs == outputs and default_run.computed == 8 and default_run.rows == 80_000
    table = pq.read_table(default_run.data_dir / outputs[0])
    assert table.column_names == ["objectId", "ra", "dec", "z_phot", "z_mode", "z_err", "odds", "z_pdf"]
    assert table.schema.field("z_pdf").type.list_size == LEVELS.size
    assert not table.schema.field("objectId").nullable
    source = pq.read_table(demo_inputs["objects"] / outputs[0], columns=["objectId"])
    assert table.column("objectId").equals(source.column("objectId"))


def test_quality_report_written(default_run) -> None:
    q = default_run.quality
    assert q["n"] > 10_000 and q["sigma_mad"] < 0.03 and q["outlier_fraction"] < 0.06
    assert {"pit_histogram", "cde_loss"} <= set(q)
    assert all(Path(f).exists() for f in q["files"])


def test_job_record_completed(default_run) -> None:
    record = json.loads((default_run.output_dir / "run.json").read_text())
    assert record["phase"] == "COMPLETED" and record["done"] == record["total"] == 8
    assert record["estimator"]["name"] == DEFAULT_ESTIMATOR and record["inputs"]["training_sha256"]


def test_job_record_in_the_registry_and_its_rest_api(default_run, server) -> None:
    """The same record in registry.pipeline_runs, served by /api/pipeline-runs."""
    record = json.loads((default_run.output_dir / "run.json").read_text())
    assert default_run.run_id == record["run_id"]
    run = requests.get(f"{server.url}/api/pipeline-runs/{default_run.run_id}", timeout=30)
    assert run.status_code == 200, run.text
    doc = run.json()
    assert (doc["phase"], doc["done"], doc["total"], doc["rows"], doc["progress"]) == ("COMPLETED", 8, 8, 80_000, 1.0)
    assert doc["estimator"]["name"] == DEFAULT_ESTIMATOR and doc["table_name"] == "pz.photoz_pipeline_test"
    assert doc["fingerprint"] == default_run.fingerprint and doc["finished"] and doc["error"] is None
    assert doc["summary"]["computed"] == 8 and doc["summary"]["quality"]["n"] == default_run.quality["n"]
    listed = requests.get(f"{server.url}/api/pipeline-runs", params={"phase": "COMPLETED", "page_size": 200},
                          timeout=30).json()
    assert default_run.run_id in [r["run_id"] for r in listed["items"]] and listed["total"] >= 1
    for bad in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        missing = requests.get(f"{server.url}/api/pipeline-runs/{bad}", timeout=30)
        assert missing.status_code == 404 and missing.headers["Content-Type"] == "application/problem+json"


def test_failed_run_is_recorded_as_error(demo_inputs, database, server, tmp_path, registry, operator) -> None:
    """A broken input file fails its task: the run stops, and both records say ERROR, with why."""
    objects = tmp_path / "objects"
    objects.mkdir()
    first = sorted(demo_inputs["objects"].glob("*.parquet"))[0]
    (objects / first.name).write_bytes(first.read_bytes())
    (objects / "zz_broken.parquet").write_bytes(b"PAR1 this is not a Parquet file")
    cfg = config({**demo_inputs, "objects": objects}, tmp_path / "out", table="photoz_pipeline_broken",
                 estimator={"name": "toy"}, dask={"workers": 1, "processes": False}, validation=None)
    with pytest.raises(PartitionError, match="zz_broken.parquet failed: ArrowInvalid"):
        run_pipeline(cfg, registry=registry, owner=operator)
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["phase"] == "ERROR" and "zz_broken" in record["error"]
    doc = requests.get(f"{server.url}/api/pipeline-runs/{record['run_id']}", timeout=30).json()
    assert doc["phase"] == "ERROR" and "zz_broken" in doc["error"] and doc["finished"]


def test_failure_after_estimation_is_recorded_as_error(demo_inputs, database, server, tmp_path,
        registry, operator) -> None:
    """Every partition done, then the validation set turns out unreadable (it was fine when the
    run checked it before training): the run is ERROR, not EXECUTING with done == total for ever."""
    bad = tmp_path / "validation.parquet"
    good = pq.read_table(demo_inputs["validation"])
    pq.write_table(good, bad)

    def break_validation_when_done(progress) -> None:
        if progress.done == progress.total:
            pq.write_table(good.drop(["r_cModelFlux"]), bad)

    cfg = config(demo_inputs, tmp_path / "out", table="photoz_pipeline_badval", estimator={"name": "toy"},
                 dask={"workers": 1, "processes": False}, validation=str(bad))
    with pytest.raises(ValueError, match="needs the columns"):
        run_pipeline(cfg, registry=registry, owner=operator,
                     progress=[break_validation_when_done])
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["phase"] == "ERROR" and record["done"] == record["total"] == 8
    assert "needs the columns" in record["error"]
    doc = requests.get(f"{server.url}/api/pipeline-runs/{record['run_id']}", timeout=30).json()
    assert doc["phase"] == "ERROR"


def test_single_file_catalog_publishes_with_several_workers(demo_inputs, database, tmp_path,
        registry, operator) -> None:
    """One input file, two COPY workers (the default): one worker has nothing to load. The
    catalog's provenance entity counts the one file."""
    single = sorted(demo_inputs["objects"].glob("*.parquet"))[0]
    cfg = config({**demo_inputs, "objects": single}, tmp_path / "out", table="photoz_pipeline_single",
                 estimator={"name": "toy"}, dask={"workers": 1, "processes": False}, validation=None,
                 publish={"enabled": True, "partitions": 2, "workers": 2})
    try:
        result = run_pipeline(cfg, registry=registry, owner=operator)
        with owner_engine(database).connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM pz.photoz_pipeline_single")).scalar() == 10_000
            catalog = conn.execute(text(
                "SELECT e.name FROM provenance.used u JOIN provenance.wasgeneratedby g "
                "ON g.activity_id = u.activity_id JOIN provenance.entity e ON e.id = u.entity_id "
                "WHERE g.entity_id LIKE 'pzvo:table/pz.photoz_pipeline_single%' "
                "AND u.role = 'object catalog'")).scalar()
        assert result.rows == 10_000 and catalog == f"object catalog {single.name} (1 files)"
    finally:
        drop_published(database, "pz.photoz_pipeline_single")


def test_failed_publish_leaves_no_staging_table(demo_inputs, database, tmp_path, registry, operator) -> None:
    """A load that fails half-way drops its staging copy (the published table is untouched)."""
    from dataclasses import replace

    from pipeline.publish import publish_run, staging_schema
    from tap_schema.model import load_table

    cfg = config(demo_inputs, tmp_path / "out", table="photoz_pipeline_stage", estimator={"name": "toy"},
                 dask={"workers": 1, "processes": False}, validation=None)
    result = run_pipeline(cfg)
    victim = sorted(result.data_dir.glob("*.parquet"))[5]
    pq.write_table(pq.read_table(victim).drop(["odds"]), victim)  # same input identity, a column short
    with pytest.raises(Exception):  # noqa: B017 - whatever the COPY raises
        publish_run(registry, replace(result), owner=operator, partitions=2, workers=2)
    desc = load_table(result.table_yaml)
    with owner_engine(database).connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = :s AND tablename LIKE :t"),
                            {"s": staging_schema(desc), "t": "photoz_pipeline_stage%"}).scalar()
    assert left == 0


def test_publish_refuses_outputs_of_inputs_that_changed_since(demo_inputs, database, tmp_path,
        registry, operator) -> None:
    """Provenance names the files the run estimated: an input replaced between the run and a
    later publish makes publishing refuse, not name files that were never estimated."""
    import shutil

    from pipeline.publish import publish_run

    objects = tmp_path / "objects"
    shutil.copytree(demo_inputs["objects"], objects)
    cfg = config({**demo_inputs, "objects": objects}, tmp_path / "out", table="photoz_pipeline_changed",
                 estimator={"name": "toy"}, dask={"workers": 1, "processes": False}, validation=None)
    result = run_pipeline(cfg)
    replaced = sorted(objects.glob("*.parquet"))[2]
    pq.write_table(pq.read_table(replaced).slice(0, 10), replaced)
    with pytest.raises(ValueError, match="changed since the run estimated them"):
        publish_run(registry, result, owner=operator, partitions=2, workers=2)


def test_felis_schema_validates_with_felis_cli(default_run) -> None:
    proc = subprocess.run([str(VENV_BIN / "felis"), "validate", str(default_run.felis_yaml)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_published_partitioned_table(default_run, database) -> None:
    engine = owner_engine(database)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pz.photoz_pipeline_test")).scalar() == 80_000
        parts = conn.execute(text("SELECT count(*) FROM pg_inherits WHERE inhparent = "
                                  "'pz.photoz_pipeline_test'::regclass")).scalar()
        assert parts == 4
        cols = conn.execute(text("SELECT column_name FROM tap_schema.columns WHERE table_name = "
                                 "'pz.photoz_pipeline_test' ORDER BY column_index")).scalars().all()
        assert cols == ["objectId", "ra", "dec", "z_phot", "z_mode", "z_err", "odds", "z_pdf"]
        key = conn.execute(text("SELECT ucd, description FROM tap_schema.columns WHERE table_name = "
                                "'pz.photoz_pipeline_test' AND column_name = 'objectId'")).one()
        assert key.ucd == "meta.id;src;meta.main" and "foreign key to objectId" in key.description
        row = conn.execute(text("SELECT objectid, z_phot, z_pdf FROM pz.photoz_pipeline_test "
                                "ORDER BY objectid LIMIT 1")).one()
        idx = conn.execute(text("SELECT count(*) FROM pg_indexes WHERE schemaname = 'pz' AND "
                                "indexname LIKE 'photoz_pipeline_test_p00%_pos_idx'")).scalar()
        assert idx == 4
    parquet = pq.read_table(default_run.data_dir).to_pandas().set_index("objectId")
    assert row.z_phot == pytest.approx(parquet.loc[row.objectid, "z_phot"], rel=1e-6)
    np.testing.assert_allclose(row.z_pdf, parquet.loc[row.objectid, "z_pdf"], rtol=1e-6)


def test_cone_query_uses_partition_gist(default_run, database) -> None:
    with owner_engine(database).connect() as conn:
        plan = "\n".join(conn.execute(text(
            "EXPLAIN SELECT objectid FROM pz.photoz_pipeline_test WHERE spoint(radians(ra), radians(dec)) "
            "@ scircle(spoint(radians(60), radians(-32)), radians(0.2))")).scalars())
    assert "_pos_idx" in plan


def test_toy_known_answer_end_to_end(demo_inputs, database, tmp_path, registry, operator) -> None:
    """Toy estimator, threads instead of processes, published: every row checkable by hand; the
    configuration names the Object key ``object_id`` instead of the RSP's ``objectId``."""
    cfg = config(demo_inputs, tmp_path, table="photoz_pipeline_toy", estimator={"name": "toy"}, object_key="object_id",
                 dask={"workers": 2, "processes": False}, publish={"enabled": True, "partitions": 2},
                 validation=None)
    result = run_pipeline(cfg, registry=registry, owner=operator)
    objects = pq.read_table(demo_inputs["objects"]).to_pandas().set_index("objectId")
    expected = np.maximum(0.5 + 0.2 * (np.nan_to_num(njy_to_mag(objects["i_cModelFlux"].to_numpy()), nan=30) - 22),
                          0).astype(np.float32)
    try:
        with owner_engine(database).connect() as conn:
            got = dict(conn.execute(text("SELECT object_id, z_phot FROM pz.photoz_pipeline_toy")).all())
            key = conn.execute(text("SELECT column_name FROM tap_schema.columns WHERE table_name = "
                                    "'pz.photoz_pipeline_toy' AND ucd = 'meta.id;src;meta.main'")).scalar_one()
    finally:
        drop_published(database, "pz.photoz_pipeline_toy")
    assert len(got) == 80_000 == result.rows and key == "object_id"
    np.testing.assert_allclose([got[i] for i in objects.index], expected, rtol=1e-6)


def test_published_table_is_a_product_with_provenance(default_run, database, registry, operator) -> None:

    product = registry \
        .get("photoz_pipeline_test", user=None)
    assert product.product_type == "pztable" and product.release == "test-1" and product.official
    assert product.row_count == 80_000 and product.pz_code.startswith(DEFAULT_ESTIMATOR)
    roles = {c.name: c.role for c in product.columns}
    assert roles["z_phot"] == "photoz" and roles["objectId"] == "object_id"
    with owner_engine(database).connect() as conn:
        used = conn.execute(text(
            "SELECT u.role FROM provenance.used u JOIN provenance.wasgeneratedby g "
            "ON g.activity_id = u.activity_id "
            "WHERE split_part(g.entity_id, '@', 1) = 'pzvo:table/pz.photoz_pipeline_test'")).scalars().all()
        params = dict(conn.execute(text(
            "SELECT p.name, p.param_value FROM provenance.parameter p JOIN provenance.wasgeneratedby g "
            "ON g.activity_id = p.activity_id "
            "WHERE split_part(g.entity_id, '@', 1) = 'pzvo:table/pz.photoz_pipeline_test'")).all())
    assert set(used) == {"training set", "object catalog"}
    assert params["estimator"] == DEFAULT_ESTIMATOR and params["release"] == "test-1"


def test_quality_report_is_a_validation_results_product(default_run, database, registry, operator) -> None:

    product = registry \
        .get("photoz_pipeline_test_quality", user=None)
    assert product.product_type == "validationresults" and product.row_count == default_run.quality["n"]
    assert {f.role for f in product.files} == {"main", "auxiliary"}
    assert "sigma_MAD" in product.description


def test_training_set_can_be_a_registered_product(demo_inputs, database, tmp_path, registry, operator) -> None:
    """``training: product:<name>`` trains on the product's table and links it in provenance."""
    import uuid

    from vo_service.auth import User
    from vo_service.products import RegistrationRequest

    name = f"train_{uuid.uuid4().hex[:8]}"
    training = demo_inputs["training"]
    product = registry.register(RegistrationRequest(
        name=name, product_type="trainingset", main_file=training, main_file_name=training.name,
        columns={"redshift": {"role": "redshift"}}), User("pzvo", is_admin=True))
    table = f"photoz_from_{name}"
    cfg = config(demo_inputs, tmp_path, table=table, estimator={"name": "toy"}, validation=None,
                 dask={"workers": 2, "processes": False}, publish={"enabled": True, "partitions": 2},
                 training=f"product:{name}")
    try:
        result = run_pipeline(cfg, registry=registry, owner=operator)
        assert result.inputs["training_product"] == f"product:{name}"
        with owner_engine(database).connect() as conn:
            used = conn.execute(text(
                "SELECT u.entity_id FROM provenance.used u JOIN provenance.wasgeneratedby g "
                "ON g.activity_id = u.activity_id WHERE g.entity_id = :e AND u.role = 'training set'"),
                {"e": f"pzvo:table/pz.{table}"}).scalars().all()
        assert used == [product.entity_id]
    finally:
        drop_published(database, f"pz.{table}", f"pz.{name}_v1")
