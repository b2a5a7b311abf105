"""The one path that publishes a table: create, COPY (binary, streamed), index, TAP_SCHEMA.

Everything runs on the caller's SQLAlchemy connection inside the caller's transaction, so a
product's table, TAP_SCHEMA rows, registry rows and provenance records commit together or not
at all.  Rows are encoded to PostgreSQL's binary COPY format by ``pgpq`` (Arrow -> COPY, in
Rust) batch by batch and streamed through psycopg2's ``copy_expert``: client memory is bounded
by one batch.  Measured against the server reading the same data from a binary COPY file, see
docs/performance.md ("Ingest").

:class:`LoadLimits` stops a load while it streams: rows are counted, and each batch adds what it
will take in the table (:func:`estimate_table_bytes` of its values), so a file whose rows
were unknown (CSV) or whose estimate was low is stopped at the limit, not after the disk filled.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import pgpq
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import text
from sqlalchemy.engine import Connection

from ingest.columns import column_for_role
from ingest.limits import Limit, check
from tap_schema import TableDescription
from tap_schema.loader import (
    create_indexes_sql,
    create_table_sql,
    publish_table,
    qualified,
)
from vo_service.core.columns import PG_VALUE_BYTES, Column
from vo_service.core.database import copy_cursor
from vo_service.core.identifiers import pg_name, quote_ident

log = logging.getLogger(__name__)

#: Told the number of rows just loaded, batch by batch (a tqdm bar's ``update``); what it
#: returns is ignored.
Progress = Callable[[int], object]

COPY_CHUNK = 1 << 20
#: Bytes of a PostgreSQL heap page and of its header; a row costs at least its tuple header
#: (23 bytes, aligned to 24) and a 4-byte line pointer besides its values.
PAGE_BYTES, PAGE_HEADER = 8192, 24
TUPLE_OVERHEAD = 24 + 4


@dataclass(frozen=True)
class LoadLimits:
    """Limits enforced while rows stream into a table (``None``/empty: unchecked).

    ``table_bytes`` may hold several limits (the table limit, what is left of a quota): the
    estimated table size must stay under each.
    """

    rows: Limit | None = None
    table_bytes: Sequence[Limit] = ()


def estimate_table_bytes(rows: int, value_bytes: int = 0) -> int:
    """A lower bound of the heap of ``rows`` rows holding ``value_bytes`` bytes of values.

    Alignment padding, null bitmaps, indexes and free space only add to it; text is counted
    uncompressed (PostgreSQL compresses values over about 2 kB, which may make them smaller).
    """
    data = rows * TUPLE_OVERHEAD + value_bytes
    return math.ceil(data * PAGE_BYTES / (PAGE_BYTES - PAGE_HEADER))


def value_bytes(columns: Sequence[Column], rows: int) -> int:
    """Bytes of ``rows`` rows of ``columns`` none of which is NULL (text: its header only)."""
    return rows * sum(PG_VALUE_BYTES.get(c.sql_type, 8) for c in columns)


class _Meter:
    """Counts rows and the estimated table bytes of the batches that pass, against LoadLimits."""

    def __init__(self, columns: Sequence[Column], limits: LoadLimits) -> None:
        self.columns = columns
        self.limits = limits
        self.rows = 0
        self.values = 0

    def add(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        check(self.limits.rows, self.rows, "the table has at least {value} rows", kind="size")
        if not self.limits.table_bytes:
            return
        for spec, column in zip(self.columns, batch.columns, strict=True):
            self.values += (len(column) - column.null_count) * PG_VALUE_BYTES.get(spec.sql_type, 8)
            if spec.sql_type == "text":
                self.values += pc.sum(pc.binary_length(column)).as_py() or 0
        estimate = estimate_table_bytes(self.rows, self.values)
        for limit in self.limits.table_bytes:
            check(limit, estimate, "the table takes at least {value} bytes", kind="size")


class _CopyStream:
    """A file-like object that psycopg2's ``copy_expert`` reads binary COPY data from."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()
        self.error: BaseException | None = None
        """What stopped the stream: psycopg2 reports it only as the text of a QueryCanceled."""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
            except BaseException as exc:
                self.error = exc
                raise
        if size < 0:
            out, self._buffer = bytes(self._buffer), bytearray()
        else:
            out, self._buffer = bytes(self._buffer[:size]), self._buffer[size:]
        return out

    readline = read


