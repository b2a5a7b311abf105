"""Column typing shared by all encoders.

Every encoder works from a ``ColumnEncoding``: the VOTable type the column is published with and a
normalised Arrow array whose physical layout matches it.  Keeping the type decision in one place
means a column reads back with the same type in every format.
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vo_service.core.columns import (
    DATATYPES,
    SCALAR_DATATYPES,
    STRING_DATATYPES,
    Column,
    datatype_for_arrow,
    parse_arraysize,
    xtype_for_arrow,
)

#: VOTable datatype -> Arrow type of its cells, for the fixed-width (non-string) datatypes.
NUMERIC_ARROW: dict[str, pa.DataType] = {name: DATATYPES[name].arrow_type for name in SCALAR_DATATYPES}
STRING_TYPES = tuple(sorted(STRING_DATATYPES))
#: The value that stands for NULL in an integer cell where a format needs one.
INT_NULL: dict[str, int] = {d.name: d.int_null for d in DATATYPES.values() if d.int_null is not None}


@dataclass(frozen=True)
class ColumnEncoding:
    """How one column is published: ``field`` is what the FIELD element says.

    ``kind`` is "scalar" (numeric or boolean), "array" (numeric array), or "string";
    ``count`` is the fixed number of elements (or characters) or None when variable.
    """

    field: Column
    kind: str
    count: int | None

    @property
    def datatype(self) -> str:
        return self.field.datatype

    @property
    def element_type(self) -> pa.DataType:
        return NUMERIC_ARROW.get(self.field.datatype, pa.string())

    @property
    def is_unicode(self) -> bool:
        return self.field.datatype == "unicodeChar"


def resolve_spec(field: Column, arrow_type: pa.DataType | None) -> ColumnEncoding:
    """Settle a column's published type from its declaration, falling back on the Arrow type."""
    datatype = field.datatype
    arraysize = field.arraysize
    xtype = field.xtype
    if datatype not in NUMERIC_ARROW and datatype not in STRING_TYPES:
        if arrow_type is None:
            datatype, arraysize = "char", "*"
        else:
            datatype, arraysize = datatype_for_arrow(arrow_type)
            xtype = xtype or xtype_for_arrow(arrow_type)
    if datatype in STRING_TYPES:
        if not arraysize or not arraysize.strip():
            arraysize = "*"
        _, count = parse_arraysize(arraysize)
        if arrow_type is not None and xtype is None:
            xtype = xtype_for_arrow(arrow_type)
        resolved = replace(field, datatype=datatype, arraysize=arraysize, xtype=xtype)
        return ColumnEncoding(resolved, "string", count)
    if datatype == "unsignedByte" and arraysize is None and arrow_type is not None and (
        pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type)
    ):
        arraysize = "*"
    is_array, count = parse_arraysize(arraysize)
    if datatype == "boolean" and is_array:
        resolved = replace(field, datatype="char", arraysize="*", xtype=xtype)
        return ColumnEncoding(resolved, "string", None)
    resolved = replace(field, datatype=datatype, arraysize=arraysize, xtype=xtype)
    return ColumnEncoding(resolved, "array" if is_array else "scalar", count)


def upgrade_non_ascii(spec: ColumnEncoding, array: pa.Array) -> ColumnEncoding:
    """Publish a ``char`` column as ``unicodeChar`` when its first batch is not pure ASCII.

    astropy (and so pyvo) decodes binary ``char`` cells as ASCII and fails on anything else.
    """
    if spec.kind != "string" or spec.datatype != "char" or len(array) == 0:
        return spec
    if pc.all(pc.fill_null(pc.string_is_ascii(array), True)).as_py():
        return spec
    return replace(spec, field=replace(spec.field, datatype="unicodeChar"))


_TS_TRAILING_ZEROS = r"\.?0+$"


def _timestamp_text(array: pa.Array) -> pa.Array:
    t = array.type
    if pa.types.is_date(t):
        return pc.cast(array, pa.string())
    if t.tz is not None:
        array = pc.cast(array, pa.timestamp(t.unit))
    text = pc.strftime(array, format="%Y-%m-%dT%H:%M:%S")
    if t.unit == "s":
        return text
    return pc.replace_substring_regex(text, _TS_TRAILING_ZEROS, "")


