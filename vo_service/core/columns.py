"""The column model and the one datatype map every package shares.

A column is described once (:class:`Column`: name, VOTable datatype with arraysize and xtype,
unit, UCD, description, role ...) whether it comes from a ``tap_schema/`` YAML file, from
TAP_SCHEMA, from a user's file, from an upload, from an estimator or from a query's select list.
Its PostgreSQL, Arrow, numpy and felis types all derive from :data:`DATATYPES`, so adding a
datatype means adding one row here.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa

from vo_service.core.identifiers import pg_name


@dataclass(frozen=True)
class Datatype:
    """One VOTable datatype and what it is elsewhere.

    ``arrow_type`` is the layout the VOTable encoders write (``unsignedByte`` is ``uint8``);
    ``pg_arrow_type`` the Arrow type that binary COPY writes into the PostgreSQL column
    (``smallint`` for ``unsignedByte``, as PostgreSQL has no unsigned byte).  ``int_null`` is
    the value that stands for NULL where a format needs one (VOTable BINARY, FITS TNULL).
    ``value_bytes`` is PostgreSQL's storage per value (text: its header byte).
    """

    name: str
    pg_type: str
    arrow_type: pa.DataType
    pg_arrow_type: pa.DataType
    numpy_dtype: np.dtype
    felis: str
    value_bytes: int
    int_null: int | None = None

    @property
    def is_string(self) -> bool:
        return self.name in STRING_DATATYPES

    @property
    def is_numeric(self) -> bool:
        return self.name in NUMERIC_DATATYPES


DATATYPES: dict[str, Datatype] = {d.name: d for d in (
    Datatype("boolean", "boolean", pa.bool_(), pa.bool_(), np.dtype(bool), "boolean", 1),
    Datatype("unsignedByte", "smallint", pa.uint8(), pa.int16(), np.dtype(np.uint8), "byte", 2, 255),
    Datatype("short", "smallint", pa.int16(), pa.int16(), np.dtype(np.int16), "short", 2, -(2**15)),
    Datatype("int", "integer", pa.int32(), pa.int32(), np.dtype(np.int32), "int", 4, -(2**31)),
    Datatype("long", "bigint", pa.int64(), pa.int64(), np.dtype(np.int64), "long", 8, -(2**63)),
    Datatype("float", "real", pa.float32(), pa.float32(), np.dtype(np.float32), "float", 4),
    Datatype("double", "double precision", pa.float64(), pa.float64(), np.dtype(np.float64), "double", 8),
    Datatype("char", "text", pa.string(), pa.string(), np.dtype(object), "string", 1),
    Datatype("unicodeChar", "text", pa.string(), pa.string(), np.dtype(object), "unicode", 1),
)}
STRING_DATATYPES = frozenset({"char", "unicodeChar"})
#: Datatypes whose values are numbers or booleans (VOTable BINARY's fixed-width cells).
SCALAR_DATATYPES = frozenset(DATATYPES) - STRING_DATATYPES
#: Datatypes that hold numbers (what a redshift or a magnitude column may be).
NUMERIC_DATATYPES = frozenset({"short", "int", "long", "float", "double"})
#: PostgreSQL storage bytes per value, by PostgreSQL type (the loader's size estimate).
PG_VALUE_BYTES: dict[str, int] = {d.pg_type: d.value_bytes for d in DATATYPES.values()}

#: The Rubin Object catalog's key, ``objectId`` (64-bit), as the RSP describes it: its UCD is the
#: one lsst/sdm_schemas gives Object.objectId (python/lsst/sdm/schemas/dp02_dc2.yaml, commit
#: bbb8cfd, ``ivoa:ucd: meta.id;src;meta.main``; DP1's dp1.yaml says ``meta.id;src``).  A column
#: with this UCD (or named as the ``object_key_column`` setting) is the Object key of its table,
#: declared as a foreign key to the Object catalog in its description and felis export.
OBJECT_KEY_UCD = "meta.id;src;meta.main"
#: The Object catalog key's name at the RSP, the default of the ``object_key_column`` setting: the
#: name the Object key of every published table gets (TAP_SCHEMA lists it so; PostgreSQL stores
#: the regular identifier folded, ``objectid``, and ADQL finds it by either spelling).
OBJECT_KEY = "objectId"
OBJECT_KEY_DESCRIPTION = ("Rubin Object catalog key (objectId, 64-bit integer): foreign key to objectId "
                          "of the RSP's Object table.")


def parse_arraysize(arraysize: str | None) -> tuple[bool, int | None]:
    """(is_array, fixed element count or None when variable) for a VOTable arraysize."""
    if arraysize is None or arraysize.strip() == "":
        return False, None
    text = arraysize.strip()
    if text.endswith("*"):
        return True, None
    count = 1
    for part in text.split("x"):
        count *= int(part)
    return True, count


def pg_type_for(datatype: str, arraysize: str | None = None) -> str:
    """The PostgreSQL type of a column: fixed ``char(n)``, numeric arrays as ``type[]``."""
    base = DATATYPES[datatype]
    if base.is_string:
        if datatype == "char" and arraysize and arraysize.isdigit():
            return f"char({arraysize})"
        return base.pg_type
    is_array, _ = parse_arraysize(arraysize)
    return f"{base.pg_type}[]" if is_array else base.pg_type


def arrow_type_for(datatype: str, arraysize: str | None = None, *, for_pg: bool = False) -> pa.DataType:
    """The Arrow type that holds a column's values (``for_pg``: as binary COPY writes them)."""
    base = DATATYPES[datatype]
    scalar = base.pg_arrow_type if for_pg else base.arrow_type
    if base.is_string:
        return scalar
    is_array, count = parse_arraysize(arraysize)
    if not is_array:
        return scalar
    return pa.list_(scalar) if count is None else pa.list_(scalar, count)


