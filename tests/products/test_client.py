"""The notebook client against the live service, then pyvo on the table it names."""
from __future__ import annotations

import pytest

from tests.products.conftest import SPECZ_COLUMNS, unique_name
from vo_service.client import PZServer, PZServerError


def test_client_round_trip(server, user, other_user, specz_parquet, tmp_path) -> None:
    token = user[1]["Authorization"].split()[1]
    pz = PZServer(server.url, token=token)
    name = unique_name("cl")
    doc = pz.upload(name, specz_parquet, "speczcat", release="DP1", columns=SPECZ_COLUMNS,
                    description="client test")
    assert doc["row_count"] == 2000
    listed = pz.list_products(search=name)
    assert list(listed["name"]) == [name]
    table = pz.get_product(name)
    assert len(table) == 2000 and str(table["ra"].unit) == "deg"
    path = pz.download_product(name, tmp_path)
    assert path.read_bytes() == specz_parquet.read_bytes()
    assert pz.update_description(name, "better words")["description"] == "better words"
    rows = pz.tap.run_sync(f"SELECT TOP 5 id, z_spec FROM {pz.table_name(name)}").to_table()
    assert len(rows) == 5
    intruder = PZServer(server.url, token=other_user[1]["Authorization"].split()[1])
    with pytest.raises(PZServerError) as err:
        intruder.delete(name)
    assert err.value.status == 403
    pz.delete(name)
    with pytest.raises(PZServerError, match="404"):
        pz.get_product_metadata(name)


def test_client_reports_problems(server, user, specz_parquet) -> None:
    pz = PZServer(server.url, token=user[1]["Authorization"].split()[1])
    with pytest.raises(PZServerError) as err:
        pz.upload(unique_name("cl"), specz_parquet, "speczcat")
    assert err.value.status == 422 and "redshift" in err.value.detail
