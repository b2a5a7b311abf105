"""translate_adql through its public API: SQL shape, result metadata, limits and refusals."""
from __future__ import annotations

import pytest

from vo_service.core.columns import Column
from vo_service.tap.adql import (
    SUPPORTED_FEATURES,
    AdqlError,
    AdqlSemanticError,
    AdqlSyntaxError,
    translate_adql,
)
from vo_service.tap.catalog import Catalog, TableMeta


def _col(name: str, datatype: str, index: int, unit: str | None = None, **kw) -> Column:
    return Column(name=name, datatype=datatype, unit=unit, column_index=index, **kw)


PHOTOZ = TableMeta("pz", "pz.photoz", (
    _col("object_id", "long", 1), _col("ra", "double", 2, "deg"), _col("dec", "double", 3, "deg"),
    _col("z_phot", "float", 4), _col("z_err", "float", 5), _col("odds", "float", 6),
    _col("mag_i", "float", 7, "mag"), _col("flags", "int", 8), _col("name", "char", 9, arraysize="*"),
))
QUOTED = TableMeta("pz", "pz.quoted", (
    _col('"plAin"', "float", 1, db_name="plAin"), _col('"left-right"', "float", 2, db_name="left-right"),
))
TAP_TABLES = TableMeta("TAP_SCHEMA", "TAP_SCHEMA.tables", (
    _col("schema_name", "char", 1, arraysize="*"), _col("table_name", "char", 2, arraysize="*"),
    _col("description", "char", 3, arraysize="*"),
))
CATALOG = Catalog(tables=(PHOTOZ, QUOTED, TAP_TABLES))


def sql_of(query: str, **kw) -> str:
    return translate_adql(query, CATALOG, **kw).sql


def refused(query: str, error: type[AdqlError] = AdqlError, **kw) -> AdqlError:
    with pytest.raises(error) as info:
        translate_adql(query, CATALOG, **kw)
    return info.value


# ---- basics and limits ----------------------------------------------------------------------


def test_simple_query_keeps_table_and_top():
    result = translate_adql("SELECT TOP 10 * FROM pz.photoz WHERE object_id = 1", CATALOG)
    assert "FROM pz.photoz" in result.sql
    assert "WHERE object_id = 1" in result.sql
    assert result.sql.endswith("LIMIT 10")
    assert result.limit == 10


def test_row_limit_caps_top():
    result = translate_adql("SELECT TOP 100 ra FROM pz.photoz", CATALOG, row_limit=11)
    assert result.sql.endswith("LIMIT 11") and result.limit == 11


def test_top_below_row_limit_is_kept():
    result = translate_adql("SELECT TOP 5 ra FROM pz.photoz", CATALOG, row_limit=11)
    assert result.sql.endswith("LIMIT 5") and result.limit == 5


def test_row_limit_without_top():
    result = translate_adql("SELECT ra FROM pz.photoz", CATALOG, row_limit=11)
    assert result.sql.endswith("LIMIT 11") and result.limit == 11


def test_no_limit_at_all():
    result = translate_adql("SELECT ra FROM pz.photoz", CATALOG)
    assert "LIMIT" not in result.sql and result.limit is None


def test_top_zero():
    assert sql_of("SELECT TOP 0 ra FROM pz.photoz", row_limit=11).endswith("LIMIT 0")


def test_offset_with_limit():
    sql = sql_of("SELECT TOP 10 object_id FROM pz.photoz ORDER BY object_id OFFSET 100", row_limit=6)
    assert sql.endswith("ORDER BY object_id LIMIT 6 OFFSET 100")


def test_union_limit_applies_to_whole_result_and_branch_top_stays():
    sql = sql_of("SELECT ra FROM pz.photoz UNION SELECT TOP 3 dec FROM pz.photoz", row_limit=11)
    assert "(SELECT dec FROM pz.photoz LIMIT 3)" in sql
    assert sql.endswith("LIMIT 11")


