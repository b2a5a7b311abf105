"""Positional crossmatches in ADQL: every usual form gives the brute-force answer and is answered
by a spatial index, whichever table is inside the circle (issue 20).

Two tables of their own schema: ``a`` (400 positions) and ``b`` (6,000), with pairs across
RA = 0/360, near both poles, at exactly the radius, and NULL positions.  Every form is compared
with a numpy crossmatch (haversine in float64) away from the radius, and everywhere with the
same condition evaluated without any index (a plain nested loop over all pairs), which is what
the added index conditions must not change.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest

from vo_service.core.columns import Column
from vo_service.tap.adql import translate_adql
from vo_service.tap.catalog import Catalog, TableMeta

psycopg = pytest.importorskip("psycopg")

SCHEMA = f"xmatch_{os.getpid()}"
R = 0.05  # degrees
R_SQL = "0.05"


def _table(name: str) -> TableMeta:
    return TableMeta(SCHEMA, f"{SCHEMA}.{name}", (
        Column(name="id", datatype="long", column_index=1),
        Column(name="ra", datatype="double", unit="deg", column_index=2),
        Column(name="dec", datatype="double", unit="deg", column_index=3)))


CATALOG = Catalog(tables=(_table("a"), _table("b")))


def _offset(ra: np.ndarray, dec: np.ndarray, distance: np.ndarray, angle: np.ndarray) -> tuple[np.ndarray, ...]:
    """The point at ``distance`` degrees from (ra, dec) towards position angle ``angle``."""
    ra1, dec1, d, pa = (np.radians(v) for v in (ra, dec, distance, angle))
    dec2 = np.arcsin(np.sin(dec1) * np.cos(d) + np.cos(dec1) * np.sin(d) * np.cos(pa))
    ra2 = ra1 + np.arctan2(np.sin(pa) * np.sin(d) * np.cos(dec1), np.cos(d) - np.sin(dec1) * np.sin(dec2))
    return np.degrees(ra2) % 360.0, np.degrees(dec2)


def make_positions() -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` as (n, 2) arrays of (ra, dec), NaN for NULL."""
    rng = np.random.default_rng(20)
    patches = [(150.0, 2.0), (359.98, -10.0), (0.01, 30.0), (45.0, 89.97), (200.0, -89.96)]
    b_parts = []
    for ra0, dec0 in patches:
        n = 1_200
        dec = np.clip(dec0 + rng.uniform(-0.25, 0.25, n), -90, 90)
        ra = (ra0 + rng.uniform(-0.25, 0.25, n) / max(np.cos(np.radians(dec0)), 0.01)) % 360.0
        b_parts.append(np.column_stack([ra, dec]))
    b = np.concatenate(b_parts)
    chosen = rng.choice(len(b), 300, replace=False)
    ra_a, dec_a = _offset(b[chosen, 0], b[chosen, 1], rng.uniform(0, 2 * R, 300), rng.uniform(0, 360, 300))
    a = np.column_stack([ra_a, dec_a])
    # exactly at the radius (along a meridian, from points away from the poles)
    at = rng.choice(1_200, 40, replace=False)
    edge = np.column_stack([b[at, 0], b[at, 1] + R])
    crossing = np.array([[359.999, 5.0], [0.001, 5.0]])  # straddling RA 0 within 0.002 deg of b points
    a = np.concatenate([a, edge, crossing, rng.uniform([0, -90], [360, 90], (56, 2))])
    b = np.concatenate([b, [[0.0005, 5.0], [359.9995, 5.0]]])
    a[rng.choice(len(a), 8, replace=False), rng.integers(0, 2, 8)] = np.nan
    b[rng.choice(len(b), 30, replace=False), rng.integers(0, 2, 30)] = np.nan
    return a, b


