"""Table uploads (TAP 1.1 section 2.5.1, DALI ``UPLOAD``): VOTables that queries see as
``TAP_UPLOAD.<name>``.

The request side lives here: parsing ``UPLOAD=name,param:part`` (and ``name,URL`` for URLs an
administrator allowed), enforcing the size and row limits, and turning the VOTable into an
Arrow table whose column types follow its FIELDs.  The database side (an UNLOGGED table in the
``tap_upload`` schema written by the owner role, readable by ``pzvo_reader``, dropped when the
query or job ends) is :class:`UploadStore`; ``docs/async.md`` explains why the table is
created by the owner rather than inside the read-only query session.

astropy.io.votable parses the document: it understands the serializations (TABLEDATA,
BINARY, BINARY2) and the null conventions of each, which is exactly what a homemade parser
would get wrong; parsing is not on the hot path (10,000 rows take about 20 ms).  astropy
allocates whatever the document declares and fetches ``STREAM href`` URLs, so a streaming
pre-scan (:func:`ingest.votable_scan.scan_votable`) checks the declared cell sizes, columns,
rows and parsed size against the limits first, and refuses external data, array FIELDs (which
the type check below refuses anyway, but only after astropy has built them) and encodings other
than UTF-8, US-ASCII and ISO-8859-1.
"""
from __future__ import annotations

import io
import logging
import re
import secrets
import time
import urllib.request
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import IO

import numpy as np
import pyarrow as pa
from astropy.io import votable
from astropy.io.votable.exceptions import VOWarning
from sqlalchemy.engine import make_url

from ingest.errors import LimitExceeded, ReadError, UnsupportedData
from ingest.limits import Limit, ReadLimits
from ingest.votable_scan import scan_votable
from vo_service.core.columns import DATATYPES, Column
from vo_service.core.identifiers import RESERVED_WORDS, adql_name, quote_ident
from vo_service.core.pool import ConnectionPool
from vo_service.core.settings import Settings
from vo_service.tap._binary2 import FieldInfo
from vo_service.tap._binary2 import decode as decode_binary2
from vo_service.tap._exceptions import UsageError
from vo_service.tap.catalog import TableMeta

#: PostgreSQL schema that holds upload tables (created by migration 0005).
log = logging.getLogger(__name__)

UPLOAD_SCHEMA = "tap_upload"
#: The schema name queries use (TAP 1.1).
ADQL_SCHEMA = "TAP_UPLOAD"

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_REGULAR = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

class UploadError(UsageError):
    """An upload the service cannot take (bad UPLOAD value, unreadable VOTable, a limit)."""


@dataclass(frozen=True)
class UploadSpec:
    """One item of the UPLOAD parameter: the table name and where its VOTable comes from."""

    name: str
    source: str

    @property
    def part(self) -> str | None:
        """The multipart field name for ``param:`` sources, else None."""
        return self.source[len("param:"):] if self.source.startswith("param:") else None

    def __str__(self) -> str:
        return f"{self.name},{self.source}"


#: A parsed upload may take this many times the upload limit in memory (TABLEDATA's short text
#: becomes fixed-width arrays); declared sizes beyond it are refused before parsing.
MEMORY_FACTOR = 8


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_rows: int
    url_prefixes: tuple[str, ...] = ()
    max_columns: int = 500
    max_cell_bytes: int = 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadLimits:
        prefixes = tuple(p.strip() for p in settings.upload_url_prefixes.split(",") if p.strip())
        return cls(settings.upload_max_bytes, settings.upload_max_rows, prefixes,
                   settings.upload_max_columns, settings.upload_max_cell_bytes)

    def read_limits(self) -> ReadLimits:
        """The same limits for the VOTable pre-scan, named as their settings."""
        return ReadLimits(
            rows=Limit("upload_max_rows", self.max_rows),
            columns=Limit("upload_max_columns", self.max_columns),
            cell_bytes=Limit("upload_max_cell_bytes", self.max_cell_bytes),
            memory_bytes=Limit(f"{MEMORY_FACTOR} x upload_max_bytes", MEMORY_FACTOR * self.max_bytes))


@dataclass(frozen=True)
class UploadTable:
    """A parsed upload: column descriptions, PostgreSQL column types and the data."""

    name: str
    columns: tuple[Column, ...]
    pg_types: tuple[str, ...]
    data: pa.Table


