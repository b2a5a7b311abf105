"""Readers, bad files and all-or-nothing registration, through the Python API and the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py  # noqa: F401 - astropy's HDF5 writer needs it
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.table import Table
from sqlalchemy import text

from tests.products.conftest import SPECZ_COLUMNS, unique_name
from vo_service.auth import User
from vo_service.products import InvalidProductError, ProductRegistry, RegistrationRequest

PZVO = Path(sys.executable).parent / "pzvo"


@pytest.fixture
def registry(database):
    """The registry as the live service sees it (same storage), so downloads keep working."""
    from vo_service.core.database import owner_engine

    return ProductRegistry(engine=owner_engine(database), storage_dir=database.products_dir)


@pytest.fixture
def owner(auth):
    name = unique_name("own")
    auth.add_user(name)
    return User(name=name)


def astropy_specz(n: int = 500) -> Table:
    rng = np.random.default_rng(3)
    t = Table({"id": np.arange(1, n + 1), "ra": rng.uniform(50, 70, n), "dec": rng.uniform(-40, -25, n),
               "z": rng.uniform(0, 2, n), "survey": rng.choice(["DESI", "GAMA"], n)})
    t["ra"].unit = "deg"
    t["dec"].unit = "deg"
    t["z"].description = "spectroscopic redshift"
    return t


ROLES = {"id": {"role": "id"}, "ra": {"role": "ra"}, "dec": {"role": "dec"}, "z": {"role": "redshift"}}


@pytest.mark.parametrize("suffix,write", [
    (".parquet", lambda t, p: t.write(p, format="parquet")),
    (".csv", lambda t, p: t.write(p, format="ascii.csv")),
    (".fits", lambda t, p: t.write(p, format="fits")),
    (".xml", lambda t, p: t.write(p, format="votable")),
    (".hdf5", lambda t, p: t.write(p, format="hdf5", path="data", serialize_meta=True)),
])
def test_every_reader_loads_rows_types_and_units(registry, owner, tmp_path, suffix, write) -> None:
    path = tmp_path / f"cat{suffix}"
    write(astropy_specz(), path)
    product = registry.register(RegistrationRequest(
        name=unique_name("rd"), product_type="speczcat", main_file=path, main_file_name=path.name,
        columns=ROLES), owner)
    assert product.row_count == 500
    cols = {c.name: c for c in product.columns}
    assert cols["id"].datatype == "long" and cols["z"].datatype == "double"
    assert cols["survey"].datatype == "char"
    assert cols["ra"].unit == "deg"
    if suffix in (".fits", ".xml", ".parquet", ".hdf5"):
        assert cols["z"].description == "spectroscopic redshift" or suffix == ".fits"
    with registry.engine.connect() as conn:
        total = conn.execute(text(f"SELECT count(*), sum(id) FROM {product.table_name}")).one()
    assert tuple(total) == (500, 500 * 501 // 2)
    assert _count_traces(registry, product.name)["provenance"] == 3  # activity, file and table entities


def _count_traces(registry, name: str) -> dict[str, int]:
    with registry.engine.connect() as conn:
        return {
            "products": conn.execute(text("SELECT count(*) FROM registry.products WHERE name = :n"),
                                     {"n": name}).scalar(),
            "tables": conn.execute(text("SELECT count(*) FROM pg_tables WHERE tablename LIKE :n"),
                                   {"n": f"{name}%"}).scalar(),
            "tap_schema": conn.execute(text("SELECT count(*) FROM tap_schema.tables WHERE table_name LIKE :n"),
                                       {"n": f"pz.{name}%"}).scalar(),
            "columns": conn.execute(text("SELECT count(*) FROM tap_schema.columns WHERE table_name LIKE :n"),
                                    {"n": f"pz.{name}%"}).scalar(),
            "provenance": conn.execute(text(
                "SELECT (SELECT count(*) FROM provenance.activity WHERE name LIKE :a) "
                "+ (SELECT count(*) FROM provenance.entity WHERE name LIKE :n OR location LIKE :loc)"),
                {"a": f"register {name} v%", "n": f"pz.{name}%", "loc": f"products/{name}/%"}).scalar(),
        }


@pytest.mark.parametrize("step", ["product-row", "table", "columns", "files", "provenance", "commit"])
def test_a_failure_at_any_step_leaves_no_trace(database, tmp_path, owner, specz_parquet, step) -> None:
    from vo_service.core.database import owner_engine

    def fail_at(name: str) -> None:
        if name == step:
            raise RuntimeError(f"injected failure at {name}")

    storage = tmp_path / "products"
    registry = ProductRegistry(engine=owner_engine(database), storage_dir=storage, step_hook=fail_at)
    name = unique_name("atom")
    with pytest.raises(RuntimeError, match="injected"):
        registry.register(RegistrationRequest(name=name, product_type="speczcat", main_file=specz_parquet,
                                              main_file_name="s.parquet", columns=SPECZ_COLUMNS), owner)
    assert _count_traces(registry, name) == {"products": 0, "tables": 0, "tap_schema": 0, "columns": 0,
                                             "provenance": 0}
    leftovers = [p for p in storage.rglob("*") if p.is_file()] if storage.exists() else []
    assert leftovers == []


def test_truncated_parquet_is_rejected_without_trace(registry, owner, specz_parquet, tmp_path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(specz_parquet.read_bytes()[: specz_parquet.stat().st_size // 2])
    name = unique_name("trunc")
    with pytest.raises(InvalidProductError, match="broken.parquet"):
        registry.register(RegistrationRequest(name=name, product_type="speczcat", main_file=broken,
                                              main_file_name="broken.parquet", columns=SPECZ_COLUMNS), owner)
    assert _count_traces(registry, name)["products"] == 0


def test_ragged_csv_names_the_problem(registry, owner, tmp_path) -> None:
    path = tmp_path / "ragged.csv"
    rows = ["id,ra,dec,z"] + [f"{i},{50 + i * 0.01},-30,{0.1 * (i % 20)}" for i in range(1, 3000)]
    rows.insert(2500, "2500,51,-30")
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(InvalidProductError, match="columns"):
        registry.register(RegistrationRequest(name=unique_name("rag"), product_type="speczcat",
                                              main_file=path, main_file_name="ragged.csv", columns=ROLES), owner)


def test_unsupported_column_types_are_named(registry, owner, tmp_path) -> None:
    path = tmp_path / "lists.parquet"
    pq.write_table(pa.table({"id": [1, 2], "z": [0.1, 0.2], "spectrum": [[1.0, 2.0], [3.0]]}), path)
    with pytest.raises(InvalidProductError, match="spectrum"):
        registry.register(RegistrationRequest(name=unique_name("typ"), product_type="trainingset",
                                              main_file=path, main_file_name="lists.parquet",
                                              columns={"z": {"role": "redshift"}}), owner)


def test_duplicate_ids_are_refused(registry, owner, tmp_path) -> None:
    path = tmp_path / "dups.parquet"
    pq.write_table(pa.table({"id": [1, 1, 2], "z": [0.1, 0.2, 0.3]}), path)
    name = unique_name("dup")
    with pytest.raises(InvalidProductError, match="duplicate"):
        registry.register(RegistrationRequest(name=name, product_type="trainingset", main_file=path,
                                              main_file_name="dups.parquet",
                                              columns={"id": {"role": "id"}, "z": {"role": "redshift"}}), owner)
    assert _count_traces(registry, name)["tables"] == 0


def test_columns_differing_only_in_case_collide(registry, owner, tmp_path) -> None:
    path = tmp_path / "case.csv"
    path.write_text("Z,z\n0.1,0.2\n")
    with pytest.raises(InvalidProductError, match="both become"):
        registry.register(RegistrationRequest(name=unique_name("case"), product_type="trainingset",
                                              main_file=path, main_file_name="case.csv",
                                              columns={"z": {"role": "redshift"}}), owner)


def test_cli_ingest_list_show_delete(database, specz_parquet, tmp_path) -> None:
    import yaml

    env = dict(os.environ, PZVO_DB_NAME=database.db_name, PZVO_VAR_DIR=str(database.var_dir))
    meta = tmp_path / "meta.yaml"
    meta.write_text(yaml.safe_dump(SPECZ_COLUMNS))
    name = unique_name("cli")
    out = subprocess.run([str(PZVO), "ingest", str(specz_parquet), "--type", "speczcat", "--name", name,
                          "--release", "DP1", "--columns", str(meta)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"2000 rows in pz.{name}_v1" in out.stdout
    listing = subprocess.run([str(PZVO), "products", "list", "--search", name], capture_output=True,
                             text=True, env=env, check=True)
    assert name in listing.stdout and "1 product(s)" in listing.stdout
    show = subprocess.run([str(PZVO), "products", "show", name], capture_output=True, text=True,
                          env=env, check=True)
    assert '"row_count": 2000' in show.stdout
    bad = subprocess.run([str(PZVO), "ingest", str(specz_parquet), "--type", "speczcat", "--name",
                          unique_name("cli")], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "ra, dec, redshift" in bad.stderr
    gone = subprocess.run([str(PZVO), "products", "delete", name], capture_output=True, text=True, env=env)
    assert gone.returncode == 0 and "deleted" in gone.stdout


def test_leftover_files_of_a_dropped_database_are_set_aside(registry, owner, specz_parquet) -> None:
    """Files where version 1 of a new name goes (left by a database of the same name that was
    dropped) do not stop the registration and are moved away, never deleted."""
    name = unique_name("orph")
    leftover = registry.storage_dir / name / "v1" / "main" / "old.bin"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"someone's bytes")
    product = registry.register(RegistrationRequest(name=name, product_type="speczcat", main_file=specz_parquet,
                                                    main_file_name="s.parquet", columns=SPECZ_COLUMNS), owner)
    assert product.version == 1 and registry.file_path(product)[0].read_bytes() == specz_parquet.read_bytes()
    kept = list((registry.storage_dir / ".orphaned").glob(f"{name}-v1-*/main/old.bin"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"someone's bytes"


def test_migration_0007_backfills_file_product_entities(registry, owner, tmp_path) -> None:
    """A file product registered before products had entities of their own gets one, generated
    by its registration and derived from its file; running it again changes nothing."""
    import importlib.util

    from vo_service.core.settings import PROJECT_ROOT

    spec = importlib.util.spec_from_file_location(
        "m0007", PROJECT_ROOT / "migrations" / "versions" / "0007_file_product_entities.py")
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    model = tmp_path / "model.bin"
    model.write_bytes(b"old weights")
    name = unique_name("old")
    registry.register(RegistrationRequest(name=name, product_type="trainingresults", main_file=model,
                                          main_file_name="model.bin"), owner)
    entity = f"pzvo:product/{name}@1"
    links = ("SELECT (SELECT count(*) FROM provenance.entity WHERE id = :e), "
             "(SELECT count(*) FROM provenance.wasgeneratedby WHERE entity_id = :e), "
             "(SELECT count(*) FROM provenance.wasderivedfrom WHERE generated_entity_id = :e)")
    with registry.engine.begin() as conn:
        assert tuple(conn.execute(text(links), {"e": entity}).one()) == (1, 1, 1)
        # As the database was before: provenance is append-only, so the owner lifts the guard
        # for this transaction only.
        tables = ("wasderivedfrom", "wasgeneratedby", "entity")
        for table in tables:
            conn.execute(text(f"ALTER TABLE provenance.{table} DISABLE TRIGGER USER"))
        for sql in ("DELETE FROM provenance.wasderivedfrom WHERE generated_entity_id = :e",
                    "DELETE FROM provenance.wasgeneratedby WHERE entity_id = :e",
                    "DELETE FROM provenance.entity WHERE id = :e"):
            conn.execute(text(sql), {"e": entity})
        for table in tables:
            conn.execute(text(f"ALTER TABLE provenance.{table} ENABLE TRIGGER USER"))
        assert tuple(conn.execute(text(links), {"e": entity}).one()) == (0, 0, 0)
        migration.backfill(conn)
        migration.backfill(conn)
        assert tuple(conn.execute(text(links), {"e": entity}).one()) == (1, 1, 1)
        kind = conn.execute(text("SELECT type FROM provenance.entity WHERE id = :e"), {"e": entity}).scalar()
    assert kind == "pzvo:Product"
    registry.delete(name, 1, owner)
    with registry.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM provenance.wasinvalidatedby WHERE entity_id = :e"),
                            {"e": entity}).scalar() == 1
