"""Readers for product files: Parquet, CSV/TSV, FITS binary tables, VOTable and HDF5.

Each reader opens a file, reports its Arrow schema and per-column metadata (unit, UCD,
description, as far as the format carries them) and then streams record batches, so a file
larger than memory can be loaded: Parquet page by page, CSV block by block, FITS from a memory
map, HDF5 slice by slice.  VOTable is parsed whole by astropy (and so is gzip-compressed FITS),
which is fine for the lightweight products they carry and is documented.  Malformed input raises
:class:`ReadError` with a message that names the file, the problem and where it is.

What a file *declares* is checked against :class:`~ingest.limits.ReadLimits` before anything it
announces is allocated (rows, columns, cell sizes, the parsed size of whole-file formats), and
batches are sized in bytes as well as rows, so that memory stays bounded whatever the file says.
"""
from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml
from astropy.io import fits
from astropy.io.votable import parse_single_table
from astropy.table import Table
from astropy.table import meta as table_meta

from ingest.errors import LimitExceeded, ReadError
from ingest.limits import Limit, ReadLimits, check
from ingest.votable_scan import scan_votable

if TYPE_CHECKING:
    import h5py

__all__ = ["BATCH_BYTES", "BATCH_ROWS", "FORMATS", "LimitExceeded", "ReadError", "SourceColumn",
           "TableSource", "batch_rows", "describe", "detect_format", "open_table"]

BATCH_ROWS = 65_536
#: Decoded bytes of one batch; wide rows get fewer rows per batch.
BATCH_BYTES = 64 << 20
#: Largest Parquet footer (the file's metadata, parsed whole): about 200,000 column chunks.
PARQUET_MAX_FOOTER = 32 << 20
#: HDF5 decompresses a whole chunk to read any row of it.
HDF5_MAX_CHUNK_BYTES = 64 << 20
#: Objects an HDF5 file may hold before the reader stops looking for its table.
HDF5_MAX_OBJECTS = 10_000
#: Bytes one HDF5 read may bring if every variable-length string in it were as long as the cell
#: limit allows (h5py gives no length before reading, so reads are sized by that limit and each
#: cell is checked after).
HDF5_VLEN_READ_BYTES = 64 << 20
#: The length assumed for a variable-length string when no cell limit is given (trusted callers).
HDF5_VLEN_CELL_GUESS = 64 << 10
#: Chunks of a dataset with variable-length strings: its small reads go through a whole chunk
#: each (h5py's own chunks are at most 1 MiB; a 24 MB one made each 63-row read take 57 ms).
HDF5_VLEN_MAX_CHUNK_BYTES = 4 << 20
#: Cards of one FITS header (a table of 999 columns with every keyword needs about 12,000).
FITS_MAX_CARDS = 30_000
#: How messages name the limits above, which are constants rather than settings.
FIXED = "a fixed limit"

FORMATS = {
    ".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv", ".tab": "tsv",
    ".fits": "fits", ".fit": "fits", ".fits.gz": "fits", ".vot": "votable", ".xml": "votable",
    ".votable": "votable", ".hdf5": "hdf5", ".h5": "hdf5", ".hdf": "hdf5",
}
NO_LIMITS = ReadLimits()


@dataclass(frozen=True)
class SourceColumn:
    name: str
    type: pa.DataType
    unit: str | None = None
    ucd: str | None = None
    description: str | None = None
    nullable: bool = True
    """False when the file says the column has no NULL (sizes are then estimated from it)."""