def parse_upload_param(values: Iterable[str]) -> tuple[UploadSpec, ...]:
    """Split UPLOAD values (``name,uri`` pairs, several joined by ``;``) into specs."""
    specs: list[UploadSpec] = []
    for value in values:
        for item in value.split(";"):
            if not item.strip():
                continue
            name, sep, source = item.strip().partition(",")
            name, source = name.strip(), source.strip()
            if not sep or not source:
                raise UploadError(f"UPLOAD={item!r} is not 'name,param:part' or 'name,URL'.")
            if not _NAME.match(name):
                raise UploadError(f"Upload table name {name!r} is not a valid ADQL name (a letter, "
                                  "then letters, digits or _; at most 63 characters).")
            if name.upper() in RESERVED_WORDS:
                raise UploadError(f"Upload table name {name!r} is an ADQL reserved word, so "
                                  f"TAP_UPLOAD.{name} is not valid ADQL; choose another name.")
            if any(s.name.lower() == name.lower() for s in specs):
                raise UploadError(f"Upload table name {name!r} is given twice.")
            if not (source.startswith("param:") or re.match(r"^https?://", source, re.I)):
                raise UploadError(f"UPLOAD source {source!r} must be param:<part> (a multipart "
                                  "file) or an http(s) URL.")
            specs.append(UploadSpec(name, source))
    return tuple(specs)


def _read_limited(stream: IO[bytes], limits: UploadLimits, name: str) -> bytes:
    data = stream.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise UploadError(f"Upload {name!r} is larger than the limit of {limits.max_bytes} bytes.")
    return data


def _fetch(url: str, limits: UploadLimits, name: str) -> bytes:
    """Fetch an upload by URL, only below a prefix the administrator allowed."""
    if not any(url.startswith(prefix) for prefix in limits.url_prefixes):
        raise UploadError(f"UPLOAD by URL is not allowed for {url!r}: this service fetches only "
                          "from URLs its administrator allowed; send the table inline "
                          "(UPLOAD=name,param:part with a multipart POST) instead.")
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # allow-listed
            return _read_limited(response, limits, name)
    except UploadError:
        raise
    except Exception as exc:  # any fetch failure is the user's to fix
        raise UploadError(f"Could not fetch upload {name!r} from {url}: {exc}") from exc


def collect_uploads(specs: Sequence[UploadSpec], files: Mapping[str, IO[bytes]],
                    limits: UploadLimits) -> list[tuple[UploadSpec, bytes]]:
    """The raw VOTable bytes of every upload, size limit enforced."""
    found: list[tuple[UploadSpec, bytes]] = []
    total = 0
    for spec in specs:
        if spec.part is not None:
            stream = files.get(spec.part)
            if stream is None:
                raise UploadError(f"UPLOAD={spec} names the multipart part {spec.part!r}, which "
                                  "the request does not contain (send it as a file in a "
                                  "multipart/form-data POST).")
            data = _read_limited(stream, limits, spec.name)
        else:
            data = _fetch(spec.source, limits, spec.name)
        total += len(data)
        if total > limits.max_bytes:
            raise UploadError(f"The uploads together are larger than the limit of "
                              f"{limits.max_bytes} bytes.")
        found.append((spec, data))
    return found




