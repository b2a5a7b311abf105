"""Generated tables through the whole service: stored in PostgreSQL, published in TAP_SCHEMA,
queried through /tap/sync and /tap/async in every format, read back as users read them.

The encoder-level properties (tests/formats/test_roundtrip_properties.py) hand Arrow batches of
the types the database layer should produce; here the database types, the ADBC batches, the
TAP_SCHEMA column types and the HTTP path are in the loop too.  Each table lives in a schema of
its own, dropped (and unpublished) at the end.
"""
from __future__ import annotations

import dataclasses
import io
import math
import os
import shutil
import time
import uuid
from collections.abc import Iterator

import pytest
import requests
from astropy.table import Table
from hypothesis import HealthCheck, example, given, settings
from lxml import etree
from sqlalchemy import text

from tap_schema.loader import create_table_sql, publish_table, unpublish_table
from tap_schema.model import TableDescription
from tests._services import worker_for
from tests.formats import _roundtrip as rt
from vo_service.core.database import owner_engine
from vo_service.core.identifiers import quote_ident

UWS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}
READERS = [r for r in rt.READERS if not r.startswith("stilts")]
#: ``ROUNDTRIP_SCALE`` multiplies the examples, as in tests/formats/test_roundtrip_properties.py.
SCALE = int(os.environ.get("ROUNDTRIP_SCALE", "1"))
HTTP = settings(deadline=None, database=None, print_blob=True, max_examples=6 * SCALE,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def engine(database):
    return owner_engine(database)


@pytest.fixture(scope="module")
def worker(database) -> Iterator[object]:
    """An async worker on the session database (none runs in the session otherwise)."""
    from vo_service.uws._service import jobs_root

    shutil.rmtree(jobs_root(database), ignore_errors=True)
    w = worker_for(dataclasses.replace(database, uws_heartbeat_s=0.3), threads=1, name="roundtrip-worker")
    w.start()
    yield w
    w.stop()


@dataclasses.dataclass
class Stored:
    """A case stored as ``schema.t``: its qualified name and the ADQL that returns it in order."""

    case: rt.Case
    table: str
    query: str


def store(engine, case: rt.Case) -> Stored:
    """Create, fill and publish a table holding the case (plus a row key ``k``)."""
    schema = f"rt21_{uuid.uuid4().hex[:10]}"
    columns = [rt.KINDS["long"].column("k").with_(pg_type="bigint", nullable=False)]
    columns += [f.with_(pg_type=k.pg) for f, k in zip(case.fields, case.kinds, strict=True)]
    desc = TableDescription(schema=schema, name="t", description="issue 21 round trip", columns=tuple(columns),
                            primary_key=("k",))
    names = ["k", *case.names]
    casts = ["bigint", *(k.pg for k in case.kinds)]
    insert = (f"INSERT INTO {quote_ident(schema)}.t ({', '.join(quote_ident(n) for n in names)}) VALUES ("
              + ", ".join(f"CAST(:p{i} AS {c})" for i, c in enumerate(casts)) + ")")
    kinds = (rt.KINDS["long"], *case.kinds)
    with engine.begin() as conn:
        for stmt in create_table_sql(desc):
            conn.execute(text(stmt))
        for k, row in enumerate(case.rows):
            values = [pg_param(kind, v) for kind, v in zip(kinds, (k, *row), strict=True)]
            conn.execute(text(insert), {f"p{i}": v for i, v in enumerate(values)})
        publish_table(conn, desc)
    select = ", ".join(case.names)
    return Stored(case, f"{schema}.t", f"SELECT {select} FROM {schema}.t ORDER BY k")


def _float_text(value: float | None) -> str:
    if value is None:
        return "NULL"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def pg_param(kind: rt.ColumnKind, value: object) -> object:
    """The parameter for a value: floats and float arrays as PostgreSQL's text input (``-0``
    as a literal would go through numeric, which has no negative zero), shapes as pg_sphere text."""
    if value is None:
        return None
    if kind.key in rt.PG_GEOMETRY:
        return rt.pg_literal(kind, value)
    if kind.datatype in ("float", "double"):
        if isinstance(value, list):
            return "{" + ",".join(_float_text(v) for v in value) + "}"
        return _float_text(value)
    return value


def drop(engine, stored: Stored) -> None:
    schema = stored.table.split(".")[0]
    with engine.begin() as conn:
        unpublish_table(conn, stored.table)
        conn.execute(text("DELETE FROM tap_schema.schemas WHERE schema_name = :s"), {"s": schema})
        conn.execute(text(f"DROP SCHEMA {quote_ident(schema)} CASCADE"))


def sync(tap_url: str, query: str, fmt: str) -> bytes:
    resp = requests.post(f"{tap_url}/sync", data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query,
                                                  "RESPONSEFORMAT": fmt}, timeout=60)
    assert resp.status_code == 200, resp.text[:2000]
    return resp.content


