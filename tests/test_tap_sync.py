"""Sync TAP through real HTTP: parameters, formats read back, errors as DALI documents."""
from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest
import requests
from astropy.io import fits
from astropy.io.votable import parse as parse_votable
from astropy.io.votable import parse_single_table
from astropy.table import Table

CONE = ("SELECT objectId, ra, dec, z_phot FROM pz.photoz_demo "
        "WHERE 1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 60, -32, 0.3))")


def sync(tap_url: str, method: str = "POST", **params: object) -> requests.Response:
    if method == "GET":
        return requests.get(f"{tap_url}/sync", params=params, timeout=60)
    return requests.post(f"{tap_url}/sync", data=params, timeout=60)


def query_status(body: bytes) -> tuple[str | None, str | None]:
    """The value and text of the results RESOURCE's first QUERY_STATUS INFO."""
    vot = parse_votable(io.BytesIO(body))
    for resource in vot.resources:
        for info in resource.infos:
            if info.name == "QUERY_STATUS":
                return info.value, info.content
    return None, None


def assert_dali_error(resp: requests.Response, status: int, *fragments: str) -> str:
    assert resp.status_code == status, resp.text[:500]
    assert resp.headers["Content-Type"].startswith("application/x-votable+xml")
    value, message = query_status(resp.content)
    assert value == "ERROR"
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    return message


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_sync_query_returns_binary2_votable_by_default(tap_url: str, method: str) -> None:
    resp = sync(tap_url, method, REQUEST="doQuery", LANG="ADQL",
                QUERY="SELECT TOP 5 objectId, ra, z_phot FROM pz.photoz_demo ORDER BY objectId")
    assert resp.status_code == 200
    assert "BINARY2" in resp.text
    table = parse_single_table(io.BytesIO(resp.content)).to_table()
    assert len(table) == 5
    assert list(table.colnames) == ["objectId", "ra", "z_phot"]
    assert list(table["objectId"]) == sorted(table["objectId"])


def test_parameter_names_are_case_insensitive(tap_url: str) -> None:
    resp = sync(tap_url, "GET", request="doquery", lang="adql", query="SELECT TOP 1 id FROM pz.specz_demo",
                responseformat="csv")
    assert resp.status_code == 200
    assert resp.text.splitlines()[0] == "id"


def test_request_parameter_is_optional(tap_url: str) -> None:
    resp = sync(tap_url, LANG="ADQL-2.0", QUERY="SELECT TOP 2 id FROM pz.specz_demo")
    assert resp.status_code == 200
    assert len(parse_single_table(io.BytesIO(resp.content)).to_table()) == 2


def test_fields_carry_units_ucds_and_descriptions_from_tap_schema(tap_url: str) -> None:
    resp = sync(tap_url, LANG="ADQL", QUERY="SELECT TOP 3 ra, z, survey FROM pz.specz_demo")
    fields = {f.name: f for f in parse_single_table(io.BytesIO(resp.content)).fields}
    assert str(fields["ra"].unit) == "deg"
    assert fields["ra"].ucd == "pos.eq.ra;meta.main"
    assert fields["z"].ucd == "src.redshift"
    assert "Spectroscopic redshift" in fields["z"].description
    assert fields["survey"].datatype in ("char", "unicodeChar")


def test_cone_query_matches_a_brute_force_selection(tap_url: str) -> None:
    cone = parse_single_table(io.BytesIO(sync(tap_url, LANG="ADQL", QUERY=CONE).content)).to_table()
    brute = parse_single_table(io.BytesIO(sync(
        tap_url, LANG="ADQL", MAXREC=100000,
        QUERY="SELECT objectId FROM pz.photoz_demo WHERE "
              "DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 60, -32)) <= 0.3").content)).to_table()
    assert len(cone) > 50
    assert sorted(cone["objectId"]) == sorted(brute["objectId"])


def test_maxrec_truncates_and_signals_overflow_after_the_table(tap_url: str) -> None:
    resp = sync(tap_url, LANG="ADQL", MAXREC=7, QUERY="SELECT id FROM pz.specz_demo")
    vot = parse_votable(io.BytesIO(resp.content))
    assert len(vot.get_first_table().to_table()) == 7
    infos = [(i.name, i.value) for i in vot.resources[0].infos]
    assert ("QUERY_STATUS", "OK") in infos
    assert ("QUERY_STATUS", "OVERFLOW") in infos
    assert resp.text.index('value="OVERFLOW"') > resp.text.index("</TABLE>")


