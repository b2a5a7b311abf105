"""The REST API through HTTP on the real database: upload, list, get, edit, download, delete."""
from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest
import requests
from astropy.io import fits
from astropy.io.votable import parse_single_table

from tests.products.conftest import SPECZ_COLUMNS, unique_name, upload


def adql(tap_url: str, query: str):
    resp = requests.post(f"{tap_url}/sync", data={"LANG": "ADQL", "QUERY": query}, timeout=60)
    assert resp.status_code == 200, resp.text[:500]
    return parse_single_table(io.BytesIO(resp.content)).to_table()


def test_upload_publishes_a_queryable_table_with_roles_as_ucds(api, tap_url, user, specz_parquet) -> None:
    name = unique_name("specz")
    resp = upload(api, user[1], specz_parquet, name=name, columns=SPECZ_COLUMNS, release="DP1",
                  display_name="Test spec-z", description="for the tests")
    assert resp.status_code == 201, resp.text
    doc = resp.json()
    assert doc["version"] == 1 and doc["row_count"] == 2000 and doc["owner"] == user[0]
    assert doc["table_name"] == f"pz.{name}_v1"
    cols = {c["name"]: c for c in doc["columns"]}
    assert cols["z_err"]["original_name"] == "z err"
    assert cols["ra"]["ucd"] == "pos.eq.ra;meta.main" and cols["ra"]["unit"] == "deg"
    assert cols["z_spec"]["ucd"] == "src.redshift"
    table = adql(tap_url, f"SELECT COUNT(*) AS n, MAX(z_spec) AS zmax FROM {doc['table_name']}")
    assert table["n"][0] == 2000
    fields = parse_single_table(io.BytesIO(requests.post(f"{tap_url}/sync", data={
        "LANG": "ADQL", "QUERY": f"SELECT TOP 1 ra, z_spec FROM {doc['table_name']}"}).content)).fields
    assert fields[0].ucd == "pos.eq.ra;meta.main"
    cone = adql(tap_url, f"SELECT COUNT(*) AS n FROM {doc['table_name']} WHERE "
                         "1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 60, -32, 2))")
    assert cone["n"][0] > 0


def test_reupload_makes_a_new_version_and_keeps_the_old(api, tap_url, user, specz_parquet) -> None:
    name = unique_name("ver")
    first = upload(api, user[1], specz_parquet, name=name, columns=SPECZ_COLUMNS).json()
    second = upload(api, user[1], specz_parquet, name=name, columns=SPECZ_COLUMNS).json()
    assert (first["version"], second["version"]) == (1, 2)
    latest = requests.get(f"{api}/products/{name}", headers=user[1]).json()
    assert latest["version"] == 2 and latest["latest_version"] == 2
    old = requests.get(f"{api}/products/{name}?version=1", headers=user[1]).json()
    assert old["table_name"] == f"pz.{name}_v1"
    assert adql(tap_url, f"SELECT COUNT(*) AS n FROM pz.{name}_v1")["n"][0] == 2000
    listing = requests.get(f"{api}/products", params={"q": name}).json()
    assert [p["version"] for p in listing["items"]] == [2]
    every = requests.get(f"{api}/products", params={"q": name, "all_versions": "true"}).json()
    assert sorted(p["version"] for p in every["items"]) == [1, 2]


def test_list_filters_and_paginates(api, user, admin, specz_parquet) -> None:
    tag = unique_name("flt")
    for i in range(3):
        upload(api, user[1], specz_parquet, name=f"{tag}_{i}", columns=SPECZ_COLUMNS, release="DR1")
    upload(api, admin[1], specz_parquet, name=f"{tag}_off", columns=SPECZ_COLUMNS, release="DR1",
           official="true")
    page1 = requests.get(f"{api}/products", params={"q": tag, "page_size": 2}).json()
    page2 = requests.get(f"{api}/products", params={"q": tag, "page_size": 2, "page": 2}).json()
    assert page1["total"] == 4 and len(page1["items"]) == 2 and len(page2["items"]) == 2
    official = requests.get(f"{api}/products", params={"q": tag, "official": "true"}).json()
    assert [p["name"] for p in official["items"]] == [f"{tag}_off"]
    mine = requests.get(f"{api}/products", params={"q": tag, "owner": user[0]}).json()
    assert mine["total"] == 3
    none = requests.get(f"{api}/products", params={"q": tag, "type": "pztable"}).json()
    assert none["total"] == 0


