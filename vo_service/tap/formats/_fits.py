"""FITS encoder: an empty primary HDU and one BINTABLE, with the table bytes built by numpy.

A BINTABLE header needs the row count (NAXIS2), the string widths and the heap size before the
first row, so batches are first spooled as normalised Arrow IPC to a ``SpooledTemporaryFile``
(memory up to 32 MiB, then disk), collecting those sizes.  The header (astropy's ``Header``,
for card formatting only) is then written and the spool is re-read batch by batch into
big-endian rows; variable-length arrays go to a second spool that becomes the heap.
astropy's table writer was not used because it needs the whole table in memory.

Types: boolean L (NULL = 0 byte), unsignedByte B, short I, int J, long K (NULL = TNULLn, the
VOTable BINARY sentinel), float E, double D (NULL = NaN), strings nA with n the longest UTF-8
value (NULL and empty are both blank), fixed arrays nE/nD..., variable arrays PD(max)
etc. on the heap (no TNULLn there: astropy cannot read a variable-length array column that has
one, so a NULL element is the sentinel number).  UCDs and descriptions are in TUCDn/TCOMMn,
overflow in the OVERFLOW keyword.
Because nothing is written before the spool is complete, a database error while spooling is
raised before the first byte (a sync request then gets a DALI error, not a short file).
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from astropy.io import fits

from vo_service.core.columns import Column
from vo_service.tap.formats._binary import (
    BIG_ENDIAN,
    Segment,
    assemble_rows,
    numeric_values,
    to_big_endian,
)
from vo_service.tap.formats._columns import (
    INT_NULL,
    ColumnEncoding,
    gather_ragged,
    list_parts,
    normalize,
    null_mask,
    pad_ragged,
    peek,
    ragged_lengths,
    resolve_specs,
    string_parts,
    unique_names,
)
from vo_service.tap.formats._votable import NO_INFOS
from vo_service.tap.results import ResultStatus

BLOCK = 2880
SPOOL_MEMORY = 32 * 2**20
_TFORM = {"boolean": "L", "unsignedByte": "B", "short": "I", "int": "J", "long": "K", "float": "E", "double": "D"}


def _canonical(spec: ColumnEncoding) -> pa.DataType:
    if spec.kind == "string":
        return pa.large_string()
    if spec.kind == "scalar":
        return spec.element_type
    return pa.large_list(spec.element_type)


class _Sizes:
    """What pass one learns: rows, longest string/array per column, heap bytes."""

    def __init__(self, n: int) -> None:
        self.rows = 0
        self.longest = [0] * n
        self.heap = 0


def _spool(specs: list[ColumnEncoding], batches: Iterable[pa.RecordBatch],
           spool: IO[bytes]) -> _Sizes:
    schema = pa.schema([pa.field(f"c{i}", _canonical(s)) for i, s in enumerate(specs)])
    sizes = _Sizes(len(specs))
    with pa.ipc.new_stream(spool, schema) as writer:
        for batch in batches:
            if not batch.num_rows:
                continue
            arrays = []
            for i, spec in enumerate(specs):
                array = normalize(batch.column(i), spec)
                array = array if array.type == schema.field(i).type else array.cast(schema.field(i).type)
                arrays.append(array)
                if spec.kind == "string":
                    longest = pc.max(pc.binary_length(array)).as_py() or 0
                elif spec.kind == "array":
                    longest = pc.max(pc.list_value_length(array)).as_py() or 0
                    if spec.count is None:
                        itemsize = np.dtype(BIG_ENDIAN[spec.datatype]).itemsize
                        sizes.heap += int(pc.sum(pc.list_value_length(array)).as_py() or 0) * itemsize
                else:
                    longest = 1
                sizes.longest[i] = max(sizes.longest[i], longest)
            writer.write_batch(pa.record_batch(arrays, schema=schema))
            sizes.rows += batch.num_rows
    return sizes


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def _column_form(spec: ColumnEncoding, longest: int) -> tuple[str, int]:
    """(TFORM, bytes per row)."""
    if spec.kind == "string":
        width = max(1, longest)
        return f"{width}A", width
    code = _TFORM[spec.datatype]
    itemsize = np.dtype(BIG_ENDIAN[spec.datatype]).itemsize
    if spec.kind == "scalar":
        return code, itemsize
    if spec.count is not None:
        return f"{spec.count}{code}", spec.count * itemsize
    return f"P{code}({longest})", 8


def _headers(
    specs: list[ColumnEncoding], sizes: _Sizes, status: ResultStatus, infos: Mapping[str, str]
) -> tuple[bytes, list[int]]:
    primary = fits.Header()
    primary["SIMPLE"] = True
    primary["BITPIX"] = 8
    primary["NAXIS"] = 0
    primary["EXTEND"] = True
    forms = [_column_form(s, sizes.longest[i]) for i, s in enumerate(specs)]
    table = fits.Header()
    table["XTENSION"] = "BINTABLE"
    table["BITPIX"] = 8
    table["NAXIS"] = 2
    table["NAXIS1"] = sum(width for _, width in forms)
    table["NAXIS2"] = sizes.rows
    table["PCOUNT"] = sizes.heap
    table["GCOUNT"] = 1
    table["TFIELDS"] = len(specs)
    names = unique_names([_ascii(s.field.name) for s in specs])
    for n, (spec, name, (form, _)) in enumerate(zip(specs, names, forms, strict=True), 1):
        f = spec.field
        table[f"TTYPE{n}"] = name
        table[f"TFORM{n}"] = form
        if f.unit:
            table[f"TUNIT{n}"] = _ascii(f.unit)
        if spec.datatype in INT_NULL and (spec.kind == "scalar" or (spec.kind == "array" and spec.count)):
            table[f"TNULL{n}"] = INT_NULL[spec.datatype]
        if f.ucd:
            table[f"TUCD{n}"] = _ascii(f.ucd)
        if f.description:
            table[f"TCOMM{n}"] = _ascii(f.description)
    table["EXTNAME"] = "RESULTS"
    table["OVERFLOW"] = (bool(status.overflow), "more rows matched than were returned (MAXREC)")
    for name, value in {**infos, **status.infos}.items():
        table.add_comment(_ascii(f"{name}: {value}"))
    return primary.tostring().encode("ascii") + table.tostring().encode("ascii"), [w for _, w in forms]


def _rows(specs: list[ColumnEncoding], widths: list[int], batch: pa.RecordBatch,
          heap: IO[bytes], heap_at: int) -> tuple[bytes, int]:
    segments = []
    for i, spec in enumerate(specs):
        array = batch.column(i)
        nulls = null_mask(array)
        if spec.kind == "string":
            offsets, data = string_parts(array)
            lengths = ragged_lengths(offsets, nulls)
            segments.append(Segment(pad_ragged(data, offsets[:-1], lengths, widths[i], 0).reshape(-1), width=widths[i]))
        elif spec.kind == "scalar":
            values = numeric_values(array, spec.datatype)
            if spec.datatype == "boolean" and array.null_count:
                values[nulls] = 0
            segments.append(Segment(to_big_endian(values, spec.datatype), width=widths[i]))
        else:
            offsets, child = list_parts(array)
            values = numeric_values(child, spec.datatype)
            lengths = ragged_lengths(offsets, nulls)
            if spec.count is not None:
                padded = pad_ragged(values, offsets[:-1], lengths, spec.count, _fill(spec.datatype))
                segments.append(Segment(to_big_endian(padded, spec.datatype), width=widths[i]))
                continue
            itemsize = np.dtype(BIG_ENDIAN[spec.datatype]).itemsize
            payload = to_big_endian(gather_ragged(values, offsets[:-1], lengths), spec.datatype)
            starts = np.zeros(len(lengths), dtype=np.int64)
            np.cumsum(lengths[:-1] * itemsize, out=starts[1:])
            descriptors = np.empty((len(lengths), 2), dtype=">i4")
            descriptors[:, 0] = lengths
            descriptors[:, 1] = starts + heap_at
            segments.append(Segment(descriptors.reshape(-1).view(np.uint8), width=8))
            heap.write(payload.tobytes())
            heap_at += len(payload)
    return assemble_rows(batch.num_rows, segments).tobytes(), heap_at


def _fill(datatype: str) -> float | int:
    if datatype in ("float", "double"):
        return float("nan")
    return 0 if datatype == "boolean" else INT_NULL[datatype]


def encode_fits(
    fields: Sequence[Column],
    batches: Iterable[pa.RecordBatch],
    status: ResultStatus,
    *,
    infos: Mapping[str, str] = NO_INFOS,
) -> Iterator[bytes]:
    """Spool the batches, then stream primary header, BINTABLE header, rows, heap and padding."""
    first, batches = peek(batches)
    specs = resolve_specs(fields, first)
    with tempfile.SpooledTemporaryFile(SPOOL_MEMORY) as spool, tempfile.SpooledTemporaryFile(SPOOL_MEMORY) as heap:
        sizes = _spool(specs, batches, spool)
        status.raise_failure()
        header, widths = _headers(specs, sizes, status, infos)
        yield header
        spool.seek(0)
        written = 0
        heap_at = 0
        for batch in pa.ipc.open_stream(spool):
            chunk, heap_at = _rows(specs, widths, batch, heap, heap_at)
            written += len(chunk)
            yield chunk
        heap.seek(0)
        while block := heap.read(2**20):
            written += len(block)
            yield block
        if written % BLOCK:
            yield bytes(BLOCK - written % BLOCK)