@dataclass
class TableSource:
    """An opened table file: its columns now, its rows as a stream of batches later."""

    path: Path
    format: str
    columns: list[SourceColumn]
    num_rows: int | None
    _batches: object = field(repr=False, default=None)

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type) for c in self.columns])

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Record batches in file order; errors met while streaming become ReadError."""
        try:
            yield from self._batches()  # type: ignore[operator]
        except ReadError:
            raise
        except (pa.ArrowInvalid, pa.ArrowException, OSError, ValueError, TypeError, KeyError) as exc:
            raise ReadError(f"{self.path.name}: cannot read the {self.format} data: {exc}") from exc


def batch_rows(row_bytes: int) -> int:
    """Rows per batch for rows of ``row_bytes`` decoded bytes: at most BATCH_ROWS and BATCH_BYTES."""
    return max(1, min(BATCH_ROWS, BATCH_BYTES // max(row_bytes, 1)))


def detect_format(path: Path, declared: str | None = None) -> str:
    if declared:
        fmt = declared.lower()
        if fmt not in set(FORMATS.values()):
            raise ReadError(f"Unknown format {declared!r}; use one of "
                            f"{', '.join(sorted(set(FORMATS.values())))}.")
        return fmt
    name = path.name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMATS[suffix]
    raise ReadError(f"{path.name}: cannot tell the format from the file name; give it explicitly "
                    f"({', '.join(sorted(set(FORMATS.values())))}).")


def open_table(path: str | Path, fmt: str | None = None, limits: ReadLimits = NO_LIMITS) -> TableSource:
    """Open a table file; raises ReadError for anything unreadable, LimitExceeded over a limit."""
    path = Path(path)
    fmt = detect_format(path, fmt)
    opener = {"parquet": _open_parquet, "csv": _open_csv, "tsv": _open_csv, "fits": _open_fits,
              "votable": _open_votable, "hdf5": _open_hdf5}[fmt]
    try:
        source = opener(path, fmt, limits)
    except ReadError:
        raise
    except Exception as exc:  # every library's own error becomes one kind
        # The libraries name the file by its full path: a server directory the user need not see.
        detail = str(exc).replace(str(path.resolve()), path.name).replace(str(path), path.name)
        raise ReadError(f"{path.name}: not a readable {fmt} table ({type(exc).__name__}: {detail})") from exc
    _check_columns(len(source.columns), limits, path)
    if source.num_rows is not None:
        _check_rows(source.num_rows, limits, path)
    return source


def _check_columns(count: int, limits: ReadLimits, path: Path) -> None:
    check(limits.columns, count, "the table has {value} columns", kind="shape", where=path.name)


def _check_rows(count: int, limits: ReadLimits, path: Path, *, at_least: bool = False) -> None:
    what = "the table has at least {value} rows" if at_least else "the table has {value} rows"
    check(limits.rows, count, what, kind="size", where=path.name)


def _check_text_cells(batch: pa.RecordBatch, limits: ReadLimits, path: Path) -> None:
    """Text cells of one batch against the cell limit (formats without declared widths)."""
    if limits.cell_bytes is None:
        return
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            longest = pc.max(pc.binary_length(column)).as_py() or 0
            check(limits.cell_bytes, longest, f"column {name!r} holds a value of {{value}} bytes",
                  kind="shape", where=path.name)


def _fixed_width(t: pa.DataType) -> int:
    try:
        return max(t.bit_width // 8, 1)
    except ValueError:
        return 8  # variable width: the offset; the contents are counted where they are known


# -- Parquet ----------------------------------------------------------------------------------


def _open_parquet(path: Path, fmt: str, limits: ReadLimits) -> TableSource:
    """Parquet, streamed page by page; text columns are read dictionary-encoded, so the bytes a
    batch will take when decoded are known (and bounded) before it is decoded."""
    _check_parquet_footer(path)
    options = {"pre_buffer": False, "buffer_size": 1 << 20}
    pf = pq.ParquetFile(path, **options)
    stored = pf.schema_arrow
    _check_columns(len(stored), limits, path)
    _check_rows(pf.metadata.num_rows, limits, path)
    schema = pa.schema([f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f
                        for f in stored], metadata=stored.metadata)
    text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    if text:
        pf = pq.ParquetFile(path, read_dictionary=text, **options)
    astropy_meta = _astropy_parquet_meta(schema.metadata or {})
    columns = []
    for f in schema:
        meta = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in (f.metadata or {}).items()}
        extra = astropy_meta.get(f.name, {})
        columns.append(SourceColumn(f.name, f.type, unit=meta.get("unit") or extra.get("unit"),
                                    ucd=meta.get("ucd") or extra.get("ucd"),
                                    description=meta.get("description") or extra.get("description")))
    rows = batch_rows(sum(_fixed_width(f.type) for f in schema))
    never_null = _parquet_never_null(pf.metadata)
    columns = [dataclasses.replace(c, nullable=c.name not in never_null) for c in columns]

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in pf.iter_batches(batch_size=rows, use_threads=True):
            yield from _decode_text(batch, schema, limits, path)

    return TableSource(path, fmt, columns, pf.metadata.num_rows, batches)


def _parquet_never_null(metadata: pq.FileMetaData) -> set[str]:
    """Top-level columns whose statistics say they hold no NULL in any row group."""
    nulls: dict[str, int | None] = {}
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            name = chunk.path_in_schema
            stats = chunk.statistics
            known = stats is not None and stats.has_null_count
            previous = nulls.get(name, 0)
            nulls[name] = None if previous is None or not known else previous + stats.null_count
    return {name for name, count in nulls.items() if count == 0 and "." not in name}


def _check_parquet_footer(path: Path) -> None:
    """The footer is parsed whole: its length (in the last 8 bytes) is checked first."""
    size = path.stat().st_size
    if size < 12:
        raise ReadError(f"{path.name}: not a Parquet file (only {size} bytes)")
    with path.open("rb") as fh:
        fh.seek(size - 8)
        tail = fh.read(8)
    if tail[4:] != b"PAR1":
        raise ReadError(f"{path.name}: not a Parquet file (no PAR1 at its end; truncated, or encrypted)")
    footer = struct.unpack("<I", tail[:4])[0]
    if footer > size - 12:
        raise ReadError(f"{path.name}: not a Parquet file (its footer would be {footer} bytes, more "
                        "than the file holds; truncated?)")
    check(Limit(FIXED, PARQUET_MAX_FOOTER), footer, "the Parquet footer (metadata) has {value} bytes",
          kind="shape", where=path.name)


def _decode_text(batch: pa.RecordBatch, schema: pa.Schema, limits: ReadLimits,
                 path: Path) -> Iterator[pa.RecordBatch]:
    """Decode the dictionary-encoded text columns of a batch, in slices of at most BATCH_BYTES.

    A Parquet dictionary may hold one long value that a million rows repeat; decoding such a
    batch at once would allocate rows x value bytes, which the lengths tell beforehand.
    """
    encoded = [i for i, c in enumerate(batch.columns) if pa.types.is_dictionary(c.type)]
    if not encoded:
        yield batch
        return
    per_row = np.zeros(batch.num_rows, dtype=np.int64)
    for i in encoded:
        column = batch.column(i)
        lengths = pc.take(pc.binary_length(column.dictionary), column.indices).fill_null(0)
        check(limits.cell_bytes, pc.max(lengths).as_py() or 0,
              f"column {schema.field(i).name!r} holds a value of {{value}} bytes", kind="shape",
              where=path.name)
        per_row += lengths.to_numpy(zero_copy_only=False)
    ends = np.cumsum(per_row)
    total = int(ends[-1]) if len(ends) else 0
    cuts = np.searchsorted(ends, np.arange(BATCH_BYTES, total, BATCH_BYTES), side="right")
    bounds = [0, *sorted({int(c) for c in cuts if 0 < c < batch.num_rows}), batch.num_rows]
    for start, stop in pairwise(bounds):
        part = batch.slice(start, stop - start)
        arrays = [pc.take(c.dictionary, c.indices).cast(schema.field(i).type)
                  if i in encoded else c for i, c in enumerate(part.columns)]
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _astropy_parquet_meta(metadata: dict[bytes, bytes]) -> dict[str, dict[str, str]]:
    """Units and descriptions astropy writes into Parquet (``table_meta_yaml``)."""
    raw = metadata.get(b"table_meta_yaml")
    if not raw:
        return {}
    try:
        text = raw.decode()
        doc = yaml.safe_load("\n".join(line[2:] if line.startswith("# ") else line
                                       for line in text.splitlines()))
        cols = (doc or {}).get("datatype", [])
        return {c["name"]: {k: str(c[k]) for k in ("unit", "description", "ucd") if k in c}
                for c in cols if isinstance(c, dict) and "name" in c}
    except Exception:  # noqa: BLE001 - optional metadata; the data still loads
        return {}


# -- CSV / TSV --------------------------------------------------------------------------------
CSV_BLOCK = 8 << 20


def _open_csv(path: Path, fmt: str, limits: ReadLimits) -> TableSource:
    """CSV/TSV block by block (a row longer than a block is an error of Arrow's, so one block
    bounds a row); the columns are counted on the header before Arrow sets up a builder for
    each, and rows and text cells are counted while streaming."""
    delimiter = "\t" if fmt == "tsv" else ","
    _check_columns(_header_fields(path, delimiter), limits, path)
    read = pacsv.ReadOptions(block_size=CSV_BLOCK)
    parse = pacsv.ParseOptions(delimiter=delimiter)
    convert = pacsv.ConvertOptions(strings_can_be_null=False)

    def reader() -> pacsv.CSVStreamingReader:
        return pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)

    first = reader()
    schema = first.schema
    first.close()
    if len(schema) == 0:
        raise ReadError(f"{path.name}: no columns (an empty file?)")

    def batches() -> Iterator[pa.RecordBatch]:
        stream = reader()
        rows = 0
        try:
            for batch in stream:
                rows += batch.num_rows
                _check_rows(rows, limits, path, at_least=True)
                _check_text_cells(batch, limits, path)
                yield batch
        except pa.ArrowInvalid as exc:
            raise ReadError(f"{path.name}: {exc} (every row needs the header's "
                            f"{len(schema)} fields, and a column keeps the type of its first rows)") from exc
        finally:
            stream.close()

    return TableSource(path, fmt, [SourceColumn(f.name, f.type) for f in schema], None, batches)


def _header_fields(path: Path, delimiter: str) -> int:
    """Fields of the header line (read up to one block)."""
    with path.open("rb") as fh:
        line = fh.readline(CSV_BLOCK)
    if line.startswith(b"\xef\xbb\xbf"):
        line = line[3:]
    text = line.decode("utf-8", errors="replace")
    return len(next(csv.reader([text], delimiter=delimiter), []))


# -- astropy-read formats -----------------------------------------------------------------------
#: Bytes a whole-file reader (VOTable, gzip FITS) may parse when the caller gives no limit.
WHOLE_FILE_BYTES = 512 << 20


def _from_astropy(path: Path, fmt: str, table: Table) -> TableSource:
    """Columns of an astropy Table, converted to Arrow one batch of rows at a time (a memory-
    mapped FITS table is then read slice by slice, never copied whole)."""
    n = len(table)
    sample = table[: min(n, 1024)]
    columns = []
    types = []
    for name in table.colnames:
        col = table[name]
        arrow_type = _object_type(col) or _column_to_arrow(name, sample[name], path).type
        types.append(arrow_type)
        meta = getattr(col, "meta", {}) or {}
        columns.append(SourceColumn(name, arrow_type,
                                    unit=str(col.unit) if getattr(col, "unit", None) else None,
                                    ucd=meta.get("ucd"), description=getattr(col, "description", None),
                                    nullable=hasattr(col, "mask") or arrow_type == pa.string()))
    row_bytes = sum(max(table[name].dtype.itemsize, 1) for name in table.colnames)
    step = batch_rows(row_bytes)

    def batches() -> Iterator[pa.RecordBatch]:
        for start in range(0, n, step):
            part = table[start:start + step]
            arrays = [_column_to_arrow(c.name, part[c.name], path, t)
                      for c, t in zip(columns, types, strict=True)]
            yield pa.RecordBatch.from_arrays(arrays, names=[c.name for c in columns])

    return TableSource(path, fmt, columns, n, batches)


def _object_type(col: Any) -> pa.DataType | None:
    """Text for an object column of strings (VOTable variable-length char), else None."""
    values = np.ma.getdata(np.ma.asarray(col))
    if values.dtype.kind != "O":
        return None
    mask = np.ma.getmaskarray(np.ma.asarray(col))
    first = next((v for v, m in zip(values, mask, strict=True) if not m and v is not None), None)
    return pa.string() if first is None or isinstance(first, (str, bytes)) else None


def _column_to_arrow(name: str, col: Any, path: Path,  # an astropy or numpy column
                     arrow_type: pa.DataType | None = None) -> pa.Array:
    data = np.ma.asarray(col)
    if data.ndim > 1:
        raise ReadError(f"{path.name}: column {name!r} holds arrays of shape {data.shape[1:]}; "
                        "only scalar columns can become table columns")
    mask = np.ma.getmaskarray(data) if np.ma.is_masked(data) else None
    values = np.ma.getdata(data)
    if values.dtype.byteorder not in ("=", "|"):
        values = values.astype(values.dtype.newbyteorder("="))  # FITS is big-endian
    if values.dtype.kind == "S":
        values = np.char.decode(values, "utf-8", errors="replace")
    if values.dtype.kind == "O":
        masked = mask if mask is not None else np.zeros(len(values), dtype=bool)
        out = [None if m or v is None else (v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
               for v, m in zip(values, masked, strict=True)]
        return pa.array(out, type=arrow_type) if arrow_type is not None else pa.array(out)
    if values.dtype.kind == "f" and mask is None:
        array = pa.array(values)
    else:
        array = pa.array(values, mask=mask)
    return array.cast(arrow_type) if arrow_type is not None and array.type != arrow_type else array


# -- FITS -------------------------------------------------------------------------------------
#: Bytes per element of each FITS TFORM type code (X is bits).
_TFORM_BYTES = {"L": 1, "X": 1, "B": 1, "I": 2, "J": 4, "K": 8, "A": 1, "E": 4, "D": 8, "C": 8, "M": 16}


@dataclass(frozen=True)
class _FitsTable:
    """The first BINTABLE of a FITS file as its header declares it."""

    index: int
    cards: dict[str, str]
    end: int
    """Offset of the end of the table's data (header and data of the HDUs before included)."""