def test_set_operations_keep_precedence():
    sql = sql_of("SELECT ra FROM pz.photoz UNION SELECT ra FROM pz.photoz "
                 "INTERSECT SELECT ra FROM pz.photoz")
    assert "UNION (SELECT ra FROM pz.photoz INTERSECT SELECT ra FROM pz.photoz)" in sql


def test_union_order_by_result_name():
    sql = sql_of("SELECT object_id AS id FROM pz.photoz UNION SELECT object_id FROM pz.photoz "
                 "ORDER BY id DESC")
    assert sql.endswith("ORDER BY id DESC")


def test_with_clause():
    result = translate_adql("WITH bright AS (SELECT object_id, mag_i FROM pz.photoz WHERE mag_i < 20) "
                            "SELECT b.object_id FROM bright AS b", CATALOG)
    assert result.sql.startswith("WITH bright AS (SELECT object_id, mag_i FROM pz.photoz")
    assert result.columns[0].source is PHOTOZ.columns[0]


def test_comments_do_not_reach_sql():
    sql = sql_of("SELECT ra -- */ DROP TABLE x; /*\nFROM pz.photoz")
    assert "DROP" not in sql and "/*" not in sql


# ---- output columns -------------------------------------------------------------------------


def test_star_expands_in_column_index_order():
    result = translate_adql("SELECT * FROM pz.photoz", CATALOG)
    assert [c.name for c in result.columns] == [c.name for c in PHOTOZ.columns]
    assert all(c.source is m for c, m in zip(result.columns, PHOTOZ.columns, strict=True))


def test_self_join_gets_unique_sql_aliases():
    result = translate_adql("SELECT a.ra, b.ra FROM pz.photoz AS a JOIN pz.photoz AS b "
                            "ON a.object_id = b.object_id", CATALOG)
    assert [c.name for c in result.columns] == ["ra", "ra"]
    assert [c.sql_alias for c in result.columns] == ["ra", "ra_2"]
    assert "b.ra AS ra_2" in result.sql


def test_join_using_star_has_merged_column_once():
    result = translate_adql("SELECT * FROM pz.photoz AS a JOIN pz.photoz AS b USING (object_id)",
                            CATALOG)
    names = [c.name for c in result.columns]
    assert names.count("object_id") == 1 and names.count("ra") == 2


def test_qualified_star():
    result = translate_adql("SELECT a.* FROM pz.photoz AS a, pz.quoted AS q", CATALOG)
    assert len(result.columns) == len(PHOTOZ.columns)


def test_unnamed_expressions_get_names():
    result = translate_adql("SELECT COUNT(*), 1 + 2, MAX(mag_i) FROM pz.photoz", CATALOG)
    assert [c.name for c in result.columns] == ["count", "col2", "max"]
    assert result.columns[0].datatype == "long"


def test_alias_is_the_visible_name():
    result = translate_adql('SELECT mag_i + 2 AS "99 Monkeys" FROM pz.photoz', CATALOG)
    column = result.columns[0]
    assert column.name == "99 Monkeys"
    assert column.sql_alias.isidentifier() or column.sql_alias.replace("_", "a").isalnum()


def test_geometry_results_are_double_arrays():
    result = translate_adql("SELECT POINT('ICRS', ra, dec), CIRCLE('ICRS', ra, dec, 1), "
                            "POLYGON('ICRS', 1, 2, 3, 4, 5, 6) FROM pz.photoz", CATALOG)
    point, circle, polygon = result.columns
    assert (point.datatype, point.arraysize, point.xtype) == ("double", "2", "point")
    assert (circle.arraysize, circle.xtype) == ("3", "circle")
    assert (polygon.arraysize, polygon.xtype) == ("*", "polygon")
    assert "array[CAST(ra AS DOUBLE PRECISION), CAST(dec AS DOUBLE PRECISION)]" in result.sql


def test_geometry_in_subquery_stays_pgsphere():
    sql = sql_of("SELECT COORD1(p), COORD2(p) FROM (SELECT POINT('ICRS', ra, dec) AS p "
                 "FROM pz.photoz) AS q")
    assert "spoint(radians(ra), radians(dec)) AS p" in sql
    assert "degrees(long(p))" in sql and "degrees(lat(p))" in sql