def test_no_overflow_when_the_result_fits(tap_url: str) -> None:
    resp = sync(tap_url, LANG="ADQL", MAXREC=10, QUERY="SELECT TOP 10 id FROM pz.specz_demo")
    assert 'value="OVERFLOW"' not in resp.text
    assert len(parse_single_table(io.BytesIO(resp.content)).to_table()) == 10


def test_maxrec_zero_returns_metadata_only(tap_url: str) -> None:
    resp = sync(tap_url, LANG="ADQL", MAXREC=0, QUERY="SELECT id, z FROM pz.specz_demo")
    table = parse_single_table(io.BytesIO(resp.content))
    assert [f.name for f in table.fields] == ["id", "z"]
    assert len(table.to_table()) == 0


QUERY_ALL_TYPES = ("SELECT TOP 50 id, ra, z_flag, survey, z FROM pz.specz_demo ORDER BY id")


@pytest.mark.parametrize("fmt", ["votable", "votable/td", "votable/b", "votable/b2",
                                 "application/x-votable+xml;serialization=TABLEDATA"])
def test_every_votable_serialization_reads_back_identically(tap_url: str, fmt: str) -> None:
    reference = parse_single_table(io.BytesIO(sync(tap_url, LANG="ADQL", QUERY=QUERY_ALL_TYPES).content)).to_table()
    table = parse_single_table(io.BytesIO(sync(tap_url, LANG="ADQL", QUERY=QUERY_ALL_TYPES,
                                               RESPONSEFORMAT=fmt).content)).to_table()
    for name in reference.colnames:
        assert list(table[name]) == list(reference[name]), name


def test_csv_tsv_fits_parquet_json_agree(tap_url: str) -> None:
    ref = parse_single_table(io.BytesIO(sync(tap_url, LANG="ADQL", QUERY=QUERY_ALL_TYPES).content)).to_table()
    csv = Table.read(sync(tap_url, LANG="ADQL", QUERY=QUERY_ALL_TYPES, RESPONSEFORMAT="csv").text,
                     format="ascii.csv")
    tsv = Table.read(sync(tap_url, LANG="ADQL", QUERY=QUERY_ALL_TYPES, RESPONSEFORMAT="tsv").text,
                     format="ascii.tab")
    with fits.open(io.BytesIO(sync(tap_url, LANG="ADQL", QUERY=QUERY_ALL_TYPES,
                                   RESPONSEFORMAT="fits").content)) as hdul:
        fits_table = Table(hdul[1].data)
    parquet = pq.read_table(io.BytesIO(sync(tap_url, LANG="ADQL", QUERY=QUERY_ALL_TYPES,
                                            RESPONSEFORMAT="parquet").content))
    doc = json.loads(sync(tap_url, LANG="ADQL", QUERY=QUERY_ALL_TYPES, RESPONSEFORMAT="json").text)
    json_ids = [row[0] for row in doc["data"]]
    for other in (csv, tsv, fits_table):
        assert list(other["id"]) == list(ref["id"])
        assert list(other["z"]) == pytest.approx(list(ref["z"]), rel=1e-15)
    assert parquet.column(0).to_pylist() == list(ref["id"])
    assert json_ids == list(ref["id"])
    assert [str(s) for s in csv["survey"]] == [str(s) for s in ref["survey"]]


@pytest.mark.parametrize("fmt,mime", [("csv", "text/csv"), ("tsv", "text/tab-separated-values"),
                                      ("fits", "application/fits"), ("json", "application/json"),
                                      ("text/csv", "text/csv")])
def test_response_format_sets_the_content_type(tap_url: str, fmt: str, mime: str) -> None:
    resp = sync(tap_url, LANG="ADQL", QUERY="SELECT TOP 1 id FROM pz.specz_demo", RESPONSEFORMAT=fmt)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith(mime)


def test_format_is_an_alias_of_responseformat(tap_url: str) -> None:
    resp = sync(tap_url, LANG="ADQL", QUERY="SELECT TOP 1 id FROM pz.specz_demo", FORMAT="csv")
    assert resp.headers["Content-Type"].startswith("text/csv")


def test_nulls_and_geometry_values_survive_the_round_trip(tap_url: str) -> None:
    query = ("SELECT TOP 3 id, NULL AS nothing, POINT('ICRS', ra, dec) AS pos, "
             "CASE WHEN z_flag > 2 THEN survey ELSE NULL END AS maybe FROM pz.specz_demo ORDER BY id")
    resp = sync(tap_url, LANG="ADQL", QUERY=query)
    assert resp.status_code == 200, resp.text
    table = parse_single_table(io.BytesIO(resp.content))
    pos_field = [f for f in table.fields if f.name == "pos"][0]
    assert pos_field.xtype == "point"
    data = table.to_table()
    assert len(data["pos"][0]) == 2