def brute_force(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The angular distance (degrees) of every pair, NaN where a position is NULL."""
    ra1, dec1 = np.radians(a[:, 0])[:, None], np.radians(a[:, 1])[:, None]
    ra2, dec2 = np.radians(b[:, 0])[None, :], np.radians(b[:, 1])[None, :]
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1))))


@pytest.fixture(scope="module")
def data(database) -> Iterator[tuple[psycopg.Connection, np.ndarray, np.ndarray]]:
    a, b = make_positions()
    with psycopg.connect(database.owner_url(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        try:
            for name, rows in (("a", a), ("b", b)):
                conn.execute(f"CREATE TABLE {SCHEMA}.{name} (id bigint PRIMARY KEY, ra double precision, "
                             "dec double precision)")
                with conn.cursor().copy(f"COPY {SCHEMA}.{name} (id, ra, dec) FROM STDIN") as copy:
                    for i, (ra, dec) in enumerate(rows):
                        copy.write_row((i, None if np.isnan(ra) else float(ra), None if np.isnan(dec) else float(dec)))
                conn.execute(f"CREATE INDEX ON {SCHEMA}.{name} USING gist (spoint(radians(ra), radians(dec)))")
                conn.execute(f"ANALYZE {SCHEMA}.{name}")
            yield conn, a, b, brute_force(a, b)
        finally:
            conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")


A, B = f"{SCHEMA}.a", f"{SCHEMA}.b"
FORMS = {
    "distance <": f"DISTANCE(POINT(x.ra, x.dec), POINT(y.ra, y.dec)) < {R_SQL}",
    "distance <= reversed": f"DISTANCE(POINT(y.ra, y.dec), POINT(x.ra, x.dec)) <= {R_SQL}",
    "r > distance": f"{R_SQL} > DISTANCE(POINT('ICRS', x.ra, x.dec), POINT('ICRS', y.ra, y.dec))",
    "r >= distance, four numbers": f"{R_SQL} >= DISTANCE(x.ra, x.dec, y.ra, y.dec)",
    "distance < 180/3600": "DISTANCE(POINT(x.ra, x.dec), POINT(y.ra, y.dec)) < 180/3600",
    "x in circle of y": f"1 = CONTAINS(POINT('ICRS', x.ra, x.dec), CIRCLE('ICRS', y.ra, y.dec, {R_SQL}))",
    "y in circle of x": f"CONTAINS(POINT(y.ra, y.dec), CIRCLE(x.ra, x.dec, {R_SQL})) = 1",
    "y in circle of x, centre point": f"1 = CONTAINS(POINT(y.ra, y.dec), CIRCLE(POINT(x.ra, x.dec), {R_SQL}))",
    "intersects point circle": f"1 = INTERSECTS(POINT(x.ra, x.dec), CIRCLE(y.ra, y.dec, {R_SQL}))",
    "intersects circle point": f"1 = INTERSECTS(CIRCLE(x.ra, x.dec, {R_SQL}), POINT(y.ra, y.dec))",
}
INCLUSIVE = {name: "<" not in name.replace("<=", "") for name in FORMS}


def sql_of(query: str) -> str:
    return translate_adql(query, CATALOG).sql


def pairs(conn, query: str) -> set[tuple[int, int]]:
    return {(int(i), int(j)) for i, j in conn.execute(sql_of(query)).fetchall()}


def without_index(conn, sql: str) -> set[tuple[int, int]]:
    """The same SQL with every index scan and join method but the nested loop turned off."""
    with conn.transaction():
        for setting in ("enable_indexscan", "enable_bitmapscan", "enable_hashjoin", "enable_mergejoin"):
            conn.execute(f"SET LOCAL {setting} = off")
        return {(int(i), int(j)) for i, j in conn.execute(sql).fetchall()}


def expected(distances: np.ndarray, radius: float, inclusive: bool) -> tuple[set, set]:
    """Pairs certainly in and pairs too close to the radius for float64 to decide."""
    near = np.abs(distances - radius) < 1e-9
    inside = (distances <= radius) if inclusive else (distances < radius)
    sure = {(int(i), int(j)) for i, j in zip(*np.nonzero(inside & ~near), strict=True)}
    edge = {(int(i), int(j)) for i, j in zip(*np.nonzero(near), strict=True)}
    return sure, edge


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("order", ["a x b", "b x a"])
def test_every_form_gives_the_brute_force_pairs(data, form: str, order: str) -> None:
    conn, _, _, distances = data
    radius = 180 / 3600 if "180" in form else R
    query = (f"SELECT x.id, y.id FROM {A} AS x JOIN {B} AS y ON {FORMS[form]}" if order == "a x b" else
             f"SELECT y.id, x.id FROM {B} AS x JOIN {A} AS y ON {FORMS[form]}")  # (a id, b id) both ways
    got = pairs(conn, query)
    sure, edge = expected(distances, radius, INCLUSIVE[form])
    assert len(sure) > 300
    assert sure <= got and got - sure <= edge, (len(sure), len(got), sorted(got ^ sure)[:5])
    assert got == without_index(conn, sql_of(query))


def test_pairs_across_ra_zero_at_the_poles_and_at_the_radius_are_found(data) -> None:
    conn, a, b, distances = data
    got = pairs(conn, f"SELECT x.id, y.id FROM {A} AS x JOIN {B} AS y ON "
                      f"1 = CONTAINS(POINT(x.ra, x.dec), CIRCLE(y.ra, y.dec, {R_SQL}))")
    ra_a = a[[i for i, _ in got], 0]
    ra_b = b[[j for _, j in got], 0]
    assert np.any(np.abs(ra_a - ra_b) > 359), "no pair across RA = 0/360"
    assert np.any(np.abs(a[[i for i, _ in got], 1]) > 89.9), "no pair near a pole"
    at_radius = {(int(i), int(j)) for i, j in zip(*np.nonzero(np.abs(distances - R) < 1e-9), strict=True)}
    assert len(at_radius) >= 30 and at_radius <= got
    nulls = {i for i in range(len(a)) if np.isnan(a[i]).any()}
    assert nulls and not {i for i, _ in got} & nulls


@pytest.mark.parametrize("form", list(FORMS))
def test_the_join_probes_the_big_table_through_its_index(data, form: str) -> None:
    """Whatever the argument order, the 400-row table drives and the 6,000-row one is probed
    through its GiST index (plain or bitmap index scan), never scanned for each outer row."""
    conn = data[0]
    for query in (f"SELECT x.id, y.id FROM {A} AS x JOIN {B} AS y ON {FORMS[form]}",
                  f"SELECT x.id, y.id FROM {B} AS x JOIN {A} AS y ON {FORMS[form]}",
                  f"SELECT x.id, y.id FROM (SELECT TOP 100 * FROM {A} ORDER BY id) AS x JOIN {B} AS y "
                  f"ON {FORMS[form]}"):
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql_of(query)))
        assert "Index Scan using b_" in plan or "Bitmap Index Scan on b_" in plan, (query, plan)


def test_a_radius_that_is_not_a_constant_is_hinted_not_indexed() -> None:
    query = (f"SELECT x.id FROM {A} AS x JOIN {B} AS y ON "
             "DISTANCE(POINT(x.ra, x.dec), POINT(y.ra, y.dec)) < x.dec / 1000")
    translated = translate_adql(query, CATALOG)
    assert translated.hints and "not a constant" in translated.hints[0] and "2.0/3600" in translated.hints[0]
    assert " @ " not in translated.sql
    cone = translate_adql(f"SELECT id FROM {A} WHERE DISTANCE(POINT(ra, dec), POINT(10, 10)) < 0.5", CATALOG)
    assert not cone.hints and " @ scircle" in cone.sql  # a DISTANCE cone is indexed too


def test_pg_sphere_functions_may_run_in_parallel_workers(data) -> None:
    """Migration 0012: without it, any query with a position ran in one process."""
    conn = data[0]
    unsafe = conn.execute(
        "SELECT count(*) FROM pg_proc AS p JOIN pg_depend AS d ON d.classid = 'pg_proc'::regclass "
        "AND d.objid = p.oid AND d.deptype = 'e' JOIN pg_extension AS e ON e.oid = d.refobjid "
        "WHERE e.extname = 'pg_sphere' AND p.prokind = 'f' AND p.proparallel <> 's'").fetchone()[0]
    assert unsafe == 0


@pytest.mark.parametrize(("rows", "workers"), [(19_999, None), (20_000, "parallel_workers=2")])
def test_a_large_upload_may_be_scanned_by_parallel_workers(services, data, rows: int, workers: str | None) -> None:
    import pyarrow as pa

    from vo_service.tap import UploadLimits, encode_binary2, read_votable

    document = encode_binary2(pa.table({"ra": np.zeros(rows), "dec": np.zeros(rows)}))
    upload = read_votable("mine", document, UploadLimits.from_settings(services.settings))
    [made] = services.tap.upload_store.load([upload])
    try:
        options = data[0].execute("SELECT reloptions FROM pg_class WHERE relname = %s",
                                  (made.db_table,)).fetchone()[0]
        assert (options or [None])[0] == workers
    finally:
        services.tap.upload_store.drop([made])