def run_async(tap_url: str, query: str, fmt: str) -> bytes:
    resp = requests.post(f"{tap_url}/async", data={"LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": fmt,
                                                   "PHASE": "RUN"}, allow_redirects=False, timeout=30)
    assert resp.status_code == 303, resp.text
    job = resp.headers["Location"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        doc = etree.fromstring(requests.get(job, params={"WAIT": "5"}, timeout=30).content)
        phase = doc.findtext("uws:phase", namespaces=UWS)
        if phase in ("COMPLETED", "ERROR", "ABORTED"):
            break
    assert phase == "COMPLETED", etree.tostring(doc)[:2000]
    result = requests.get(job + "/results/result", timeout=30)
    assert result.status_code == 200
    return result.content


def check(stored: Stored, fmt_bodies: dict[str, bytes]) -> list[str]:
    problems = []
    for reader in READERS:
        fmt = rt.READERS[reader][0]
        if fmt in fmt_bodies:
            problems += rt.differences(reader, stored.case, rt.read(reader, fmt_bodies[fmt], stored.case))
    return problems


def _http_cases():
    """Tables as the database holds them: geometry as pg_sphere types (spoint, scircle, spoly),
    as the translator expects a column of xtype point/circle/polygon to be stored.  NULL points
    and circles are left to test_a_null_stored_point_is_null (they come back as arrays of NULLs)."""
    kinds = [k for k in rt.KINDS if k not in ("point", "circle", "polygon")] + list(rt.PG_GEOMETRY)
    return rt.cases(kinds=kinds, max_columns=4, max_rows=4, never_null=frozenset({"spoint", "scircle"}))


#: Stored corners every run sees: char(8) (PostgreSQL pads it), an astral character in a fixed
#: unicodeChar, a NULL array element, NaN and a pg_sphere polygon.
STORED_CORNERS = rt.Case(
    (rt.KINDS["char8"], rt.KINDS["unicode8"], rt.KINDS["int[]"], rt.KINDS["double"], rt.PG_GEOMETRY["spoly"]),
    (("ab", "é𝄞x", [1, None], math.nan, [10.0, 20.0, 10.5, 20.0, 10.0, 20.5]),
     (None, None, None, None, None),
     ("12345678", "", [], -0.0, [0.0, -10.0, 0.5, -10.0, 0.0, -9.5])))


@HTTP
@given(case=_http_cases())
@example(case=STORED_CORNERS)
def test_stored_tables_come_back_through_sync_in_every_format(engine, tap_url, case: rt.Case) -> None:
    """Every format of /tap/sync, read back as in the encoder-level test."""
    stored = store(engine, case)
    try:
        bodies = {fmt: sync(tap_url, stored.query, fmt) for fmt in rt.FORMATS}
        problems = check(stored, bodies)
    finally:
        drop(engine, stored)
    assert not problems, "\n".join(problems[:20])


@settings(HTTP, max_examples=2 * SCALE)
@given(case=_http_cases())
def test_stored_tables_come_back_through_async(engine, tap_url, worker, case: rt.Case) -> None:
    """An async job's result (VOTable, CSV, Parquet) is what sync gives."""
    stored = store(engine, case)
    try:
        bodies = {fmt: run_async(tap_url, stored.query, fmt) for fmt in ("votable", "csv", "parquet")}
        problems = check(stored, bodies)
    finally:
        drop(engine, stored)
    assert not problems, "\n".join(problems[:20])


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_top_3_null_gives_three_rows(tap_url, fmt: str) -> None:
    """Issue 21's report: ``SELECT TOP 3 NULL AS x`` in CSV/TSV was a header and 3 empty lines."""
    import pandas as pd

    body = sync(tap_url, "SELECT TOP 3 NULL AS x FROM bench.photoz", fmt)
    sep = "," if fmt == "csv" else "\t"
    frame = pd.read_csv(io.BytesIO(body), sep=sep)
    assert list(frame.columns) == ["x"] and len(frame) == 3 and frame["x"].isna().all()
    if fmt == "csv":
        table = Table.read(body.decode(), format="ascii.csv")
    else:
        table = Table.read(body.decode(), format="ascii.tab", fill_values=[("N/A", "0")])
    assert len(table) == 3 and table["x"].mask.all()


def test_geometry_columns_as_dali_serializes_them(tap_url) -> None:
    """POINT and CIRCLE computed by the query: double arrays with DALI xtypes, in every format."""
    query = ("SELECT TOP 3 object_id, ra, dec, POINT('ICRS', ra, dec) AS p, CIRCLE('ICRS', ra, dec, 0.5) AS c "
             "FROM bench.photoz ORDER BY object_id")
    votable = rt.read_votable_astropy(sync(tap_url, query, "votable"))
    ra, dec = votable["ra"][0], votable["dec"][0]
    for i in range(3):
        assert votable["p"][0][i] == (ra[i], dec[i])
        assert votable["c"][0][i] == (ra[i], dec[i], 0.5)
    fits_read = rt.read_fits_astropy(sync(tap_url, query, "fits"))
    parquet = rt.read_parquet_pyarrow(sync(tap_url, query, "parquet"))
    csv_table = Table.read(sync(tap_url, query, "csv").decode(), format="ascii.csv")
    for i in range(3):
        assert fits_read["p"][0][i] == votable["p"][0][i] == parquet["p"][0][i]
        assert parquet["c"][0][i] == votable["c"][0][i]
        assert tuple(float(x) for x in csv_table["p"][i].split()) == votable["p"][0][i]
    assert not any(math.isnan(x) for x in votable["c"][0][0])


@pytest.mark.parametrize("kind", ["spoint", "scircle"])
def test_a_null_stored_shape_is_null(engine, tap_url, kind: str) -> None:
    """A NULL stored shape is NULL in the result, not a shape of NULL coordinates."""
    case = rt.Case((rt.PG_GEOMETRY[kind], rt.KINDS["int"]), ((None, 1),))
    stored = store(engine, case)
    try:
        parquet = rt.read_parquet_pyarrow(sync(tap_url, stored.query, "parquet"))
    finally:
        drop(engine, stored)
    assert parquet[case.names[0]][0] == [None]
