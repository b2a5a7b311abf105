"""The published-table catalogue as the TAP layer sees it.

TAP_SCHEMA in PostgreSQL is the single source of truth (written only by ``tap_schema.loader``);
this module holds the in-memory, read-only view of it that the ADQL translator checks queries
against and that result FIELDs take their units, UCDs and descriptions from.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from vo_service.core.columns import Column


@dataclass(frozen=True)
class TableMeta:
    """One row of ``TAP_SCHEMA.tables`` with its columns in ``column_index`` order.

    ``table_name`` is the qualified name as published (``pz.specz_demo``); ``schema_name`` its
    schema; ``name`` the bare table name.
    """

    schema_name: str
    table_name: str
    columns: tuple[Column, ...]
    table_type: str = "table"
    description: str | None = None
    utype: str | None = None
    table_index: int | None = None
    db_schema: str | None = None
    """PostgreSQL schema holding the table when it differs from ``schema_name`` (uploads)."""
    db_table: str | None = None
    """PostgreSQL table name when it differs from ``name`` (uploads get unique names)."""

    @property
    def name(self) -> str:
        return self.table_name.rsplit(".", 1)[-1]

    def column(self, name: str) -> Column | None:
        """Find a column by its regular (case-insensitive) or delimited (exact) name."""
        for col in self.columns:
            if col.name == name:
                return col
        lowered = name.lower()
        for col in self.columns:
            if col.name.lower() == lowered:
                return col
        return None


@dataclass(frozen=True)
class ForeignKey:
    """One row of ``TAP_SCHEMA.keys`` with its column pairs from ``TAP_SCHEMA.key_columns``."""

    key_id: str
    from_table: str
    target_table: str
    columns: tuple[tuple[str, str], ...]
    description: str | None = None


@dataclass(frozen=True)
class Catalog:
    """All published schemas, tables, columns and foreign keys."""

    tables: tuple[TableMeta, ...]
    schemas: dict[str, str | None] = field(default_factory=dict)
    foreign_keys: tuple[ForeignKey, ...] = ()

    def with_tables(self, extra: tuple[TableMeta, ...]) -> Catalog:
        """This catalogue plus ``extra`` tables (a request's ``TAP_UPLOAD`` tables).

        The shared catalogue stays untouched: each request that uploads gets its own copy,
        so one user's uploads are never visible to another query.
        """
        if not extra:
            return self
        return replace(self, tables=self.tables + tuple(extra))

    def find_table(self, name: str, schema: str | None = None, *, delimited: bool = False,
                   schema_delimited: bool = False) -> TableMeta | None:
        """Resolve a table reference as ADQL does: case-insensitively unless delimited.

        ``name`` is the bare table name and ``schema`` the optional schema prefix; a delimited
        (double-quoted) part must match exactly, as PostgreSQL would see the name (so ``"pz"``
        finds schema ``pz`` and ``"PZ"`` does not).  An exact match wins over a
        case-insensitive one; a bare name without a schema matches a table in any schema only
        when that is unambiguous.
        """
        candidates = [
            t for t in self.tables
            if _name_matches(name, delimited, t.name)
            and (schema is None or _name_matches(schema, schema_delimited, t.schema_name))
        ]
        if len(candidates) > 1:
            exact = [t for t in candidates if t.name == name
                     and (schema is None or t.schema_name == schema)]
            candidates = exact if len(exact) == 1 else candidates
        return candidates[0] if len(candidates) == 1 else None


def _name_matches(user: str, delimited: bool, listed: str) -> bool:
    """ADQL identifier equality against a regular TAP_SCHEMA name, which PostgreSQL folds to
    lower case: only a delimited name is compared exactly."""
    if delimited:
        return user == listed or user == listed.lower()
    return user.lower() == listed.lower()
