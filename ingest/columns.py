"""Column planning: safe SQL names, types, units, UCDs and the roles PZ products need.

A product's columns come from its file (names, Arrow types, units/UCDs where the format has
them) and from the request (roles, units, descriptions).  A *role* says what a column means to
the PZ tools (``ra``, ``redshift``, ``mag_i`` ...) and implies its IVOA UCD, so a user who says
"this is the redshift" gets ``src.redshift`` in TAP_SCHEMA without knowing UCDs.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from ingest.readers import SourceColumn
from vo_service.core.columns import (
    NUMERIC_DATATYPES,
    OBJECT_KEY,
    OBJECT_KEY_DESCRIPTION,
    OBJECT_KEY_UCD,
    Column,
    storable_datatype,
)
from vo_service.core.identifiers import is_reserved

BANDS = ("u", "g", "r", "i", "z", "y")
_BAND_UCD = {"u": "em.opt.U", "g": "em.opt.B", "r": "em.opt.R", "i": "em.opt.I", "z": "em.opt.I",
             "y": "em.IR.NIR"}

#: role -> (UCD, unit it implies or None).
ROLES: dict[str, tuple[str, str | None]] = {
    "id": ("meta.id;meta.main", None),
    # the Rubin Object catalog's key (objectId) in a table that references the Object catalog
    "object_id": (OBJECT_KEY_UCD, None),
    "ra": ("pos.eq.ra;meta.main", "deg"),
    "dec": ("pos.eq.dec;meta.main", "deg"),
    "redshift": ("src.redshift", None),
    "redshift_err": ("stat.error;src.redshift", None),
    "photoz": ("src.redshift.phot", None),
    "photoz_err": ("stat.error;src.redshift.phot", None),
    "quality_flag": ("meta.code.qual;src.redshift", None),
    "survey": ("meta.dataset", None),
    "odds": ("stat.likelihood;src.redshift.phot", None),
}
for _b in BANDS:
    ROLES[f"mag_{_b}"] = (f"phot.mag;{_BAND_UCD[_b]}", "mag")
    ROLES[f"magerr_{_b}"] = (f"stat.error;phot.mag;{_BAND_UCD[_b]}", "mag")
    ROLES[f"flux_{_b}"] = (f"phot.flux;{_BAND_UCD[_b]}", "nJy")
    ROLES[f"fluxerr_{_b}"] = (f"stat.error;phot.flux;{_BAND_UCD[_b]}", "nJy")

_IDENT = re.compile(r"[^a-z0-9_]+")
#: What column metadata may say.
METADATA_KEYS = ("name", "role", "unit", "ucd", "description")
#: Roles whose column may hold something other than numbers.
NON_NUMERIC_ROLES = frozenset({"id", "survey", "quality_flag"})
#: Datatypes an Object key (role ``object_id``) may be stored as.
INTEGER_DATATYPES = frozenset({"short", "int", "long"})


class ColumnError(ValueError):
    """Columns that cannot be published as they are; ``problems`` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def specs_for_description(columns: Iterable[Column]) -> list[Column]:
    """The columns of a table described in ``tap_schema/`` YAML, named as stored (to load it
    with :func:`ingest.load.copy_arrow`)."""
    return [c.with_(name=c.sql_name, original_name=c.sql_name) for c in columns]


def normalize_name(original: str) -> str:
    """A regular ADQL/SQL identifier for a file's column name (lower case, ``[a-z0-9_]``)."""
    name = _IDENT.sub("_", original.strip().lower()).strip("_")
    if not name:
        return "col"
    return f"c_{name}" if name[0].isdigit() else name