def test_units_of_derived_values():
    result = translate_adql(
        "SELECT DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 150, 2)), "
        "AREA(CIRCLE('ICRS', 150, 2, 1)), IN_UNIT(ra, 'arcsec'), AVG(mag_i), ra FROM pz.photoz",
        CATALOG)
    assert [c.unit for c in result.columns] == ["deg", "deg**2", "arcsec", "mag", "deg"]


def test_cast_types():
    result = translate_adql("SELECT CAST(object_id AS VARCHAR(20)), CAST(ra AS REAL), "
                            "CAST(flags AS SMALLINT), CAST(name AS CHAR(3)), CAST(name AS CHAR) "
                            "FROM pz.photoz", CATALOG)
    assert [(c.datatype, c.arraysize) for c in result.columns] == [
        ("char", "20*"), ("float", None), ("short", None), ("char", "3"), ("char", "1")]


# ---- geometry -------------------------------------------------------------------------------


def test_contains_is_a_plain_index_predicate():
    sql = sql_of("SELECT ra FROM pz.photoz WHERE "
                 "1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 150, 2, 0.5))")
    assert ("WHERE spoint(radians(ra), radians(dec)) @ "
            "scircle(spoint(radians(150), radians(2)), radians(0.5))") in sql
    assert "= 1" not in sql and "CAST" not in sql


def test_contains_compared_on_the_right_and_negated():
    sql = sql_of("SELECT ra FROM pz.photoz WHERE "
                 "CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 150, 2, 0.5)) = 0")
    assert "WHERE NOT (spoint(radians(ra), radians(dec)) @ scircle(" in sql


def test_contains_in_select_list_is_an_integer():
    result = translate_adql("SELECT CONTAINS(POINT('', ra, dec), CIRCLE('', 1, 2, 3)) FROM pz.photoz",
                            CATALOG)
    assert "CAST((spoint(" in result.sql and result.columns[0].datatype == "int"


def test_intersects_with_point_uses_containment():
    sql = sql_of("SELECT ra FROM pz.photoz WHERE "
                 "1=INTERSECTS(CIRCLE('ICRS', 10, 10, 0.5), POINT('ICRS', ra, dec))")
    assert "spoint(radians(ra), radians(dec)) @ scircle(" in sql


def test_intersects_of_regions_uses_overlap():
    sql = sql_of("SELECT ra FROM pz.photoz WHERE "
                 "1=INTERSECTS(CIRCLE('ICRS', ra, dec, 0.5), BOX('ICRS', 10, 10, 1, 1))")
    assert "&& sbox(" in sql


def test_literal_polygon_is_a_constant():
    sql = sql_of("SELECT ra FROM pz.photoz WHERE "
                 "1=CONTAINS(POINT('ICRS', ra, dec), POLYGON('ICRS', 0, -80, 90, -80, 180, -80))")
    assert "CAST('{(0.0d,-80.0d),(90.0d,-80.0d),(180.0d,-80.0d)}' AS spoly)" in sql


def test_polygon_from_columns():
    sql = sql_of("SELECT ra FROM pz.photoz WHERE "
                 "1=CONTAINS(POINT('ICRS', 1, 2), POLYGON('ICRS', ra, dec, ra + 1, dec, ra, dec + 1))")
    assert "AS spoly)" in sql and "radians(ra)" in sql


def test_distance_two_forms_agree():
    a = sql_of("SELECT DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 1, 2)) FROM pz.photoz")
    b = sql_of("SELECT DISTANCE(ra, dec, 1, 2) FROM pz.photoz")
    assert a == b and "degrees(spoint(radians(ra), radians(dec)) <-> spoint(" in a


def test_area_converts_steradians_to_square_degrees():
    assert "degrees(degrees(area(scircle(" in sql_of("SELECT AREA(CIRCLE('', 1, 2, 3)) FROM pz.photoz")


