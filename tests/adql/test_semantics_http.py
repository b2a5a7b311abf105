"""ADQL semantics a user sees through /tap/sync on the real database: LIKE and its negation,
geometry values built in subqueries, NULL geometry arguments, casts, names and refusals."""
from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io.votable import parse as parse_votable

from tests._tap import SPECZ_ROWS, count, dali_error, sync, votable

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
    assert resp.text.splitlines() == ["p", '""']  # a lone NULL cell is "" so the row is not lost


def test_negative_circle_radius_is_refused(tap_url: str) -> None:
    dali_error(sync(tap_url, "SELECT TOP 1 CIRCLE('ICRS', 0, 0, -1) AS c FROM pz.specz_demo"),
               400, "radius", "line 1")
    dali_error(sync(tap_url, "SELECT TOP 1 id FROM pz.specz_demo WHERE "
                             "1 = CONTAINS(POINT(ra, dec), CIRCLE(ra, dec, -0.5))"), 400, "radius")
    dali_error(sync(tap_url, "SELECT TOP 1 REGION('CIRCLE ICRS 0 0 -2') AS c FROM pz.specz_demo"),
               400, "radius")
    dali_error(sync(tap_url, "SELECT TOP 1 CIRCLE(ra, dec, z - 10) AS c FROM pz.specz_demo"),
               400, "radius")

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