def _open_fits(path: Path, fmt: str, limits: ReadLimits) -> TableSource:
    """FITS binary tables.  The headers are walked here first (a header is parsed whole by
    astropy, and a gzip file is decompressed whole), so their size and the table's declared
    rows, columns and cell sizes are checked before astropy reads anything."""
    compressed = _fits_compression(path)
    whole = limits.memory_bytes or Limit(FIXED, WHOLE_FILE_BYTES)
    with (gzip.open(path, "rb") if compressed else path.open("rb")) as fh:
        found = _scan_fits(fh, path, whole if compressed else None)
    cards = found.cards
    _check_columns(_fits_int(cards, "TFIELDS", path), limits, path)
    _check_rows(_fits_int(cards, "NAXIS2", path), limits, path)
    for key, tform in cards.items():
        if key.startswith("TFORM") and key[5:].isdigit():
            _check_tform(tform, cards.get(f"TTYPE{key[5:]}", f"column {key[5:]}"), limits, path)
    if not compressed and path.stat().st_size < found.end:
        raise ReadError(f"{path.name}: truncated: its headers declare {found.end} bytes, more "
                        f"than the file holds")
    # memmap=True also for gzip (which astropy then reads into memory): it keeps astropy from
    # turning NaN into NULL and stripping spaces, as it does when not memory-mapping.
    with fits.open(path, memmap=True) as hdul:
        header = hdul[found.index].header
        count = min(header.get("TFIELDS", 0), 999)  # the FITS standard allows no more
        ucds = {header.get(f"TTYPE{i}"): header.get(f"TUCD{i}") for i in range(1, count + 1)}
        comments = {header.get(f"TTYPE{i}"): header.get(f"TCOMM{i}") for i in range(1, count + 1)}
    table = Table.read(path, hdu=found.index, memmap=True)
    for name in table.colnames:
        if ucds.get(name):
            table[name].meta["ucd"] = ucds[name]
        if comments.get(name) and not table[name].description:
            table[name].description = comments[name]
    return _from_astropy(path, fmt, table)


