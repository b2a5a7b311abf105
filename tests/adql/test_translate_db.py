"""Translated SQL run on PostgreSQL + pg_sphere: it executes, and cone searches use the GiST index.

Runs in the project's test database (pg_sphere installed by the migrations), in a schema of its
own that is dropped afterwards.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from vo_service.core.columns import Column
from vo_service.tap.adql import translate_adql
from vo_service.tap.catalog import Catalog, TableMeta

psycopg = pytest.importorskip("psycopg")

SCHEMA = f"adql_test_{os.getpid()}"


def _col(name: str, datatype: str, index: int, unit: str | None = None) -> Column:
    return Column(name=name, datatype=datatype, unit=unit, column_index=index)


CATALOG = Catalog(tables=(TableMeta(SCHEMA, f"{SCHEMA}.photoz", (
    _col("object_id", "long", 1), _col("ra", "double", 2, "deg"), _col("dec", "double", 3, "deg"),
    _col("z_phot", "float", 4), _col("z_err", "float", 5), _col("odds", "float", 6),
    _col("mag_i", "float", 7, "mag"),
)),))


@pytest.fixture(scope="module")
def pg_dsn(database) -> str:  # the project's migrated test database
    return database.owner_url()


@pytest.fixture(scope="module")
def conn(pg_dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg_dsn, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {SCHEMA}")
        try:
            connection.execute(f"""
                CREATE TABLE {SCHEMA}.photoz (object_id bigint PRIMARY KEY, ra double precision,
                    dec double precision, z_phot real, z_err real, odds real, mag_i real);
                INSERT INTO {SCHEMA}.photoz
                SELECT i, 140 + 20 * (i % 97) / 97.0, -5 + 10 * (i % 89) / 89.0,
                       (i % 30) / 10.0, 0.01 + (i % 7) / 100.0, 0.05 + (i % 9) / 10.0,
                       18 + (i % 70) / 10.0
                FROM generate_series(1, 2000) AS i;
                CREATE INDEX ON {SCHEMA}.photoz USING gist (spoint(radians(ra), radians(dec)));
                ANALYZE {SCHEMA}.photoz;""")
            yield connection
        finally:
            connection.execute(f"DROP SCHEMA {SCHEMA} CASCADE")


def run(conn, query: str, row_limit: int | None = 11) -> list[tuple]:
    return conn.execute(translate_adql(query, CATALOG, row_limit=row_limit).sql).fetchall()


def test_cone_search_uses_the_gist_index(conn):
    sql = translate_adql(
        f"SELECT TOP 10 * FROM {SCHEMA}.photoz "
        f"WHERE 1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 150, 2, 0.5))", CATALOG).sql
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(f"EXPLAIN {sql}"))
    assert "photoz_spoint_idx" in plan or "Index" in plan, plan


def test_cone_search_finds_rows(conn):
    rows = run(conn, f"SELECT object_id, DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 150, 0)) "
                     f"FROM {SCHEMA}.photoz WHERE 1=CONTAINS(POINT('ICRS', ra, dec), "
                     f"CIRCLE('ICRS', 150, 0, 2))", row_limit=None)
    assert rows and all(d <= 2.0 + 1e-9 for _, d in rows)


@pytest.mark.parametrize("query", [
    "SELECT ROUND(mag_i, 2), TRUNCATE(mag_i, 1), LOG(mag_i), LOG10(mag_i), MOD(ra, 3), "
    "POWER(2, 3), RAND(), 1/2, ATAN2(1, 1), CEILING(ra), FLOOR(ra) FROM {t}",
    "SELECT POINT('ICRS', ra, dec), CIRCLE('', ra, dec, 1), POLYGON('', 1, 2, 3, 4, 5, 6), "
    "BOX('', 150, 0, 2, 2), REGION('Circle ICRS 1 2 3') FROM {t}",
    "SELECT AREA(POLYGON('', 0, 80, 270, 80, 180, 80, 90, 80)), CENTROID(CIRCLE('', ra, dec, 1)), "
    "COORD1(POINT('', ra, dec)), COORDSYS(POINT('ICRS', 1, 2)) FROM {t}",
    "SELECT object_id FROM {t} WHERE 1=CONTAINS(POINT('', ra, dec), "
    "POLYGON('', ra - 1, dec - 1, ra + 1, dec - 1, ra, dec + 1))",
    "SELECT object_id FROM {t} WHERE 1=INTERSECTS(BOX('', 150, 0, 4, 4), CIRCLE('', ra, dec, 0.1))",
    "SELECT IN_UNIT(ra, 'rad'), ivo_healpix_index(6, ra, dec), ivo_healpix_center(4, 7) FROM {t}",
    "SELECT odds, COUNT(*), AVG(z_err), SUM(object_id) FROM {t} GROUP BY odds HAVING AVG(z_err) > 0 "
    "ORDER BY 2 DESC",
    "SELECT * FROM {t} AS a JOIN {t} AS b USING (object_id) WHERE a.object_id < 5",
    "SELECT object_id FROM {t} WHERE object_id <= 10 UNION SELECT TOP 3 object_id FROM {t} "
    "ORDER BY object_id",
    "WITH c AS (SELECT * FROM {t} WHERE MOD(object_id, 10) = 0) SELECT TOP 3 ra FROM c OFFSET 2",
    "SELECT CAST(object_id AS VARCHAR(10)) || 'x', CAST('2021-01-14T11:25:00' AS TIMESTAMP), "
    "CAST(ra AS REAL), CASE WHEN mag_i > 20 THEN 1 ELSE 0 END, COALESCE(z_phot, 0), "
    "0xFF & object_id FROM {t}",
])
def test_translations_execute(conn, query):
    rows = run(conn, query.format(t=f"{SCHEMA}.photoz"))
    assert len(rows) <= 11


def test_integer_division_and_rounding_values(conn):
    row = run(conn, f"SELECT TOP 1 1/2, ROUND(2.345, 2), TRUNCATE(2.349, 2), LOG(EXP(1)) "
                    f"FROM {SCHEMA}.photoz")[0]
    assert row[0] == pytest.approx(0.5)
    assert row[1] == pytest.approx(2.35) and row[2] == pytest.approx(2.34)
    assert row[3] == pytest.approx(1.0)


def test_point_result_is_exact_degrees(conn):
    row = run(conn, f"SELECT TOP 1 POINT('ICRS', 3, 4) FROM {SCHEMA}.photoz")[0]
    assert row[0] == [3.0, 4.0]