# --- errors ------------------------------------------------------------------------------------

def test_syntax_error_names_the_position(tap_url: str) -> None:
    message = assert_dali_error(sync(tap_url, LANG="ADQL", QUERY="SELECT id FROM\n pz.specz_demo WHERE"),
                                400)
    assert "line" in message.lower() or "column" in message.lower()


def test_unknown_table_is_named(tap_url: str) -> None:
    assert_dali_error(sync(tap_url, LANG="ADQL", QUERY="SELECT * FROM pz.no_such_table"), 400,
                      "no_such_table")


def test_unknown_column_is_named(tap_url: str) -> None:
    assert_dali_error(sync(tap_url, LANG="ADQL", QUERY="SELECT nope FROM pz.specz_demo"), 400, "nope")


@pytest.mark.parametrize("query", [
    "INSERT INTO pz.specz_demo (id) VALUES (1)",
    "DROP TABLE pz.specz_demo",
    "SELECT 1 FROM pz.specz_demo; SELECT 2 FROM pz.specz_demo",
    "DELETE FROM pz.specz_demo",
    "SELECT pg_sleep(1) FROM pz.specz_demo",
    "SELECT id::text FROM pz.specz_demo",
    "SELECT id FROM pz.specz_demo LIMIT 3",
])
def test_forbidden_or_non_adql_statements_are_rejected(tap_url: str, query: str) -> None:
    assert_dali_error(sync(tap_url, LANG="ADQL", QUERY=query), 400)


def test_tables_are_untouched_after_forbidden_statements(tap_url: str) -> None:
    resp = sync(tap_url, LANG="ADQL", QUERY="SELECT COUNT(*) AS n FROM pz.specz_demo")
    assert parse_single_table(io.BytesIO(resp.content)).to_table()["n"][0] == 10_000


@pytest.mark.parametrize("params,fragment", [
    ({"QUERY": "SELECT 1 FROM pz.specz_demo"}, "LANG"),
    ({"LANG": "SQL", "QUERY": "SELECT 1"}, "LANG=SQL"),
    ({"LANG": "ADQL"}, "QUERY"),
    ({"LANG": "ADQL", "QUERY": "SELECT TOP 1 id FROM pz.specz_demo", "MAXREC": "ten"}, "MAXREC"),
    ({"LANG": "ADQL", "QUERY": "SELECT TOP 1 id FROM pz.specz_demo", "MAXREC": "-1"}, "MAXREC"),
    ({"LANG": "ADQL", "QUERY": "SELECT TOP 1 id FROM pz.specz_demo", "RESPONSEFORMAT": "xls"}, "xls"),
    ({"REQUEST": "getCapabilities", "LANG": "ADQL", "QUERY": "SELECT 1"}, "REQUEST"),
])
def test_bad_parameters_get_dali_errors(tap_url: str, params: dict, fragment: str) -> None:
    assert_dali_error(sync(tap_url, **params), 400, fragment)


def test_runtime_database_error_is_a_dali_error_and_connection_recovers(tap_url: str) -> None:
    bad = sync(tap_url, LANG="ADQL", QUERY="SELECT TOP 5 id / (z_flag - z_flag) FROM pz.specz_demo")
    assert_dali_error(bad, 400, "division by zero")
    for _ in range(6):  # more than the pool size: every pooled connection must still work
        ok = sync(tap_url, LANG="ADQL", QUERY="SELECT TOP 1 id FROM pz.specz_demo")
        assert ok.status_code == 200


def test_timeout_is_reported_and_the_service_recovers(database, tmp_path) -> None:
    import dataclasses

    from tests._services import app_for
    from tests.conftest import LiveServer

    app = app_for(dataclasses.replace(database, query_timeout_s=0.5))
    with LiveServer(app) as live:
        slow = ("SELECT COUNT(*) FROM pz.photoz_demo AS a JOIN pz.photoz_demo AS b "
                "ON a.z_phot + b.z_phot > 100")
        assert_dali_error(sync(live.url + "/tap", LANG="ADQL", QUERY=slow), 400, "time limit")
        ok = sync(live.url + "/tap", LANG="ADQL", QUERY="SELECT TOP 1 id FROM pz.specz_demo")
        assert ok.status_code == 200


def test_unknown_tap_endpoint_is_a_dali_404(tap_url: str) -> None:
    resp = requests.get(f"{tap_url}/nonexistent", timeout=10)
    assert resp.status_code == 404
    assert query_status(resp.content)[0] == "ERROR"