def _fits_compression(path: Path) -> bool:
    """Whether the file is gzip-compressed FITS; other compressions are refused."""
    with path.open("rb") as fh:
        magic = fh.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return True
    if magic != b"SIMPLE":
        raise ReadError(f"{path.name}: not a FITS file (it must start with SIMPLE, or be gzip-compressed)")
    return False


def _scan_fits(fh: io.BufferedIOBase, path: Path, whole: Limit | None) -> _FitsTable:
    """Walk the HDUs' headers (block by block, skipping data) to the first BINTABLE.

    ``whole`` bounds the decompressed bytes of a gzip file, which astropy reads into memory (and
    which this walk would otherwise decompress to skip a declared size).
    """
    index = 0
    while True:
        cards = _fits_header(fh, path, index)
        if cards is None:
            raise ReadError(f"{path.name}: no binary table extension (BINTABLE) in the FITS file")
        bitpix = abs(_fits_int(cards, "BITPIX", path))
        naxis = _fits_int(cards, "NAXIS", path)
        dims = [_fits_int(cards, f"NAXIS{i}", path) for i in range(1, naxis + 1)]
        if index == 0 and dims[:1] == [0] and cards.get("GROUPS") == "T":
            dims = dims[1:]  # random groups: NAXIS1 = 0
        elements = math.prod(dims) if dims else 0
        pcount = _fits_int(cards, "PCOUNT", path, 0)
        gcount = _fits_int(cards, "GCOUNT", path, 1)
        data_bytes = bitpix // 8 * gcount * (pcount + elements) if naxis else 0
        end = fh.tell() + data_bytes
        if whole is not None:
            check(whole, end, "the gzip-compressed file is read whole: it declares {value} bytes "
                  "(decompress it to have it read from disk)", kind="size", where=path.name)
        if index > 0 and cards.get("XTENSION", "").strip() == "BINTABLE":
            return _FitsTable(index, cards, end)
        fh.seek(math.ceil(data_bytes / 2880) * 2880, 1)
        index += 1


