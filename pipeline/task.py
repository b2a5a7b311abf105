"""The Dask task of a pipeline run: one input Parquet file in, one output file out.

A module of its own so that a Dask worker, which imports the task's module to unpickle it,
loads only numpy, pyarrow and the estimator, not the registry, SQLAlchemy or the driver's
run logic (``pipeline.run``).
"""
from __future__ import annotations

import ctypes
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.catalog import (
    DEC_COLUMN,
    FLUX_COLUMNS,
    FLUX_ERR_COLUMNS,
    ID_COLUMN,
    INPUT_KEY,
    RA_COLUMN,
    input_identity,
    photometry_from_objects,
)
from pipeline.estimators import Estimator

log = logging.getLogger(__name__)

#: glibc mallopt parameters: M_TRIM_THRESHOLD, M_MMAP_THRESHOLD.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_malloc_tuned = False


def keep_freed_memory() -> None:
    """Let this process reuse freed blocks instead of returning them to the OS at once.

    Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also freezes glibc's
    mmap threshold at 128 kB: every larger array is mapped and unmapped again, so the megabyte
    temporaries of an estimator cost fresh page faults on every block (``mlp``, end to end on one
    worker: 66,000 objects/s instead of 120,000).  Raising both thresholds (64 MB for mmap,
    256 MB kept free at most) restores the speed; memory is still returned past 256 MB.  No-op
    where glibc's ``mallopt`` is missing.  Once per process.
    """
    global _malloc_tuned
    if _malloc_tuned:
        return
    _malloc_tuned = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 64 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20)
    except (OSError, AttributeError):
        log.debug("mallopt unavailable: malloc left as it is")


def estimate_partition(estimator: Estimator, source: str, target: str,
                       schema: pa.Schema) -> dict[str, Any]:
    """Read one input file, estimate, write one output file atomically (the Dask task)."""
    keep_freed_memory()
    started, cpu_started = time.perf_counter(), time.thread_time()
    have = set(pq.read_schema(source).names)
    wanted = [ID_COLUMN, RA_COLUMN, DEC_COLUMN, *FLUX_COLUMNS] + [c for c in FLUX_ERR_COLUMNS if c in have]
    # One thread per task: Dask runs one task per core, and Arrow's own thread pool on top of it
    # oversubscribed the cores (2 workers ran slower than 1 on this 2-core machine).
    table = pq.read_table(source, columns=wanted, use_threads=False)
    columns = estimator.estimate(photometry_from_objects(table))
    arrays: list[pa.Array] = [table.column(ID_COLUMN).combine_chunks().cast(pa.int64()),
                              table.column(RA_COLUMN).combine_chunks().cast(pa.float64()),
                              table.column(DEC_COLUMN).combine_chunks().cast(pa.float64())]
    for fld in list(schema)[3:]:
        values = np.asarray(columns[fld.name])
        if pa.types.is_fixed_size_list(fld.type):
            flat = pa.array(np.ascontiguousarray(values, dtype=np.float32).ravel(), fld.type.value_type)
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, fld.type.list_size))
        else:
            arrays.append(pa.array(values, fld.type))
    out = pa.Table.from_arrays(arrays, schema=schema.with_metadata(
        {**(schema.metadata or {}), INPUT_KEY: input_identity(Path(source)).encode()}))
    target_path = Path(target)
    target_path.parent.mkdir(parents=True, exist_ok=True)
    # Unique per task, not per process: containerised workers often share a pid.
    tmp = target_path.with_name(target_path.name + f".tmp-{uuid.uuid4().hex}")
    try:
        pq.write_table(out, tmp, compression="zstd", row_group_size=256 * 1024)
        os.replace(tmp, target_path)
    finally:
        tmp.unlink(missing_ok=True)
    return {"rows": out.num_rows, "seconds": time.perf_counter() - started,
            "cpu_seconds": time.thread_time() - cpu_started}
