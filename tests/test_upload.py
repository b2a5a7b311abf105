"""Table uploads (TAP 1.1 UPLOAD) through sync TAP: types, joins, limits, clean-up."""
from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from astropy.io.votable import parse_single_table
from astropy.io.votable.tree import Field, Resource, TableElement, VOTableFile
from sqlalchemy import text


def votable_bytes(columns: dict[str, tuple[str, object]], rows: int, *, arraysize: dict | None = None) -> bytes:
    """A VOTable with the given (datatype, values) columns, written by astropy."""
    vot = VOTableFile()
    resource = Resource()
    vot.resources.append(resource)
    table = TableElement(vot)
    resource.tables.append(table)
    for name, (datatype, _) in columns.items():
        size = (arraysize or {}).get(name, "*" if datatype in ("char", "unicodeChar") else None)
        table.fields.append(Field(vot, name=name, datatype=datatype, arraysize=size))
    table.create_arrays(rows)
    for name, (_, values) in columns.items():
        table.array[name] = values
    out = io.BytesIO()
    vot.to_xml(out, tabledata_format="binary2")
    return out.getvalue()


def post(tap_url: str, query: str, files: dict[str, bytes], upload: str | None = None,
         **params: str) -> requests.Response:
    data = {"LANG": "ADQL", "QUERY": query, **params}
    if upload is None:
        upload = ";".join(f"{name},param:{name}" for name in files)
    data["UPLOAD"] = upload
    return requests.post(tap_url + "/sync", data=data,
                         files={k: (k + ".vot", v) for k, v in files.items()}, timeout=60)


def read(response: requests.Response):
    assert response.status_code == 200, response.text[:2000]
    return parse_single_table(io.BytesIO(response.content)).to_table()


def dali_message(response: requests.Response) -> str:
    return response.text


def test_upload_types_round_trip(tap_url: str) -> None:
    n = 5
    body = votable_bytes({
        "i_short": ("short", np.arange(n, dtype=np.int16)),
        "i_int": ("int", np.arange(n, dtype=np.int32)),
        "i_long": ("long", np.arange(n, dtype=np.int64) * 10**10),
        "x_float": ("float", np.linspace(0, 1, n).astype(np.float32)),
        "x_double": ("double", np.linspace(0, 1, n)),
        "flag": ("boolean", np.array([True, False, True, False, True])),
        "label": ("unicodeChar", np.array(["a", "bb", "ccc", "", "é"], dtype=object)),
    }, n, arraysize={"label": "*"})
    table = read(post(tap_url, "SELECT * FROM TAP_UPLOAD.mine ORDER BY i_int", {"mine": body}))
    assert table.colnames == ["i_short", "i_int", "i_long", "x_float", "x_double", "flag", "label"]
    assert table["i_short"].dtype == np.int16
    assert table["i_long"].dtype == np.int64
    assert table["x_float"].dtype == np.float32
    assert list(table["i_long"]) == [i * 10**10 for i in range(n)]
    assert list(table["label"]) == ["a", "bb", "ccc", "", "é"]


def test_upload_joins_a_published_table(tap_url: str) -> None:
    known = requests.get(tap_url + "/sync", params={"LANG": "ADQL", "RESPONSEFORMAT": "csv",
                         "QUERY": "SELECT TOP 200 id FROM pz.specz_demo ORDER BY id"}, timeout=30)
    ids = np.array([int(v) for v in known.text.split()[1:]], dtype=np.int64)
    ids = np.concatenate([ids, [-1, -2]])  # two that match nothing
    body = votable_bytes({"sid": ("long", ids)}, len(ids))
    table = read(post(tap_url, "SELECT u.sid, s.z FROM TAP_UPLOAD.ids AS u "
                      "JOIN pz.specz_demo AS s ON s.id = u.sid ORDER BY u.sid", {"ids": body}))
    assert len(table) == 200
    assert list(table["sid"]) == sorted(ids[:200])


def test_two_uploads_in_one_request(tap_url: str) -> None:
    a = votable_bytes({"k": ("int", np.arange(10, dtype=np.int32))}, 10)
    b = votable_bytes({"k": ("int", np.arange(5, 15, dtype=np.int32))}, 10)
    table = read(post(tap_url, "SELECT COUNT(*) AS n FROM TAP_UPLOAD.a JOIN TAP_UPLOAD.b "
                      "ON a.k = b.k", {"a": a, "b": b}))
    assert table["n"][0] == 5


def test_upload_tables_are_dropped_after_the_query(tap_url: str, database) -> None:
    from vo_service.core.database import owner_engine

    body = votable_bytes({"k": ("int", np.arange(3, dtype=np.int32))}, 3)
    read(post(tap_url, "SELECT * FROM TAP_UPLOAD.gone", {"gone": body}))
    with owner_engine(database).connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'tap_upload'")).scalar()
    assert left == 0


def test_upload_not_visible_to_other_requests(tap_url: str) -> None:
    r = requests.post(tap_url + "/sync", data={"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.mine"},
                      timeout=30)
    assert r.status_code == 400
    assert "Unknown table" in r.text


def test_upload_missing_part_is_a_dali_error(tap_url: str) -> None:
    r = requests.post(tap_url + "/sync", data={"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t",
                                               "UPLOAD": "t,param:nothere"}, timeout=30)
    assert r.status_code == 400
    assert 'value="ERROR"' in r.text and "nothere" in r.text


def test_upload_by_url_refused_unless_allowed(tap_url: str) -> None:
    r = requests.post(tap_url + "/sync", data={"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t",
                                               "UPLOAD": "t,http://example.org/t.vot"}, timeout=30)
    assert r.status_code == 400
    assert "not allowed" in r.text