def test_download_original_and_table_formats(api, user, specz_parquet) -> None:
    name = unique_name("dl")
    upload(api, user[1], specz_parquet, name=name, columns=SPECZ_COLUMNS)
    original = requests.get(f"{api}/products/{name}/file")
    assert original.status_code == 200 and original.content == specz_parquet.read_bytes()
    parquet = pq.read_table(io.BytesIO(requests.get(f"{api}/products/{name}/table?format=parquet").content))
    assert parquet.num_rows == 2000 and "z_spec" in parquet.column_names
    csv = requests.get(f"{api}/products/{name}/table?format=csv")
    assert csv.text.count("\n") == 2001
    with fits.open(io.BytesIO(requests.get(f"{api}/products/{name}/table?format=fits").content)) as hdul:
        assert len(hdul[1].data) == 2000
    vot = parse_single_table(io.BytesIO(requests.get(f"{api}/products/{name}/table?format=votable").content))
    assert len(vot.to_table()) == 2000


def test_patch_that_is_not_json_is_415_not_a_silent_no_op(api, user, specz_parquet) -> None:
    name = unique_name("patch")
    assert upload(api, user[1], specz_parquet, name=name, columns=SPECZ_COLUMNS).status_code == 201
    resp = requests.patch(f"{api}/products/{name}", data='{"description": "x"}', headers=user[1])
    assert resp.status_code == 415 and resp.headers["Content-Type"] == "application/problem+json"
    assert requests.get(f"{api}/products/{name}").json()["description"] is None
    ok = requests.patch(f"{api}/products/{name}", json={"description": "x"}, headers=user[1])
    assert ok.status_code == 200 and ok.json()["description"] == "x"


def test_download_is_the_whole_table_or_a_clear_refusal(database, user, specz_parquet) -> None:
    """A download is never cut: up to PZVO_MAXREC_LIMIT rows it holds every row (whatever
    MAXREC's default), beyond it the answer is a 413 problem pointing to TAP, since CSV and
    Parquet have no way to say that rows are missing."""
    import dataclasses

    from tests._services import app_for
    from tests.conftest import LiveServer

    name = unique_name("dlall")
    app = app_for(dataclasses.replace(database, maxrec_limit=2000, maxrec_default=100))
    with LiveServer(app) as live:
        assert upload(live.url + "/api", user[1], specz_parquet, name=name, columns=SPECZ_COLUMNS).status_code == 201
        table = f"{live.url}/api/products/{name}/table"
        assert requests.get(table, params={"format": "csv"}).text.count("\n") == 2001
        assert pq.read_table(io.BytesIO(requests.get(table, params={"format": "parquet"}).content)).num_rows == 2000
        tap = requests.post(f"{live.url}/tap/sync", data={"LANG": "ADQL", "QUERY": f"SELECT * FROM pz.{name}_v1"})
        assert len(parse_single_table(io.BytesIO(tap.content)).to_table()) == 100
    with LiveServer(app_for(dataclasses.replace(database, maxrec_limit=1000))) as live:
        refused = requests.get(f"{live.url}/api/products/{name}/table", params={"format": "csv"})
        assert refused.status_code == 413 and refused.headers["Content-Type"] == "application/problem+json"
        assert "2000 rows" in refused.json()["detail"] and "/tap/async" in refused.json()["detail"]


