"""Loading a whole in-memory table described in ``tap_schema/``, and asking what is loaded.

Shared by the demo tables (:mod:`vo_service.demo._demo`) and the benchmark table
(:mod:`vo_service.demo._bench`).
"""
from __future__ import annotations

import hashlib
import logging
import time

import pyarrow as pa
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from ingest.columns import specs_for_description
from ingest.load import copy_arrow
from tap_schema.loader import create_indexes_sql, create_table_sql, publish_table, qualified
from tap_schema.model import TableDescription
from vo_service.core.identifiers import unquote_delimited
from vo_service.provenance import EntityDescription

#: The shared Buzzard file, as the demo data's provenance names what it was made from.
SOURCE_CATALOG = EntityDescription(
    id="pzvo:entitydescription/simulated-catalog", name="simulated galaxy catalog",
    category="file", description="Galaxies of a simulation with true redshift and magnitudes.")

log = logging.getLogger(__name__)


def table_checksum(data: pa.Table) -> str:
    """``sha256:<hex>`` of the table's Arrow IPC stream: the content that was loaded."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, data.schema) as writer:
        writer.write_table(data)
    return "sha256:" + hashlib.sha256(sink.getvalue()).hexdigest()


def load_table_data(conn: Connection, desc: TableDescription, data: pa.Table, *,
                    cluster: bool = True) -> int:
    """Create, fill, index and publish one table in the caller's transaction.

    The caller runs :func:`ingest.copy.vacuum_analyze` after committing.
    """
    started = time.perf_counter()
    conn.execute(text(f"DROP TABLE IF EXISTS {qualified(desc)}"))
    for stmt in create_table_sql(desc):
        conn.execute(text(stmt))
    data = data.select([unquote_delimited(c.name)[0] for c in desc.columns])
    rows = copy_arrow(conn, qualified(desc), specs_for_description(desc.columns),
                      data.to_batches(max_chunksize=50_000))
    for stmt in create_indexes_sql(desc):
        conn.execute(text(stmt))
    if cluster and desc.position_columns:
        conn.execute(text(f'CLUSTER {qualified(desc)} USING "{desc.name}_pos_idx"'))
    publish_table(conn, desc)
    log.info("loaded table", extra={"table": desc.qualified_name, "rows": rows,
                                    "seconds": round(time.perf_counter() - started, 3)})
    return rows


def table_rows(engine: Engine, qualified_name: str) -> int | None:
    """Row count of a published table, or None when it is missing or unpublished."""
    with engine.connect() as conn:
        published = conn.execute(text("SELECT 1 FROM tap_schema.tables WHERE table_name = :t"),
                                 {"t": qualified_name}).first()
        exists = conn.execute(text("SELECT to_regclass(:t)"), {"t": qualified_name}).scalar()
        if not (published and exists):
            return None
        return conn.execute(text(f"SELECT count(*) FROM {qualified_name}")).scalar()


def published_column(engine: Engine, qualified_name: str, column: str) -> bool:
    """True when TAP_SCHEMA lists ``column`` (exactly so spelled) in the table: the demo loads
    again when the ``object_key_column`` setting names its key otherwise."""
    with engine.connect() as conn:
        return conn.execute(text("SELECT 1 FROM tap_schema.columns WHERE table_name = :t AND column_name = :c"),
                            {"t": qualified_name, "c": column}).first() is not None