def read_votable(name: str, data: bytes, limits: UploadLimits) -> UploadTable:
    """Parse an uploaded VOTable into typed columns; raise :class:`UploadError` if unusable."""
    try:
        scan_votable(io.BytesIO(data), limits.read_limits(), f"Upload {name!r}", len(data), arrays=True)
    except (LimitExceeded, UnsupportedData) as exc:
        raise UploadError(str(exc)) from None
    except ReadError as exc:
        raise UploadError(f"Upload {name!r} is not a readable VOTable: "
                          f"{str(exc).removeprefix(f'Upload {name!r}: ')}") from None
    fast = decode_binary2(data)
    fields: list[FieldInfo]
    if fast is not None:  # BINARY2 of fixed-width scalars: numpy, not astropy's per-value parse
        fields, rows = fast.fields, fast.rows
        cells: list[tuple[np.ndarray, np.ndarray | None]] = list(zip(fast.values, fast.masks, strict=True))
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", VOWarning)
                warnings.simplefilter("ignore", UserWarning)
                document = votable.parse(io.BytesIO(data), verify="ignore")
                table = document.get_first_table()
        except Exception as exc:  # astropy raises many types for bad documents
            raise UploadError(f"Upload {name!r} is not a readable VOTable: {exc}") from exc
        rows = len(table.array)
        fields = [FieldInfo(name=fld.name or fld.ID or f"col{index + 1}", datatype=fld.datatype,
                            arraysize=fld.arraysize, unit=str(fld.unit) if fld.unit else None, ucd=fld.ucd,
                            utype=fld.utype, xtype=fld.xtype,
                            description=str(fld.description) if fld.description else None)
                  for index, fld in enumerate(table.fields)]
        cells = [(table.array[table.array.dtype.names[index]], None) for index in range(len(fields))]
    if rows > limits.max_rows:
        raise UploadError(f"Upload {name!r} has {rows} rows; the limit is {limits.max_rows}.")
    if not fields:
        raise UploadError(f"Upload {name!r} has no columns.")
    columns: list[Column] = []
    pg_types: list[str] = []
    arrays: list[pa.Array] = []
    seen: set[str] = set()
    for index, (fld, (values, mask)) in enumerate(zip(fields, cells, strict=True)):
        col_name = fld.name
        if len(col_name.encode()) > 63:
            raise UploadError(f"Column name {col_name[:20]!r}... of upload {name!r} is longer "
                              "than 63 bytes.")
        if col_name.lower() in seen:
            raise UploadError(f"Upload {name!r} has two columns named {col_name!r}.")
        seen.add(col_name.lower())
        datatype = fld.datatype
        arraysize = fld.arraysize
        if datatype == "bit" and arraysize in (None, "1"):
            datatype = "boolean"  # what astropy writes for a numpy bool column
        is_array = arraysize not in (None, "1") and datatype not in ("char", "unicodeChar")
        if datatype not in DATATYPES or (is_array and (datatype not in ARRAY_DATATYPES or "x" in (arraysize or ""))):
            shown = f"{fld.datatype}[{arraysize}]" if arraysize else fld.datatype
            raise UploadError(f"Column {col_name!r} of upload {name!r} has type {shown}; uploads "
                              "take scalar boolean (or bit), short, int, long, float, double, "
                              "unsignedByte, char/unicodeChar strings and one-dimensional arrays "
                              "of numbers.")
        # Strings of any declared length are text: an upload's arraysize is a hint, not a limit.
        arrow_type, pg_type = DATATYPES[datatype].pg_arrow_type, DATATYPES[datatype].pg_type
        if is_array:
            arrays.append(_array_column(values, arrow_type))
            pg_type += "[]"
        elif mask is None:
            arrays.append(_column_array(values, arrow_type))
        else:
            arrays.append(pa.array(values.astype(arrow_type.to_pandas_dtype(), copy=False),
                                   mask=mask if mask.any() else None, type=arrow_type))
        columns.append(Column(
            name=adql_name(col_name), datatype=datatype,
            arraysize=None if arraysize == "1" else arraysize,
            # An array's xtype (DALI point, circle, interval ...) is not kept: the translator
            # would read a point as a pg_sphere value, which the stored array is not.
            xtype=None if is_array else fld.xtype,
            unit=fld.unit, ucd=fld.ucd, utype=fld.utype, description=fld.description,
            column_index=index + 1))
        pg_types.append(pg_type)
    arrow = pa.table(arrays, names=[f"c{i}" for i in range(len(arrays))])
    return UploadTable(name=name, columns=tuple(columns), pg_types=tuple(pg_types), data=arrow)


