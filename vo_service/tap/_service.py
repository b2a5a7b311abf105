"""Running ADQL queries: translate against the catalogue, execute, stream typed batches and
their encoding in the requested format.

:meth:`TapService.stream` is the one path every caller takes (sync ``/tap/sync``, async jobs,
product table downloads, product pages): translate, run on a pooled connection, normalise the
batches, cut them at MAXREC, transform them, encode them.  No Flask here: callers get back a
:class:`QueryResult` and turn its chunks into a response body or a file, or read its rows.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO

import pyarrow as pa

from vo_service.core import __version__
from vo_service.core import pool as _pool
from vo_service.core.columns import Column, datatype_for_arrow
from vo_service.core.errors import is_connection_failure, is_query_canceled, sqlstate
from vo_service.core.settings import Settings
from vo_service.tap import _storage
from vo_service.tap._exceptions import (
    ExecutionError,
    QueryError,
    QueryTimeoutError,
    ServiceUnavailableError,
)
from vo_service.tap._params import QueryParams
from vo_service.tap._uploads import (
    UploadLimits,
    UploadStore,
    UploadTable,
    collect_uploads,
    read_votable,
)
from vo_service.tap.adql import AdqlError, TranslatedQuery, translate_adql
from vo_service.tap.catalog import Catalog, TableMeta
from vo_service.tap.formats import OutputFormat
from vo_service.tap.results import ResultStatus, SelectItem

log = logging.getLogger(__name__)


#: A function applied to every result batch after normalisation and the MAXREC cut (product
#: downloads neutralise spreadsheet formulas with one); it must keep the rows and the schema.
BatchTransform = Callable[[pa.RecordBatch], pa.RecordBatch]


def query_infos(params: QueryParams, **extra: str) -> dict[str, str]:
    """The INFO elements of a TAP result (QUERY, LANG, REQUEST_DATE, SERVER_SOFTWARE), then
    ``extra`` (an async job adds its JOB_ID)."""
    return {"QUERY": params.query, "LANG": params.lang,
            "REQUEST_DATE": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "SERVER_SOFTWARE": f"pzvo {__version__}", **extra}


@dataclass(eq=False)
class QueryResult:
    """A started query: FIELD descriptions, its batches and their encoding, its status.

    Read the result one way: ``chunks`` (or :meth:`body`) for the bytes of ``format``, or
    ``batches`` (or :meth:`rows`) for Arrow batches / Python rows, normalised, cut at MAXREC
    and transformed either way.  ``status`` (rows, overflow, an error after the first batch) is
    complete once they are exhausted.  Exhausting them, or :meth:`close` (``with result:``)
    at any point, ends the query: the connection goes back to the pool, uploads are dropped.
    """

    fields: list[Column]
    batches: Iterator[pa.RecordBatch]
    status: ResultStatus
    sql: str
    format: OutputFormat
    timings: dict[str, float] = field(default_factory=dict)
    name: str = "result"
    """File name stem for :attr:`filename`."""
    infos: Mapping[str, str] = field(default_factory=dict)
    """INFO elements of the encoded document (formats without room for them ignore them)."""
    _chunks: _EncodedChunks | None = field(default=None, init=False, repr=False)

    @property
    def media_type(self) -> str:
        return self.format.mime_type

    @property
    def filename(self) -> str:
        """A file name for the encoded result: ``<name>.<extension of the format>``."""
        return f"{self.name}.{self.format.extension}"

    @property
    def chunks(self) -> _EncodedChunks:
        """The result encoded in ``format``, lazily, one chunk at a time; closing it (it has a
        ``close``) closes the query too.  Encoders of formats that cannot carry an error raise
        the database error that cut the stream short before their last bytes."""
        if self._chunks is None:
            encoded = self.format.encode(self.fields, self.batches, self.status, infos=self.infos)
            self._chunks = _EncodedChunks(encoded, self.batches)
        return self._chunks

    def body(self) -> Iterator[bytes]:
        """:attr:`chunks` as a streamed HTTP body, its first chunk taken now.

        Taking it before the response starts turns an error raised before any byte (FITS
        spools the whole result before its header) into an exception here, which the caller
        answers with an error document and an HTTP status; the query is closed then.  An error
        raised later propagates out of the WSGI iteration: the server ends the connection
        without the terminating chunk, so the client sees an incomplete transfer, never a
        clean short file.
        """
        chunks = self.chunks
        chunks.prime()
        return chunks

    def rows(self) -> list[list[object]]:
        """All rows as Python lists (for small results, such as a page's preview), the query
        closed; raises the database error that cut the stream short, if one did."""
        rows: list[list[object]] = []
        with self:
            for batch in self.batches:
                rows.extend(list(row) for row in zip(*(c.to_pylist() for c in batch.columns), strict=True))
        self.status.raise_failure()
        return rows

    def close(self) -> None:
        """End the query now (a no-op once its batches are exhausted)."""
        if self._chunks is not None:
            self._chunks.close()
        else:
            close = getattr(self.batches, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> QueryResult:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class TapService:
    """Sync query execution with a cached view of TAP_SCHEMA.

    The catalogue is re-read after ``catalog_ttl_s`` seconds, and at once when a query names a
    table it does not know, so a table published by ingest is queryable immediately.
    """

    def __init__(self, *, settings: Settings, pool: _pool.ConnectionPool,
                 upload_store: UploadStore | None = None) -> None:
        self.settings = settings
        self.pool = pool
        self._upload_store = upload_store
        self._catalog: Catalog | None = None
        self._catalog_at = 0.0
        self._lock = threading.Lock()

    @property
    def upload_store(self) -> UploadStore:
        """Owner-side store of upload tables, opened on first use (most requests upload nothing)."""
        with self._lock:
            if self._upload_store is None:
                self._upload_store = UploadStore.from_settings(self.settings)
            return self._upload_store

    def read_uploads(self, params: QueryParams, files: Mapping[str, IO[bytes]]) -> list[UploadTable]:
        """Collect and parse the request's uploads, limits enforced (size, rows, URLs)."""
        limits = UploadLimits.from_settings(self.settings)
        return [read_votable(spec.name, data, limits)
                for spec, data in collect_uploads(params.uploads, files, limits)]

    # -- catalogue -----------------------------------------------------------------------------
    def catalog(self, *, refresh: bool = False) -> Catalog:
        with self._lock:
            fresh = time.monotonic() - self._catalog_at < self.settings.catalog_ttl_s
            if self._catalog is None or refresh or not fresh:
                try:
                    with self.pool.connection() as conn:
                        self._catalog = _storage.load_catalog(conn)
                except _pool.DatabaseError as exc:
                    raise ServiceUnavailableError(f"The database is not reachable: {exc}") from exc
                self._catalog_at = time.monotonic()
            return self._catalog

    # -- queries -------------------------------------------------------------------------------
    def translate(self, params: QueryParams,
                  uploads: tuple[TableMeta, ...] = ()) -> TranslatedQuery:
        """ADQL to SQL with LIMIT MAXREC+1, so one extra row tells that the result overflowed.

        ``uploads`` are this request's ``TAP_UPLOAD`` tables, added to a private copy of the
        catalogue.
        """
        try:
            return translate_adql(params.query, self.catalog().with_tables(uploads),
                                  row_limit=params.maxrec + 1, version=params.adql_version)
        except AdqlError as first:
            if "table" not in first.message.lower():
                raise QueryError(_position_message(first)) from first
            try:
                return translate_adql(params.query,
                                      self.catalog(refresh=True).with_tables(uploads),
                                      row_limit=params.maxrec + 1, version=params.adql_version)
            except AdqlError as exc:
                raise QueryError(_position_message(exc)) from exc

    def stream(self, params: QueryParams, *, uploads: Sequence[UploadTable] = (),
               statement_timeout_ms: int | None = None,
               on_connection: Callable[[object], None] | None = None,
               on_release: Callable[[], None] | None = None,
               transform: BatchTransform | None = None,
               infos: Mapping[str, str] | None = None,
               name: str = "result") -> QueryResult:
        """Run an ADQL query and stream its result in ``params.format``: the one query path.

        Translates ``params.query`` (LIMIT MAXREC+1), runs it on a pooled connection and reads
        the first batch before returning, so planning errors, timeouts before the first row
        and most execution errors raise here as :class:`TapError` (a DALI error with a proper
        HTTP status, not a truncated 200 response).  The result's batches are normalised (no
        driver extension types), cut at ``params.maxrec`` (``status.overflow``), then passed
        through ``transform``; its ``chunks`` encode them in ``params.format`` with ``infos``
        (by default :func:`query_infos`); ``filename`` is ``<name>.<extension>``.

        ``uploads`` become tables for the query's lifetime (dropped when the result is
        exhausted or closed).  Async jobs pass their own ``statement_timeout_ms``.
        ``on_connection`` receives the connection so that the query can be cancelled from
        another thread (a UWS abort, a client hang-up: :class:`QueryGuard.attach`);
        ``on_release`` is called just before that connection goes back to the pool, after
        which it must not be cancelled any more (:class:`QueryGuard.release`).
        """
        t0 = time.perf_counter()
        upload_tables: tuple[TableMeta, ...] = ()
        if uploads:
            try:
                upload_tables = tuple(self.upload_store.load(uploads))
            except _pool.DatabaseError as exc:
                raise _database_error(exc) from exc
        status = ResultStatus()
        pool_cm: AbstractContextManager[_pool.Connection] = self.pool.connection(statement_timeout_ms)
        if on_release is not None:
            pool_cm = _ReleaseHook(pool_cm, on_release)
        try:
            translated = self.translate(params, upload_tables)
            if translated.upload_indexes:
                self._index_uploads(translated.upload_indexes, upload_tables)
            t1 = time.perf_counter()
            try:
                conn = pool_cm.__enter__()
                if on_connection is not None:
                    on_connection(conn)
                reader = _pool.execute(conn, translated.sql)
                first = reader.next_batch()
            except BaseException as exc:
                pool_cm.__exit__(type(exc), exc, exc.__traceback__)
                raise _database_error(exc, translated.hints) from exc
        except BaseException:
            self._drop_uploads(upload_tables)
            raise
        t2 = time.perf_counter()
        batches = _ResultBatches(pool_cm, reader, first, maxrec=params.maxrec, status=status,
                                 transform=transform, hints=translated.hints,
                                 cleanup=lambda: self._drop_uploads(upload_tables))
        try:
            fields = result_fields(translated.columns, reader.schema)
        except BaseException:
            batches.close()
            raise
        return QueryResult(fields=fields, batches=batches, status=status, sql=translated.sql,
                           format=params.format, name=name,
                           infos=query_infos(params) if infos is None else dict(infos),
                           timings={"translate_ms": (t1 - t0) * 1e3, "first_batch_ms": (t2 - t1) * 1e3})

    def _index_uploads(self, wanted: tuple[tuple[str, str, str], ...], tables: tuple[TableMeta, ...]) -> None:
        by_name = {t.table_name.lower(): t for t in tables}
        for name, ra_column, dec_column in wanted:
            table = by_name.get(name.lower())
            if table is not None:
                try:
                    self.upload_store.add_spatial_index(table, ra_column, dec_column)
                except _pool.DatabaseError as exc:
                    raise _database_error(exc) from exc

    def _drop_uploads(self, tables: tuple[TableMeta, ...]) -> None:
        if tables:
            self.upload_store.drop(tables)


class _ResultBatches:
    """A started query's batches: normalised, cut at MAXREC, transformed.

    An iterator with ``close`` rather than a generator, whose ``close`` does nothing before its
    first item: exhausting it, a database error while reading, or closing it at any point
    (even before the first batch) ends the query once: the reader is closed, the connection
    goes back to the pool (rolled back, or discarded if unusable, after an early end), and the
    query's upload tables are dropped.  A database error after the first batch does not raise
    here: it is recorded in ``status`` (see :class:`ResultStatus`) and the stream ends.
    """

    def __init__(self, pool_cm: AbstractContextManager[_pool.Connection],
                 reader: _pool.ResultStream, first: pa.RecordBatch | None, *, maxrec: int,
                 status: ResultStatus, transform: BatchTransform | None = None,
                 cleanup: Callable[[], None] | None = None, hints: tuple[str, ...] = ()) -> None:
        self._pool_cm = pool_cm
        self._reader = reader
        self._first: pa.RecordBatch | None = first
        self._first_unread = True
        self._maxrec = maxrec
        self._status = status
        self._transform = transform
        self._cleanup = cleanup
        self._hints = hints
        self._open = True

    def __iter__(self) -> _ResultBatches:
        return self

    def __next__(self) -> pa.RecordBatch:
        if not self._open:
            raise StopIteration
        if self._first_unread:
            batch, self._first, self._first_unread = self._first, None, False
        else:
            try:
                batch = self._reader.next_batch()
            except Exception as exc:  # noqa: BLE001 - the encoder reports it, see ResultStatus
                self._status.fail(_database_error(exc, self._hints))
                self._end(exc)
                raise StopIteration from None
            except BaseException as exc:
                self._end(exc)
                raise
        if batch is None:
            self._end()
            raise StopIteration
        remaining = self._maxrec - self._status.rows
        if batch.num_rows > remaining:
            self._status.overflow = True
            self._end()
            if remaining <= 0:
                raise StopIteration
            batch = batch.slice(0, remaining)
        self._status.rows += batch.num_rows
        try:
            batch = normalize_batch(batch)
            return batch if self._transform is None else self._transform(batch)
        except BaseException as exc:
            self._end(exc)
            raise

    def close(self) -> None:
        """End the query now, if it has not ended (a half-read result: the connection is
        rolled back before it goes back to the pool)."""
        if self._open:
            self._end(_ClosedEarly("the result was closed before its end"))

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # nothing to report to at collection time
            log.warning("closing an abandoned query result failed", exc_info=True)

    def _end(self, exc: BaseException | None = None) -> None:
        if not self._open:
            return
        self._open = False
        exc_info: _ExcInfo = ((type(exc), exc, exc.__traceback__) if exc is not None
                              else (None, None, None))
        try:
            try:
                self._reader.close()
            except Exception:  # noqa: BLE001 - closing a half-read COPY may complain
                if exc_info[0] is None:
                    exc_info = (RuntimeError, RuntimeError("closed early"), None)
            self._pool_cm.__exit__(*exc_info)
        finally:
            if self._cleanup is not None:
                self._cleanup()


_ExcInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]


