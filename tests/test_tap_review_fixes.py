"""Defects a review of TAP, ADQL, UWS, formats and uploads found, each checked through HTTP on
the live test server against the real database (and with pyvo/astropy where a user would)."""
from __future__ import annotations

import dataclasses
import http.client
import io
import json
import time
import urllib.parse
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import pyvo
import requests
from astropy.io.votable import parse as parse_votable
from astropy.table import Table
from lxml import etree

SPECZ_ROWS = 10_000
#: 1/0 at object_id 79999, which the scan reaches after more than one batch of rows (about
#: 55,000 photoz_demo rows in, times 3 for the cross join), so the response has started.
LATE_ERROR = ("SELECT a.object_id, b.id, 1.0/(a.object_id-79999) AS x FROM pz.photoz_demo AS a, "
              "(SELECT TOP 3 id FROM pz.specz_demo) AS b")
UWS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}


def sync(tap_url: str, query: str, fmt: str = "csv", **params: str) -> requests.Response:
    return requests.post(f"{tap_url}/sync", data={"LANG": "ADQL", "QUERY": query,
                                                 "RESPONSEFORMAT": fmt, **params}, timeout=120)


def count(tap_url: str, where: str) -> int:
    resp = sync(tap_url, f"SELECT COUNT(*) AS n FROM pz.specz_demo WHERE {where}")
    assert resp.status_code == 200, resp.text
    return int(resp.text.splitlines()[1])


def votable(resp: requests.Response) -> Table:
    assert resp.status_code == 200, resp.text[:1000]
    return parse_votable(io.BytesIO(resp.content)).get_first_table().to_table()


def dali_error(resp: requests.Response, status: int, *fragments: str) -> str:
    assert resp.status_code == status, resp.text[:1000]
    infos = [i for r in parse_votable(io.BytesIO(resp.content)).resources for i in r.infos
             if i.name == "QUERY_STATUS"]
    assert infos and infos[-1].value == "ERROR"
    message = infos[-1].content or ""
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    return message


# ---- LIKE ------------------------------------------------------------------------------------


def test_not_like_keeps_its_not(tap_url: str) -> None:
    like = count(tap_url, "survey LIKE 'V%'")
    not_like = count(tap_url, "survey NOT LIKE 'V%'")
    assert like == 3155 and like + not_like == SPECZ_ROWS
    assert count(tap_url, "NOT survey LIKE 'V%'") == not_like
    assert count(tap_url, "survey NOT LIKE 'V%' OR id < 0") == not_like
    assert count(tap_url, "survey NOT LIKE 'V%' AND survey NOT LIKE 'D%'") \
        == SPECZ_ROWS - like - count(tap_url, "survey LIKE 'D%'")
    resp = sync(tap_url, "SELECT SUM(CASE WHEN survey NOT LIKE 'V%' THEN 1 ELSE 0 END) AS n "
                         "FROM pz.specz_demo")
    assert int(resp.text.splitlines()[1]) == not_like


def test_not_ilike_keeps_its_not(tap_url: str) -> None:
    ilike = count(tap_url, "survey ILIKE 'v%'")
    assert ilike == count(tap_url, "survey LIKE 'V%'")
    assert ilike + count(tap_url, "survey NOT ILIKE 'v%'") == SPECZ_ROWS
    resp = sync(tap_url, "SELECT SUM(CASE WHEN survey NOT ILIKE 'v%' THEN 1 ELSE 0 END) AS n "
                         "FROM pz.specz_demo")
    assert int(resp.text.splitlines()[1]) == SPECZ_ROWS - ilike


def test_backslash_in_like_patterns_is_an_ordinary_character(tap_url: str) -> None:
    assert count(tap_url, "'a\\b' LIKE 'a\\b'") == SPECZ_ROWS
    assert count(tap_url, "'ab' LIKE 'a\\b'") == 0
    assert count(tap_url, "'a\\' LIKE 'a\\'") == SPECZ_ROWS  # PostgreSQL's escape would fail here
    assert count(tap_url, "'A\\B' ILIKE 'a\\b'") == SPECZ_ROWS
    assert count(tap_url, "'ab' NOT LIKE 'a\\b'") == SPECZ_ROWS
    assert count(tap_url, "'a%' LIKE 'a\\%'") == 0  # '\\' is no escape: it must be there