def test_coordsys_reports_the_label():
    assert "'ICRS' AS coordsys" in sql_of("SELECT COORDSYS(POINT('ICRS', ra, dec)) FROM pz.photoz")


def test_region_stcs_circle():
    result = translate_adql("SELECT REGION('Circle ICRS 10 10 1') FROM pz.photoz", CATALOG)
    assert result.columns[0].xtype == "circle"


def test_healpix_udf():
    result = translate_adql("SELECT ivo_healpix_index(6, ra, dec) FROM pz.photoz", CATALOG)
    assert "healpix_nest(CAST(6 AS INT), spoint(radians(ra), radians(dec)))" in result.sql
    assert result.columns[0].datatype == "long"


# ---- math and strings -----------------------------------------------------------------------


def test_math_semantics():
    sql = sql_of("SELECT LOG(mag_i), LOG10(mag_i), TRUNCATE(mag_i), RAND(), ROUND(mag_i, 2), "
                 "MOD(ra, 3), MOD(object_id, 3) FROM pz.photoz")
    assert "ln(mag_i)" in sql and "log10(mag_i)" in sql and "trunc(mag_i)" in sql
    assert "random()" in sql
    assert "round(CAST(mag_i AS DECIMAL), CAST(2 AS INT))" in sql
    assert "mod(CAST(ra AS DECIMAL), CAST(3 AS DECIMAL))" in sql
    assert "mod(object_id, 3)" in sql


def test_integer_division_is_not_truncated():
    assert "CAST(1 AS DOUBLE PRECISION) / 2" in sql_of("SELECT 1/2 FROM pz.photoz")


def test_bitwise_and_hex():
    sql = sql_of("SELECT flags & 0xFF, flags | 1, flags ^ 3, ~flags FROM pz.photoz")
    assert "flags & 255" in sql and "flags | 1" in sql and "flags # 3" in sql and "~flags" in sql


def test_strings():
    sql = sql_of("SELECT LOWER(name) || 'x' FROM pz.photoz WHERE name ILIKE 'ngc%' "
                 "AND UPPER(name) LIKE 'M%'")
    assert "lower(name) || 'x'" in sql and "ILIKE 'ngc%'" in sql and "upper(name) LIKE 'M%'" in sql


def test_case_and_coalesce():
    sql = sql_of("SELECT CASE WHEN mag_i > 20 THEN 'faint' ELSE 'bright' END, COALESCE(z_phot, 0) "
                 "FROM pz.photoz")
    assert "CASE WHEN mag_i > 20 THEN 'faint' ELSE 'bright' END" in sql
    assert "coalesce(z_phot, 0)" in sql.lower()


def test_string_literal_round_trip():
    assert "'it''s \\ here'" in sql_of("SELECT 'it''s \\ here' FROM pz.photoz")


# ---- names ----------------------------------------------------------------------------------


def test_regular_identifiers_are_case_insensitive():
    assert "SELECT mag_i FROM pz.photoz" in sql_of("SELECT MAG_I FROM PZ.PHOTOZ")


def test_delimited_identifiers_keep_case():
    sql = sql_of('SELECT "plAin", "left-right" FROM pz.quoted')
    assert '"plAin"' in sql and '"left-right"' in sql


def test_delimited_identifier_must_match_exactly():
    error = refused('SELECT "PLAIN" FROM pz.quoted', AdqlSemanticError)
    assert "PLAIN" in error.message


def test_tap_schema_is_lower_case_in_postgres():
    assert "FROM tap_schema.tables" in sql_of("SELECT table_name FROM TAP_SCHEMA.tables")


def test_unqualified_table_name():
    assert "FROM pz.photoz" in sql_of("SELECT ra FROM photoz")


def test_order_and_group_by_alias_and_position():
    sql = sql_of("SELECT COUNT(*) AS n, ROUND(ra) AS band FROM pz.photoz GROUP BY band "
                 "ORDER BY 1 DESC, band")
    assert "GROUP BY band ORDER BY 1 DESC, band" in sql


