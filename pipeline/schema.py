"""The PZ table's description, written once from the estimator's declared columns.

Two files come out of every run, next to the Parquet dataset: ``<schema>.<table>.yaml`` in the
``tap_schema/`` YAML form (what ``tap_schema.loader`` publishes into TAP_SCHEMA) and
``<schema>.<table>.felis.yaml``, the same table as a Rubin felis schema, validated with
``lsst-felis``'s own data model, so the Rubin Science Platform can federate the same table.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from pipeline.estimators.base import Estimator, output_column
from pipeline.pdf import LEVELS
from vo_service.core.columns import (
    DATATYPES,
    OBJECT_KEY,
    OBJECT_KEY_DESCRIPTION,
    OBJECT_KEY_UCD,
    Column,
    pg_type_for,
)


def id_columns(object_key: str = OBJECT_KEY) -> tuple[Column, ...]:
    """The key and position every PZ table starts with.  The key is the Object catalog's, named
    and described as the RSP's (``objectId``, its UCD), declared as a foreign key to
    ``Object.objectId``; its name is the run's ``object_key`` (the ``object_key_column`` setting)."""
    return (
        output_column(object_key, pa.int64(), OBJECT_KEY_DESCRIPTION, OBJECT_KEY_UCD, principal=True, indexed=True),
        output_column("ra", pa.float64(), "Right ascension (ICRS), coord_ra of the Object catalog.",
                      "pos.eq.ra;meta.main", unit="deg", principal=True, indexed=True),
        output_column("dec", pa.float64(), "Declination (ICRS), coord_dec of the Object catalog.",
                      "pos.eq.dec;meta.main", unit="deg", principal=True, indexed=True),
    )


def output_columns(estimator: Estimator, object_key: str = OBJECT_KEY) -> tuple[Column, ...]:
    return id_columns(object_key) + tuple(estimator.columns)


def arrow_schema(estimator: Estimator, metadata: dict[str, str] | None = None, *,
                 object_key: str = OBJECT_KEY) -> pa.Schema:
    fields = [pa.field(c.name, c.arrow_type, nullable=c.name != object_key)
              for c in output_columns(estimator, object_key)]
    return pa.schema(fields, metadata=metadata)


def table_description(estimator: Estimator, *, schema: str, name: str, release: str,
                      description: str | None = None, rows: int | None = None,
                      object_key: str = OBJECT_KEY) -> dict[str, Any]:
    """The ``tap_schema/`` YAML mapping of the PZ table."""
    text = description or (
        f"Photometric redshifts of the LSST Object catalog for release {release}, computed by the "
        f"pzvo pipeline with the {estimator.name} estimator version {estimator.version}. PDFs are "
        f"stored as quantiles (z_pdf) at the levels {', '.join(f'{q:g}' for q in LEVELS)}.")
    columns = []
    for col in output_columns(estimator, object_key):
        datatype, arraysize = col.datatype, col.arraysize
        entry: dict[str, Any] = {"name": col.name, "datatype": datatype, "description": col.description}
        for key in ("unit", "ucd"):
            if getattr(col, key):
                entry[key] = getattr(col, key)
        if arraysize:
            entry["arraysize"] = arraysize
            entry["pg_type"] = pg_type_for(datatype, arraysize)
        if col.principal:
            entry["principal"] = True
        if col.indexed:
            entry["indexed"] = True
        if col.name == object_key:
            entry["nullable"] = False
        columns.append(entry)
    raw: dict[str, Any] = {
        "schema": schema, "name": name, "description": text, "primary_key": [object_key],
        "position": {"ra": "ra", "dec": "dec"}, "columns": columns,
        "x_estimator": estimator.describe(), "x_release": release,
        "x_pdf": {"parameterization": "qp.quant", "quants": [float(q) for q in LEVELS], "column": "z_pdf"},
    }
    if rows is not None:
        raw["x_rows"] = int(rows)
    return raw


#: The Object catalog's table name at the RSP (dp02_dc2_catalogs.Object, dp1.Object).
OBJECT_TABLE = "Object"


