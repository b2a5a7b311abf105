"""Parquet encoder: pyarrow's ParquetWriter writing into a sink drained after every batch.

Each batch becomes one row group.  Column names are the output names, repeats suffixed
(``x``, ``x_2``) with the original in the field metadata ``name``; the VOTable metadata
(datatype, arraysize, xtype, unit, ucd, utype, description) is Arrow field metadata.
Overflow and the row count go into the file's key-value metadata (``pzvo.overflow``,
``pzvo.rows``), written with the footer after the last batch, as are the ``infos``
(``pzvo.info.<name>``).  For every string column the Arrow schema's metadata gets astropy's
``table::len::<name>`` (the longest value in characters, at least 4): astropy's Parquet
reader sizes its fixed-width string columns from it, and without it fails on a NULL string.
A database error after the first rows is raised before the footer, so no reader takes the
rows sent so far for a whole file.
"""
from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vo_service.core.columns import Column
from vo_service.tap.formats._columns import (
    ColumnEncoding,
    normalize,
    peek,
    resolve_specs,
    unique_names,
)
from vo_service.tap.formats._votable import NO_INFOS
from vo_service.tap.results import ResultStatus

if TYPE_CHECKING:
    from typing_extensions import Buffer

#: astropy's reader turns a NULL string into the text "None" cut to the column width; a
#: width of at least 4 shows it whole instead of as a plausible-looking "N".
_ASTROPY_NULL_WIDTH = 4
_META_KEYS = ("datatype", "arraysize", "xtype", "unit", "ucd", "utype", "description")


class _DrainSink:
    """A write-only file object whose bytes are taken away as they accumulate."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: Buffer) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def drain(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def _parquet_type(spec: ColumnEncoding, arrow_type: pa.DataType | None) -> pa.DataType:
    """Arrow type written: times stay native Parquet timestamps, the rest follows the spec."""
    if arrow_type is not None and spec.field.xtype == "timestamp" and (
        pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type)
    ):
        return arrow_type
    if spec.kind == "string":
        return pa.string()
    if spec.kind == "scalar":
        return spec.element_type
    if spec.count is not None:
        return pa.list_(spec.element_type, spec.count)
    return pa.large_list(spec.element_type) if spec.datatype == "unsignedByte" else pa.list_(spec.element_type)


def _schema(specs: list[ColumnEncoding], first: pa.RecordBatch | None) -> pa.Schema:
    """Output names made unique (``x``, ``x_2``; readers such as pq.read_table reject repeats)."""
    fields = []
    for i, (spec, name) in enumerate(zip(specs, unique_names([s.field.name for s in specs]), strict=True)):
        meta = {k: str(getattr(spec.field, k)) for k in _META_KEYS if getattr(spec.field, k)}
        if name != spec.field.name:
            meta["name"] = spec.field.name
        arrow_type = first.schema.field(i).type if first is not None else None
        fields.append(pa.field(name, _parquet_type(spec, arrow_type), metadata=meta))
    return pa.schema(fields)


def _stored_schema(schema: pa.Schema) -> str:
    """The ``ARROW:schema`` footer value, as the writer makes it (base64 of the IPC schema).

    The writer stores the schema it was opened with; string lengths are known only after the
    last batch, and readers (``pq.read_schema``, so astropy) take the schema's metadata from
    this value alone, so it is replaced when the footer is written.
    """
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def _column(array: pa.Array, spec: ColumnEncoding, target: pa.DataType) -> pa.Array:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.type == target and not (spec.kind == "string" and spec.count is not None):
        return array
    if pa.types.is_timestamp(target) or pa.types.is_date(target):
        return array.cast(target)
    values = normalize(array, spec)
    return values if values.type == target else values.cast(target)


def encode_parquet(
    fields: Sequence[Column],
    batches: Iterable[pa.RecordBatch],
    status: ResultStatus,
    *,
    infos: Mapping[str, str] = NO_INFOS,
) -> Iterator[bytes]:
    """Stream a Parquet file; the footer (with the overflow flag) is the last chunk."""
    first, batches = peek(batches)
    specs = resolve_specs(fields, first)
    schema = _schema(specs, first)
    sink = _DrainSink()
    writer = pq.ParquetWriter(sink, schema, compression="snappy")
    rows = 0
    strings = [i for i, f in enumerate(schema) if pa.types.is_string(f.type)]
    longest = dict.fromkeys(strings, _ASTROPY_NULL_WIDTH)
    try:
        for batch in batches:
            if not batch.num_rows:
                continue
            columns = [_column(batch.column(i), s, schema.field(i).type) for i, s in enumerate(specs)]
            for i in strings:
                length = pc.max(pc.utf8_length(columns[i])).as_py()
                longest[i] = max(longest[i], length or 0)
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=schema))
            rows += batch.num_rows
            chunk = sink.drain()
            if chunk:
                yield chunk
        status.raise_failure()
        meta = {"pzvo.overflow": "true" if status.overflow else "false", "pzvo.rows": str(rows)}
        lengths = {f"table::len::{schema.field(i).name}": str(n) for i, n in longest.items()}
        if lengths:
            meta["ARROW:schema"] = _stored_schema(schema.with_metadata(lengths))
        meta.update({f"pzvo.info.{k}": str(v) for k, v in {**infos, **status.infos}.items()})
        writer.add_key_value_metadata(meta)
    finally:
        writer.close()
    tail = sink.drain()
    if tail:
        yield tail