def _array_column(column: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    """An array FIELD as an Arrow list (a PostgreSQL array): astropy gives a 2-D masked array
    for a fixed size and an object array of masked arrays for a variable one.  A cell is NULL
    when it is masked whole (or empty and masked); a masked element of a float array is NaN,
    of an integer array the cell's NULL (PostgreSQL arrays of numbers hold no NULL elements here)."""
    cells: list[list[object] | None] = []
    whole = np.ma.getmaskarray(column)
    for index in range(len(column)):
        cell = column[index]
        if cell is np.ma.masked or cell is None or (whole.ndim == 1 and whole[index]):
            cells.append(None)
            continue
        values = np.ma.getdata(cell)
        masked = np.ma.getmaskarray(cell)
        if values.dtype.kind == "f":
            cells.append(np.where(masked, np.nan, values).astype(float).tolist())
        else:
            cells.append([None if m else v for v, m in zip(values.tolist(), masked.tolist(), strict=True)])
    return pa.array(cells, type=pa.list_(arrow_type))


def _column_array(column: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    mask = np.ma.getmaskarray(column)
    values = np.ma.getdata(column)
    if pa.types.is_string(arrow_type):
        out: list[str | None] = []
        for value, masked in zip(values.tolist(), mask.tolist(), strict=True):
            if masked or value is None:
                out.append(None)
            elif isinstance(value, bytes):
                out.append(value.decode("utf-8", "replace"))
            else:
                out.append(str(value))
        return pa.array(out, type=pa.string())
    if values.dtype.kind == "O":
        return pa.array([None if m else v for v, m in zip(values.tolist(), mask.tolist(),
                                                          strict=True)], type=arrow_type)
    return pa.array(np.asarray(values).astype(arrow_type.to_pandas_dtype(), copy=False),
                    mask=mask if mask.any() else None, type=arrow_type)


_DB_COLUMN = re.compile(r"^c[0-9]{1,4}$")
#: Datatypes of the one-dimensional array columns an upload may have (stored as PostgreSQL arrays).
ARRAY_DATATYPES = ("unsignedByte", "short", "int", "long", "float", "double")
#: Uploads of at least this many rows may be scanned by parallel workers (see UploadStore.load).
UPLOAD_PARALLEL_ROWS = 20_000
UPLOAD_PARALLEL_WORKERS = 2


def upload_table_name() -> str:
    """A unique PostgreSQL name that also says when it was made (for the orphan reaper)."""
    return f"u{int(time.time())}_{secrets.token_hex(6)}"


class UploadStore:
    """Creates and drops upload tables as the owner role, on ADBC connections.

    The owner writes the rows (binary COPY through ADBC's bulk ingest) into an UNLOGGED table
    of ``tap_upload``, whose tables ``pzvo_reader`` may SELECT (default privileges from
    migration 0005); the user's query then runs, unchanged, on a read-only reader session.
    """

    def __init__(self, owner_url: str) -> None:
        self._pool = ConnectionPool(owner_url, size=2)

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadStore:
        url = make_url(settings.owner_url()).set(drivername="postgresql")
        return cls(url.render_as_string(hide_password=False))

    def load(self, uploads: Sequence[UploadTable]) -> list[TableMeta]:
        """Create one table per upload; return catalogue entries pointing at them."""
        created: list[TableMeta] = []
        try:
            with self._pool.connection() as conn:
                for upload in uploads:
                    db_table = upload_table_name()
                    cols = ", ".join(f"{quote_ident(f'c{i}')} {pg_type}"
                                     for i, pg_type in enumerate(upload.pg_types))
                    # A large upload gets parallel workers whatever its size in bytes (PostgreSQL
                    # plans none below min_parallel_table_scan_size, 8 MB): a crossmatch of
                    # 100,000 uploaded positions is a nested loop of index probes, 1.7x faster
                    # in parallel (docs/adql.md, "Crossmatch joins").
                    workers = (f" WITH (parallel_workers = {UPLOAD_PARALLEL_WORKERS})"
                               if upload.data.num_rows >= UPLOAD_PARALLEL_ROWS else "")
                    with conn.cursor() as cur:
                        cur.execute(f"CREATE UNLOGGED TABLE {UPLOAD_SCHEMA}.{db_table} ({cols}){workers}")
                    created.append(TableMeta(
                        schema_name=ADQL_SCHEMA, table_name=f"{ADQL_SCHEMA}.{upload.name}",
                        columns=tuple(replace(c, db_name=f"c{i}")
                                      for i, c in enumerate(upload.columns)),
                        description="Uploaded table", db_schema=UPLOAD_SCHEMA,
                        db_table=db_table))
                    with conn.cursor() as cur:
                        if upload.data.num_rows:
                            cur.adbc_ingest(db_table, upload.data, mode="append",
                                            db_schema_name=UPLOAD_SCHEMA)
                        cur.execute(f"ANALYZE {UPLOAD_SCHEMA}.{db_table}")
        except BaseException:
            self.drop(created)
            raise
        return created

    def add_spatial_index(self, table: TableMeta, ra_column: str, dec_column: str) -> None:
        """A GiST index on an upload's position, for a crossmatch that no published table's
        index can answer (two uploads, an upload and a subquery); about 2 us a row."""
        if not table.db_table or not _DB_COLUMN.match(ra_column) or not _DB_COLUMN.match(dec_column):
            raise ValueError(f"not an upload position: {table.table_name} ({ra_column}, {dec_column})")
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE INDEX ON {UPLOAD_SCHEMA}.{table.db_table} USING gist "
                        f"(spoint(radians({ra_column}), radians({dec_column})))")
            cur.execute(f"ANALYZE {UPLOAD_SCHEMA}.{table.db_table}")

    def drop(self, tables: Iterable[TableMeta]) -> None:
        """Drop upload tables (after the query or job); never raises."""
        names = [t.db_table for t in tables if t.db_table]
        if not names:
            return
        try:
            with self._pool.connection() as conn, conn.cursor() as cur:
                cur.execute("DROP TABLE IF EXISTS "
                            + ", ".join(f"{UPLOAD_SCHEMA}.{n}" for n in names))
        except Exception:  # the reaper drops what is left behind
            log.warning("could not drop upload tables", extra={"tables": names}, exc_info=True)

    def drop_older_than(self, seconds: float) -> int:
        """Drop orphaned upload tables (a process died mid-query); returns how many."""
        cutoff = int(time.time() - seconds)
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT tablename FROM pg_tables WHERE schemaname = '{UPLOAD_SCHEMA}'")
            old = [n for (n,) in cur.fetchall()
                   if (m := re.match(r"^u(\d+)_", n)) and int(m.group(1)) < cutoff]
            if old:
                cur.execute("DROP TABLE IF EXISTS "
                            + ", ".join(f"{UPLOAD_SCHEMA}.{n}" for n in old))
        return len(old)

    def close(self) -> None:
        self._pool.close()