def test_upload_not_a_votable(tap_url: str) -> None:
    r = post(tap_url, "SELECT * FROM TAP_UPLOAD.t", {"t": b"id,z\n1,0.5\n"})
    assert r.status_code == 400
    assert "not a readable VOTable" in r.text


def test_upload_arrays_of_numbers_round_trip(tap_url: str) -> None:
    """Fixed and variable one-dimensional arrays of numbers (a remote service's fluxes in
    bands, say) are PostgreSQL arrays, returned as they came; a NULL cell stays NULL."""
    fixed = np.arange(12, dtype=np.float64).reshape(4, 3) / 7
    fixed[1, 2] = np.nan
    body = votable_bytes({"k": ("int", np.arange(4, dtype=np.int32)), "v": ("double", fixed),
                          "n": ("long", np.arange(8, dtype=np.int64).reshape(4, 2) * 10**12)}, 4,
                         arraysize={"v": "3", "n": "2"})
    table = read(post(tap_url, "SELECT k, v, n FROM TAP_UPLOAD.t ORDER BY k", {"t": body}))
    assert table["v"].shape == (4, 3) and table["n"].dtype == np.int64
    got = np.ma.getdata(table["v"])
    assert np.array_equal(got, fixed, equal_nan=True)
    assert table["n"].tolist() == (np.arange(8).reshape(4, 2) * 10**12).tolist()
    ragged = ('<?xml version="1.0"?><VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'
              '<RESOURCE><TABLE><FIELD name="k" datatype="int"/><FIELD name="flux" datatype="double" '
              'arraysize="*"/><DATA><TABLEDATA><TR><TD>1</TD><TD>1.5 2.5</TD></TR><TR><TD>2</TD><TD>3.5</TD></TR>'
              '<TR><TD>3</TD><TD></TD></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>')
    back = read(post(tap_url, "SELECT k, flux FROM TAP_UPLOAD.r ORDER BY k", {"r": ragged.encode()}))
    assert [list(np.ma.getdata(v)) for v in back["flux"]][:2] == [[1.5, 2.5], [3.5]]
    assert len(back["flux"][2]) == 0 or np.ma.is_masked(back["flux"][2])


def test_upload_arrays_of_more_dimensions_or_of_strings_refused(tap_url: str) -> None:
    body = votable_bytes({"v": ("double", np.zeros((2, 2, 3)))}, 2, arraysize={"v": "3x2"})
    r = post(tap_url, "SELECT * FROM TAP_UPLOAD.t", {"t": body})
    assert r.status_code == 400
    assert "one-dimensional arrays of numbers" in r.text or "holds arrays" in r.text


def test_upload_bad_name(tap_url: str) -> None:
    body = votable_bytes({"k": ("int", np.arange(3, dtype=np.int32))}, 3)
    r = post(tap_url, "SELECT 1 FROM TAP_UPLOAD.t", {"t": body}, upload="1bad,param:t")
    assert r.status_code == 400
    assert "not a valid ADQL name" in r.text


def test_upload_limits_give_dali_errors_and_service_stays_healthy(tap_url: str, app) -> None:
    service = app.extensions["pzvo.tap"]
    original = service.settings
    import dataclasses

    body = votable_bytes({"k": ("int", np.arange(50, dtype=np.int32))}, 50)
    try:
        service.settings = dataclasses.replace(original, upload_max_rows=10)
        r = post(tap_url, "SELECT * FROM TAP_UPLOAD.t", {"t": body})
        assert r.status_code == 400 and "limit is 10" in r.text
        service.settings = dataclasses.replace(original, upload_max_bytes=100)
        r = post(tap_url, "SELECT * FROM TAP_UPLOAD.t", {"t": body})
        assert r.status_code == 400 and "larger than the limit of 100 bytes" in r.text
    finally:
        service.settings = original
    assert len(read(post(tap_url, "SELECT * FROM TAP_UPLOAD.t", {"t": body}))) == 50


def test_user_query_still_cannot_write_with_uploads(tap_url: str) -> None:
    body = votable_bytes({"k": ("int", np.arange(3, dtype=np.int32))}, 3)
    r = post(tap_url, "DELETE FROM TAP_UPLOAD.t", {"t": body})
    assert r.status_code == 400


def test_reader_role_cannot_write_upload_tables(database) -> None:
    """Even with raw SQL on a reader session, the tap_upload schema is read-only to it."""
    import adbc_driver_postgresql.dbapi as adbc

    conn = adbc.connect(database.query_url(), autocommit=True)
    try:
        with conn.cursor() as cur, pytest.raises(Exception, match="read-only|permission denied"):
            cur.execute("CREATE TABLE tap_upload.evil (x int)")
    finally:
        conn.close()


def test_tap_request_body_is_limited_while_it_is_read(database) -> None:
    """A chunked POST (no Content-Length) far beyond PZVO_UPLOAD_MAX_BYTES is refused with a
    DALI error as it is read, not spooled whole first."""
    import dataclasses

    import requests

    from tests._services import app_for
    from tests.conftest import LiveServer

    app = app_for(dataclasses.replace(database, upload_max_bytes=10_000, product_max_bytes=10**9))
    boundary = "pzvotap"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"QUERY\"\r\n\r\nSELECT 1 AS x\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"t\"; filename=\"t.xml\"\r\n\r\n").encode()

    def body():
        yield head
        for _ in range(64):
            yield b"x" * 65536  # 4 MiB in all
        yield f"\r\n--{boundary}--\r\n".encode()

    with LiveServer(app) as live:
        resp = requests.post(f"{live.url}/tap/sync", data=body(), timeout=60,
                             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert resp.status_code == 413
    assert b'<INFO name="QUERY_STATUS" value="ERROR">' in resp.content