def object_key_felis(table: str, column: str, object_key: str = "objectId") -> tuple[dict[str, Any], dict[str, Any]]:
    """The felis ``ForeignKey`` from ``table.column`` to the Object catalog's key, and the stub
    ``Object`` table it references.

    felis resolves ``referencedColumns`` by ``@id`` inside one document (its ``resources`` copy
    columns from another schema but are no reference targets), so the document carries a stub of
    the Object table with its key alone; the constraint is named as the RSP names its own
    (``fk_ForcedSource_Object`` in lsst/sdm_schemas dp1.yaml).  A federating site maps the stub to
    its Object table.
    """
    if table == OBJECT_TABLE:
        raise ValueError(f"a table named {OBJECT_TABLE} cannot reference the Object catalog in one felis document")
    constraint = {"name": f"fk_{table}_{OBJECT_TABLE}", "@id": f"#fk_{table}_{OBJECT_TABLE}", "@type": "ForeignKey",
                  "description": f"{column}: {OBJECT_KEY_DESCRIPTION}", "columns": [f"#{table}.{column}"],
                  "referencedColumns": [f"#{OBJECT_TABLE}.{object_key}"]}
    stub = {"name": OBJECT_TABLE, "@id": f"#{OBJECT_TABLE}",
            "description": ("Stub of the Rubin Object catalog (the RSP's Object table, e.g. dp1.Object): only its "
                            "key, which the foreign keys of this schema reference. It holds no data here; a "
                            "federating site maps it to its own Object table."),
            "primaryKey": f"#{OBJECT_TABLE}.{object_key}",
            "columns": [{"name": object_key, "@id": f"#{OBJECT_TABLE}.{object_key}", "datatype": "long",
                         "description": "Unique id of the Object catalog (its primary key).", "nullable": False,
                         "ivoa:ucd": OBJECT_KEY_UCD, "tap:principal": 1, "tap:column_index": 1}]}
    return constraint, stub


def to_felis(raw: dict[str, Any]) -> dict[str, Any]:
    """The table description as a felis schema document (one schema, one table, and the stub of
    the Object table when a column is the Object catalog's key: :func:`object_key_felis`)."""
    schema, table = raw["schema"], raw["name"]
    tid = f"#{table}"
    columns = []
    for i, col in enumerate(raw["columns"]):
        entry: dict[str, Any] = {"name": col["name"], "@id": f"{tid}.{col['name']}",
                                 "datatype": DATATYPES[col["datatype"]].felis,
                                 "description": col["description"], "nullable": col.get("nullable", True),
                                 "tap:principal": int(bool(col.get("principal"))), "tap:column_index": i + 1}
        if col.get("unit"):
            entry["ivoa:unit"] = col["unit"]
        if col.get("ucd"):
            entry["ivoa:ucd"] = col["ucd"]
        if col.get("arraysize"):
            entry["votable:arraysize"] = col["arraysize"]
            entry["postgresql:datatype"] = col["pg_type"].upper().replace("[]", "[]")
        columns.append(entry)
    indexes = [{"name": f"{table}_{c['name']}_idx", "@id": f"#{table}_{c['name']}_idx",
                "columns": [f"{tid}.{c['name']}"]}
               for c in raw["columns"] if c.get("indexed") and c["name"] not in raw["primary_key"]]
    main: dict[str, Any] = {"name": table, "@id": tid, "description": raw["description"],
                            "primaryKey": [f"{tid}.{k}" for k in raw["primary_key"]],
                            "tap:table_index": 1, "columns": columns, "indexes": indexes}
    tables = [main]
    key = next((c["name"] for c in raw["columns"] if c.get("ucd") == OBJECT_KEY_UCD), None)
    if key is not None:
        constraint, stub = object_key_felis(table, key)
        main["constraints"] = [constraint]
        tables.append({**stub, "tap:table_index": 2})
    return {
        "name": schema, "@id": f"#{schema}", "version": str(raw.get("x_release", "")) or None,
        "description": f"pzvo photo-z products ({raw.get('x_release', '')}).",
        "tables": tables,
    }


def validate_felis(document: dict[str, Any]) -> None:
    """Validate with lsst-felis's data model (what ``felis validate`` runs); raises on error."""
    from felis.datamodel import Schema  # noqa: PLC0415 - felis: 0.2 s (pydantic models), validation only

    Schema.model_validate(document)


def write_descriptions(out_dir: Path, raw: dict[str, Any]) -> tuple[Path, Path]:
    """Write the tap_schema YAML and the validated felis YAML; returns their paths."""
    qualified = f"{raw['schema']}.{raw['name']}"
    tap_path = out_dir / f"{qualified}.yaml"
    felis_path = out_dir / f"{qualified}.felis.yaml"
    felis_doc = {k: v for k, v in to_felis(raw).items() if v is not None}
    validate_felis(felis_doc)
    tap_path.write_text(yaml.safe_dump(raw, sort_keys=False, width=100))
    felis_path.write_text(yaml.safe_dump(felis_doc, sort_keys=False, width=100))
    return tap_path, felis_path
