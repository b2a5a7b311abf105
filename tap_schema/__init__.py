"""Declarative descriptions of every published table, and the loader that writes TAP_SCHEMA.

One YAML file per table under ``tap_schema/tables`` (felis-like: name, description, columns with
datatype, unit, UCD, description, principal, indexed; primary and foreign keys).  Everything
that describes a table to a user (TAP_SCHEMA rows, VOTable FIELDs, VOSI tables, the DDL of the
demo tables) derives from these files; :func:`tap_schema.loader.publish_table` is the only code
that writes TAP_SCHEMA.
"""
from __future__ import annotations

from tap_schema.model import (
    DescriptionError,
    ForeignKeyDescription,
    TableDescription,
    load_table,
    load_tables,
    parse_table,
)

__all__ = ["DescriptionError", "ForeignKeyDescription", "TableDescription", "load_table", "load_tables", "parse_table"]
