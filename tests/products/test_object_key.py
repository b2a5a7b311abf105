"""The Object catalog's key is spelled as at the RSP (``objectId``) in every product keyed by it,
whatever the file called it, and the ``object_key_column`` setting renames it everywhere."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.table import Table
from sqlalchemy import text

from pipeline.product_tables import read_product_table
from tests._tap import sync
from tests.products.conftest import unique_name
from vo_service.auth import User
from vo_service.core.columns import OBJECT_KEY_UCD
from vo_service.core.database import owner_engine
from vo_service.products import InvalidProductError, Product, ProductRegistry, RegistrationRequest

ROWS = 50


@pytest.fixture
def owner(auth) -> User:
    name = unique_name("own")
    auth.add_user(name)
    return User(name=name)


def registry_for(database, object_key: str = "objectId") -> ProductRegistry:
    return ProductRegistry(engine=owner_engine(database), storage_dir=database.products_dir,
                           object_key=object_key)


def training_file(tmp_path, key_name: str = "OBJ_ID") -> tuple[Path, pa.Table]:
    rng = np.random.default_rng(5)
    table = pa.table({key_name: pa.array(rng.choice(2**62, ROWS, replace=False), pa.int64()),
                      "z": rng.uniform(0, 2, ROWS), "mag_i": rng.uniform(18, 25, ROWS)})
    path = tmp_path / "training.parquet"
    pq.write_table(table, path)
    return path, table


def register(registry: ProductRegistry, owner: User, path: Path, columns: dict) -> Product:
    return registry.register(RegistrationRequest(
        name=unique_name("ok"), product_type="trainingset", main_file=path, main_file_name="training.parquet",
        columns=columns), owner)


def tap_schema_column(database, table: str, ucd: str) -> tuple[str, str]:
    with owner_engine(database).connect() as conn:
        return tuple(conn.execute(text(
            "SELECT column_name, description FROM tap_schema.columns WHERE table_name = :t AND ucd = :u"),
            {"t": table, "u": ucd}).one())


def test_a_column_with_the_object_id_role_is_published_as_objectId(database, owner, tmp_path, tap_url) -> None:
    path, source = training_file(tmp_path)
    product = register(registry_for(database), owner, path,
                       {"OBJ_ID": {"role": "object_id"}, "z": {"role": "redshift"}})
    name, description = tap_schema_column(database, product.table_name, OBJECT_KEY_UCD)
    assert name == "objectId" and "foreign key to objectId" in description
    key = next(c for c in product.columns if c.role == "object_id")
    assert (key.name, key.original_name, key.datatype) == ("objectId", "OBJ_ID", "long")
    # ADQL finds it by any spelling (regular identifiers are case-insensitive); results say objectId
    first = int(np.sort(source.column("OBJ_ID").to_numpy())[0])
    resp = sync(tap_url, f"SELECT t.objectId, t.z FROM {product.table_name} AS t WHERE t.OBJECTID = {first}")
    assert resp.status_code == 200, resp.text
    table = Table.read(resp.text, format="ascii.csv")
    assert table.colnames == ["objectId", "z"] and list(table["objectId"]) == [first]
    # the pipeline and the Training Set Maker read it back under the file's own name
    back = read_product_table(registry_for(database), product)
    assert sorted(back.column("OBJ_ID").to_pylist()) == sorted(source.column("OBJ_ID").to_pylist())


def test_the_setting_renames_the_key_and_the_metadata_may_name_it(database, owner, tmp_path) -> None:
    path, _ = training_file(tmp_path, key_name="objectId")
    renamed = register(registry_for(database, "object_id"), owner, path,
                       {"objectId": {"role": "object_id"}, "z": {"role": "redshift"}})
    assert tap_schema_column(database, renamed.table_name, OBJECT_KEY_UCD)[0] == "object_id"
    named = register(registry_for(database), owner, path,
                     {"objectId": {"role": "object_id", "name": "obj"}, "z": {"role": "redshift"}})
    assert tap_schema_column(database, named.table_name, OBJECT_KEY_UCD)[0] == "obj"


def test_a_key_that_would_clash_with_another_column_is_refused(database, owner, tmp_path) -> None:
    rng = np.random.default_rng(6)
    path = tmp_path / "clash.parquet"
    pq.write_table(pa.table({"objectid": np.arange(ROWS), "oid": np.arange(ROWS, 2 * ROWS),
                             "z": rng.uniform(0, 2, ROWS)}), path)
    with pytest.raises(InvalidProductError, match="both become 'objectId'"):
        register(registry_for(database), owner, path, {"oid": {"role": "object_id"}, "z": {"role": "redshift"}})
