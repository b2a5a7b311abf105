"""The benchmark table ``bench.photoz``: the peer's rows, indexes and clustering.

Rows come from ``../shared/bench/gen_photoz.py`` (fixed seed), so this table is identical to the
one the reference DaCHS peer serves: primary key on object_id, GiST on the position (table
clustered on it) and a B-tree on z_phot.
"""
from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from ingest.copy import vacuum_analyze
from tap_schema.loader import create_indexes_sql, create_table_sql, publish_table, qualified
from tap_schema.model import load_table
from vo_service.core.database import copy_cursor, grant_published_schema
from vo_service.core.settings import PROJECT_ROOT
from vo_service.demo._tables import table_rows

log = logging.getLogger(__name__)

GENERATOR = PROJECT_ROOT.parent / "shared" / "bench" / "gen_photoz.py"


def generate_csv(rows: int, out_dir: Path) -> Path:
    """Write (once) the generator's CSV for ``rows`` rows; the same rows every time."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"photoz_{rows}.csv"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        subprocess.run([sys.executable, str(GENERATOR), str(rows), str(tmp)], check=True)
        tmp.rename(path)
    return path


def load_bench_table(engine: Engine, rows: int, work_dir: Path, *, force: bool = False) -> float:
    """Load ``bench.photoz`` with ``rows`` rows; return the seconds taken (0 when reused)."""
    desc = load_table("bench.photoz")
    if not force and table_rows(engine, desc.qualified_name) == rows:
        return 0.0
    csv_path = generate_csv(rows, work_dir)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {qualified(desc)}"))
        for stmt in create_table_sql(desc):
            conn.execute(text(stmt))
        with copy_cursor(conn) as cur, csv_path.open("rb") as fh:
            cur.copy_expert(f"COPY {qualified(desc)} FROM STDIN WITH (FORMAT csv, HEADER true)", fh)
        for stmt in create_indexes_sql(desc):
            conn.execute(text(stmt))
        conn.execute(text(f'CLUSTER {qualified(desc)} USING "{desc.name}_pos_idx"'))
        grant_published_schema(conn, desc.schema)
        publish_table(conn, desc)
    vacuum_analyze(engine, qualified(desc))
    seconds = time.perf_counter() - started
    log.info("loaded benchmark table", extra={"rows": rows, "seconds": round(seconds, 2)})
    return seconds
