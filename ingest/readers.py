"""Readers for product files: Parquet, CSV/TSV, FITS binary tables, VOTable and HDF5.

Each reader opens a file, reports its Arrow schema and per-column metadata (unit, UCD,
description, as far as the format carries them) and then streams record batches, so a file
larger than memory can be loaded (Parquet row group by row group, CSV block by block; FITS is
memory-mapped; VOTable and HDF5 are read whole by astropy, which is fine for the lightweight
products they carry and is documented).  Malformed input raises :class:`ReadError` with a
message that names the file, the problem and where it is.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

BATCH_ROWS = 65_536

FORMATS = {
    ".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv", ".tab": "tsv",
    ".fits": "fits", ".fit": "fits", ".fits.gz": "fits", ".vot": "votable", ".xml": "votable",
    ".votable": "votable", ".hdf5": "hdf5", ".h5": "hdf5", ".hdf": "hdf5",
}


class ReadError(ValueError):
    """The file cannot be read as the format it claims (corrupt, truncated, ragged, ...)."""


@dataclass(frozen=True)
class SourceColumn:
    name: str
    type: pa.DataType
    unit: str | None = None
    ucd: str | None = None
    description: str | None = None


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
        except (pa.ArrowInvalid, pa.ArrowException, OSError, ValueError) as exc:
            raise ReadError(f"{self.path.name}: cannot read the {self.format} data: {exc}") from exc


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


def open_table(path: str | Path, fmt: str | None = None) -> TableSource:
    """Open a table file; raises ReadError for anything unreadable."""
    path = Path(path)
    fmt = detect_format(path, fmt)
    opener = {"parquet": _open_parquet, "csv": _open_csv, "tsv": _open_csv, "fits": _open_fits,
              "votable": _open_votable, "hdf5": _open_hdf5}[fmt]
    try:
        return opener(path, fmt)
    except ReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - every library's own error becomes one kind
        # The libraries name the file by its full path: a server directory the user need not see.
        detail = str(exc).replace(str(path.resolve()), path.name).replace(str(path), path.name)
        raise ReadError(f"{path.name}: not a readable {fmt} table ({type(exc).__name__}: {detail})") from exc


# -- Parquet ----------------------------------------------------------------------------------
def _open_parquet(path: Path, fmt: str) -> TableSource:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    schema = pf.schema_arrow
    astropy_meta = _astropy_parquet_meta(schema.metadata or {})
    columns = []
    for f in schema:
        meta = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
        extra = astropy_meta.get(f.name, {})
        columns.append(SourceColumn(f.name, f.type, unit=meta.get("unit") or extra.get("unit"),
                                    ucd=meta.get("ucd") or extra.get("ucd"),
                                    description=meta.get("description") or extra.get("description")))

    def batches() -> Iterator[pa.RecordBatch]:
        yield from pf.iter_batches(batch_size=BATCH_ROWS, use_threads=True)

    return TableSource(path, fmt, columns, pf.metadata.num_rows, batches)


def _astropy_parquet_meta(metadata: dict[bytes, bytes]) -> dict[str, dict[str, str]]:
    """Units and descriptions astropy writes into Parquet (``table_meta_yaml``)."""
    raw = metadata.get(b"table_meta_yaml")
    if not raw:
        return {}
    try:
        import yaml

        text = raw.decode()
        doc = yaml.safe_load("\n".join(line[2:] if line.startswith("# ") else line
                                       for line in text.splitlines()))
        cols = (doc or {}).get("datatype", [])
        return {c["name"]: {k: str(c[k]) for k in ("unit", "description", "ucd") if k in c}
                for c in cols if isinstance(c, dict) and "name" in c}
    except Exception:  # noqa: BLE001 - optional metadata; the data still loads
        return {}


# -- CSV / TSV --------------------------------------------------------------------------------
def _open_csv(path: Path, fmt: str) -> TableSource:
    import pyarrow.csv as pacsv

    delimiter = "\t" if fmt == "tsv" else ","
    read = pacsv.ReadOptions(block_size=8 << 20)
    parse = pacsv.ParseOptions(delimiter=delimiter)
    convert = pacsv.ConvertOptions(strings_can_be_null=False)

    def reader():  # noqa: ANN202
        return pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)

    first = reader()
    schema = first.schema
    first.close()
    if len(schema) == 0:
        raise ReadError(f"{path.name}: no columns (an empty file?)")

    def batches() -> Iterator[pa.RecordBatch]:
        stream = reader()
        try:
            for batch in stream:
                yield batch
        except pa.ArrowInvalid as exc:
            raise ReadError(f"{path.name}: {exc} (every row needs the header's "
                            f"{len(schema)} fields, and a column keeps the type of its first rows)") from exc
        finally:
            stream.close()

    return TableSource(path, fmt, [SourceColumn(f.name, f.type) for f in schema], None, batches)


# -- astropy-read formats -----------------------------------------------------------------------
def _from_astropy(path: Path, fmt: str, table) -> TableSource:  # noqa: ANN001 - astropy Table
    columns = []
    arrays = []
    for name in table.colnames:
        col = table[name]
        arr = _column_to_arrow(name, col, path)
        arrays.append(arr)
        meta = getattr(col, "meta", {}) or {}
        columns.append(SourceColumn(name, arr.type,
                                    unit=str(col.unit) if getattr(col, "unit", None) else None,
                                    ucd=meta.get("ucd"), description=getattr(col, "description", None)))
    n = len(table)

    def batches() -> Iterator[pa.RecordBatch]:
        full = pa.RecordBatch.from_arrays(arrays, names=[c.name for c in columns])
        for start in range(0, n, BATCH_ROWS):
            yield full.slice(start, BATCH_ROWS)

    return TableSource(path, fmt, columns, n, batches)


def _column_to_arrow(name: str, col, path: Path) -> pa.Array:  # noqa: ANN001
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
        return pa.array([None if (mask is not None and m) else v for v, m in
                         zip(values, mask if mask is not None else [False] * len(values))])
    if values.dtype.kind == "f" and mask is None:
        return pa.array(values)
    return pa.array(values, mask=mask)


def _open_fits(path: Path, fmt: str) -> TableSource:
    from astropy.io import fits
    from astropy.table import Table

    with fits.open(path, memmap=True) as hdul:
        index = next((i for i, h in enumerate(hdul) if isinstance(h, fits.BinTableHDU)), None)
        if index is None:
            raise ReadError(f"{path.name}: no binary table extension (BINTABLE) in the FITS file")
        header = hdul[index].header
        ucds = {header.get(f"TTYPE{i}"): header.get(f"TUCD{i}") for i in range(1, header.get("TFIELDS", 0) + 1)}
        comments = {header.get(f"TTYPE{i}"): header.get(f"TCOMM{i}") for i in range(1, header.get("TFIELDS", 0) + 1)}
    table = Table.read(path, hdu=index, memmap=True)
    for name in table.colnames:
        if ucds.get(name):
            table[name].meta["ucd"] = ucds[name]
        if comments.get(name) and not table[name].description:
            table[name].description = comments[name]
    return _from_astropy(path, fmt, table)


def _open_votable(path: Path, fmt: str) -> TableSource:
    from astropy.io.votable import parse_single_table

    vot = parse_single_table(str(path), verify="warn")
    table = vot.to_table(use_names_over_ids=True)
    for f in vot.fields:
        if f.name in table.colnames and f.ucd:
            table[f.name].meta["ucd"] = f.ucd
    return _from_astropy(path, fmt, table)


def _open_hdf5(path: Path, fmt: str) -> TableSource:
    from astropy.table import Table

    import h5py

    with h5py.File(path, "r") as h5:
        datasets: list[str] = []
        h5.visititems(lambda n, obj: datasets.append(n) if isinstance(obj, h5py.Dataset)
                      and obj.dtype.names and not n.endswith(".__table_column_meta__") else None)
    if not datasets:
        raise ReadError(f"{path.name}: no table (compound dataset) in the HDF5 file")
    table = Table.read(path, format="hdf5", path=datasets[0])
    return _from_astropy(path, fmt, table)


def describe(source: TableSource) -> str:
    return json.dumps([{"name": c.name, "type": str(c.type), "unit": c.unit, "ucd": c.ucd}
                       for c in source.columns])
