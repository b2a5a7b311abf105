"""A published table's rows as Parquet files, and as a HATS catalog made from them.

Rows stream from PostgreSQL through ADBC (Arrow record batches, never the whole table) into a
Parquet writer that starts a new file every ``rows_per_file`` rows, so memory holds a batch
and a row group, whatever the table's size.  Columns carry their TAP names and the Arrow types
TAP results have (``vo_service.core.columns``: ``long`` is int64, ``unsignedByte`` uint8, fixed
arrays fixed-size lists ...), each field with its unit, UCD and description as Parquet field
metadata.  ``export_hats`` runs hats-import (local Dask client, one worker thread per core up
to ``workers``) over those files: the form LSDB and the RSP's HATS catalogs use.
"""
from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vo_service.core.columns import Column
from vo_service.core.identifiers import unquote_delimited
from vo_service.exports.tables import ExportError, PublishedTable
from vo_service.services import Services

log = logging.getLogger(__name__)

#: Rows per Parquet file (one hats-import input chunk each).
ROWS_PER_FILE = 1_000_000
#: Rows per Parquet row group.
ROW_GROUP_ROWS = 100_000
#: What ADBC's PostgreSQL driver aims at per record batch (bounds the memory of one read).
BATCH_BYTES = 16 * 1024 * 1024


def arrow_schema(table: PublishedTable) -> pa.Schema:
    """The Parquet schema: TAP names and types, TAP metadata per field and for the table."""
    fields = []
    for col in table.columns:
        meta = {k: v for k, v in (("unit", col.unit), ("ucd", col.ucd), ("description", col.description),
                                  ("utype", col.utype), ("xtype", col.xtype)) if v}
        fields.append(pa.field(unquote_delimited(col.name)[0], col.arrow_type,
                               nullable=col.name not in table.not_null, metadata=meta or None))
    meta = {"pzvo.table": table.name, "pzvo.description": table.meta.description or "",
            "pzvo.primary_key": json.dumps(list(table.primary_key))}
    return pa.schema(fields, metadata=meta)


def _conform(array: pa.Array | pa.ChunkedArray, target: pa.DataType) -> pa.Array:
    """An array as the TAP type (ADBC's PostgreSQL types: smallint for unsignedByte, text for
    char(n), lists for arrays ...)."""
    if array.type == target:
        return array
    return pc.cast(array, target)


def stream_rows(services: Services, table: PublishedTable, *, batch_bytes: int = BATCH_BYTES
                ) -> Iterator[pa.RecordBatch]:
    """The table's rows as record batches in the export schema (module docstring)."""
    schema = arrow_schema(table)
    columns: list[Column] = list(table.columns)
    select = ", ".join(table.sql_column(c) for c in columns)
    url = services.owner_engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with adbc.connect(url) as conn, conn.cursor() as cur:
        cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(batch_bytes)})
        cur.execute(f"SELECT {select} FROM {table.sql_table}")
        for batch in cur.fetch_record_batch():
            arrays = [_conform(batch.column(i), f.type) for i, f in enumerate(schema)]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)


@dataclass(frozen=True)
class ParquetExport:
    files: list[Path]
    rows: int