def _storage(t: pa.DataType) -> pa.DataType:
    if isinstance(t, pa.BaseExtensionType):
        t = t.storage_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    return t


def datatype_for_arrow(t: pa.DataType) -> tuple[str, str | None]:
    """VOTable (datatype, arraysize) that publishes an Arrow type losslessly where it can
    (unsigned types widen; anything without a VOTable scalar becomes text)."""
    t = _storage(t)
    if pa.types.is_boolean(t):
        return "boolean", None
    if pa.types.is_uint8(t):
        return "unsignedByte", None
    if pa.types.is_int8(t) or pa.types.is_int16(t):
        return "short", None
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "int", None
    if pa.types.is_integer(t):
        return "long", None
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "float", None
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "double", None
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "unsignedByte", "*"
    if pa.types.is_fixed_size_binary(t):
        return "unsignedByte", str(t.byte_width)
    if pa.types.is_fixed_size_list(t):
        inner, _ = datatype_for_arrow(t.value_type)
        return (inner, str(t.list_size)) if inner in SCALAR_DATATYPES else ("char", "*")
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner, _ = datatype_for_arrow(t.value_type)
        return (inner, "*") if inner in SCALAR_DATATYPES else ("char", "*")
    return "char", "*"


def xtype_for_arrow(t: pa.DataType) -> str | None:
    """DALI xtype implied by an Arrow type (dates and times are ``timestamp``)."""
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "timestamp"
    return None


def storable_datatype(t: pa.DataType) -> str | None:
    """The datatype a file's scalar column is stored as in a product table, or None when it
    cannot be (nested, binary, temporal): unsigned integers widen to the next signed type."""
    t = _storage(t)
    if pa.types.is_boolean(t):
        return "boolean"
    if t in (pa.int8(), pa.uint8(), pa.int16()):
        return "short"
    if t in (pa.uint16(), pa.int32()):
        return "int"
    if t in (pa.uint32(), pa.int64()):
        return "long"
    if t in (pa.float16(), pa.float32()):
        return "float"
    if t == pa.float64():
        return "double"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "char"
    return None


@dataclass(frozen=True)
class Column:
    """One column as published: the same description for TAP_SCHEMA, VOTable FIELDs, DDL,
    Arrow/Parquet schemas, felis and product metadata.

    ``name`` is the name users write in ADQL (delimited, ``"size"``, when it is not a regular
    identifier); ``db_name`` the column's name in PostgreSQL when it is not simply ``name``
    without its quotes (uploads store ``c0, c1, ...``).  ``role`` says what the column means to
    the PZ tools (``ra``, ``redshift``, ``mag_i`` ...); ``original_name`` is its name in the
    file it was read from.  ``pg_type`` overrides the PostgreSQL type derived from the
    datatype (``double precision[]`` for a quantile array, say).
    """

    name: str
    datatype: str
    arraysize: str | None = None
    xtype: str | None = None
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    description: str | None = None
    principal: bool = False
    indexed: bool = False
    std: bool = False
    nullable: bool = True
    column_index: int | None = None
    size: int | None = None
    db_name: str | None = None
    pg_type: str | None = None
    role: str | None = None
    original_name: str | None = None

    @classmethod
    def from_arrow(cls, name: str, arrow_type: pa.DataType, **meta: Any) -> Column:
        """A column for data of a given Arrow type (estimator outputs, query results)."""
        datatype, arraysize = datatype_for_arrow(arrow_type)
        meta.setdefault("xtype", xtype_for_arrow(arrow_type))
        return cls(name=name, datatype=datatype, arraysize=arraysize, **meta)

    @property
    def sql_name(self) -> str:
        """The column's identifier in PostgreSQL (unquoted): a regular name folds to lower case."""
        return self.db_name or pg_name(self.name)

    @property
    def sql_type(self) -> str:
        return self.pg_type or pg_type_for(self.datatype, self.arraysize)

    @property
    def arrow_type(self) -> pa.DataType:
        """The Arrow type of the column's values as the encoders and Parquet files hold them."""
        return arrow_type_for(self.datatype, self.arraysize)

    @property
    def pg_arrow_type(self) -> pa.DataType:
        """The Arrow type binary COPY writes into this column's PostgreSQL type."""
        return arrow_type_for(self.datatype, self.arraysize, for_pg=True)

    @property
    def felis_datatype(self) -> str:
        if self.datatype == "char" and self.arraysize and self.arraysize.isdigit():
            return "char"
        return DATATYPES[self.datatype].felis

    def with_(self, **changes: Any) -> Column:
        """A copy with some attributes changed (the column model is immutable)."""
        return replace(self, **changes)
