"""Write table descriptions into TAP_SCHEMA, and derive a table's DDL from its description.

This is the only code that writes TAP_SCHEMA.  Publishing is idempotent: a table's previous rows
(columns, keys) are replaced inside the caller's transaction, so ingest can publish a table in
the same transaction that creates it and either both appear or neither does.
"""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from tap_schema.model import TableDescription
from vo_service.core.database import READER_ROLE
from vo_service.core.identifiers import pg_name, quote_ident


def qualified(desc: TableDescription) -> str:
    return f"{quote_ident(desc.schema)}.{quote_ident(desc.name)}"


def create_table_sql(desc: TableDescription) -> list[str]:
    """``CREATE SCHEMA``/``CREATE TABLE`` statements for a description (primary key included)."""
    cols = [f"{quote_ident(c.sql_name)} {c.sql_type}{'' if c.nullable else ' NOT NULL'}"
            for c in desc.columns]
    if desc.primary_key:
        cols.append("PRIMARY KEY (" + ", ".join(quote_ident(pg_name(c)) for c in desc.primary_key) + ")")
    return [f"CREATE SCHEMA IF NOT EXISTS {quote_ident(desc.schema)}",
            f"CREATE TABLE {qualified(desc)} (\n  " + ",\n  ".join(cols) + "\n)"]


def position_index_expression(ra: str, dec: str) -> str:
    """The pg_sphere expression that the ADQL translator emits for POINT('ICRS', ra, dec).

    A GiST index is only used when the query expression is textually the same, so both sides
    must come from here or agree with it.
    """
    return f"spoint(radians({quote_ident(pg_name(ra))}), radians({quote_ident(pg_name(dec))}))"


def create_indexes_sql(desc: TableDescription) -> list[str]:
    """Indexes after loading: GiST on position when the table has one, B-tree on indexed columns."""
    stmts = []
    if desc.position_columns:
        ra, dec = desc.position_columns
        stmts.append(f"CREATE INDEX {quote_ident(desc.name + '_pos_idx')} ON {qualified(desc)} "
                     f"USING gist ({position_index_expression(ra, dec)})")
    skip = set(desc.primary_key) | set(desc.position_columns or ())
    for col in desc.columns:
        if col.indexed and col.name not in skip:
            stmts.append(f"CREATE INDEX {quote_ident(desc.name + '_' + col.sql_name + '_idx')} "
                         f"ON {qualified(desc)} ({quote_ident(col.sql_name)})")
    return stmts


def _fixed_size(arraysize: str | None) -> int | None:
    """TAP 1.1's deprecated ``size`` must agree with a fixed ``arraysize`` (taplint checks it)."""
    return int(arraysize) if arraysize and arraysize.isdigit() else None


def publish_schema(conn: Connection, name: str, description: str | None) -> None:
    conn.execute(text(
        "INSERT INTO tap_schema.schemas (schema_name, description, schema_index) "
        "VALUES (:n, :d, (SELECT coalesce(max(schema_index), 0) + 1 FROM tap_schema.schemas)) "
        "ON CONFLICT (schema_name) DO UPDATE SET description = coalesce(EXCLUDED.description, "
        "tap_schema.schemas.description)"), {"n": name, "d": description})


def unpublish_table(conn: Connection, qualified_name: str) -> None:
    """Remove a table's rows from TAP_SCHEMA (the table itself is left alone)."""
    conn.execute(text("DELETE FROM tap_schema.key_columns WHERE key_id IN (SELECT key_id FROM "
                      "tap_schema.keys WHERE from_table = :t)"), {"t": qualified_name})
    conn.execute(text("DELETE FROM tap_schema.keys WHERE from_table = :t"), {"t": qualified_name})
    conn.execute(text("DELETE FROM tap_schema.columns WHERE table_name = :t"), {"t": qualified_name})
    conn.execute(text("DELETE FROM tap_schema.tables WHERE table_name = :t"), {"t": qualified_name})


def publish_table(conn: Connection, desc: TableDescription, table_index: int | None = None) -> None:
    """Write (or rewrite) a table's rows in TAP_SCHEMA within the caller's transaction, and let
    the query role read it: published means queryable, whichever path created the table (a
    table moved in with ``SET SCHEMA`` gets no default privileges)."""
    publish_schema(conn, desc.schema, desc.schema_description)
    if conn.execute(text("SELECT to_regclass(:t)"), {"t": qualified(desc)}).scalar() is not None:
        conn.execute(text(f"GRANT USAGE ON SCHEMA {quote_ident(desc.schema)} TO {READER_ROLE}"))
        conn.execute(text(f"GRANT SELECT ON {qualified(desc)} TO {READER_ROLE}"))
    unpublish_table(conn, desc.qualified_name)
    conn.execute(text(
        "INSERT INTO tap_schema.tables (schema_name, table_name, table_type, utype, description, "
        "table_index) VALUES (:s, :t, :tt, :u, :d, coalesce(:i, (SELECT coalesce(max(table_index), 0) "
        "+ 1 FROM tap_schema.tables)))"),
        {"s": desc.schema, "t": desc.qualified_name, "tt": desc.table_type, "u": desc.utype,
         "d": desc.description, "i": table_index})
    indexed = set(desc.primary_key) | set(desc.position_columns or ())
    conn.execute(text(
        "INSERT INTO tap_schema.columns (table_name, column_name, utype, ucd, unit, description, "
        "datatype, arraysize, xtype, size, principal, indexed, std, column_index) VALUES "
        "(:t, :n, :utype, :ucd, :unit, :d, :dt, :a, :x, :size, :p, :ix, :std, :ci)"),
        [{"t": desc.qualified_name, "n": c.name, "utype": c.utype, "ucd": c.ucd, "unit": c.unit,
          "d": c.description, "dt": c.datatype, "a": c.arraysize, "x": c.xtype,
          "size": c.size if c.size is not None else _fixed_size(c.arraysize),
          "p": int(c.principal), "ix": int(c.indexed or c.name in indexed), "std": int(c.std),
          "ci": i + 1} for i, c in enumerate(desc.columns)])
    for fk in desc.foreign_keys:
        conn.execute(text("INSERT INTO tap_schema.keys (key_id, from_table, target_table, "
                          "description) VALUES (:k, :f, :t, :d)"),
                     {"k": fk.key_id, "f": desc.qualified_name, "t": fk.target_table,
                      "d": fk.description})
        conn.execute(text("INSERT INTO tap_schema.key_columns (key_id, from_column, target_column) "
                          "VALUES (:k, :f, :t)"),
                     [{"k": fk.key_id, "f": f, "t": t} for f, t in fk.columns])