def plan_columns(columns: list[SourceColumn], overrides: dict[str, dict] | None = None, *,
                 object_key: str = OBJECT_KEY) -> list[Column]:
    """Decide each column's published name, type and metadata; report every problem at once.

    ``overrides`` maps a file column name (or its normalized name) to any of ``name``,
    ``role``, ``unit``, ``ucd``, ``description``.  A role fills the UCD (and the unit when the
    file has none); an explicit UCD or unit wins over the role's.  The column with the role
    ``object_id`` is published as ``object_key`` (the RSP's ``objectId``, the
    ``object_key_column`` setting) unless the metadata names it, so that every table keyed by
    the Object catalog spells its key as the RSP does.
    """
    overrides = {k: v for k, v in (overrides or {}).items()}
    problems: list[str] = []
    specs: list[Column] = []
    seen: dict[str, str] = {}
    known = {c.name for c in columns} | {normalize_name(c.name) for c in columns}
    for key in overrides:
        if key not in known:
            problems.append(f"metadata names a column {key!r} that the file does not have")
    for key, meta in overrides.items():
        for item, value in meta.items():
            if item not in METADATA_KEYS:
                problems.append(f"column {key!r}: unknown metadata {item!r} (known: {', '.join(METADATA_KEYS)})")
            elif value is not None and not isinstance(value, str):
                problems.append(f"column {key!r}: {item} must be a string, not {type(value).__name__}")
    for col in columns:
        meta = overrides.get(col.name) or overrides.get(normalize_name(col.name)) or {}
        meta = {k: v for k, v in meta.items() if k in METADATA_KEYS and (v is None or isinstance(v, str))}
        name = meta.get("name") or (object_key if meta.get("role") == "object_id" else normalize_name(col.name))
        if normalize_name(name) != name and name != object_key:
            problems.append(f"column name {name!r} is not a plain identifier ([a-z][a-z0-9_]*)")
        if is_reserved(name):
            problems.append(f"column {col.name!r} would be named {name!r}, an SQL/ADQL reserved "
                            f"word; rename it (e.g. {name}_) in the column metadata")
        if name.lower() in seen:
            problems.append(f"columns {seen[name.lower()]!r} and {col.name!r} both become {name!r}; "
                            "rename one in the column metadata")
        seen[name.lower()] = col.name
        datatype = storable_datatype(col.type)
        if datatype is None:
            problems.append(f"column {col.name!r} has type {col.type}, which cannot be published "
                            "(numbers, booleans and strings can)")
            continue
        role = meta.get("role")
        if role is not None and role not in ROLES:
            problems.append(f"column {col.name!r}: unknown role {role!r} (known: {', '.join(sorted(ROLES))})")
            role = None
        if role == "object_id" and datatype not in INTEGER_DATATYPES:
            problems.append(f"column {col.name!r} has the role 'object_id' but holds {datatype} values; "
                            "the Object key is a 64-bit integer")
        elif role is not None and role not in NON_NUMERIC_ROLES and datatype not in NUMERIC_DATATYPES:
            problems.append(f"column {col.name!r} has the role {role!r} but holds {datatype} values; "
                            "it must hold numbers")
        role_ucd, role_unit = ROLES.get(role, (None, None)) if role else (None, None)
        specs.append(Column(
            name=name, original_name=col.name, datatype=datatype,
            arraysize="*" if datatype == "char" else None, unit=meta.get("unit") or col.unit or role_unit,
            ucd=meta.get("ucd") or role_ucd or col.ucd,
            description=meta.get("description") or col.description
            or (OBJECT_KEY_DESCRIPTION if role == "object_id" else None),
            role=role))
    roles = [s.role for s in specs if s.role]
    for role in {r for r in roles if roles.count(r) > 1}:
        problems.append(f"role {role!r} is given to more than one column")
    if problems:
        raise ColumnError(problems)
    return specs


def with_roles(specs: list[Column], roles: dict[str, str]) -> list[Column]:
    """Assign roles to already planned columns (by published name)."""
    return [replace(s, role=roles.get(s.name, s.role),
                    ucd=ROLES[roles[s.name]][0] if s.name in roles else s.ucd) for s in specs]


def column_for_role(specs: list[Column], role: str) -> Column | None:
    return next((s for s in specs if s.role == role), None)