def binary_copy_chunks(batches: Iterable[pa.RecordBatch], schema: pa.Schema,
                       counter: list[int], progress: Progress | None = None,
                       meter: _Meter | None = None) -> Iterator[bytes]:
    """Encode batches (cast to ``schema``) as PostgreSQL binary COPY data."""
    encoder = pgpq.ArrowToPostgresBinaryEncoder(schema)
    yield encoder.write_header()
    for batch in batches:
        if batch.schema != schema:
            batch = pa.RecordBatch.from_arrays(
                [batch.column(i).cast(schema.field(i).type) for i in range(len(schema))],
                schema=schema)
        if meter is not None:
            meter.add(batch)
        counter[0] += batch.num_rows
        if progress:
            progress(batch.num_rows)
        yield encoder.write_batch(batch)
    yield encoder.finish()


def copy_arrow(conn: Connection, table: str, columns: list[Column],
               batches: Iterable[pa.RecordBatch], progress: Progress | None = None,
               limits: LoadLimits | None = None) -> int:
    """Stream batches into ``table`` (qualified, quoted) with binary COPY; return the rows.

    Raises :class:`~ingest.errors.LimitExceeded` when ``limits`` are passed (the COPY is then
    aborted, and the caller's transaction must roll back).
    """
    schema = pa.schema([pa.field(c.sql_name, c.pg_arrow_type) for c in columns])
    counter = [0]
    renamed = (b.rename_columns([c.sql_name for c in columns]) for b in batches)
    meter = _Meter(columns, limits) if limits is not None else None
    stream = _CopyStream(binary_copy_chunks(renamed, schema, counter, progress, meter))
    cols = ", ".join(quote_ident(c.sql_name) for c in columns)
    with copy_cursor(conn) as cur:
        try:
            cur.copy_expert(f"COPY {table} ({cols}) FROM STDIN WITH (FORMAT binary)", stream, size=COPY_CHUNK)
        except Exception:
            if stream.error is not None:
                raise stream.error from None
            raise
    return counter[0]


def table_description(schema: str, name: str, description: str, columns: list[Column],
                      primary_key: str | None = None) -> TableDescription:
    """The TAP_SCHEMA description of a product table, from its planned columns."""
    ra, dec = column_for_role(columns, "ra"), column_for_role(columns, "dec")
    return TableDescription(
        schema=schema, name=name, description=description,
        columns=tuple(c.with_(
            principal=c.role is not None, indexed=c.name == primary_key or c.role in ("ra", "dec"),
            nullable=c.name != primary_key) for c in columns),
        primary_key=(primary_key,) if primary_key else (),
        position_columns=(ra.name, dec.name) if ra and dec else None)


def publish_arrow_table(conn: Connection, desc: TableDescription, columns: list[Column],
                        batches: Iterable[pa.RecordBatch],
                        progress: Progress | None = None,
                        limits: LoadLimits | None = None) -> int:
    """Create, fill, index and publish a table in the caller's transaction; return its rows.

    The primary key and the position index are built after the COPY (faster than maintaining
    them row by row).  Call :func:`ingest.copy.vacuum_analyze` after the commit.
    """
    started = time.perf_counter()
    stmts = create_table_sql(desc)
    create_schema, create_table = stmts[0], stmts[1]
    if desc.primary_key:
        create_table = create_table.replace(
            ",\n  PRIMARY KEY (" + ", ".join(quote_ident(pg_name(c)) for c in desc.primary_key) + ")", "")
    conn.execute(text(create_schema))
    conn.execute(text(create_table))
    rows = copy_arrow(conn, qualified(desc), columns, batches, progress, limits)
    if desc.primary_key:
        keys = ", ".join(quote_ident(pg_name(c)) for c in desc.primary_key)
        conn.execute(text(f'ALTER TABLE {qualified(desc)} ADD PRIMARY KEY ({keys})'))
    for stmt in create_indexes_sql(desc):
        conn.execute(text(stmt))
    publish_table(conn, desc)
    log.info("published table", extra={"table": desc.qualified_name, "rows": rows,
                                       "seconds": round(time.perf_counter() - started, 3)})
    return rows