def export_parquet(services: Services, table: PublishedTable, out_dir: Path, *,
                   rows_per_file: int = ROWS_PER_FILE, progress: Callable[[int], object] | None = None
                   ) -> ParquetExport:
    """Write ``part-NNNNN.parquet`` files of at most ``rows_per_file`` rows into ``out_dir``
    (which must be empty or new: a rerun never mixes with an earlier export)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ExportError(f"{out_dir} is not empty: export into a new or empty directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    schema = arrow_schema(table)
    files: list[Path] = []
    writer: pq.ParquetWriter | None = None
    in_file = total = 0
    try:
        for batch in stream_rows(services, table):
            offset = 0
            while offset < batch.num_rows:
                if writer is None or in_file >= rows_per_file:
                    if writer is not None:
                        writer.close()
                    files.append(out_dir / f"part-{len(files):05d}.parquet")
                    writer, in_file = pq.ParquetWriter(files[-1], schema), 0
                piece = batch.slice(offset, rows_per_file - in_file)
                writer.write_batch(piece, row_group_size=ROW_GROUP_ROWS)
                offset += piece.num_rows
                in_file += piece.num_rows
                total += piece.num_rows
            if progress is not None:
                progress(batch.num_rows)
        if writer is None:  # an empty table is one empty file: the schema still travels
            files.append(out_dir / "part-00000.parquet")
            pq.write_table(schema.empty_table(), files[-1])
    finally:
        if writer is not None:
            writer.close()
    log.info("table exported as Parquet", extra={"table": table.name, "rows": total, "files": len(files)})
    return ParquetExport(files=files, rows=total)


def _position(table: PublishedTable) -> tuple[str, str]:
    """The main position's columns, by UCD (what HATS partitions on)."""
    ra = [c for c in table.columns if (c.ucd or "").startswith("pos.eq.ra") and "meta.main" in (c.ucd or "")]
    dec = [c for c in table.columns if (c.ucd or "").startswith("pos.eq.dec") and "meta.main" in (c.ucd or "")]
    if not ra or not dec:
        raise ExportError(f"{table.name} has no main position (columns with the UCDs pos.eq.ra;meta.main and "
                          "pos.eq.dec;meta.main): a HATS catalog is partitioned by position")
    return unquote_delimited(ra[0].name)[0], unquote_delimited(dec[0].name)[0]


def export_hats(services: Services, table: PublishedTable, out_dir: Path, *, workers: int = 1,
                rows_per_file: int = ROWS_PER_FILE, pixel_threshold: int = 1_000_000,
                highest_order: int = 10, object_key: str | None = None,
                progress: Callable[[int], object] | None = None) -> dict[str, Any]:
    """Make ``out_dir/<table name>`` a HATS catalog of the table (Parquet export, then
    hats-import with a local Dask client of ``workers`` threads); returns what was written."""
    from dask.distributed import Client  # noqa: PLC0415 - dask: this command only
    from hats_import.catalog.arguments import ImportArguments  # noqa: PLC0415 - hats-import: optional (pzvo[hats])
    from hats_import.pipeline import pipeline_with_client  # noqa: PLC0415 - hats-import

    ra, dec = _position(table)
    out_dir = Path(out_dir)
    name = table.name.replace(".", "_")
    if (out_dir / name).exists():
        raise ExportError(f"{out_dir / name} exists: export into a new directory")
    staging = out_dir / f".{name}.parquet"
    shutil.rmtree(staging, ignore_errors=True)
    exported = export_parquet(services, table, staging, rows_per_file=rows_per_file, progress=progress)
    if exported.rows == 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise ExportError(f"{table.name} has no rows: a HATS catalog needs at least one")
    key = table.object_key(object_key) if object_key else None
    inputs: list[Any] = list(exported.files)
    args = ImportArguments(
        output_path=out_dir, output_artifact_name=name, input_file_list=inputs, file_reader="parquet",
        ra_column=ra, dec_column=dec, sort_columns=unquote_delimited(key.name)[0] if key else None,
        pixel_threshold=pixel_threshold, highest_healpix_order=highest_order, progress_bar=False,
        tmp_dir=out_dir / f".{name}.tmp", resume=False, expected_total_rows=exported.rows,
        addl_hats_properties={"obs_title": table.meta.description or table.name,
                              "pzvo_table": table.name})
    try:
        with Client(n_workers=1, threads_per_worker=max(1, workers), processes=False,
                    dashboard_address=None) as client:
            pipeline_with_client(args, client)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(out_dir / f".{name}.tmp", ignore_errors=True)
    log.info("table exported as HATS", extra={"table": table.name, "rows": exported.rows,
                                               "path": str(out_dir / name)})
    return {"path": out_dir / name, "rows": exported.rows, "ra": ra, "dec": dec}
