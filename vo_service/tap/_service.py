"""Running ADQL queries: translate against the catalogue, execute, stream typed batches.

No Flask here: the HTTP layer hands in validated parameters and gets back an object whose
``batches`` it passes to an encoder.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

import pyarrow as pa

from vo_service.core.settings import Settings
from vo_service.core import pool as _pool
from vo_service.core.errors import is_connection_failure, is_query_canceled, sqlstate
from vo_service.tap import _storage
from vo_service.tap._exceptions import (ExecutionError, QueryError, QueryTimeoutError,
                                        ServiceUnavailableError)
from vo_service.tap._params import QueryParams
from vo_service.tap.adql import AdqlError, TranslatedQuery, translate_adql
from vo_service.tap._uploads import (UploadLimits, UploadStore, UploadTable, collect_uploads,
                                     read_votable)
from vo_service.tap.catalog import Catalog, TableMeta
from vo_service.tap.formats import vot_datatype_for_arrow
from vo_service.tap.results import OutputColumn, ResultField, ResultStatus

log = logging.getLogger(__name__)


@dataclass
class QueryResult:
    """A started query: FIELD descriptions, a batch stream truncated at MAXREC, its status."""

    fields: list[ResultField]
    batches: Iterator[pa.RecordBatch]
    status: ResultStatus
    sql: str
    timings: dict[str, float] = field(default_factory=dict)


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

    def read_uploads(self, params: QueryParams, files: Mapping[str, BinaryIO]) -> list[UploadTable]:
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

    def run(self, params: QueryParams, *, uploads: Sequence[UploadTable] = (),
            statement_timeout_ms: int | None = None,
            on_connection: Callable[[object], None] | None = None,
            on_release: Callable[[], None] | None = None) -> QueryResult:
        """Translate and start the query; the first batch is read before returning.

        Reading one batch up front means planning errors, timeouts before the first row and
        most execution errors become DALI errors with a proper HTTP status instead of a
        truncated 200 response.  ``uploads`` become tables for the query's lifetime (dropped
        when the batches are exhausted or closed); async jobs pass their own
        ``statement_timeout_ms`` and an ``on_connection`` hook that receives the connection
        so a job can be cancelled from another thread; ``on_release`` is called just before
        that connection goes back to the pool, after which it must not be cancelled any more.
        """
        t0 = time.perf_counter()
        upload_tables: tuple[TableMeta, ...] = ()
        if uploads:
            try:
                upload_tables = tuple(self.upload_store.load(uploads))
            except _pool.DatabaseError as exc:
                raise _database_error(exc) from exc
        status = ResultStatus()
        pool_cm = self.pool.connection(statement_timeout_ms)
        if on_release is not None:
            pool_cm = _ReleaseHook(pool_cm, on_release)
        try:
            translated = self.translate(params, upload_tables)
            t1 = time.perf_counter()
            try:
                conn = pool_cm.__enter__()
                if on_connection is not None:
                    on_connection(conn)
                reader = _pool.execute(conn, translated.sql)
                first = reader.next_batch()
            except BaseException as exc:
                pool_cm.__exit__(type(exc), exc, exc.__traceback__)
                raise _database_error(exc) from exc
        except BaseException:
            self._drop_uploads(upload_tables)
            raise
        t2 = time.perf_counter()
        fields = result_fields(translated.columns, reader.schema)
        batches = self._stream(pool_cm, reader, first, params.maxrec, status,
                               cleanup=lambda: self._drop_uploads(upload_tables))
        return QueryResult(fields=fields, batches=batches, status=status, sql=translated.sql,
                           timings={"translate_ms": (t1 - t0) * 1e3, "first_batch_ms": (t2 - t1) * 1e3})

    def _drop_uploads(self, tables: tuple[TableMeta, ...]) -> None:
        if tables:
            self.upload_store.drop(tables)

    def _stream(self, pool_cm, reader: _storage.ResultStream, first: pa.RecordBatch | None,
                maxrec: int, status: ResultStatus,
                cleanup: Callable[[], None] | None = None) -> Iterator[pa.RecordBatch]:  # noqa: ANN001
        """Yield normalized batches until MAXREC rows; release the connection at the end."""
        try:
            yield from self._batches(pool_cm, reader, first, maxrec, status)
        finally:
            if cleanup is not None:
                cleanup()

    def _batches(self, pool_cm, reader: _storage.ResultStream, first: pa.RecordBatch | None,
                 maxrec: int, status: ResultStatus) -> Iterator[pa.RecordBatch]:  # noqa: ANN001
        exc_info: tuple = (None, None, None)
        try:
            batch = first
            while batch is not None:
                remaining = maxrec - status.rows
                if batch.num_rows > remaining:
                    status.overflow = True
                    if remaining > 0:
                        status.rows += remaining
                        yield normalize_batch(batch.slice(0, remaining))
                    break
                status.rows += batch.num_rows
                yield normalize_batch(batch)
                try:
                    batch = reader.next_batch()
                except Exception as exc:  # noqa: BLE001 - the encoder reports it, see ResultStatus
                    status.fail(_database_error(exc))
                    exc_info = (type(exc), exc, exc.__traceback__)
                    break
        except BaseException as exc:
            exc_info = (type(exc), exc, exc.__traceback__)
            raise
        finally:
            try:
                reader.close()
            except Exception:  # noqa: BLE001 - closing a half-read COPY may complain
                exc_info = exc_info if exc_info[0] else (RuntimeError, RuntimeError("closed early"), None)
            pool_cm.__exit__(*exc_info)


class _ReleaseHook:
    """A pooled connection's context manager that calls ``on_release`` before giving it back."""

    def __init__(self, inner, on_release: Callable[[], None]) -> None:  # noqa: ANN001
        self._inner = inner
        self._on_release = on_release

    def __enter__(self):  # noqa: ANN204
        return self._inner.__enter__()

    def __exit__(self, *exc_info: object) -> object:
        try:
            self._on_release()
        finally:
            return self._inner.__exit__(*exc_info)  # noqa: B012 - the release must happen


