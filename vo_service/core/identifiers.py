"""Identifiers: ADQL's and PostgreSQL's reserved words and delimited-identifier quoting.

Every package that writes a name into SQL or checks a user's name (the ADQL translator, uploads,
ingest's column planning, DDL from table descriptions) uses these, so the rules are the same
wherever a name enters the database.
"""
from __future__ import annotations

import re

# SQL-92 reserved words, which ADQL reserves as well, plus ADQL's own.  A regular identifier
# must not be one of them; delimited ("...") ones may.  SQL-92's DEC is left out: ``dec`` is the
# declination column of nearly every astronomical table and every ADQL service accepts it.
_SQL92_RESERVED = """
ABSOLUTE ACTION ADD ALL ALLOCATE ALTER AND ANY ARE AS ASC ASSERTION AT AUTHORIZATION AVG BEGIN
BETWEEN BIT BIT_LENGTH BOTH BY CASCADE CASCADED CASE CAST CATALOG CHAR CHARACTER CHAR_LENGTH
CHARACTER_LENGTH CHECK CLOSE COALESCE COLLATE COLLATION COLUMN COMMIT CONNECT CONNECTION CONSTRAINT
CONSTRAINTS CONTINUE CONVERT CORRESPONDING COUNT CREATE CROSS CURRENT CURRENT_DATE CURRENT_TIME
CURRENT_TIMESTAMP CURRENT_USER CURSOR DATE DAY DEALLOCATE DECIMAL DECLARE DEFAULT DEFERRABLE
DEFERRED DELETE DESC DESCRIBE DESCRIPTOR DIAGNOSTICS DISCONNECT DISTINCT DOMAIN DOUBLE DROP ELSE
END END-EXEC ESCAPE EXCEPT EXCEPTION EXEC EXECUTE EXISTS EXTERNAL EXTRACT FALSE FETCH FIRST FLOAT
FOR FOREIGN FOUND FROM FULL GET GLOBAL GO GOTO GRANT GROUP HAVING HOUR IDENTITY IMMEDIATE IN
INDICATOR INITIALLY INNER INPUT INSENSITIVE INSERT INT INTEGER INTERSECT INTERVAL INTO IS ISOLATION
JOIN KEY LANGUAGE LAST LEADING LEFT LEVEL LIKE LOCAL LOWER MATCH MAX MIN MINUTE MODULE MONTH NAMES
NATIONAL NATURAL NCHAR NEXT NO NOT NULL NULLIF NUMERIC OCTET_LENGTH OF ON ONLY OPEN OPTION OR ORDER
OUTER OUTPUT OVERLAPS PAD PARTIAL POSITION PRECISION PREPARE PRESERVE PRIMARY PRIOR PRIVILEGES
PROCEDURE PUBLIC READ REAL REFERENCES RELATIVE RESTRICT REVOKE RIGHT ROLLBACK ROWS SCHEMA SCROLL
SECOND SECTION SELECT SESSION SESSION_USER SET SIZE SMALLINT SOME SPACE SQL SQLCODE SQLERROR
SQLSTATE SUBSTRING SUM SYSTEM_USER TABLE TEMPORARY THEN TIME TIMESTAMP TIMEZONE_HOUR TIMEZONE_MINUTE
TO TRAILING TRANSACTION TRANSLATE TRANSLATION TRIM TRUE UNION UNIQUE UNKNOWN UPDATE UPPER USAGE USER
USING VALUE VALUES VARCHAR VARYING VIEW WHEN WHENEVER WHERE WITH WORK WRITE YEAR ZONE
"""
_ADQL_RESERVED = """
ABS ACOS AREA ASIN ATAN ATAN2 BIGINT BOX CEILING CENTROID CIRCLE CONTAINS COORD1 COORD2 COORDSYS
COS COT DEGREES DISTANCE EXP FLOOR ILIKE INTERSECTS IN_UNIT LOG LOG10 MOD OFFSET PI POINT POLYGON
POWER RADIANS RAND REGION ROUND SIN SQRT TAN TOP TRUNCATE
"""
RESERVED_WORDS = frozenset((_SQL92_RESERVED + _ADQL_RESERVED).split())

# PostgreSQL 15 keywords that cannot be a bare column or table name (pg_get_keywords() with
# catcode R or T); an identifier with one of these names is quoted in the generated SQL.
PG_RESERVED = frozenset("""
all analyse analyze and any array as asc asymmetric authorization binary both case cast check
collate collation column concurrently constraint create cross current_catalog current_date
current_role current_schema current_time current_timestamp current_user default deferrable desc
distinct do else end except false fetch for foreign freeze from full grant group having ilike in
initially inner intersect into is isnull join lateral leading left like limit localtime
localtimestamp natural not notnull null offset on only or order outer overlaps placing primary
references returning right select session_user similar some symmetric table tablesample then to
trailing true union unique user using variadic verbose when where window with
""".split())

_PG_REGULAR = re.compile(r"[a-z_][a-z0-9_]*\Z")


def quote_ident(name: str) -> str:
    """A PostgreSQL delimited identifier for an exact name (embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def qualified_name(schema: str, table: str) -> str:
    """``"schema"."table"``, both parts delimited."""
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def needs_quotes_in_pg(name: str) -> bool:
    """True when PostgreSQL would fold or reject ``name`` written bare (upper case, odd
    characters, a reserved keyword), so the generated SQL must delimit it."""
    return not _PG_REGULAR.match(name) or name in PG_RESERVED


def is_reserved(name: str) -> bool:
    """True when ``name`` cannot be a regular (undelimited) ADQL or PostgreSQL identifier."""
    return name.upper() in RESERVED_WORDS or name.lower() in PG_RESERVED


def unquote_delimited(name: str) -> tuple[str, bool]:
    """(exact name, was delimited) for an ADQL name that may be delimited (double quotes,
    embedded quotes doubled)."""
    if len(name) > 1 and name.startswith('"') and name.endswith('"'):
        return name[1:-1].replace('""', '"'), True
    return name, False


_ADQL_REGULAR = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def pg_name(name: str) -> str:
    """The PostgreSQL name of a TAP_SCHEMA name: delimited ones exact, regular ones folded to
    lower case, as PostgreSQL folds them (so TAP_SCHEMA may list ``objectId``, the RSP's spelling,
    for a column PostgreSQL stores as ``objectid``; the ADQL translator resolves it the same way)."""
    bare, delimited = unquote_delimited(name)
    return bare if delimited else bare.lower()


def is_regular_adql(name: str) -> bool:
    """True when ``name`` may be written bare in ADQL (a regular identifier, not reserved)."""
    return bool(_ADQL_REGULAR.match(name)) and name.upper() not in RESERVED_WORDS


def adql_name(name: str) -> str:
    """How a column or table named exactly ``name`` is listed in TAP_SCHEMA and written in
    ADQL: bare when it is a regular identifier, delimited otherwise."""
    return name if is_regular_adql(name) else quote_ident(name)