def as_string(array: pa.Array) -> pa.Array:
    """Any Arrow array as strings: ISO 8601 for times, space-separated values for lists.

    Types Arrow cannot cast (intervals, structs) fall back on Python's str per value.
    """
    t = array.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return array
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return _timestamp_text(array)
    if pa.types.is_dictionary(t):
        return as_string(pc.cast(array, t.value_type))
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        rebuilt = rebuild_list(array, pc.fill_null(as_string(array.values), ""))
        return pc.binary_join(rebuilt, " ")
    if pa.types.is_null(t):
        return pa.nulls(len(array), pa.string())
    try:
        return pc.cast(array, pa.string())
    except pa.ArrowNotImplementedError:
        return pa.array([None if v is None else str(v) for v in array.to_pylist()], pa.string())


def rebuild_list(array: pa.Array, values: pa.Array) -> pa.Array:
    """The list structure of ``array`` around new child ``values`` (of array.values' length)."""
    t = array.type
    mask = array.is_null() if array.null_count else None
    if pa.types.is_fixed_size_list(t):
        start = array.offset * t.list_size
        offsets = pa.array(np.arange(len(array) + 1, dtype=np.int32) * t.list_size)
        return pa.ListArray.from_arrays(offsets, values.slice(start, len(array) * t.list_size), mask=mask)
    cls = pa.LargeListArray if pa.types.is_large_list(t) else pa.ListArray
    offsets = pa.array(np.asarray(array.offsets))
    if mask is not None:
        return cls.from_arrays(offsets, values, mask=mask)
    return cls.from_arrays(offsets, values)


def normalize(array: pa.Array | pa.ChunkedArray, spec: ColumnEncoding) -> pa.Array:
    """Cast a result column to the layout its published type implies.

    Scalars become the VOTable type's Arrow type; arrays a list (or fixed-size list) of it;
    strings an Arrow string array, without trailing blanks when the arraysize is fixed (they
    are ``char(n)`` padding, which PostgreSQL itself drops when casting to text).  Raises when
    the data cannot be represented.
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if isinstance(array.type, pa.BaseExtensionType):
        array = array.storage
    if spec.kind == "string":
        text = as_string(array)
        text = text.cast(pa.string()) if pa.types.is_large_string(text.type) else text
        return pc.utf8_rtrim(text, characters=" ") if spec.count is not None else text
    target = spec.element_type
    t = array.type
    if spec.kind == "scalar":
        if pa.types.is_dictionary(t):
            array = pc.cast(array, t.value_type)
        if pa.types.is_boolean(target) and pa.types.is_string(array.type):
            return pc.is_in(pc.utf8_lower(array), pa.array(["t", "true", "1", "y", "yes"]))
        return array if array.type == target else pc.cast(array, target)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return _binary_to_list(array)
    if pa.types.is_fixed_size_list(t):
        if t.value_type == target:
            return array
        return pc.cast(array, pa.list_(target, t.list_size))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        if t.value_type == target:
            return array
        return pc.cast(array, pa.list_(target) if pa.types.is_list(t) else pa.large_list(target))
    if pa.types.is_null(t):
        return pa.nulls(len(array), pa.list_(target))
    raise TypeError(f"cannot publish Arrow type {t} as {spec.datatype} array")


def _binary_to_list(array: pa.Array) -> pa.Array:
    if pa.types.is_fixed_size_binary(array.type):
        width = array.type.byte_width
        data = np.frombuffer(array.buffers()[1], dtype=np.uint8)
        start = array.offset * width
        values = pa.array(data[start : start + width * len(array)])
        return pa.FixedSizeListArray.from_arrays(values, width, mask=array.is_null() if array.null_count else None)
    offsets, data = string_parts(array)
    values = pa.array(data[offsets[0] : offsets[-1]])
    rel = pa.array(offsets - offsets[0], pa.int64())
    mask = array.is_null() if array.null_count else None
    return pa.LargeListArray.from_arrays(rel, values, mask=mask)


def string_parts(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets as int64, data bytes) of a string or binary array; offsets index ``data``."""
    width = np.int64 if (pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type)) else np.int32
    n = len(array)
    bufs = array.buffers()
    if bufs[1] is None:
        return np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    offsets = np.frombuffer(bufs[1], dtype=width)[array.offset : array.offset + n + 1].astype(np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, dtype=np.uint8)
    return offsets, data


