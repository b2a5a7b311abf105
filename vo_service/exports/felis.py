"""A published table as a Rubin felis schema (the YAML ``felis validate`` and the RSP load).

The document has the table with its columns in TAP order (``tap:column_index``), their felis
datatypes, units, UCDs, descriptions and ``tap:principal``/``tap:std``, the primary key and
indexes, and the table's foreign keys.

The Object catalog's key.  A column holding the Rubin Object key (see
:meth:`PublishedTable.object_key`) gets a ``ForeignKey`` constraint to ``Object.objectId``
(:func:`pipeline.schema.object_key_felis`, which the pipeline's own felis files use too), named
as the RSP names its own (``fk_ForcedSource_Object`` in lsst/sdm_schemas dp1.yaml).  felis
resolves ``referencedColumns`` by ``@id`` inside the same document only (``Schema.check_constraints``;
``resources`` and ``columnRefs`` copy column definitions from another schema, they are not
reference targets), so the document also holds a stub ``Object`` table with that one key column,
described as a stub: the federating site replaces it with, or maps it to, its own Object table.
TAP_SCHEMA here gets no ``keys`` row for it, as its target is not a table this service serves
(TAP_SCHEMA's keys must name tables it lists); the column's description and UCD declare it there.
Other TAP_SCHEMA foreign keys are exported the same way, with stubs of their target columns.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline.schema import OBJECT_TABLE, object_key_felis
from vo_service.core.columns import DATATYPES, Column, parse_arraysize
from vo_service.core.identifiers import unquote_delimited
from vo_service.exports.tables import ExportError, PublishedTable


def _bare(name: str) -> str:
    return unquote_delimited(name)[0]


def _datatype(col: Column) -> dict[str, Any]:
    """felis datatype (with length and VOTable arraysize/xtype where felis needs them)."""
    base = DATATYPES[col.datatype]
    size = col.arraysize or ""
    if base.is_string:
        if (col.xtype or "").lower() == "timestamp":
            return {"datatype": "timestamp", "votable:arraysize": "*"}
        if col.datatype == "char" and size.isdigit():
            return {"datatype": "char", "length": int(size), "votable:arraysize": size}
        if size.endswith("*") and size[:-1].isdigit():
            return {"datatype": base.felis, "length": int(size[:-1]), "votable:arraysize": size}
        return {"datatype": "text", "votable:arraysize": "*"}
    entry: dict[str, Any] = {"datatype": base.felis}
    if parse_arraysize(col.arraysize)[0]:
        entry["votable:arraysize"] = col.arraysize
    return entry


def _column(table: str, col: Column, index: int, *, nullable: bool) -> dict[str, Any]:
    name = _bare(col.name)
    entry: dict[str, Any] = {"name": name, "@id": f"#{table}.{name}", **_datatype(col),
                             "description": col.description or name, "nullable": nullable}
    if col.unit:
        entry["ivoa:unit"] = col.unit
    if col.ucd:
        entry["ivoa:ucd"] = col.ucd
    if col.xtype and entry["datatype"] != "timestamp":
        entry["votable:xtype"] = col.xtype
    if col.utype:
        entry["votable:utype"] = col.utype
    entry["tap:principal"] = int(col.principal)
    if col.std:
        entry["tap:std"] = 1
    entry["tap:column_index"] = index
    return entry


def _stub(name: str, columns: list[dict[str, Any]], description: str) -> dict[str, Any]:
    return {"name": name, "@id": f"#{name}", "description": description, "columns": columns}


def felis_document(table: PublishedTable, *, object_key: str = "objectId") -> dict[str, Any]:
    """The felis schema of ``table`` (module docstring); ``object_key`` names the Object
    catalog's key column (the ``object_key_column`` setting)."""
    schema, name = table.meta.schema_name, table.meta.name
    bare = _bare(name)
    columns = [_column(bare, col, col.column_index or i + 1, nullable=col.name not in table.not_null)
               for i, col in enumerate(table.columns)]
    main: dict[str, Any] = {"name": bare, "@id": f"#{bare}",
                            "description": table.meta.description or f"{table.name} (pzvo)",
                            "tap:table_index": table.meta.table_index or 1, "columns": columns}
    if table.primary_key:
        main["primaryKey"] = [f"#{bare}.{_bare(c)}" for c in table.primary_key]
    skip = set(table.primary_key)
    main["indexes"] = [{"name": f"idx_{bare}_{_bare(c.name)}", "@id": f"#idx_{bare}_{_bare(c.name)}",
                        "description": f"Index on {_bare(c.name)}.", "columns": [f"#{bare}.{_bare(c.name)}"]}
                       for c in table.columns if c.indexed and c.name not in skip]
    constraints: list[dict[str, Any]] = []
    stubs: dict[str, dict[str, Any]] = {}
    key = table.object_key(object_key)
    if key is not None:
        try:
            constraint, stubs[OBJECT_TABLE] = object_key_felis(bare, _bare(key.name), object_key)
        except ValueError as exc:
            raise ExportError(f"{table.name}: {exc}") from exc
        constraints.append(constraint)
    for fk in table.foreign_keys:
        target_meta = table.targets.get(fk.target_table)
        target_name = _bare(fk.target_table.rsplit(".", 1)[-1])
        if target_name == bare:  # a key to the table itself
            refs = [f"#{bare}.{_bare(t)}" for _, t in fk.columns]
        else:
            stub = stubs.setdefault(target_name, _stub(
                target_name, [], f"Stub of {fk.target_table}: the columns this schema's foreign keys reference."))
            have = {c["name"] for c in stub["columns"]}
            for _, t in fk.columns:
                if _bare(t) not in have:
                    col = target_meta.column(t) if target_meta else None
                    col = col or Column(name=t, datatype="long", description=f"{fk.target_table}.{t}")
                    stub["columns"].append(_column(target_name, col.with_(principal=True), len(stub["columns"]) + 1,
                                                   nullable=False))
                    have.add(_bare(t))
            refs = [f"#{target_name}.{_bare(t)}" for _, t in fk.columns]
        fk_id = f"fk_{bare}_{fk.key_id}".replace(".", "_")
        constraints.append({"name": fk_id, "@id": f"#{fk_id}", "@type": "ForeignKey",
                            "description": fk.description or f"{table.name} references {fk.target_table}",
                            "columns": [f"#{bare}.{_bare(f)}" for f, _ in fk.columns], "referencedColumns": refs})
    if constraints:
        main["constraints"] = constraints
    index = main["tap:table_index"]
    for i, stub in enumerate(stubs.values()):  # felis validate --check-tap-table-indexes: unique in the document
        stub["tap:table_index"] = index + 1 + i
    return {"name": schema, "@id": f"#{schema}",
            "description": table.schema_description or f"pzvo tables of schema {schema}.",
            "tables": [main, *stubs.values()]}


def validate_felis(document: dict[str, Any]) -> None:
    """Validate with lsst-felis's data model, as ``felis validate`` does; ExportError on error."""
    from felis.datamodel import Schema  # noqa: PLC0415 - felis: 0.2 s (pydantic models), this command only
    from pydantic import ValidationError  # noqa: PLC0415 - pydantic: with felis

    try:
        Schema.model_validate(document)
    except ValidationError as exc:
        raise ExportError(f"the felis schema does not validate: {exc}") from exc


def write_felis(table: PublishedTable, path: Path, *, object_key: str = "objectId") -> dict[str, Any]:
    """Write the validated felis YAML of ``table`` to ``path`` (nothing is written if it does not
    validate); returns the document."""
    document = felis_document(table, object_key=object_key)
    validate_felis(document)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True))
    return document
