"""A published table as TAP_SCHEMA describes it, with what felis needs besides (keys, NOT NULL).

TAP_SCHEMA is the one description of a published table (``tap_schema.loader`` writes it), so the
exports read it rather than the YAML files: product tables and pipeline outputs have none.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from sqlalchemy import text

from vo_service.core.columns import OBJECT_KEY_UCD, Column
from vo_service.core.identifiers import pg_name, quote_ident, unquote_delimited
from vo_service.services import Services
from vo_service.tap.catalog import ForeignKey, TableMeta


class ExportError(ValueError):
    """A table that cannot be exported as asked; the message says why, for the command line."""


#: Datatypes an Object key column may have (it is a 64-bit integer at the RSP).
_KEY_DATATYPES = frozenset({"short", "int", "long"})


@dataclass(frozen=True)
class PublishedTable:
    """One TAP_SCHEMA table with its columns in TAP order, its schema's description, primary key
    and NOT NULL columns (from PostgreSQL) and its TAP_SCHEMA foreign keys."""

    meta: TableMeta
    schema_description: str | None
    primary_key: tuple[str, ...]
    not_null: frozenset[str]
    foreign_keys: tuple[ForeignKey, ...]
    targets: dict[str, TableMeta]
    """The tables the foreign keys reference, by TAP name."""

    @property
    def name(self) -> str:
        return self.meta.table_name

    @property
    def columns(self) -> tuple[Column, ...]:
        return self.meta.columns

    @property
    def sql_table(self) -> str:
        schema, table = self.meta.table_name.split(".", 1)
        return f"{quote_ident(pg_name(schema))}.{quote_ident(pg_name(table))}"

    def sql_column(self, col: Column) -> str:
        return quote_ident(col.sql_name)

    def object_key(self, key_name: str) -> Column | None:
        """The column that holds the Object catalog's key: an integer column with the RSP's UCD
        for Object.objectId, or named as the ``object_key_column`` setting."""
        for col in self.columns:
            bare = unquote_delimited(col.name)[0]
            if col.datatype in _KEY_DATATYPES and not col.arraysize and (
                    col.ucd == OBJECT_KEY_UCD or bare.lower() == key_name.lower()):
                return col
        return None


def find_published(services: Services, name: str) -> PublishedTable:
    """The published table ``schema.table`` (as TAP_SCHEMA lists it; case-insensitive when
    unambiguous), or ExportError naming the closest published tables."""
    catalog = services.tap.catalog(refresh=True)
    tables = {t.table_name: t for t in catalog.tables}
    meta = tables.get(name)
    if meta is None:
        folded = [t for n, t in tables.items() if n.lower() == name.lower()]
        meta = folded[0] if len(folded) == 1 else None
    if meta is None:
        close = difflib.get_close_matches(name, list(tables), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        what = "a published table: give schema.table as TAP_SCHEMA lists it" if "." not in name else \
            "published (not in TAP_SCHEMA)"
        raise ExportError(f"table {name!r} is not {what}{hint}")
    keys = tuple(k for k in catalog.foreign_keys if k.from_table == meta.table_name)
    targets = {k.target_table: tables[k.target_table] for k in keys if k.target_table in tables}
    table = PublishedTable(meta=meta, schema_description=catalog.schemas.get(meta.schema_name),
                           primary_key=(), not_null=frozenset(), foreign_keys=keys, targets=targets)
    by_pg = {col.sql_name: col.name for col in meta.columns}
    with services.owner_engine.connect() as conn:
        if conn.execute(text("SELECT to_regclass(:t)"), {"t": table.sql_table}).scalar() is None:
            raise ExportError(f"table {name!r} is listed in TAP_SCHEMA but does not exist in the database")
        pk = conn.execute(text(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(:t) AND i.indisprimary "
            "ORDER BY array_position(i.indkey::int2[], a.attnum)"), {"t": table.sql_table}).scalars().all()
        not_null = conn.execute(text(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:t) AND attnum > 0 "
            "AND NOT attisdropped AND attnotnull"), {"t": table.sql_table}).scalars().all()
    return PublishedTable(meta=meta, schema_description=table.schema_description,
                          primary_key=tuple(by_pg[c] for c in pk if c in by_pg),
                          not_null=frozenset(by_pg[c] for c in not_null if c in by_pg),
                          foreign_keys=keys, targets=targets)