class _ClosedEarly(Exception):
    """Handed to the connection's context manager when a result is closed before its end."""


class _EncodedChunks:
    """A result's encoded chunks; closing them closes the encoder and the query's batches."""

    def __init__(self, chunks: Iterator[bytes], batches: Iterator[pa.RecordBatch]) -> None:
        self._chunks = chunks
        self._batches = batches
        self._first: bytes | None = None
        self._primed = False

    def prime(self) -> None:
        """Take the first chunk now (``b""`` for an empty encoding); closes all on an error."""
        if self._primed:
            return
        self._primed = True
        try:
            self._first = next(self._chunks, b"")
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> _EncodedChunks:
        return self

    def __next__(self) -> bytes:
        self._primed = True
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return next(self._chunks)

    def close(self) -> None:
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            close = getattr(self._batches, "close", None)
            if close is not None:
                close()


class _ReleaseHook:
    """A pooled connection's context manager that calls ``on_release`` before giving it back."""

    def __init__(self, inner: AbstractContextManager[_pool.Connection],
                 on_release: Callable[[], None]) -> None:
        self._inner = inner
        self._on_release = on_release

    def __enter__(self) -> _pool.Connection:
        return self._inner.__enter__()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool | None:
        try:
            self._on_release()
        finally:
            return self._inner.__exit__(exc_type, exc, tb)  # noqa: B012 - the release must happen