def test_correlated_subquery_qualifies_outer_column():
    sql = sql_of("SELECT p.object_id FROM pz.photoz AS p WHERE EXISTS "
                 "(SELECT 1 FROM pz.photoz AS q WHERE q.object_id = p.object_id)")
    assert "WHERE object_id = p.object_id" in sql


def test_joins():
    for join in ("INNER JOIN", "LEFT OUTER JOIN", "RIGHT JOIN", "FULL OUTER JOIN"):
        sql = sql_of(f"SELECT a.ra FROM pz.photoz AS a {join} pz.photoz AS b "
                     f"ON a.object_id = b.object_id")
        assert join in sql
    assert "NATURAL JOIN" in sql_of("SELECT ra FROM pz.photoz AS a NATURAL JOIN pz.photoz AS b")
    assert "CROSS JOIN" in sql_of("SELECT a.ra FROM pz.photoz AS a CROSS JOIN pz.quoted AS b")


def test_in_between_is_null():
    sql = sql_of("SELECT ra FROM pz.photoz WHERE flags IN (1, 2) AND ra BETWEEN 1 AND 2 "
                 "AND z_phot IS NOT NULL AND object_id NOT IN (SELECT object_id FROM pz.photoz)")
    assert "flags IN (1, 2)" in sql and "ra BETWEEN 1 AND 2" in sql
    assert "NOT z_phot IS NULL" in sql and "NOT object_id IN (SELECT object_id FROM pz.photoz)" in sql


# ---- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("query, line, col, words", [
    ("SELECT ra::int FROM pz.photoz", 1, 10, "CAST"),
    ("SELECT ra FROM pz.photoz LIMIT 5", 1, 26, "TOP"),
    ("SELECT 1 FROM pz.photoz; SELECT 2 FROM pz.photoz", 1, 24, "single query"),
    ("SELECT ra FROM pz.photoz WHERE object_id = $1", 1, 44, "parameters"),
    ("SELECT ARRAY[1, 2] FROM pz.photoz", 1, 13, "array"),
    ("SELECT ra FROM pz.photoz WHERE name ~ 'x'", 1, 37, "Syntax error"),
    ("INSERT INTO pz.photoz VALUES (1)", 1, 1, "SELECT"),
    ("DROP TABLE pz.photoz", 1, 1, "SELECT"),
    ("UPDATE pz.photoz SET ra = 1", 1, 1, "SELECT"),
    ("COPY pz.photoz TO '/tmp/x'", 1, 1, "SELECT"),
    ("SET statement_timeout = 0", 1, 1, "SELECT"),
    ("SELECT ra FROM pz.photoz WHERE ra == 1", 1, 35, "'='"),
    ("SELECT _x FROM pz.photoz", 1, 8, "identifier"),
    ("SELECT ra,\n  FROM pz.photoz", 1, 10, "','"),
    ("SELECT TOP -1 ra FROM pz.photoz", 1, 12, "unsigned"),
    ("SELECT ra FROM pz.photoz OFFSET 1.5", 1, 33, "unsigned"),
    ("SELECT ra FROM pz.photoz AS a OFFSET 2 JOIN pz.photoz AS b ON a.ra = b.ra", 1, 40, "last"),
    ("SELECT 'abc FROM pz.photoz", 1, 8, "Unterminated"),
])
def test_not_adql_is_a_syntax_error_with_position(query, line, col, words):
    error = refused(query, AdqlSyntaxError)
    assert (error.line, error.col) == (line, col)
    assert words.lower() in error.message.lower()


@pytest.mark.parametrize("query", [
    "SELECT ra INTO other FROM pz.photoz",
    "SELECT ra FROM pz.photoz FOR UPDATE",
    "SELECT ra FROM pz.photoz AS a INNER JOIN pz.photoz AS b",
    "SELECT * FROM (SELECT ra FROM pz.photoz)",
    "SELECT ra FROM pz.photoz UNION (WITH t AS (SELECT ra FROM pz.photoz) SELECT ra FROM t)",
    "SELECT distance FROM pz.photoz",
    "SELECT ra FROM pz.photoz WHERE TRUE",
    "SELECT FROM pz.photoz",
    "SELECT ra",
])
def test_other_non_adql_is_refused(query):
    refused(query, AdqlSyntaxError)