def _fits_header(fh: io.BufferedIOBase, path: Path, index: int) -> dict[str, str] | None:
    """The value cards of one header (up to FITS_MAX_CARDS), or None at the end of the file."""
    cards: dict[str, str] = {}
    count = 0
    while True:
        block = fh.read(2880)
        if not block:
            if count == 0:
                return None
            raise ReadError(f"{path.name}: truncated: header {index} has no END card")
        if len(block) < 2880:
            raise ReadError(f"{path.name}: truncated in header {index}")
        for offset in range(0, 2880, 80):
            card = block[offset:offset + 80].decode("ascii", errors="replace")
            count += 1
            keyword = card[:8].strip()
            if keyword == "END":
                return cards
            if card[8:10] == "= ":
                value = card[10:]
                if value.lstrip().startswith("'"):
                    value = value.lstrip()[1:].split("'", 1)[0]
                else:
                    value = value.split("/", 1)[0]
                cards[keyword] = value.strip()
        check(Limit(FIXED, FITS_MAX_CARDS), count, f"FITS header {index} has at least {{value}} cards",
              kind="shape", where=path.name)


def _fits_int(cards: dict[str, str], key: str, path: Path, default: int | None = None) -> int:
    raw = cards.get(key)
    if raw is None and default is not None:
        return default
    try:
        value = int(raw or "")
    except ValueError:
        raise ReadError(f"{path.name}: the FITS header keyword {key} is {raw!r}, not an integer") from None
    if value < 0 and key != "BITPIX":
        raise ReadError(f"{path.name}: the FITS header keyword {key} is negative ({value})")
    return value


