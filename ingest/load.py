"""The one path that publishes a table: create, COPY (binary, streamed), index, TAP_SCHEMA.

Everything runs on the caller's SQLAlchemy connection inside the caller's transaction, so a
product's table, TAP_SCHEMA rows, registry rows and provenance records commit together or not
at all.  Rows are encoded to PostgreSQL's binary COPY format by ``pgpq`` (Arrow -> COPY, in
Rust) batch by batch and streamed through psycopg2's ``copy_expert``: client memory is bounded
by one batch.  Measured against the server reading the same data from a binary COPY file, see
docs/performance.md ("Ingest").
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator

import pgpq
import pyarrow as pa
from sqlalchemy import text
from sqlalchemy.engine import Connection

from ingest.columns import ColumnSpec, column_for_role
from tap_schema.loader import create_indexes_sql, create_table_sql, publish_table, qualified
from tap_schema.model import ColumnDescription, TableDescription

log = logging.getLogger(__name__)

COPY_CHUNK = 1 << 20


class _CopyStream:
    """A file-like object that psycopg2's ``copy_expert`` reads binary COPY data from."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if size < 0:
            out, self._buffer = bytes(self._buffer), bytearray()
        else:
            out, self._buffer = bytes(self._buffer[:size]), self._buffer[size:]
        return out

    readline = read


def binary_copy_chunks(batches: Iterable[pa.RecordBatch], schema: pa.Schema,
                       counter: list[int], progress: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """Encode batches (cast to ``schema``) as PostgreSQL binary COPY data."""
    encoder = pgpq.ArrowToPostgresBinaryEncoder(schema)
    yield encoder.write_header()
    for batch in batches:
        if batch.schema != schema:
            batch = pa.RecordBatch.from_arrays(
                [batch.column(i).cast(schema.field(i).type) for i in range(len(schema))],
                schema=schema)
        counter[0] += batch.num_rows
        if progress:
            progress(batch.num_rows)
        yield encoder.write_batch(batch)
    yield encoder.finish()


def copy_arrow(conn: Connection, table: str, columns: list[ColumnSpec],
               batches: Iterable[pa.RecordBatch], progress: Callable[[int], None] | None = None) -> int:
    """Stream batches into ``table`` (qualified, quoted) with binary COPY; return the rows."""
    schema = pa.schema([pa.field(c.name, c.arrow_type) for c in columns])
    counter = [0]
    renamed = (b.rename_columns([c.name for c in columns]) for b in batches)
    stream = _CopyStream(binary_copy_chunks(renamed, schema, counter, progress))
    cols = ", ".join(f'"{c.name}"' for c in columns)
    with conn.connection.dbapi_connection.cursor() as cur:
        cur.copy_expert(f"COPY {table} ({cols}) FROM STDIN WITH (FORMAT binary)", stream, size=COPY_CHUNK)
    return counter[0]


def table_description(schema: str, name: str, description: str, columns: list[ColumnSpec],
                      primary_key: str | None = None) -> TableDescription:
    """The TAP_SCHEMA description of a product table, from its planned columns."""
    ra, dec = column_for_role(columns, "ra"), column_for_role(columns, "dec")
    return TableDescription(
        schema=schema, name=name, description=description,
        columns=tuple(ColumnDescription(
            name=c.name, datatype=c.datatype, arraysize=c.arraysize, unit=c.unit, ucd=c.ucd,
            description=c.description, principal=c.role is not None,
            indexed=c.name == primary_key or c.role in ("ra", "dec"),
            nullable=c.name != primary_key, pg_type=c.pg_type) for c in columns),
        primary_key=(primary_key,) if primary_key else (),
        position_columns=(ra.name, dec.name) if ra and dec else None)


def publish_arrow_table(conn: Connection, desc: TableDescription, columns: list[ColumnSpec],
                        batches: Iterable[pa.RecordBatch],
                        progress: Callable[[int], None] | None = None) -> int:
    """Create, fill, index and publish a table in the caller's transaction; return its rows.

    The primary key and the position index are built after the COPY (faster than maintaining
    them row by row).  Call :func:`ingest.copy.vacuum_analyze` after the commit.
    """
    started = time.perf_counter()
    stmts = create_table_sql(desc)
    create_schema, create_table = stmts[0], stmts[1]
    if desc.primary_key:
        create_table = create_table.replace(
            ",\n  PRIMARY KEY (" + ", ".join(f'"{c}"' for c in desc.primary_key) + ")", "")
    conn.execute(text(create_schema))
    conn.execute(text(create_table))
    rows = copy_arrow(conn, qualified(desc), columns, batches, progress)
    if desc.primary_key:
        keys = ", ".join(f'"{c}"' for c in desc.primary_key)
        conn.execute(text(f'ALTER TABLE {qualified(desc)} ADD PRIMARY KEY ({keys})'))
    for stmt in create_indexes_sql(desc):
        conn.execute(text(stmt))
    publish_table(conn, desc)
    log.info("published table", extra={"table": desc.qualified_name, "rows": rows,
                                       "seconds": round(time.perf_counter() - started, 3)})
    return rows
