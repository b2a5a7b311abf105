"""``pzvo export felis|parquet|hats``: a published table in the forms a federating site loads.

Through the command line on the demo photo-z table, a training-set product with the Object key
(role ``object_id``) and a TAP_SCHEMA table with foreign keys: the felis YAML validates with
lsst-felis (its data model and its ``felis validate`` command) in TAP column order with units,
UCDs and the foreign key to the Object catalog; the Parquet files read back equal a TAP query of
the table; the HATS catalog opens with hats and LSDB with every row.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from sqlalchemy import text

from tests._cli import run_pzvo
from tests._tap import sync
from vo_service.core.columns import OBJECT_KEY_UCD
from vo_service.core.database import owner_engine
from vo_service.core.settings import PROJECT_ROOT

ROWS = 600


@pytest.fixture(scope="module")
def env(database) -> dict[str, str]:
    environ = dict(os.environ, PZVO_DB_NAME=database.db_name, PZVO_VAR_DIR=str(database.var_dir))
    environ.pop("PZVO_USER", None)
    return environ


@pytest.fixture(scope="module")
def engine(database):
    return owner_engine(database)


@pytest.fixture(scope="module")
def training(env, tmp_path_factory) -> str:
    """A small training set with the Object key (objectId, role object_id), published by
    ``pzvo ingest``: its table name."""
    folder = tmp_path_factory.mktemp("training")
    rng = np.random.default_rng(7)
    table = pa.table({
        "objectId": pa.array(rng.choice(2**62, ROWS, replace=False), pa.int64()),
        "ra": rng.uniform(50, 60, ROWS), "dec": rng.uniform(-40, -30, ROWS),
        "z": rng.uniform(0, 2, ROWS).astype(np.float32),
        "survey": pa.array([["VVDS", "DEEP2", None][i % 3] for i in range(ROWS)]),
        "n_obs": pa.array(np.arange(ROWS) % 7, pa.int16())})
    pq.write_table(table, folder / "training.parquet")
    (folder / "columns.yaml").write_text(yaml.safe_dump({
        "objectId": {"role": "object_id"}, "ra": {"role": "ra"}, "dec": {"role": "dec"},
        "z": {"role": "redshift"}, "survey": {"role": "survey"}}))
    name = f"exp_{uuid.uuid4().hex[:8]}"
    proc = run_pzvo(env, "ingest", str(folder / "training.parquet"), "--type", "trainingset", "--name", name,
                    "--columns", str(folder / "columns.yaml"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return f"pz.{name}_v1"


def tap_columns(engine, table: str) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(
            "SELECT column_name, unit, ucd, description FROM tap_schema.columns WHERE table_name = :t "
            "ORDER BY column_index"), {"t": table}).mappings()]


def export_felis(env, tmp_path: Path, table: str) -> dict:
    out = tmp_path / f"{table}.felis.yaml"
    proc = run_pzvo(env, "export", "felis", table, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert str(out) in proc.stdout
    document = yaml.safe_load(out.read_text())
    from felis.datamodel import Schema

    Schema.model_validate(document)
    felis = Path(sys.executable).parent / "felis"
    if felis.exists():  # lsst-felis's own command, as a federating site runs it
        strict = ["--check-description", "--check-tap-table-indexes", "--check-redundant-datatypes"]
        if any(c.get("tap:principal") for c in document["tables"][0]["columns"]):
            strict.append("--check-tap-principal")  # product tables may have no principal column in TAP_SCHEMA
        check = subprocess.run([str(felis), "validate", *strict, str(out)], capture_output=True, text=True,
                               timeout=120)
        assert check.returncode == 0, check.stdout + check.stderr
    return document


def main_table(document: dict, table: str) -> dict:
    return next(t for t in document["tables"] if t["name"] == table.split(".", 1)[1])


def test_felis_of_the_demo_photoz_table_in_tap_order_with_units_and_ucds(env, engine, tmp_path) -> None:
    document = export_felis(env, tmp_path, "pz.photoz_demo")
    tap = tap_columns(engine, "pz.photoz_demo")
    table = main_table(document, "pz.photoz_demo")
    assert document["name"] == "pz"
    assert [c["name"] for c in table["columns"]] == [c["column_name"] for c in tap]
    assert [c["tap:column_index"] for c in table["columns"]] == list(range(1, len(tap) + 1))
    for col, row in zip(table["columns"], tap, strict=True):
        assert col.get("ivoa:unit") == row["unit"] and col.get("ivoa:ucd") == row["ucd"], col["name"]
        assert col["description"] == row["description"]
    by_name = {c["name"]: c for c in table["columns"]}
    assert by_name["objectId"]["datatype"] == "long" and by_name["objectId"]["nullable"] is False
    assert by_name["ra"]["ivoa:unit"] == "deg" and by_name["mag_i"]["ivoa:unit"] == "mag"
    assert table["primaryKey"] == ["#photoz_demo.objectId"]
    # the demo's key is the demo Object catalog's objectId, with the RSP's UCD: a key to Object
    [fk] = table["constraints"]
    assert fk["columns"] == ["#photoz_demo.objectId"] and fk["referencedColumns"] == ["#Object.objectId"]
    assert [t["name"] for t in document["tables"]] == ["photoz_demo", "Object"]


def test_felis_declares_the_object_key_as_a_foreign_key_to_the_object_catalog(env, engine, tmp_path,
                                                                             training) -> None:
    tap = {c["column_name"]: c for c in tap_columns(engine, training)}
    # TAP_SCHEMA declares it in the description, with the RSP's UCD (no keys row: Object is not served here)
    assert tap["objectId"]["ucd"] == OBJECT_KEY_UCD == "meta.id;src;meta.main"
    assert "foreign key" in tap["objectId"]["description"] and "Object" in tap["objectId"]["description"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM tap_schema.keys WHERE from_table = :t"),
                            {"t": training}).scalar() == 0
    document = export_felis(env, tmp_path, training)
    bare = training.split(".", 1)[1]
    table = main_table(document, training)
    assert [c["name"] for c in table["columns"]] == list(tap)
    [fk] = table["constraints"]
    assert fk["@type"] == "ForeignKey" and fk["name"] == f"fk_{bare}_Object"
    assert fk["columns"] == [f"#{bare}.objectId"] and fk["referencedColumns"] == ["#Object.objectId"]
    stub = next(t for t in document["tables"] if t["name"] == "Object")
    assert [c["name"] for c in stub["columns"]] == ["objectId"]
    assert stub["columns"][0]["datatype"] == "long" and stub["columns"][0]["ivoa:ucd"] == OBJECT_KEY_UCD
    assert "Stub" in stub["description"]
    survey = next(c for c in table["columns"] if c["name"] == "survey")
    assert survey["datatype"] == "text" and survey["votable:arraysize"] == "*"


def test_the_object_key_column_name_is_a_setting(env, tmp_path) -> None:
    document = export_felis(dict(env, PZVO_OBJECT_KEY_COLUMN="object_id"), tmp_path, "pz.photoz_demo")
    [fk] = main_table(document, "pz.photoz_demo")["constraints"]
    assert fk["columns"] == ["#photoz_demo.objectId"] and fk["referencedColumns"] == ["#Object.object_id"]


def test_felis_of_a_table_with_tap_schema_foreign_keys(env, tmp_path) -> None:
    document = export_felis(env, tmp_path, "tap_schema.key_columns")
    table = main_table(document, "tap_schema.key_columns")
    assert {fk["referencedColumns"][0] for fk in table["constraints"]} == {"#keys.key_id"}
    assert [t["name"] for t in document["tables"]] == ["key_columns", "keys"]


def test_felis_to_stdout(env) -> None:
    proc = run_pzvo(env, "export", "felis", "pz.specz_demo", "--out", "-")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert yaml.safe_load(proc.stdout)["tables"][0]["name"] == "specz_demo"


def tap_table(tap_url: str, table: str) -> pa.Table:
    resp = sync(tap_url, f"SELECT * FROM {table}", fmt="parquet", MAXREC="1000000")
    assert resp.status_code == 200, resp.text[:1000]
    return pq.read_table(io.BytesIO(resp.content))


def same_rows(exported: pa.Table, queried: pa.Table, key: str) -> None:
    assert exported.column_names == queried.column_names
    assert exported.num_rows == queried.num_rows
    exported, queried = exported.sort_by(key), queried.sort_by(key)
    for name in exported.column_names:
        got, want = exported.column(name), queried.column(name)
        assert got.type == want.type, name
        assert _cells(got) == _cells(want), name


def _cells(column: pa.ChunkedArray) -> list:
    """Values to compare, NaN as a string (NaN != NaN; nulls stay None)."""
    return ["NaN" if isinstance(v, float) and v != v else v for v in column.to_pylist()]


def test_parquet_round_trip_equals_a_tap_query(env, tmp_path, tap_url) -> None:
    out = tmp_path / "photoz"
    proc = run_pzvo(env, "export", "parquet", "pz.photoz_demo", str(out), "--rows-per-file", "30000",
                    "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = sorted(out.glob("*.parquet"))
    assert len(files) == 3 and all(pq.read_metadata(f).num_rows <= 30000 for f in files)
    exported = pq.read_table(files)
    same_rows(exported, tap_table(tap_url, "pz.photoz_demo"), "objectId")
    field = exported.schema.field("mag_i")
    assert field.metadata[b"unit"] == b"mag" and field.metadata[b"ucd"] == b"phot.mag;em.opt.I"
    assert not exported.schema.field("objectId").nullable


def test_parquet_round_trip_of_a_product_with_strings_and_nulls(env, tmp_path, tap_url, training) -> None:
    out = tmp_path / "training"
    proc = run_pzvo(env, "export", "parquet", training, str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    exported = pq.read_table(sorted(out.glob("*.parquet")))
    assert exported.num_rows == ROWS and exported.column("survey").null_count == ROWS // 3
    assert exported.schema.field("objectId").type == pa.int64()
    same_rows(exported, tap_table(tap_url, training), "objectId")


def test_hats_catalog_opens_with_hats_and_lsdb(env, tmp_path, training) -> None:
    hats = pytest.importorskip("hats")
    lsdb = pytest.importorskip("lsdb")
    out = tmp_path / "hats"
    proc = run_pzvo(env, "export", "hats", training, str(out), "--no-progress", "--rows-per-file", "250",
                    "--pixel-threshold", "200", "--highest-order", "6")
    assert proc.returncode == 0, proc.stderr[-3000:]
    root = out / training.replace(".", "_")
    assert str(root) in proc.stdout
    catalog = hats.read_hats(root)
    assert catalog.catalog_info.total_rows == ROWS
    assert catalog.catalog_info.ra_column == "ra" and catalog.catalog_info.dec_column == "dec"
    assert len(catalog.get_healpix_pixels()) > 1
    frame = lsdb.read_hats(root).compute()
    assert len(frame) == ROWS and frame["objectId"].is_unique
    assert sorted(p.name for p in out.iterdir()) == [root.name]  # staging files removed


def test_a_bad_table_name_is_a_clear_error(env, tmp_path) -> None:
    for argv in (("felis", "pz.no_such_table"), ("parquet", "pz.no_such_table", str(tmp_path / "p")),
                 ("hats", "pz.no_such_table", str(tmp_path / "h"))):
        proc = run_pzvo(env, "export", *argv, "--no-progress") if argv[0] != "felis" else \
            run_pzvo(env, "export", *argv)
        assert proc.returncode == 1, proc
        assert "'pz.no_such_table'" in proc.stderr and "not published" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    proc = run_pzvo(env, "export", "felis", "pz.photoz_dem")
    assert proc.returncode == 1 and "did you mean pz.photoz_demo" in proc.stderr
    assert not (tmp_path / "p").exists() and not (tmp_path / "h").exists()


def test_a_table_without_position_is_refused_for_hats_and_a_full_directory_for_parquet(env, tmp_path) -> None:
    proc = run_pzvo(env, "export", "hats", "registry.products", str(tmp_path / "h"), "--no-progress")
    assert proc.returncode == 1 and "no main position" in proc.stderr
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    proc = run_pzvo(env, "export", "parquet", "pz.specz_demo", str(full), "--no-progress")
    assert proc.returncode == 1 and "not empty" in proc.stderr
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    shutil.rmtree(full)


def test_a_training_set_of_the_training_set_maker_references_the_object_catalog(env, engine, tmp_path) -> None:
    """``pzvo tsm run`` on the demo data: its training and validation sets carry the matched
    object's objectId as the Object key, and their felis export declares the foreign key."""
    raw = yaml.safe_load((PROJECT_ROOT / "docs" / "examples" / "tsm_demo.yaml").read_text())
    name = f"exptsm{uuid.uuid4().hex[:8]}"
    raw["output"].update(name=name, dir=str(tmp_path / "out"))
    raw["plots"] = False
    config = tmp_path / "tsm.yaml"
    config.write_text(yaml.safe_dump(raw))
    proc = run_pzvo(env, "tsm", "run", str(config), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for part in ("training", "validation"):
        table = f"pz.{name}_{part}_v1"
        tap = {c["column_name"]: c for c in tap_columns(engine, table)}
        assert tap["objectId"]["ucd"] == OBJECT_KEY_UCD and "foreign key" in tap["objectId"]["description"]
        [fk] = main_table(export_felis(env, tmp_path, table), table)["constraints"]
        assert fk["columns"] == [f"#{name}_{part}_v1.objectId"] and fk["referencedColumns"] == ["#Object.objectId"]
    # the combined spec-z catalog is made before the crossmatch: no Object key, no foreign key
    combined = main_table(export_felis(env, tmp_path, f"pz.{name}_combined_v1"), f"pz.{name}_combined_v1")
    assert "constraints" not in combined


def test_the_pipelines_own_felis_file_declares_the_object_key(tmp_path) -> None:
    """``pzvo pipeline run`` writes ``<table>.felis.yaml`` next to its outputs: its objectId (the
    Object catalog's key, with the RSP's UCD) references the Object catalog there too."""
    from felis.datamodel import Schema

    from pipeline.estimators.toy import LinearToyEstimator
    from pipeline.schema import table_description, write_descriptions

    raw = table_description(LinearToyEstimator(), schema="pz", name="photoz_x", release="dp1")
    _, path = write_descriptions(tmp_path, raw)
    document = yaml.safe_load(path.read_text())
    Schema.model_validate(document)
    [fk] = document["tables"][0]["constraints"]
    assert fk["columns"] == ["#photoz_x.objectId"] and fk["referencedColumns"] == ["#Object.objectId"]
    assert document["tables"][1]["columns"][0]["ivoa:ucd"] == OBJECT_KEY_UCD
    felis = Path(sys.executable).parent / "felis"
    if felis.exists():
        check = subprocess.run([str(felis), "validate", "--check-tap-table-indexes", str(path)], capture_output=True,
                               text=True, timeout=120)
        assert check.returncode == 0, check.stdout + check.stderr