def _check_tform(tform: str, name: str, limits: ReadLimits, path: Path) -> None:
    code = tform.strip().upper()
    digits = len(code) - len(code.lstrip("0123456789"))
    repeat = int(code[:digits]) if digits else 1
    letter = code[digits:digits + 1]
    if letter in ("P", "Q"):
        raise ReadError(f"{path.name}: column {name!r} (TFORM {tform!r}) holds variable-length "
                        "arrays; only scalar columns can become table columns")
    bits = repeat if letter == "X" else repeat * _TFORM_BYTES.get(letter, 8)
    check(limits.cell_bytes, math.ceil(bits / 8) if letter == "X" else bits,
          f"column {name!r} (TFORM {tform.strip()!r}) declares cells of {{value}} bytes",
          kind="shape", where=path.name)


# -- VOTable ----------------------------------------------------------------------------------
def _open_votable(path: Path, fmt: str, limits: ReadLimits) -> TableSource:
    """VOTable, parsed whole by astropy after the streaming pre-scan of its declared sizes."""
    whole = limits.memory_bytes or Limit(FIXED, WHOLE_FILE_BYTES)
    scan_limits = ReadLimits(rows=limits.rows, columns=limits.columns, cell_bytes=limits.cell_bytes,
                             memory_bytes=whole)
    with path.open("rb") as fh:
        scan_votable(fh, scan_limits, path.name, path.stat().st_size)
    vot = parse_single_table(str(path), verify="warn")
    table = vot.to_table(use_names_over_ids=True)
    for f in vot.fields:
        if f.name in table.colnames and f.ucd:
            table[f.name].meta["ucd"] = f.ucd
    return _from_astropy(path, fmt, table)


