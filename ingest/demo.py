"""The demo data every fresh installation and the test suite start from.

From the shared Buzzard catalog (80,000 galaxies, true redshift and ugrizy magnitudes, no
positions or errors), with fixed seeds so every installation serves identical tables:

- ``pz.photoz_demo``: every galaxy, with a sky position inside the demo footprint, observed
  magnitudes with LSST 10-year errors and a kNN photo-z trained on the spec-z catalog;
- ``pz.specz_demo``: 10,000 of them as a spectroscopic compilation (spec-z error, quality flag,
  survey).

Each table is created, filled, indexed and published in TAP_SCHEMA in one transaction.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import text
from sqlalchemy.engine import Engine

from ingest.copy import copy_batches, vacuum_analyze
from pipeline.knn import KNNPhotoZ
from pipeline.photometry import BANDS, observe
from tap_schema.loader import create_indexes_sql, create_table_sql, publish_table, qualified
from tap_schema.model import TableDescription, load_table
from vo_service.config import PROJECT_ROOT

log = logging.getLogger(__name__)

SOURCE = PROJECT_ROOT.parent / "shared" / "data" / "buzzard_ugrizy_80k.parquet"
SEED = 20261125
FOOTPRINT = {"ra": (50.0, 70.0), "dec": (-40.0, -25.0)}
SURVEYS = np.array(["GAMA", "SDSS-BOSS", "DESI", "VVDS", "DEEP2", "zCOSMOS"])


def sky_positions(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniform on the sphere inside the footprint (uniform in RA and in sin Dec)."""
    ra = rng.uniform(*FOOTPRINT["ra"], n)
    s0, s1 = np.sin(np.radians(FOOTPRINT["dec"]))
    dec = np.degrees(np.arcsin(rng.uniform(s0, s1, n)))
    return ra, dec


def build_demo_tables(source: Path = SOURCE) -> dict[str, pa.Table]:
    """Compute both demo tables in memory (80,000 rows: small)."""
    table = pq.read_table(source)
    cat = {name: table.column(name).to_numpy() for name in table.column_names}
    rng = np.random.default_rng(SEED)
    n = table.num_rows
    ra, dec = sky_positions(n, rng)
    observed, errors = observe({b: cat[b] for b in BANDS}, rng)

    i_mag = observed["i"]
    weight = np.where(np.nan_to_num(i_mag, nan=99) < 24.0, 1.0, 0.15)
    spec_idx = np.sort(rng.choice(n, size=10_000, replace=False, p=weight / weight.sum()))
    z_true = cat["redshift"][spec_idx]
    z_err = 0.0005 * (1.0 + z_true) * rng.lognormal(0.0, 0.3, spec_idx.size)
    z_flag = rng.choice(np.array([1, 2, 3, 4], dtype=np.int16), size=spec_idx.size,
                        p=[0.05, 0.10, 0.35, 0.50])
    z_spec = z_true + rng.normal(0.0, 1.0, spec_idx.size) * z_err
    bad = z_flag == 1
    z_spec[bad] = rng.uniform(0.01, 3.0, bad.sum())
    bright = np.nan_to_num(i_mag[spec_idx], nan=99) < 21.0
    survey = np.where(bright, rng.choice(SURVEYS[:3], spec_idx.size), rng.choice(SURVEYS[3:], spec_idx.size))
    specz = pa.table({
        "id": cat["galaxy_id"][spec_idx].astype(np.int64),
        "ra": ra[spec_idx], "dec": dec[spec_idx], "z": z_spec, "z_err": z_err,
        "z_flag": z_flag, "survey": survey,
    })

    good = z_flag >= 3
    model = KNNPhotoZ(k=20).fit({b: observed[b][spec_idx][good] for b in BANDS}, z_spec[good])
    est = model.predict(observed)
    photoz = {"object_id": cat["galaxy_id"].astype(np.int64), "ra": ra, "dec": dec,
              "z_phot": est.z_phot, "z_err": est.z_err, "odds": est.odds}
    photoz.update({f"mag_{b}": observed[b] for b in BANDS})
    photoz.update({f"magerr_{b}": errors[b] for b in BANDS})
    return {"pz.specz_demo": specz, "pz.photoz_demo": pa.table(photoz, schema=None)}


def load_table_data(engine: Engine, desc: TableDescription, data: pa.Table, *,
                    cluster: bool = True) -> int:
    """Create, fill, index, analyse and publish one table in a single transaction."""
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {qualified(desc)}"))
        for stmt in create_table_sql(desc):
            conn.execute(text(stmt))
        rows = copy_batches(conn.connection.dbapi_connection, qualified(desc),
                            data.to_batches(max_chunksize=50_000))
        for stmt in create_indexes_sql(desc):
            conn.execute(text(stmt))
        if cluster and desc.position_columns:
            conn.execute(text(f'CLUSTER {qualified(desc)} USING "{desc.name}_pos_idx"'))
        publish_table(conn, desc)
    vacuum_analyze(engine, qualified(desc))
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


def load_demo(engine: Engine, *, force: bool = False) -> dict[str, int]:
    """Load the demo tables unless they are already there with the expected row counts."""
    wanted = {name: load_table(name) for name in ("pz.specz_demo", "pz.photoz_demo")}
    present = {name: table_rows(engine, name) for name in wanted}
    if not force and all(present[n] == d.extra.get("x_rows") for n, d in wanted.items()):
        log.info("demo data already loaded", extra={"tables": list(wanted)})
        return {n: int(r) for n, r in present.items() if r is not None}
    data = build_demo_tables()
    return {name: load_table_data(engine, desc, data[name]) for name, desc in wanted.items()}
