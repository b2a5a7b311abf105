"""Parquet encoder: pyarrow's ParquetWriter writing into a sink drained after every batch.

Each batch becomes one row group.  Column names are the output names, repeats suffixed
(``x``, ``x_2``) with the original in the field metadata ``name``; the VOTable metadata (datatype, arraysize, xtype, unit, ucd, utype,
description) is Arrow field metadata.  Overflow and the row count go into the file's
key-value metadata (``pzvo.overflow``, ``pzvo.rows``), written with the footer after the last
batch, as are the ``infos`` (``pzvo.info.<name>``).  A database error after the first rows
is raised before the footer, so no reader takes the rows sent so far for a whole file.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from vo_service.tap.formats._columns import ColumnSpec, normalize, peek, resolve_specs, unique_names
from vo_service.tap.formats._votable import NO_INFOS
from vo_service.tap.results import ResultField, ResultStatus

_META_KEYS = ("datatype", "arraysize", "xtype", "unit", "ucd", "utype", "description")


class _DrainSink:
    """A write-only file object whose bytes are taken away as they accumulate."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data) -> int:
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


def _parquet_type(spec: ColumnSpec, arrow_type: pa.DataType | None) -> pa.DataType:
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


def _schema(specs: list[ColumnSpec], first: pa.RecordBatch | None) -> pa.Schema:
    """Output names made unique (``x``, ``x_2``; readers such as pq.read_table reject repeats)."""
    fields = []
    for i, (spec, name) in enumerate(zip(specs, unique_names([s.field.name for s in specs]))):
        meta = {k: str(getattr(spec.field, k)) for k in _META_KEYS if getattr(spec.field, k)}
        if name != spec.field.name:
            meta["name"] = spec.field.name
        arrow_type = first.schema.field(i).type if first is not None else None
        fields.append(pa.field(name, _parquet_type(spec, arrow_type), metadata=meta))
    return pa.schema(fields)


def _column(array: pa.Array, spec: ColumnSpec, target: pa.DataType) -> pa.Array:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.type == target:
        return array
    if pa.types.is_timestamp(target) or pa.types.is_date(target):
        return array.cast(target)
    values = normalize(array, spec)
    return values if values.type == target else values.cast(target)


def encode_parquet(
    fields: Sequence[ResultField],
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
    try:
        for batch in batches:
            if not batch.num_rows:
                continue
            columns = [_column(batch.column(i), s, schema.field(i).type) for i, s in enumerate(specs)]
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=schema))
            rows += batch.num_rows
            chunk = sink.drain()
            if chunk:
                yield chunk
        status.raise_failure()
        meta = {"pzvo.overflow": "true" if status.overflow else "false", "pzvo.rows": str(rows)}
        meta.update({f"pzvo.info.{k}": str(v) for k, v in {**infos, **status.infos}.items()})
        writer.add_key_value_metadata(meta)
    finally:
        writer.close()
    tail = sink.drain()
    if tail:
        yield tail