# -- HDF5 -------------------------------------------------------------------------------------
def _open_hdf5(path: Path, fmt: str, limits: ReadLimits) -> TableSource:
    """HDF5 compound datasets (as astropy writes tables), read slice by slice with h5py after
    checking the declared shape, field sizes and chunk size; data stored in other files
    (external storage, virtual datasets) is refused, as it would read the server's files.

    A variable-length string declares nothing (its field is 8 bytes, a pointer), so datasets
    holding them are read in slices small enough for cells at the cell limit, each cell is
    checked after its slice is read, and slices are joined into batches by their bytes.
    """
    import h5py  # noqa: PLC0415 - h5py: 0.1 s, only HDF5 files need it

    h5 = h5py.File(path, "r")
    try:
        name, dataset = _hdf5_table(h5, path)
        dtype = dataset.dtype
        if dataset.ndim != 1:
            raise ReadError(f"{path.name}: the dataset {name!r} has shape {dataset.shape}; "
                            "a table is one-dimensional")
        _check_columns(len(dtype.names), limits, path)
        _check_rows(dataset.shape[0], limits, path)
        vlen = []
        for field_name in dtype.names:
            sub = dtype.fields[field_name][0]
            check(limits.cell_bytes, sub.itemsize, f"column {field_name!r} declares cells of {{value}} bytes",
                  kind="shape", where=path.name)
            if sub.kind == "O":
                if h5py.check_string_dtype(sub) is None:
                    raise ReadError(f"{path.name}: column {field_name!r} holds variable-length "
                                    "arrays or references; only scalar columns and strings can "
                                    "become table columns")
                vlen.append(field_name)
        element = max(dtype.itemsize, dataset.id.get_type().get_size())
        if dataset.chunks:
            check(Limit(FIXED, HDF5_MAX_CHUNK_BYTES), math.prod(dataset.chunks) * element,
                  "the dataset's chunks hold {value} bytes each (HDF5 decompresses a whole chunk)",
                  kind="shape", where=path.name)
        meta = _hdf5_column_meta(h5, name)
        n = dataset.shape[0]
        step = batch_rows(dtype.itemsize)
        if dataset.chunks:
            step = max(dataset.chunks[0], step - step % dataset.chunks[0])
        reads = step
        if vlen:
            cell = limits.cell_bytes.maximum if limits.cell_bytes else HDF5_VLEN_CELL_GUESS
            reads = max(1, min(step, HDF5_VLEN_READ_BYTES // (dtype.itemsize + len(vlen) * cell)))
            if dataset.chunks:
                chunk_bytes = math.prod(dataset.chunks) * element
                check(Limit(FIXED, HDF5_VLEN_MAX_CHUNK_BYTES), chunk_bytes,
                      "the dataset holds variable-length strings in chunks of {value} bytes (it "
                      "is read in small slices, each of which goes through a whole chunk); write "
                      "it with smaller chunks or fixed-length strings", kind="shape", where=path.name)
                # Small reads of a chunk must not each decompress it again.
                dataset = _hdf5_chunk_cached(h5, name, chunk_bytes)
        sample = dataset[: min(n, 1024, reads)]
        for field_name in vlen:
            _hdf5_text_bytes(sample[field_name], field_name, limits, path)
        columns = []
        types = []
        for field_name in dtype.names:
            arrow_type = _column_to_arrow(field_name, sample[field_name], path).type
            if dtype.fields[field_name][0].kind == "O":
                arrow_type = pa.string()
            types.append(arrow_type)
            info = meta.get(field_name, {})
            columns.append(SourceColumn(field_name, arrow_type, unit=info.get("unit"),
                                        ucd=info.get("ucd"), description=info.get("description"),
                                        nullable=arrow_type == pa.string()))
    except BaseException:
        h5.close()
        raise

    def batch(part: np.ndarray) -> pa.RecordBatch:
        return pa.RecordBatch.from_arrays(
            [_column_to_arrow(c.name, part[c.name], path, t) for c, t in zip(columns, types, strict=True)],
            names=[c.name for c in columns])

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            if not vlen:
                for start in range(0, n, step):
                    yield batch(dataset[start:start + step])
                return
            parts: list[np.ndarray] = []
            rows = size = 0
            for start in range(0, n, reads):
                part = dataset[start:start + reads]
                part_size = len(part) * dtype.itemsize + sum(
                    _hdf5_text_bytes(part[f], f, limits, path) for f in vlen)
                if parts and (rows + len(part) > step or size + part_size > BATCH_BYTES):
                    yield batch(np.concatenate(parts))
                    parts, rows, size = [], 0, 0
                parts.append(part)
                rows += len(part)
                size += part_size
            if parts:
                yield batch(np.concatenate(parts))
        finally:
            h5.close()

    return TableSource(path, fmt, columns, n, batches)


def _hdf5_text_bytes(values: np.ndarray, name: str, limits: ReadLimits, path: Path) -> int:
    """Bytes of a slice of variable-length strings, each checked against the cell limit."""
    lengths = [len(v) if isinstance(v, bytes) else len(str(v).encode()) if v is not None else 0
               for v in values]
    if lengths:
        check(limits.cell_bytes, max(lengths), f"column {name!r} holds a value of {{value}} bytes",
              kind="shape", where=path.name)
    return sum(lengths)


def _hdf5_chunk_cached(h5: h5py.File, name: str, chunk_bytes: int) -> h5py.Dataset:
    """The dataset opened again with a chunk cache that holds one of its chunks."""
    import h5py  # noqa: PLC0415 - h5py: see _open_hdf5

    access = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
    access.set_chunk_cache(521, 2 * chunk_bytes + (1 << 20), 1.0)
    return h5py.Dataset(h5py.h5d.open(h5.id, name.encode(), dapl=access))


def _hdf5_table(h5: h5py.File, path: Path) -> tuple[str, h5py.Dataset]:
    """The first compound dataset (astropy's table), with the number of objects looked at bounded."""
    import h5py  # noqa: PLC0415 - h5py: see _open_hdf5

    seen = 0
    found: list[str] = []

    def visit(name: str, obj: object) -> bool | None:
        nonlocal seen
        seen += 1
        if seen > HDF5_MAX_OBJECTS:
            raise ReadError(f"{path.name}: more than {HDF5_MAX_OBJECTS} objects before a table")
        if (isinstance(obj, h5py.Dataset) and obj.dtype.names
                and not name.endswith(".__table_column_meta__")):
            found.append(name)
            return True
        return None

    h5.visititems(visit)
    if not found:
        raise ReadError(f"{path.name}: no table (compound dataset) in the HDF5 file")
    dataset = h5[found[0]]
    if dataset.is_virtual or dataset.external:
        raise ReadError(f"{path.name}: the dataset {found[0]!r} keeps its data in other files "
                        "(external storage or a virtual dataset); store the data in the file")
    return found[0], dataset


def _hdf5_column_meta(h5: h5py.File, name: str) -> dict[str, dict[str, str]]:
    """Units, UCDs and descriptions astropy stores beside the table (``serialize_meta``)."""
    meta = h5.get(f"{name}.__table_column_meta__")
    if meta is None or meta.ndim != 1 or meta.size * meta.dtype.itemsize > (4 << 20):
        return {}
    try:
        header = table_meta.get_header_from_yaml(
            (line.decode("utf-8") if isinstance(line, bytes) else str(line)) for line in meta[()])
    except Exception:  # noqa: BLE001 - optional metadata; the data still loads
        return {}
    out: dict[str, dict[str, str]] = {}
    for col in header.get("datatype", []):
        if isinstance(col, dict) and "name" in col:
            col_meta = col.get("meta")
            extra = col_meta if isinstance(col_meta, dict) else {}
            out[col["name"]] = {k: str(v) for k, v in (("unit", col.get("unit")),
                                                         ("description", col.get("description")),
                                                         ("ucd", extra.get("ucd"))) if v}
    return out


def describe(source: TableSource) -> str:
    return json.dumps([{"name": c.name, "type": str(c.type), "unit": c.unit, "ucd": c.ucd}
                       for c in source.columns])