def list_parts(array: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(offsets as int64, child values) of a (fixed-size) list array; offsets index the child."""
    t = array.type
    if pa.types.is_fixed_size_list(t):
        size = t.list_size
        offsets = (np.arange(len(array) + 1, dtype=np.int64) + array.offset) * size
        return offsets, array.values
    return np.asarray(array.offsets, dtype=np.int64), array.values


def null_mask(array: pa.Array) -> np.ndarray:
    """Boolean numpy mask, True where the cell is NULL."""
    if array.null_count == 0:
        return np.zeros(len(array), dtype=bool)
    return np.asarray(array.is_null())


def ragged_lengths(offsets: np.ndarray, nulls: np.ndarray) -> np.ndarray:
    lengths = np.diff(offsets)
    if nulls.any():
        lengths = np.where(nulls, 0, lengths)
    return lengths


def gather_ragged(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenate ``data[starts[i]:starts[i]+lengths[i]]`` for every i without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return data[:0]
    if len(starts) and np.array_equal(starts[1:], starts[:-1] + lengths[:-1]):
        return data[starts[0] : starts[0] + total]
    ends = np.cumsum(lengths)
    index = np.arange(total, dtype=np.int64) + np.repeat(starts - (ends - lengths), lengths)
    return data[index]


def pad_ragged(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, width: int,
               fill: float | int) -> np.ndarray:
    """Rows of exactly ``width`` items from ragged slices, truncated or padded with ``fill``."""
    n = len(starts)
    out = np.full((n, width), fill, dtype=data.dtype)
    if width == 0 or n == 0:
        return out
    used = np.minimum(lengths, width)
    total = int(used.sum())
    if total:
        rows = np.repeat(np.arange(n), used)
        ends = np.cumsum(used)
        cols = np.arange(total, dtype=np.int64) - np.repeat(ends - used, used)
        out[rows, cols] = data[np.repeat(starts, used) + cols]
    return out


def unique_xml_ids(names: Sequence[str]) -> list[str]:
    """Valid, unique XML IDs derived from (possibly repeated) column names."""
    seen: set[str] = set()
    ids: list[str] = []
    for name in names:
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "col"
        if not re.match(r"[A-Za-z_]", base):
            base = "_" + base
        candidate = base
        for n in itertools.count(2):
            if candidate not in seen:
                break
            candidate = f"{base}_{n}"
        seen.add(candidate)
        ids.append(candidate)
    return ids


def unique_names(names: Sequence[str]) -> list[str]:
    """Names made unique case-insensitively by suffixing repeats: ``x``, ``x_2``, ``x_3``."""
    seen: set[str] = set()
    out = []
    for name in names:
        candidate, n = name, 1
        while candidate.lower() in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate.lower())
        out.append(candidate)
    return out


def peek(batches: Iterable[pa.RecordBatch]) -> tuple[pa.RecordBatch | None, Iterator[pa.RecordBatch]]:
    """The first non-empty batch (or None) and an iterator that still yields it."""
    iterator = iter(batches)
    skipped: list[pa.RecordBatch] = []
    for batch in iterator:
        skipped.append(batch)
        if batch.num_rows:
            return batch, itertools.chain(skipped, iterator)
    return (skipped[0] if skipped else None), iter(skipped)


def resolve_specs(
    fields: Sequence[Column], first: pa.RecordBatch | None, *, unicode_upgrade: bool = False
) -> list[ColumnEncoding]:
    """Specs for all columns, using the first batch's schema (and data) where declarations lack."""
    if first is not None and first.num_columns != len(fields):
        raise ValueError(f"{len(fields)} fields described but batches have {first.num_columns} columns")
    specs = []
    for i, field in enumerate(fields):
        spec = resolve_spec(field, first.schema.field(i).type if first is not None else None)
        if unicode_upgrade and first is not None and spec.kind == "string":
            spec = upgrade_non_ascii(spec, normalize(first.column(i), spec))
        specs.append(spec)
    return specs