# ---- a database error after the response has started -----------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet"])
def test_late_error_breaks_off_formats_without_room_for_it(tap_url: str, fmt: str) -> None:
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        sync(tap_url, LATE_ERROR, fmt, MAXREC="5000000")


def test_late_error_leaves_no_readable_parquet_or_complete_csv(tap_url: str) -> None:
    """What the bytes that did arrive are: a Parquet file without footer, a CSV cut short."""
    url = urllib.parse.urlsplit(tap_url)
    received = {}
    for fmt in ("parquet", "csv"):
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
        body = urllib.parse.urlencode({"LANG": "ADQL", "QUERY": LATE_ERROR, "MAXREC": "5000000",
                                       "RESPONSEFORMAT": fmt})
        conn.request("POST", url.path + "/sync", body,
                     {"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead) as info:
            response.read()
        received[fmt] = info.value.partial
        conn.close()
    with pytest.raises(pa.ArrowInvalid):
        pq.read_table(io.BytesIO(received["parquet"]))
    assert received["csv"].startswith(b"object_id,id,x\r\n")
    assert 0 < received["csv"].count(b"\r\n") - 1 < 80_000 * 3


def test_late_error_is_a_json_member(tap_url: str) -> None:
    resp = sync(tap_url, LATE_ERROR, "json", MAXREC="5000000")
    assert resp.status_code == 200
    doc = json.loads(resp.content)
    assert "division by zero" in doc["error"]
    assert doc["rows"] == len(doc["data"]) and 0 < doc["rows"] < 80_000 * 3


def test_late_error_in_fits_is_a_dali_error(tap_url: str) -> None:
    dali_error(sync(tap_url, LATE_ERROR, "fits", MAXREC="5000000"), 400, "division by zero")


def test_late_error_in_votable_is_the_query_status(tap_url: str) -> None:
    resp = sync(tap_url, LATE_ERROR, "votable", MAXREC="5000000")
    assert resp.status_code == 200
    statuses = [i for r in parse_votable(io.BytesIO(resp.content)).resources for i in r.infos
                if i.name == "QUERY_STATUS"]
    assert statuses[-1].value == "ERROR" and "division by zero" in statuses[-1].content
    with pytest.raises(pyvo.dal.DALQueryError, match="division by zero"):
        pyvo.dal.TAPService(tap_url).run_sync(LATE_ERROR, maxrec=5_000_000)


@pytest.fixture(scope="module")
def worker(database) -> Iterator[object]:  # noqa: ANN001
    from tests._services import worker_for

    w = worker_for(dataclasses.replace(database, uws_heartbeat_s=0.3), threads=1,
                     name="review-worker")
    w.start()
    yield w
    w.stop()


def create_job(tap_url: str, **params: str) -> requests.Response:
    return requests.post(tap_url + "/async", data={"LANG": "ADQL", **params},
                         allow_redirects=False, timeout=30)


def final_phase(job_url: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = etree.fromstring(requests.get(job_url, params={"WAIT": "10"}, timeout=30).content)
        phase = doc.findtext("uws:phase", namespaces=UWS)
        if phase in ("COMPLETED", "ERROR", "ABORTED"):
            return phase
    raise AssertionError(f"{job_url} did not finish")


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_late_error_sends_an_async_job_to_error(tap_url: str, worker, fmt: str) -> None:  # noqa: ANN001
    resp = create_job(tap_url, QUERY=LATE_ERROR, RESPONSEFORMAT=fmt, MAXREC="5000000", PHASE="RUN")
    job_url = resp.headers["Location"]
    assert final_phase(job_url) == "ERROR"
    dali_error(requests.get(job_url + "/error", timeout=10), 200, "division by zero")
    requests.delete(job_url, timeout=10)


# ---- geometry values -------------------------------------------------------------------------


def _expected_triangles(tap_url: str) -> dict[int, list[float]]:
    rows = votable(sync(tap_url, "SELECT id, ra, dec FROM pz.specz_demo WHERE id IN (1, 56)",
                        "votable"))
    return {int(r["id"]): [r["ra"], r["dec"], r["ra"] + 1, r["dec"], r["ra"], r["dec"] + 1]
            for r in rows}


@pytest.mark.parametrize("query", [
    "SELECT sub.id, sub.poly FROM (SELECT id, POLYGON('ICRS', ra, dec, ra+1, dec, ra, dec+1) "
    "AS poly FROM pz.specz_demo) AS sub WHERE sub.id IN (1, 56) ORDER BY sub.id",
    "WITH t AS (SELECT id, POLYGON(ra, dec, ra+1, dec, ra, dec+1) AS poly FROM pz.specz_demo) "
    "SELECT t.id, t.poly FROM t WHERE t.id IN (1, 56) ORDER BY t.id",
])
def test_polygon_from_a_subquery_or_cte_has_its_vertices_in_order(tap_url: str, query: str) -> None:
    expected = _expected_triangles(tap_url)
    table = votable(sync(tap_url, query, "votable"))
    assert list(table["id"]) == [1, 56]
    for row in table:
        assert np.allclose(np.asarray(row["poly"], dtype=float), expected[int(row["id"])],
                           rtol=0, atol=1e-9)


def test_clockwise_polygon_from_a_subquery_keeps_its_vertex_order(tap_url: str) -> None:
    table = votable(sync(tap_url, "SELECT s.p FROM (SELECT id, POLYGON(ra, dec, ra, dec+1, "
                                  "ra+1, dec) AS p FROM pz.specz_demo) AS s WHERE s.id = 1",
                         "votable"))
    ra, dec = _expected_triangles(tap_url)[1][:2]
    assert np.allclose(np.asarray(table["p"][0], dtype=float), [ra, dec, ra, dec + 1, ra + 1, dec],
                       rtol=0, atol=1e-9)


def test_geometry_with_a_null_argument_is_null(tap_url: str) -> None:
    table = votable(sync(tap_url, "SELECT TOP 2 POINT('ICRS', NULL, 0) AS p, POINT(ra, NULL) AS q, "
                                  "CIRCLE(ra, dec, NULL) AS c, BOX(ra, dec, NULL, 1) AS b, "
                                  "POLYGON(ra, dec, ra+1, NULL, ra, dec+1) AS g, "
                                  "POINT(ra, dec) AS ok FROM pz.specz_demo ORDER BY id",
                         "votable"))
    for name in ("p", "q", "c", "b", "g"):
        assert np.all(np.ma.getmaskarray(table[name])), name
    assert not np.any(np.ma.getmaskarray(table["ok"]))
    sub = votable(sync(tap_url, "SELECT s.q FROM (SELECT TOP 1 POINT(ra, NULL) AS q "
                                "FROM pz.specz_demo) AS s", "votable"))
    assert np.all(np.ma.getmaskarray(sub["q"]))
    resp = sync(tap_url, "SELECT TOP 1 POINT('ICRS', NULL, 0) AS p FROM pz.specz_demo", "csv")
    assert resp.text.splitlines() == ["p", ""]


def test_negative_circle_radius_is_refused(tap_url: str) -> None:
    dali_error(sync(tap_url, "SELECT TOP 1 CIRCLE('ICRS', 0, 0, -1) AS c FROM pz.specz_demo"),
               400, "radius", "line 1")
    dali_error(sync(tap_url, "SELECT TOP 1 id FROM pz.specz_demo WHERE "
                             "1 = CONTAINS(POINT(ra, dec), CIRCLE(ra, dec, -0.5))"), 400, "radius")
    dali_error(sync(tap_url, "SELECT TOP 1 REGION('CIRCLE ICRS 0 0 -2') AS c FROM pz.specz_demo"),
               400, "radius")
    dali_error(sync(tap_url, "SELECT TOP 1 CIRCLE(ra, dec, z - 10) AS c FROM pz.specz_demo"),
               400, "radius")


# ---- Parquet read by astropy -----------------------------------------------------------------


def test_astropy_reads_parquet_with_null_strings(tap_url: str) -> None:
    query = ("SELECT TOP 6 id, CASE WHEN MOD(id, 2) = 0 THEN NULL ELSE survey END AS s, survey, "
             "COALESCE(survey, NULL) AS copy FROM pz.specz_demo ORDER BY id")
    resp = sync(tap_url, query, "parquet")
    assert resp.status_code == 200
    arrow = pq.read_table(io.BytesIO(resp.content)).to_pydict()
    assert None in arrow["s"] and any(v is not None for v in arrow["s"])
    table = Table.read(io.BytesIO(resp.content), format="parquet")
    assert list(table["id"]) == arrow["id"]
    assert list(table["survey"]) == arrow["survey"]
    for got, want in zip(table["s"], arrow["s"]):
        assert got == ("None" if want is None else want)  # astropy has no NULL strings here


def test_astropy_parquet_string_width_covers_every_batch(tap_url: str) -> None:
    """The longest string is in a late batch; astropy must not cut it to the first batch's."""
    long = "a string longer than all others"
    query = (f"SELECT object_id, ra, dec, mag_u, mag_g, mag_r, mag_i, mag_z, mag_y, "
             f"CASE WHEN object_id = 79999 THEN '{long}' ELSE 'x' END AS label, "
             f"CASE WHEN object_id = 99 THEN NULL ELSE 'y' END AS other FROM pz.photoz_demo")
    resp = sync(tap_url, query, "parquet")
    assert resp.status_code == 200
    assert pq.ParquetFile(io.BytesIO(resp.content)).num_row_groups > 1
    table = Table.read(io.BytesIO(resp.content), format="parquet")
    assert len(table) == 80_000
    assert list(table["label"][table["object_id"] == 79999]) == [long]
    assert set(table["other"]) == {"y", "None"}
    fields = pq.read_schema(io.BytesIO(resp.content))
    assert fields.field("ra").metadata[b"unit"] == b"deg"


# ---- uploads ---------------------------------------------------------------------------------


def test_pyvo_upload_of_an_astropy_table_with_a_bool_column(tap_url: str) -> None:
    mine = Table({"oid": np.array([1, 9, 20], dtype=np.int64),
                  "flag": np.array([True, False, True])})
    service = pyvo.dal.TAPService(tap_url)
    result = service.run_sync("SELECT u.oid, u.flag, s.survey FROM TAP_UPLOAD.mine AS u "
                              "JOIN pz.specz_demo AS s ON s.id = u.oid ORDER BY u.oid",
                              uploads={"mine": mine}).to_table()
    assert list(result["oid"]) == [1, 9, 20]
    assert list(result["flag"]) == [True, False, True]
    assert result["flag"].dtype == bool


def test_reserved_word_as_upload_name_is_refused(tap_url: str) -> None:
    vot = io.BytesIO()
    Table({"x": [1, 2]}).write(vot, format="votable")
    for name in ("select", "Point"):
        resp = requests.post(tap_url + "/sync", data={
            "LANG": "ADQL", "QUERY": f'SELECT * FROM TAP_UPLOAD."{name}"',
            "UPLOAD": f"{name},param:f"}, files={"f": ("f.vot", vot.getvalue())}, timeout=30)
        dali_error(resp, 400, "reserved word", repr(name))
    resp = requests.post(tap_url + "/async", data={
        "LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t", "UPLOAD": "select,param:f"},
        files={"f": ("f.vot", vot.getvalue())}, allow_redirects=False, timeout=30)
    dali_error(resp, 400, "reserved word")


# ---- types, names and refusals ---------------------------------------------------------------


def test_cast_to_varchar_is_variable_length_and_char_fixed(tap_url: str) -> None:
    resp = sync(tap_url, "SELECT TOP 3 CAST(survey AS VARCHAR(12)) AS v, CAST(survey AS CHAR(12)) "
                         "AS c, survey FROM pz.specz_demo ORDER BY id", "votable")
    fields = {f.name: f for f in parse_votable(io.BytesIO(resp.content)).get_first_table().fields}
    assert fields["v"].arraysize == "12*"
    assert fields["c"].arraysize == "12"
    table = votable(resp)
    assert list(table["v"]) == list(table["survey"])


@pytest.mark.parametrize("query, where", [
    ("SELECT id FROM pz.specz_demo GROUP BY", "line 1, column 30"),
    ("SELECT id FROM pz.specz_demo GROUP BY ORDER BY id", "line 1, column 30"),
    ("SELECT COUNT(*) AS n FROM pz.specz_demo GROUP BY HAVING COUNT(*) > 1", "line 1"),
    ('SELECT TOP 1 id AS "" FROM pz.specz_demo', "line 1, column 20"),
    ('SELECT TOP 1 "" FROM pz.specz_demo', "line 1, column 14"),
    ('SELECT TOP 1 t.id FROM pz.specz_demo AS ""', "line 1, column 41"),
])
def test_empty_group_by_and_empty_delimited_identifier_are_syntax_errors(
        tap_url: str, query: str, where: str) -> None:
    message = dali_error(sync(tap_url, query), 400, where)
    assert "database" not in message


def test_delimited_schema_names_are_case_sensitive(tap_url: str) -> None:
    dali_error(sync(tap_url, 'SELECT TOP 1 id FROM "PZ".specz_demo'), 400, "unknown table")
    dali_error(sync(tap_url, 'SELECT TOP 1 id FROM "Pz"."specz_demo"'), 400, "unknown table")
    dali_error(sync(tap_url, 'SELECT TOP 1 "PZ".specz_demo.id FROM PZ.specz_demo'), 400,
               "unknown table")
    for query in ('SELECT TOP 1 id FROM "pz".specz_demo', "SELECT TOP 1 id FROM PZ.specz_demo",
                  'SELECT TOP 1 "pz".specz_demo.id FROM PZ.specz_demo'):
        resp = sync(tap_url, query)
        assert resp.status_code == 200, (query, resp.text)


# ---- UWS -------------------------------------------------------------------------------------


def _job_rows(database) -> int:  # noqa: ANN001
    from sqlalchemy import text

    from vo_service.core.database import owner_engine

    with owner_engine(database).connect() as conn:
        return conn.execute(text("SELECT count(*) FROM uws.jobs")).scalar_one()


def test_run_at_creation_over_the_quota_leaves_no_job(tap_url: str, app, database) -> None:  # noqa: ANN001
    service = app.extensions["pzvo.uws"]
    original = service.settings
    before = _job_rows(database)
    service.settings = dataclasses.replace(original, uws_max_active_jobs=0,
                                           uws_anonymous_max_active_jobs=0)
    try:
        resp = create_job(tap_url, QUERY="SELECT TOP 1 id FROM pz.specz_demo", PHASE="RUN")
        dali_error(resp, 429, "limit", "create the job again")
        assert "Location" not in resp.headers
        assert _job_rows(database) == before
        pending = create_job(tap_url, QUERY="SELECT TOP 1 id FROM pz.specz_demo")
        assert pending.status_code == 303  # without RUN the quota does not apply
    finally:
        service.settings = original
    job_url = pending.headers["Location"]
    assert requests.get(job_url + "/phase", timeout=10).text == "PENDING"
    resp = create_job(tap_url, QUERY="SELECT TOP 1 id FROM pz.specz_demo", PHASE="RUN")
    assert resp.status_code == 303
    assert requests.get(resp.headers["Location"] + "/phase", timeout=10).text in (
        "QUEUED", "EXECUTING", "COMPLETED")
    for url in (job_url, resp.headers["Location"]):
        requests.delete(url, timeout=10)


def test_error_of_a_job_without_one_is_404(tap_url: str) -> None:
    resp = create_job(tap_url, QUERY="SELECT TOP 1 id FROM pz.specz_demo")
    job_url = resp.headers["Location"]
    dali_error(requests.get(job_url + "/error", timeout=10), 404, "has no error")
    requests.delete(job_url, timeout=10)