def _position_message(exc: AdqlError) -> str:
    if exc.line is not None and f"line {exc.line}" not in exc.message:
        return f"{exc.message} (line {exc.line}, column {exc.col})"
    return exc.message


def _database_error(exc: BaseException, hints: tuple[str, ...] = ()) -> Exception:
    """Turn a driver error into a domain error with a message a person can act on; a query
    cancelled at the time limit also gets the translator's ``hints`` (how to use an index)."""
    if not isinstance(exc, (_pool.DatabaseError, pa.ArrowException, OSError)):
        return exc  # type: ignore[return-value]
    text = str(exc)
    detail = text.split("ERROR:", 1)[-1].strip().split("\n")[0] if "ERROR:" in text else text
    if is_query_canceled(exc):
        return QueryTimeoutError(" ".join(("The query ran longer than the time limit and was cancelled.",
                                           *hints, "Narrow it (a cone, a TOP, an indexed column) or use "
                                           "async TAP.")))
    if is_connection_failure(exc) or isinstance(exc, _pool.DatabaseError) and sqlstate(exc) is None \
            and "could not connect" in text:
        return ServiceUnavailableError(f"The database is not reachable: {detail}")
    return ExecutionError(f"The database could not run the query: {detail}")


def normalize_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Replace driver extension types (PostgreSQL numeric comes as an opaque string)."""
    if not any(isinstance(f.type, pa.ExtensionType) or isinstance(f.type, pa.BaseExtensionType)
               for f in batch.schema):
        return batch
    arrays = []
    for col in batch.columns:
        if isinstance(col.type, pa.BaseExtensionType):
            storage = col.storage
            name = getattr(col.type, "type_name", "")
            arrays.append(storage.cast(pa.float64()) if name == "numeric" else storage)
        else:
            arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _arrow_type(t: pa.DataType) -> pa.DataType:
    if isinstance(t, pa.BaseExtensionType):
        return pa.float64() if getattr(t, "type_name", "") == "numeric" else t.storage_type
    return t


def result_fields(columns: tuple[SelectItem, ...], schema: pa.Schema) -> list[Column]:
    """FIELD descriptions: the data's Arrow type decides the datatype; metadata comes from
    the translator (units of expressions, geometry xtypes) and the catalogue (column refs)."""
    fields = []
    for oc, arrow_field in zip(columns, schema, strict=True):
        src = oc.source
        datatype, arraysize = datatype_for_arrow(_arrow_type(arrow_field.type))
        if src is not None and src.datatype in ("char", "unicodeChar") and datatype in ("char", "unicodeChar"):
            datatype = src.datatype
        declared_arraysize = oc.arraysize or (src.arraysize if src else None)
        if declared_arraysize and arraysize is not None:
            arraysize = declared_arraysize
        fields.append(Column(
            name=oc.name, datatype=datatype, arraysize=arraysize,
            xtype=oc.xtype or (src.xtype if src else None),
            unit=oc.unit or (src.unit if src else None),
            ucd=oc.ucd or (src.ucd if src else None),
            utype=src.utype if src else None,
            description=src.description if src else None))
    return fields
