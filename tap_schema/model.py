"""Table descriptions read from YAML, validated on load so a typo fails at start-up."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vo_service.core.columns import DATATYPES, Column

TABLES_DIR = Path(__file__).resolve().parent / "tables"

class DescriptionError(ValueError):
    """A YAML table description is malformed."""


@dataclass(frozen=True)
class ForeignKeyDescription:
    key_id: str
    target_table: str
    columns: tuple[tuple[str, str], ...]
    description: str | None = None


@dataclass(frozen=True)
class TableDescription:
    schema: str
    name: str
    description: str
    columns: tuple[Column, ...]
    schema_description: str | None = None
    table_type: str = "table"
    utype: str | None = None
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKeyDescription, ...] = ()
    position_columns: tuple[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


def _column(raw: dict[str, Any], where: str) -> Column:
    try:
        datatype = raw["datatype"]
        name = raw["name"]
    except KeyError as exc:
        raise DescriptionError(f"{where}: column lacks {exc.args[0]!r}") from exc
    if datatype not in DATATYPES:
        raise DescriptionError(f"{where}: column {name}: unknown datatype {datatype!r}")
    arraysize = raw.get("arraysize")
    return Column(
        name=name, datatype=datatype, description=raw.get("description"), unit=raw.get("unit"),
        ucd=raw.get("ucd"), utype=raw.get("utype"),
        arraysize=None if arraysize is None else str(arraysize), xtype=raw.get("xtype"),
        size=raw.get("size"), principal=bool(raw.get("principal", False)),
        indexed=bool(raw.get("indexed", False)), std=bool(raw.get("std", False)),
        nullable=bool(raw.get("nullable", True)), pg_type=raw.get("pg_type"))


def parse_table(raw: dict[str, Any], where: str = "<yaml>") -> TableDescription:
    """Build a :class:`TableDescription` from the mapping a YAML file holds."""
    for key in ("schema", "name", "description", "columns"):
        if key not in raw:
            raise DescriptionError(f"{where}: missing {key!r}")
    columns = tuple(_column(c, where) for c in raw["columns"])
    names = {c.name for c in columns}
    pk = tuple(raw.get("primary_key") or ())
    for col in pk:
        if col not in names:
            raise DescriptionError(f"{where}: primary key column {col!r} is not a column")
    fks = []
    for fk in raw.get("foreign_keys") or ():
        pairs = tuple((p["from"], p["target"]) for p in fk["columns"])
        for from_col, _ in pairs:
            if from_col not in names:
                raise DescriptionError(f"{where}: foreign key column {from_col!r} is not a column")
        fks.append(ForeignKeyDescription(key_id=fk["key_id"], target_table=fk["target_table"],
                                         columns=pairs, description=fk.get("description")))
    pos = raw.get("position")
    position = (pos["ra"], pos["dec"]) if pos else None
    return TableDescription(
        schema=raw["schema"], name=raw["name"], description=raw["description"].strip(),
        columns=columns, schema_description=raw.get("schema_description"),
        table_type=raw.get("table_type", "table"), utype=raw.get("utype"), primary_key=pk,
        foreign_keys=tuple(fks), position_columns=position,
        extra={k: v for k, v in raw.items() if k.startswith("x_")})


def load_table(path_or_name: str | Path) -> TableDescription:
    """Load one description, by path or by qualified name (``pz.specz_demo``)."""
    path = Path(path_or_name)
    if path.suffix != ".yaml":
        path = TABLES_DIR / f"{path_or_name}.yaml"
    with path.open() as fh:
        return parse_table(yaml.safe_load(fh), str(path))


def load_tables(schema: str | None = None) -> list[TableDescription]:
    """All shipped descriptions (optionally of one schema), sorted by file name."""
    tables = [load_table(p) for p in sorted(TABLES_DIR.glob("*.yaml"))]
    return [t for t in tables if schema is None or t.schema == schema]