def test_edit_metadata_updates_tap_schema(api, tap_url, user, other_user, specz_parquet) -> None:
    name = unique_name("edit")
    doc = upload(api, user[1], specz_parquet, name=name, columns=SPECZ_COLUMNS).json()
    refused = requests.patch(f"{api}/products/{name}", json={"description": "x"}, headers=other_user[1])
    assert refused.status_code == 403 and refused.headers["Content-Type"] == "application/problem+json"
    resp = requests.patch(f"{api}/products/{name}", headers=user[1], json={
        "description": "edited", "columns": {"survey": {"description": "origin survey", "ucd": "meta.dataset"}}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["description"] == "edited"
    meta = adql(tap_url, f"SELECT description FROM TAP_SCHEMA.columns WHERE table_name = "
                         f"'{doc['table_name']}' AND column_name = 'survey'")
    assert meta["description"][0] == "origin survey"


def test_delete_drops_the_table_from_tap_but_keeps_the_record(api, tap_url, user, other_user, specz_parquet) -> None:
    name = unique_name("del")
    doc = upload(api, user[1], specz_parquet, name=name, columns=SPECZ_COLUMNS).json()
    assert requests.delete(f"{api}/products/{name}", headers=other_user[1]).status_code == 403
    assert requests.delete(f"{api}/products/{name}").status_code == 401
    assert requests.delete(f"{api}/products/{name}", headers=user[1]).status_code == 200
    assert requests.get(f"{api}/products/{name}").status_code == 404
    gone = requests.post(f"{tap_url}/sync", data={"LANG": "ADQL", "QUERY": f"SELECT * FROM {doc['table_name']}"})
    assert gone.status_code == 400
    kept = adql(tap_url, f"SELECT status FROM registry.products WHERE name = '{name}'")
    assert list(kept["status"]) == ["deleted"]


def test_official_products_need_an_admin(api, user, admin, specz_parquet) -> None:
    resp = upload(api, user[1], specz_parquet, name=unique_name("off"), columns=SPECZ_COLUMNS, official="true")
    assert resp.status_code == 403
    assert "administrator" in resp.json()["detail"]
    ok = upload(api, admin[1], specz_parquet, name=unique_name("off"), columns=SPECZ_COLUMNS, official="true")
    assert ok.status_code == 201 and ok.json()["official"] is True


def test_a_name_belongs_to_its_owner(api, user, other_user, admin, specz_parquet) -> None:
    """Another user cannot take over a product by uploading a "new version" of its name; an
    administrator can; after every version is deleted the name is free again."""
    name = unique_name("own")
    assert upload(api, user[1], specz_parquet, name=name, columns=SPECZ_COLUMNS).status_code == 201
    taken = upload(api, other_user[1], specz_parquet, name=name, columns=SPECZ_COLUMNS)
    assert taken.status_code == 403 and f"owner ({user[0]})" in taken.json()["detail"]
    latest = requests.get(f"{api}/products/{name}").json()
    assert (latest["version"], latest["owner"]) == (1, user[0])
    by_admin = upload(api, admin[1], specz_parquet, name=name, columns=SPECZ_COLUMNS)
    assert by_admin.status_code == 201 and by_admin.json()["version"] == 2
    for version in (2, 1):
        assert requests.delete(f"{api}/products/{name}?version={version}", headers=admin[1]).status_code == 200
    reused = upload(api, other_user[1], specz_parquet, name=name, columns=SPECZ_COLUMNS)
    assert reused.status_code == 201 and reused.json()["version"] == 3


def test_official_status_is_the_administrators_alone(api, user, admin, specz_parquet) -> None:
    """The owner of a product an administrator made official cannot un-mark it, delete it, or
    replace it with a new (unofficial) version."""
    name = unique_name("offown")
    assert upload(api, user[1], specz_parquet, name=name, columns=SPECZ_COLUMNS).status_code == 201
    url = f"{api}/products/{name}"
    assert requests.patch(url, json={"official": True}, headers=user[1]).status_code == 403
    assert requests.patch(url, json={"official": True}, headers=admin[1]).json()["official"] is True
    unmark = requests.patch(url, json={"official": False}, headers=user[1])
    assert unmark.status_code == 403 and "administrator" in unmark.json()["detail"]
    assert requests.patch(url, json={"official": True, "description": "x"}, headers=user[1]).status_code == 200
    assert requests.delete(url, headers=user[1]).status_code == 403
    assert upload(api, user[1], specz_parquet, name=name, columns=SPECZ_COLUMNS).status_code == 403
    official = requests.get(f"{api}/products", params={"q": name, "official": "true"}).json()["items"]
    assert [(p["version"], p["owner"]) for p in official] == [(1, user[0])]
    assert requests.delete(url, headers=admin[1]).status_code == 200


def test_non_tabular_products_are_stored_not_published(api, user, tmp_path) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(b"\x80\x04trained-model-bytes" * 100)
    name = unique_name("model")
    resp = upload(api, user[1], model, name=name, product_type="trainingresults", pz_code="knn")
    assert resp.status_code == 201, resp.text
    assert resp.json()["table_name"] is None and resp.json()["pz_code"] == "knn"
    assert requests.get(f"{api}/products/{name}/file").content == model.read_bytes()
    assert requests.get(f"{api}/products/{name}/table").status_code == 404


def test_file_products_sharing_a_file_are_deleted_independently(api, server, user, other_user, tmp_path) -> None:
    """Two users upload the same bytes: each product has its own entity derived from the one
    file entity, so deleting one invalidates only that product, and the other stays deletable."""
    model = tmp_path / "same.bin"
    model.write_bytes(b"identical weights" * 50)
    a, b = unique_name("sha"), unique_name("shb")
    assert upload(api, user[1], model, name=a, product_type="trainingresults").status_code == 201
    assert upload(api, other_user[1], model, name=b, product_type="trainingresults").status_code == 201
    prov = requests.get(f"{server.url}/prov", params={"ID": f"pzvo:product/{b}@1", "DEPTH": 1,
                                                      "RESPONSEFORMAT": "PROV-JSON"}).json()
    assert any(d["prov:generatedEntity"] == f"pzvo:product/{b}@1" for d in prov["wasDerivedFrom"].values())
    page = requests.get(f"{server.url}/provenance/pzvo:product/{b}@1", timeout=30)  # the product page's link
    assert page.status_code == 200 and f"pzvo:product/{b}@1" in page.text
    assert requests.delete(f"{api}/products/{a}", headers=user[1]).status_code == 200
    after = requests.get(f"{server.url}/prov", params={"ID": f"pzvo:product/{b}@1", "DEPTH": 1,
                                                       "RESPONSEFORMAT": "PROV-JSON"}).json()
    assert "wasInvalidatedBy" not in after or not any(
        d["prov:entity"] == f"pzvo:product/{b}@1" for d in after["wasInvalidatedBy"].values())
    assert requests.delete(f"{api}/products/{b}", headers=other_user[1]).status_code == 200


def test_openapi_document_describes_the_api(api) -> None:
    spec = requests.get(f"{api}/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert {"/api/products", "/api/products/{name}", "/api/products/{name}/table"} <= set(spec["paths"])


@pytest.mark.parametrize("columns,fragment", [
    ({"RA": {"role": "ra"}}, "roles dec, redshift"),
    ({**SPECZ_COLUMNS, "nope": {"role": "ra"}}, "does not have"),
    ({**SPECZ_COLUMNS, "survey": {"role": "not_a_role"}}, "unknown role"),
    ({**SPECZ_COLUMNS, "survey": {"name": "select"}}, "reserved"),
    ({**SPECZ_COLUMNS, "survey": {"name": "flag"}}, "both become"),
    ({**SPECZ_COLUMNS, "survey": {"rol": "survey"}}, "unknown metadata 'rol'"),
    ({**SPECZ_COLUMNS, "z err": {"role": "redshift_err", "unit": 5}}, "unit must be a string, not int"),
    ({**SPECZ_COLUMNS, "z_spec": {}, "survey": {"role": "redshift"}}, "holds char values; it must hold numbers"),
    ({**SPECZ_COLUMNS, "RA": {"role": "dec"}, "Dec": {"role": "ra"}}, "(ra) has 2000 values outside [0, 360] degrees"),
])
def test_bad_metadata_is_a_problem_document_and_leaves_nothing(api, user, specz_parquet, columns, fragment) -> None:
    name = unique_name("bad")
    resp = upload(api, user[1], specz_parquet, name=name, columns=columns)
    assert resp.status_code == 422, resp.text
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert fragment in json.dumps(resp.json())
    assert requests.get(f"{api}/products/{name}").status_code == 404


def test_oversized_upload_is_413_and_leaves_nothing(database, user, tmp_path) -> None:
    import dataclasses

    from tests._services import app_for
    from tests.conftest import LiveServer

    # TAP uploads may be larger: the /api limit must hold on its own.
    app = app_for(dataclasses.replace(database, product_max_bytes=10_000, upload_max_bytes=10_000_000))
    big = tmp_path / "big.csv"
    big.write_text("id,z\n" + "".join(f"{i},0.5\n" for i in range(5000)))
    name = unique_name("big")
    with LiveServer(app) as live:
        resp = upload(live.url + "/api", user[1], big, name=name, product_type="trainingset",
                      columns={"z": {"role": "redshift"}})
        assert resp.status_code == 413
        assert resp.headers["Content-Type"] == "application/problem+json"
        assert resp.json()["detail"] == "uploads are limited to 10000 bytes"
        assert requests.get(f"{live.url}/api/products/{name}").status_code == 404
        # Without a Content-Length (chunked transfer), the limit holds while the body is read.
        boundary = "pzvoboundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"product_type\"\r\n\r\ntrainingset\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n"
                f"Content-Type: text/csv\r\n\r\n").encode() + big.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        chunked = requests.post(f"{live.url}/api/products", headers={
            **user[1], "Content-Type": f"multipart/form-data; boundary={boundary}"},
            data=(body[i:i + 4096] for i in range(0, len(body), 4096)), timeout=60)
        assert chunked.request.headers.get("Transfer-Encoding") == "chunked"
        assert chunked.status_code == 413, chunked.text
        assert chunked.json()["detail"] == "uploads are limited to 10000 bytes"
        assert requests.get(f"{live.url}/api/products/{name}").status_code == 404
        incoming = database.products_dir / ".incoming"
        assert not incoming.exists() or not any(incoming.iterdir())


def test_description_file_is_stored_and_markdown_becomes_the_description(api, user, specz_parquet, tmp_path) -> None:
    md = tmp_path / "README.md"
    md.write_text("# My spec-z\nSecure redshifts only.\n")
    name = unique_name("md")
    with specz_parquet.open("rb") as fh:
        resp = requests.post(f"{api}/products", headers=user[1], timeout=60, data={
            "name": name, "product_type": "speczcat", "columns": json.dumps(SPECZ_COLUMNS)},
            files={"file": ("specz.parquet", fh), "description_file": ("README.md", md.read_bytes())})
    assert resp.status_code == 201, resp.text
    doc = resp.json()
    assert doc["description"].startswith("# My spec-z")
    assert {f["role"] for f in doc["files"]} == {"main", "description"}
    got = requests.get(f"{api}/products/{name}/file?role=description")
    assert got.content == md.read_bytes()


def test_registration_records_provenance_and_deletion_invalidates(api, server, user, specz_parquet) -> None:
    import hashlib

    name = unique_name("prov")
    doc = upload(api, user[1], specz_parquet, name=name, columns=SPECZ_COLUMNS, release="DP1").json()
    entity = f"pzvo:table/{doc['table_name']}"
    graph = requests.get(f"{server.url}/prov", params={"ID": entity, "DEPTH": "ALL", "AGENT": "TRUE",
                                                       "RESPONSEFORMAT": "PROV-JSON"}).json()
    sha = hashlib.sha256(specz_parquet.read_bytes()).hexdigest()
    assert f"pzvo:file/{sha}" in graph["entity"]
    activity = next(iter(graph["activity"].values()))
    assert f"register {name} v1" in json.dumps(activity)
    assert f"pzvo:user/{user[0]}" in graph["agent"]
    page = requests.get(f"{server.url}/provenance/{entity}")
    assert page.status_code == 200 and f"/products/{name}?version=1" in page.text
    requests.delete(f"{api}/products/{name}", headers=user[1]).raise_for_status()
    after = requests.get(f"{server.url}/prov", params={"ID": entity, "DIRECTION": "FORTH",
                                                       "RESPONSEFORMAT": "PROV-JSON"}).json()
    assert "wasInvalidatedBy" in after and entity in json.dumps(after["wasInvalidatedBy"])


def test_demo_tables_are_official_products_of_the_demo_release(api) -> None:
    listing = requests.get(f"{api}/products", params={"release": "demo", "official": "true"}).json()
    tables = {p["name"]: p["table_name"] for p in listing["items"]}
    assert tables == {"specz_demo": "pz.specz_demo", "photoz_demo": "pz.photoz_demo"}
    specz = requests.get(f"{api}/products/specz_demo").json()
    roles = {c["name"]: c["role"] for c in specz["columns"]}
    assert roles["z"] == "redshift" and roles["ra"] == "ra"
    assert requests.get(f"{api}/products/specz_demo/file").status_code == 200
