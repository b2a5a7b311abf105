"""CSV (RFC 4180, via Arrow's C++ CSV writer) and TSV encoders.

Neither format can say that a result is incomplete, so a database error after the first rows
is raised at the end of the stream (see :meth:`ResultStatus.raise_failure`).

CSV: header line of column names, CRLF line ends, every string value quoted (so an empty
string is ``""`` and NULL an empty field), numbers unquoted with shortest round-trip text,
booleans ``true``/``false``, arrays as their elements separated by single spaces (a NULL
element as ``nan`` or the integer null sentinel, as TABLEDATA writes it).
TSV: tab-separated, LF line ends, nothing quoted; backslash, tab, CR and LF inside values are
written as ``\\\\``, ``\\t``, ``\\r``, ``\\n``; NULL is an empty field (so is an empty string).

A single-column table is the exception: there an empty field is an empty line, which every
common reader (pandas, astropy, pyarrow) skips, so rows would vanish without an error.  CSV then
writes NULL as ``""`` (as DaCHS does: readers take it for NULL, or for the empty string, which
is also ``""``) and TSV writes ``N/A`` for an empty cell (NULL, ``""``, an empty array), as
DaCHS's TSV writes NULL and as pandas and pyarrow read NULL by default.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from vo_service.core.columns import Column
from vo_service.tap.formats._columns import (
    ColumnEncoding,
    normalize,
    peek,
    resolve_specs,
)
from vo_service.tap.formats._textcells import cell_text, join_rows, quote_csv
from vo_service.tap.formats._votable import NO_INFOS
from vo_service.tap.results import ResultStatus

_CSV_OPTIONS = pcsv.WriteOptions(include_header=False, eol="\r\n", quoting_style="needed")
#: What a single-column TSV writes for an empty cell, so that the row is not a blank line.
TSV_EMPTY_SINGLE = "N/A"


def _csv_name(name: str) -> str:
    if any(c in name for c in ',"\r\n') or name != name.strip():
        return '"' + name.replace('"', '""') + '"'
    return name


def _csv_column(array: pa.Array, spec: ColumnEncoding) -> pa.Array:
    """Arrays as one field of space-separated elements (NULL elements as in TSV and TABLEDATA)."""
    if spec.kind == "array":
        return cell_text(array, spec, "csv")
    return array


def encode_csv(
    fields: Sequence[Column],
    batches: Iterable[pa.RecordBatch],
    status: ResultStatus,
    *,
    infos: Mapping[str, str] = NO_INFOS,
) -> Iterator[bytes]:
    """Stream CSV; the header comes first, each batch is one chunk."""
    first, batches = peek(batches)
    specs = resolve_specs(fields, first)
    yield (",".join(_csv_name(f.name) for f in fields) + "\r\n").encode("utf-8")
    names = [f"c{i}" for i in range(len(specs))]
    for batch in batches:
        if not batch.num_rows:
            continue
        columns = [_csv_column(normalize(batch.column(i), s), s) for i, s in enumerate(specs)]
        if len(columns) == 1:
            yield _csv_single_column(columns[0], specs[0])
            continue
        sink = pa.BufferOutputStream()
        pcsv.write_csv(pa.record_batch(columns, names=names), sink, _CSV_OPTIONS)
        yield sink.getvalue().to_pybytes()
    status.raise_failure()


def _csv_single_column(array: pa.Array, spec: ColumnEncoding) -> bytes:
    """The rows of a one-column table, with NULL as ``""`` so that no row is an empty line.

    The cell text is what Arrow's CSV writer makes (it casts with the same kernel and quotes
    every string), so the output differs from the general path only in the NULLs.
    """
    if spec.kind == "scalar":
        text = cell_text(array, spec, "csv")
    else:
        text = quote_csv(array)
    return join_rows([pc.fill_null(text, '""')], "", "", "\r\n")


def _tsv_name(name: str) -> str:
    return name.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def encode_tsv(
    fields: Sequence[Column],
    batches: Iterable[pa.RecordBatch],
    status: ResultStatus,
    *,
    infos: Mapping[str, str] = NO_INFOS,
) -> Iterator[bytes]:
    """Stream TSV; the header comes first, each batch is one chunk."""
    first, batches = peek(batches)
    specs = resolve_specs(fields, first)
    yield ("\t".join(_tsv_name(f.name) for f in fields) + "\n").encode("utf-8")
    for batch in batches:
        cells = [cell_text(normalize(batch.column(i), s), s, "tsv") for i, s in enumerate(specs)]
        if len(cells) == 1:
            cells = [pc.if_else(pc.fill_null(pc.equal(cells[0], ""), True), TSV_EMPTY_SINGLE, cells[0])]
        chunk = join_rows(cells, "\t", "", "\n")
        if chunk:
            yield chunk
    status.raise_failure()
