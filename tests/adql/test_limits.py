"""The ADQL layer's limits: no query reaches Python's recursion limit, long flat chains work.

The recursion-budget tests translate the deepest queries the limits let through while the
stack already holds :data:`CALLER_FRAMES` frames, many more than a web request or an async
worker puts below ``translate_adql`` (19 under the test server); a limit raised too far, or a
new recursive path, makes them fail instead of silently relying on the RecursionError guard.
"""
from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from tests.adql.test_translate import CATALOG, refused, sql_of
from vo_service.tap.adql import AdqlSemanticError, AdqlSyntaxError, translate_adql
from vo_service.tap.adql._dialect import MAX_INTEGER, MAX_NESTING, MAX_TOKENS
from vo_service.tap.adql._translate import MAX_TREE_DEPTH

CALLER_FRAMES = 150
N = MAX_NESTING
WHERE = "SELECT ra FROM pz.photoz WHERE "


def _alternating(n: int) -> str:
    return "ra" + "".join(" - ra" if i % 2 else " + ra" for i in range(n))


#: The deepest query of each recursive construct that the limits accept.
DEEPEST_ACCEPTED = {
    "parentheses": WHERE + "(" * N + "ra > 1" + ")" * N,
    "functions": "SELECT " + "ABS(" * N + "ra" + ")" * N + " FROM pz.photoz",
    "coalesce": "SELECT " + "COALESCE(" * N + "ra" + ")" * N + " FROM pz.photoz",
    "in subqueries": WHERE + "ra IN " + "(SELECT ra FROM pz.photoz WHERE ra IN " * (N - 1)
    + "(1)" + ")" * (N - 1),
    "exists": WHERE + "EXISTS (SELECT ra FROM pz.photoz WHERE " * N + "ra > 1" + ")" * N,
    "from subqueries": "SELECT * FROM " + "(SELECT * FROM " * N + "pz.photoz" + ") AS t" * N,
    "case": "SELECT " + "CASE WHEN ra > 1 THEN " * N + "1" + " END" * N + " FROM pz.photoz",
    "not and parentheses": WHERE + "NOT (" * (N // 2) + "ra > 1" + ")" * (N // 2),
    "not before a comparison": WHERE + "NOT ra > ABS(" + "ra + ABS(" * (N - 2) + "ra"
    + ")" * (N - 1),
    "not between": WHERE + "NOT ra BETWEEN 1 AND (" * (N // 2) + "1" + ")" * (N // 2),
    "unary minus and parentheses": "SELECT " + "-(" * (N // 2) + "ra" + ")" * (N // 2)
    + " FROM pz.photoz",
    "not run": WHERE + "NOT " * N + "ra > 1",
    "mixed chain": f"SELECT {_alternating(MAX_TREE_DEPTH - 10)} FROM pz.photoz",
    "mixed chain in functions": "SELECT " + "ABS(" * (N - 1) + _alternating(150) + ")" * (N - 1)
    + " FROM pz.photoz",
    "union chain": " UNION ".join(["SELECT ra FROM pz.photoz"] * (MAX_TREE_DEPTH - 5)),
    "parenthesised unions": "(" * (N - 1) + "SELECT ra FROM pz.photoz"
    + " UNION SELECT ra FROM pz.photoz)" * (N - 1),
    "geometry": WHERE + "1=CONTAINS(POINT(" + "ABS(" * (N - 3) + "ra" + ")" * (N - 3)
    + ", dec), CIRCLE(1, 2, 3))",
}


def _with_frames(depth: int, call: Callable[[], object]) -> object:
    """Run ``call`` with ``depth`` more frames on the stack (a deep caller)."""
    if depth <= 0:
        return call()
    return _with_frames(depth - 1, call)


def _stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


@pytest.mark.parametrize("name", sorted(DEEPEST_ACCEPTED))
def test_deepest_accepted_queries_translate_below_a_deep_caller(name: str) -> None:
    query = DEEPEST_ACCEPTED[name]
    padding = max(0, CALLER_FRAMES - _stack_depth())
    try:
        result = _with_frames(padding, lambda: translate_adql(query, CATALOG))
    except AdqlSyntaxError as exc:  # the RecursionError guard, or a limit that is too low
        pytest.fail(f"{name}: {exc.message}")
    except AdqlSemanticError:
        pass  # deep enough for the check; some shapes are ill-typed on purpose
    else:
        assert result.sql.startswith(("SELECT", "(", "WITH"))


@pytest.mark.parametrize("query", [
    WHERE + "(" * (N + 1) + "ra > 1" + ")" * (N + 1),
    WHERE + "(" * 48 + "ra > 1" + ")" * 48,
    "SELECT " + "ABS(" * (N + 1) + "ra" + ")" * (N + 1) + " FROM pz.photoz",
    WHERE + "ra IN " + "(SELECT ra FROM pz.photoz WHERE ra IN " * N + "(1)" + ")" * N,
    "SELECT " + "CASE WHEN ra > 1 THEN " * (N + 1) + "1" + " END" * (N + 1) + " FROM pz.photoz",
    WHERE + "NOT " * (N + 1) + "ra > 1",
    "SELECT " + "- " * 500 + "ra FROM pz.photoz",
    WHERE + "NOT ra BETWEEN 1 AND (" * (N + 1) + "1" + ")" * (N + 1),
    WHERE + "(" * 5000 + "ra > 1" + ")" * 5000,
])
def test_too_deep_nesting_is_a_syntax_error_naming_the_limit(query: str) -> None:
    error = refused(query, AdqlSyntaxError)
    assert f"at most {MAX_NESTING}" in error.message
    assert error.line == 1 and error.col is not None


@pytest.mark.parametrize("query", [
    f"SELECT {_alternating(MAX_TREE_DEPTH + 1)} FROM pz.photoz",
    f"SELECT {_alternating(3000)} FROM pz.photoz",
    " UNION ".join(["SELECT ra FROM pz.photoz"] * (MAX_TREE_DEPTH + 1)),
])
def test_too_deep_trees_are_refused_naming_the_limit(query: str) -> None:
    error = refused(query, AdqlSyntaxError)
    assert f"more than {MAX_TREE_DEPTH} levels" in error.message
    assert "a OR b OR c" in error.message  # says what still works


def test_long_flat_chains_translate_in_order() -> None:
    ors = WHERE + " OR ".join(f"object_id = {i}" for i in range(3000))
    sql = sql_of(ors)
    assert sql.count(" OR ") == 2999
    assert sql.index("object_id = 0 OR") < sql.index("object_id = 1 OR") < sql.index("= 2999")
    adds = sql_of("SELECT " + " + ".join(["ra"] * 3000) + " FROM pz.photoz")
    assert adds.count(" + ") == 2999
    for query in [
        WHERE + " AND ".join(f"NOT object_id = {i}" for i in range(2000)),
        "SELECT " + " + ".join(["-ra"] * 2000) + " FROM pz.photoz",
        "SELECT " + " * ".join(["ra"] * 2000) + " FROM pz.photoz",
        "SELECT " + " || ".join(["name"] * 2000) + " FROM pz.photoz",
        "SELECT " + " | ".join(["flags"] * 2000) + " FROM pz.photoz",
        WHERE + " OR ".join(f"(object_id = {i} AND ra > 1)" for i in range(2000)),
    ]:
        assert translate_adql(query, CATALOG).sql


def test_chain_translation_keeps_types_and_checks() -> None:
    assert sql_of("SELECT 1 / 2 / 4 FROM pz.photoz") == (
        "SELECT CAST(CAST(1 AS DOUBLE PRECISION) / 2 / 4 AS DOUBLE PRECISION) AS col1 FROM pz.photoz")
    assert translate_adql("SELECT flags + 1 + 2 FROM pz.photoz", CATALOG).columns[0].datatype == "int"
    assert translate_adql("SELECT flags + 1 + 2.5 FROM pz.photoz", CATALOG).columns[0].datatype == "double"
    assert "needs a number" in refused("SELECT ra + 1 + name FROM pz.photoz").message
    assert "needs a number" in refused("SELECT name + 1 + ra FROM pz.photoz").message
    assert "needs a condition" in refused(WHERE + "ra > 1 OR ra OR ra > 2").message
    assert "needs a condition" in refused(WHERE + "ra OR ra > 1 OR ra > 2").message
    assert "needs a value" in refused("SELECT (ra > 1) || 'x' || 'y' FROM pz.photoz").message


def test_token_limit_points_to_uploads() -> None:
    query = WHERE + "object_id IN (" + ", ".join(str(i) for i in range(MAX_TOKENS // 2)) + ")"
    error = refused(query, AdqlSyntaxError)
    assert f"at most {MAX_TOKENS}" in error.message and "TAP_UPLOAD" in error.message
    assert translate_adql(WHERE + "object_id IN (" + ", ".join(str(i) for i in range(20_000)) + ")",
                          CATALOG).sql


@pytest.mark.parametrize("query, fragment", [
    ("SELECT TOP 99999999999999999999 ra FROM pz.photoz", f"TOP must be at most {MAX_INTEGER}"),
    ("SELECT TOP " + "9" * 5000 + " ra FROM pz.photoz", f"TOP must be at most {MAX_INTEGER}"),
    ("SELECT ra FROM pz.photoz OFFSET " + "9" * 5000, f"OFFSET must be at most {MAX_INTEGER}"),
    (WHERE + "object_id = " + "9" * 5000, "(5000 digits) is larger than"),
    (WHERE + f"object_id = {MAX_INTEGER + 1}", f"larger than {MAX_INTEGER}"),
    (WHERE + "flags = 0x1" + "0" * 16, "larger than 0x7FFFFFFFFFFFFFFF"),
    ("SELECT ra FROM pz.photoz ORDER BY " + "9" * 5000, "There is no result column"),
    (WHERE + "name = 'a\x00b'", "NUL character"),
])
def test_huge_numbers_and_nul_are_refused(query: str, fragment: str) -> None:
    assert fragment in refused(query).message


def test_numbers_at_the_limits_still_work() -> None:
    assert sql_of("SELECT TOP " + "0" * 5000 + "7 ra FROM pz.photoz").endswith("LIMIT 7")
    assert f"= {MAX_INTEGER}" in sql_of(WHERE + f"object_id = {MAX_INTEGER}")
    assert sql_of(WHERE + "object_id = " + "0" * 5000 + "42").endswith("WHERE object_id = 42")
    assert sql_of(WHERE + "flags = 0x7FFFFFFFFFFFFFFF")