@pytest.mark.parametrize("query, line, col, words", [
    ("SELECT foo FROM pz.photoz", 1, 8, "foo"),
    ("SELECT ra FROM pz.nosuch", 1, 16, "nosuch"),
    ("SELECT ra\nFROM pz.photoz AS a, pz.photoz AS b", 1, 8, "ambiguous"),
    ("SELECT pg_sleep(10) FROM pz.photoz", 1, 8, "pg_sleep"),
    ("SELECT version() FROM pz.photoz", 1, 8, "version"),
    ("SELECT ra FROM pz.photoz WHERE POINT('ICRS', ra, dec) = mag_i", 1, 32, "geometr"),
    ("SELECT POINT('ICRS', 1, 2) || 'a' FROM pz.photoz", 1, 8, "geometry"),
    ("SELECT ra FROM pz.photoz WHERE mag_i", 1, 32, "condition"),
    ("SELECT ra FROM pz.photoz WHERE 1=CONTAINS(ra, dec)", 1, 43, "geometry"),
    ("SELECT CAST(ra AS FLOAT) FROM pz.photoz", 1, 13, "CAST"),
    ("SELECT IN_UNIT(z_phot, 'm') FROM pz.photoz", 1, 16, "unit"),
    ("SELECT IN_UNIT(ra, 'm') FROM pz.photoz", 1, 8, "convert"),
    ("SELECT POINT('QUARK', ra, dec) FROM pz.photoz", 1, 14, "coordinate system"),
    ("SELECT ra FROM pz.photoz WHERE COUNT(*) > 1", 1, 32, "aggregate"),
    ("SELECT ABS(ra, dec) FROM pz.photoz", 1, 8, "arguments"),
])
def test_semantic_errors_name_the_problem_and_place(query, line, col, words):
    error = refused(query, AdqlSemanticError)
    assert (error.line, error.col) == (line, col)
    assert words.lower() in error.message.lower()


def test_adql_20_refuses_21_features():
    for query in ("SELECT ra FROM pz.photoz OFFSET 3",
                  "SELECT ra FROM pz.photoz WHERE name ILIKE 'a'",
                  "SELECT LOWER(name) FROM pz.photoz",
                  "SELECT ra FROM pz.photoz UNION SELECT dec FROM pz.photoz",
                  "WITH t AS (SELECT ra FROM pz.photoz) SELECT ra FROM t",
                  "SELECT CAST(ra AS REAL) FROM pz.photoz",
                  "SELECT flags & 1 FROM pz.photoz"):
        refused(query, AdqlSyntaxError, version="2.0")
        translate_adql(query, CATALOG, version="2.1")


def test_error_message_mentions_position():
    error = refused("SELECT foo FROM pz.photoz")
    assert "line 1, column 8" in str(error)


# ---- capabilities ---------------------------------------------------------------------------


def test_supported_features_cover_the_optional_feature_types():
    suffixes = {key.rsplit("#", 1)[1] for key in SUPPORTED_FEATURES}
    assert suffixes == {"features-adqlgeo", "features-adql-string", "features-adql-offset",
                        "features-adql-type", "features-adql-unit", "features-adql-sets",
                        "features-adql-common-table", "features-adql-bitwise", "features-udf"}
    geo = {f.form for f in SUPPORTED_FEATURES["ivo://ivoa.net/std/TAPRegExt#features-adqlgeo"]}
    assert {"POINT", "CIRCLE", "CONTAINS", "DISTANCE", "AREA"} <= geo


def test_undeclared_conditional_features_still_translate():
    sql = translate_adql("SELECT COALESCE(z_err, 0) AS e, CASE WHEN odds > 0.5 THEN 1 ELSE 0 END AS g "
                         "FROM pz.photoz", CATALOG).sql
    assert "COALESCE" in sql.upper() and "CASE" in sql.upper()