def _position_message(exc: AdqlError) -> str:
    if exc.line is not None and f"line {exc.line}" not in exc.message:
        return f"{exc.message} (line {exc.line}, column {exc.col})"
    return exc.message


def _database_error(exc: BaseException) -> Exception:
    """Turn a driver error into a domain error with a message a person can act on."""
    if not isinstance(exc, (_pool.DatabaseError, pa.ArrowException, OSError)):
        return exc  # type: ignore[return-value]
    text = str(exc)
    detail = text.split("ERROR:", 1)[-1].strip().split("\n")[0] if "ERROR:" in text else text
    if is_query_canceled(exc):
        return QueryTimeoutError("The query ran longer than the time limit and was cancelled. "
                                 "Narrow it (a cone, a TOP, an indexed column) or use async TAP.")
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


def result_fields(columns: tuple[OutputColumn, ...], schema: pa.Schema) -> list[ResultField]:
    """FIELD descriptions: the data's Arrow type decides the datatype; metadata comes from
    the translator (units of expressions, geometry xtypes) and the catalogue (column refs)."""
    fields = []
    for oc, arrow_field in zip(columns, schema, strict=True):
        src = oc.source
        datatype, arraysize = vot_datatype_for_arrow(_arrow_type(arrow_field.type))
        if src is not None and src.datatype in ("char", "unicodeChar") and datatype in ("char", "unicodeChar"):
            datatype = src.datatype
        declared_arraysize = oc.arraysize or (src.arraysize if src else None)
        if declared_arraysize and arraysize is not None:
            arraysize = declared_arraysize
        fields.append(ResultField(
            name=oc.name, datatype=datatype, arraysize=arraysize,
            xtype=oc.xtype or (src.xtype if src else None),
            unit=oc.unit or (src.unit if src else None),
            ucd=oc.ucd or (src.ucd if src else None),
            utype=src.utype if src else None,
            description=src.description if src else None))
    return fields
