"""The demo data every fresh installation and the test suite start from.

From the shared Buzzard catalog (80,000 galaxies, true redshift and ugrizy magnitudes, no
positions or errors), with fixed seeds so every installation serves identical tables:

- ``pz.photoz_demo``: every galaxy, with a sky position inside the demo footprint, observed
  magnitudes with LSST 10-year errors and a photo-z from the pipeline's kNN estimator
  (``pipeline/estimators/knn.py``) trained on the secure spec-z of the spec-z catalog;
- ``pz.specz_demo``: 10,000 of them as a spectroscopic compilation (spec-z error, quality flag,
  survey).

Each table is created, filled, indexed, published in TAP_SCHEMA and given its provenance
(``vo_service.provenance.record_activity``) in one transaction: the source file with its
checksum, the activity with its parameters, the user and software that ran it, the generated
table (``pzvo:table/pz.specz_demo``, ``pzvo:table/pz.photoz_demo``) derived from its inputs, and
the ``pzvo:collection/demo`` collection of both.  A forced reload records new versions
(``...@2``) and invalidates the tables it replaces; history is never rewritten.
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import text
from sqlalchemy.engine import Connection

from ingest.copy import vacuum_analyze
from pipeline.catalog import DEMO_FOOTPRINT, DEMO_SEED, photometry_from_magnitudes, sky_positions
from pipeline.estimators import Estimator, make_estimator
from pipeline.photometry import BANDS, observe
from tap_schema import TableDescription, load_table
from tap_schema.loader import qualified
from vo_service.auth import User
from vo_service.core.columns import OBJECT_KEY
from vo_service.core.settings import PROJECT_ROOT
from vo_service.demo._coop import load_coop_demo
from vo_service.demo._tables import (
    SOURCE_CATALOG,
    load_table_data,
    published_column,
    table_checksum,
    table_rows,
)
from vo_service.demo._tsm import load_tsm_demo
from vo_service.products import ProductRegistry
from vo_service.provenance import (
    COLLECTION_TYPE,
    TABLE_TYPE,
    ActivityDescription,
    ActivityRecorder,
    EntityDescription,
    GenerationDescription,
    ParameterDescription,
    UsageDescription,
    collection_entity_id,
    file_entity,
    next_entity_version,
    record_activity,
    table_entity_id,
    user_agent,
)
from vo_service.services import Services

log = logging.getLogger(__name__)

SOURCE = PROJECT_ROOT.parent / "shared" / "data" / "buzzard_ugrizy_80k.parquet"
#: The pipeline demo catalog's seed: the galaxies get the same sky positions there and here.
SEED = DEMO_SEED
FOOTPRINT = DEMO_FOOTPRINT
SURVEYS = np.array(["GAMA", "SDSS-BOSS", "DESI", "VVDS", "DEEP2", "zCOSMOS"])
N_SPECZ = 10_000
Z_FLAG_MIN = 3
#: The pipeline estimator behind ``pz.photoz_demo`` (``pipeline.estimators`` registry) and its
#: parameters.  ``knn`` because it trains and estimates the 80,000 galaxies in about a second,
#: so ``pzvo demo`` (hence ``make run``) stays fast; ``mlp``, the pipeline's default, takes
#: about 95 s to train on the 8,500 secure spec-z on 2 cores.
ESTIMATOR = "knn"
ESTIMATOR_PARAMS = {"k": 20}

# --- provenance: the methods behind the two demo tables (docs/provenance.md) ---------------------
SPECZ_CATALOG = EntityDescription(
    id="pzvo:entitydescription/specz-catalog", name="spec-z catalog", category="table",
    description="A compilation of spectroscopic redshifts with errors, quality flags, surveys.")
PZ_TABLE = EntityDescription(
    id="pzvo:entitydescription/pz-table", name="PZ table", category="table",
    description="Photometric redshifts (point estimate, error, odds) of a set of objects.")
DEMO_COLLECTION = EntityDescription(
    id="pzvo:entitydescription/demo-release", name="demo release", category="collection",
    description="The tables every fresh pzvo installation serves.")
_FOOTPRINT_PARAMS = (
    ParameterDescription("ra_min", "double", "Footprint lower right ascension", "deg", "pos.eq.ra;stat.min"),
    ParameterDescription("ra_max", "double", "Footprint upper right ascension", "deg", "pos.eq.ra;stat.max"),
    ParameterDescription("dec_min", "double", "Footprint lower declination", "deg", "pos.eq.dec;stat.min"),
    ParameterDescription("dec_max", "double", "Footprint upper declination", "deg", "pos.eq.dec;stat.max"),
    ParameterDescription("seed", "long", "Seed of the random generator", None, "meta.code"),
)
DEMO_SPECZ = ActivityDescription(
    id="pzvo:activitydescription/demo-specz-compilation/1", name="demo spec-z compilation",
    version="1", type="simulation", subtype="spec-z compilation",
    description="Draws sky positions in the footprint, LSST 10-year photometric errors, and a "
                "spec-z subsample weighted to i < 24 with spectroscopic errors, quality flags and "
                "surveys (vo_service/demo/_demo.py:simulate_specz).",
    parameters=_FOOTPRINT_PARAMS + (
        ParameterDescription("n_specz", "int", "Number of spectroscopic redshifts", None, "meta.number"),),
    usages=(UsageDescription("catalog", "Simulated galaxies with true redshifts", "pzvo:File",
                             entity_description=SOURCE_CATALOG),),
    generations=(GenerationDescription("spec-z catalog", "The spec-z compilation", TABLE_TYPE,
                                       entity_description=SPECZ_CATALOG),))
#: Version 2: the pipeline's kNN estimator (version 1 was a separate demo-only kNN).
DEMO_PHOTOZ = ActivityDescription(
    id="pzvo:activitydescription/demo-knn-photoz/2", name="demo kNN photo-z estimation",
    version="2", type="estimation", subtype="photo-z",
    description="The pipeline's k-nearest-neighbour photo-z (asinh colours and i magnitude, "
                "calibrated quantile PDFs; pipeline/estimators/knn.py) trained on the secure "
                "spec-z, applied to every galaxy; z_phot is the PDF's mode "
                "(vo_service/demo/_demo.py:estimate_photoz).",
    parameters=_FOOTPRINT_PARAMS + (
        ParameterDescription("estimator", "char", "Name of the pipeline estimator", None, "meta.code"),
        ParameterDescription("estimator_version", "char", "Version of the pipeline estimator", None,
                             "meta.version"),
        ParameterDescription("k", "int", "Number of neighbours", None, "meta.number"),
        ParameterDescription("eps", "double", "Relative approximation of the neighbour search", None,
                             "arith.factor"),
        ParameterDescription("calibrate", "boolean", "Whether the PDFs are recalibrated (flat PIT)", None,
                             "meta.code"),
        ParameterDescription("z_flag_min", "short", "Lowest spec-z quality flag used for training",
                             None, "meta.code.qual;src.redshift")),
    usages=(UsageDescription("photometry", "Galaxies to estimate", "pzvo:File",
                             entity_description=SOURCE_CATALOG),
            UsageDescription("training set", "Spec-z the estimator learns from", TABLE_TYPE,
                             entity_description=SPECZ_CATALOG)),
    generations=(GenerationDescription("PZ table", "Photo-z of every galaxy", TABLE_TYPE,
                                       entity_description=PZ_TABLE),))
DEMO_COLLECTION_ID = collection_entity_id("demo")


@dataclass
class _Simulation:
    """The spec-z catalog and what the photo-z estimation needs from the same draw."""

    specz: pa.Table
    galaxy_id: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    observed: dict[str, np.ndarray]
    errors: dict[str, np.ndarray]
    spec_idx: np.ndarray
    z_spec: np.ndarray
    z_flag: np.ndarray


def simulate_specz(source: Path = SOURCE) -> _Simulation:
    """Positions, observed photometry and the spec-z compilation (fixed seed)."""
    table = pq.read_table(source)
    cat = {name: table.column(name).to_numpy() for name in table.column_names}
    rng = np.random.default_rng(SEED)
    n = table.num_rows
    ra, dec = sky_positions(n, rng, FOOTPRINT)
    observed, errors = observe({b: cat[b] for b in BANDS}, rng)

    i_mag = observed["i"]
    weight = np.where(np.nan_to_num(i_mag, nan=99) < 24.0, 1.0, 0.15)
    spec_idx = np.sort(rng.choice(n, size=N_SPECZ, replace=False, p=weight / weight.sum()))
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
    return _Simulation(specz=specz, galaxy_id=cat["galaxy_id"], ra=ra, dec=dec, observed=observed,
                       errors=errors, spec_idx=spec_idx, z_spec=z_spec, z_flag=z_flag)


def demo_estimator() -> Estimator:
    """The unfitted pipeline estimator of ``pz.photoz_demo``."""
    return make_estimator(ESTIMATOR, ESTIMATOR_PARAMS)


def estimate_photoz(sim: _Simulation, estimator: Estimator | None = None, *,
                    object_key: str = OBJECT_KEY) -> pa.Table:
    """Photo-z of every galaxy from a pipeline estimator (:func:`demo_estimator` unless given)
    trained on the secure spec-z (flag >= Z_FLAG_MIN).

    The estimator reads fluxes: the observed magnitudes and their errors are converted as the
    pipeline converts a magnitude file (a non-detection is a flux of zero in asinh magnitudes).
    ``z_phot`` is the PDF's mode, as the table's description says; ``z_err`` and ``odds`` are
    the estimator's (half the central 68 % interval; the probability within 0.06 (1 + z) of the
    mode).
    """
    estimator = estimator or demo_estimator()
    mags = {b: sim.observed[b] for b in BANDS}
    mags.update({f"{b}_err": sim.errors[b] for b in BANDS})
    phot = photometry_from_magnitudes(pa.table(mags))
    good = sim.z_flag >= Z_FLAG_MIN
    estimator.fit(phot.take(sim.spec_idx[good]), sim.z_spec[good])
    est = estimator.estimate(phot)
    photoz = {object_key: sim.galaxy_id.astype(np.int64), "ra": sim.ra, "dec": sim.dec,
              "z_phot": est["z_mode"].astype(np.float64), "z_err": est["z_err"].astype(np.float64),
              "odds": est["odds"].astype(np.float64)}
    photoz.update({f"mag_{b}": sim.observed[b] for b in BANDS})
    photoz.update({f"magerr_{b}": sim.errors[b] for b in BANDS})
    return pa.table(photoz)


def build_demo_tables(source: Path = SOURCE) -> dict[str, pa.Table]:
    """Compute both demo tables in memory (80,000 rows: small)."""
    sim = simulate_specz(source)
    return {"pz.specz_demo": sim.specz, "pz.photoz_demo": estimate_photoz(sim)}


SPECZ_ROLES = {"id": "id", "ra": "ra", "dec": "dec", "z": "redshift", "z_err": "redshift_err",
               "z_flag": "quality_flag", "survey": "survey"}


def photoz_roles(object_key: str = OBJECT_KEY) -> dict[str, str]:
    """The product roles of ``pz.photoz_demo``'s columns (its key is the Object catalog's)."""
    return {object_key: "object_id", "ra": "ra", "dec": "dec", "z_phot": "photoz", "z_err": "photoz_err",
            "odds": "odds", **{f"mag_{b}": f"mag_{b}" for b in BANDS},
            **{f"magerr_{b}": f"magerr_{b}" for b in BANDS}}


def with_object_key(desc: TableDescription, object_key: str) -> TableDescription:
    """``desc`` with its Object key column (``objectId`` in the YAML) named ``object_key`` (the
    ``object_key_column`` setting)."""
    if object_key == OBJECT_KEY:
        return desc
    columns = tuple(c.with_(name=object_key) if c.name == OBJECT_KEY else c for c in desc.columns)
    return replace(desc, columns=columns,
                   primary_key=tuple(object_key if k == OBJECT_KEY else k for k in desc.primary_key))


def _register_product(conn: Connection, registry: ProductRegistry, name: str, product_type: str,
                      desc: TableDescription, data: pa.Table, rows: int, roles: dict[str, str],
                      pz_code: str | None = None) -> None:
    """Make a demo table an official product of the demo release (browsable at ``/``), with a
    Parquet export of the loaded rows as its downloadable file."""
    conn.execute(text("INSERT INTO registry.users (name, is_admin) VALUES ('pzvo', true) "
                      "ON CONFLICT (name) DO NOTHING"))
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / f"{name}.parquet"
        pq.write_table(data, export)
        registry.register_table(
            conn, name=name, product_type=product_type, desc=desc, rows=rows,
            owner=User("pzvo", is_admin=True), roles=roles, data_file=export, release="demo",
            official=True, display_name=desc.name.replace("_", " "), pz_code=pz_code)


def _footprint_parameters() -> dict[str, object]:
    return {"ra_min": FOOTPRINT["ra"][0], "ra_max": FOOTPRINT["ra"][1],
            "dec_min": FOOTPRINT["dec"][0], "dec_max": FOOTPRINT["dec"][1], "seed": SEED}


def _estimator_parameters(estimator: Estimator) -> dict[str, object]:
    """The estimator's name, version and every parameter (``k``, ``eps`` ...) by its own name."""
    about = estimator.describe()
    return {"estimator": about["name"], "estimator_version": about["version"], **about["params"]}


def _publish_with_provenance(conn: Connection, act: ActivityRecorder, desc: TableDescription, data: pa.Table,
                             *, role: str, derived_from: list[str],
                             entity_description: EntityDescription) -> tuple[str, int]:
    """Load one demo table and register it as generated by ``act`` (a new version if reloaded)."""
    entity_id, older = next_entity_version(conn, table_entity_id(desc.qualified_name))
    rows = load_table_data(conn, desc, data)
    for old in older:
        act.invalidate(old, role="replaced table")
    act.generate(entity_id, name=desc.qualified_name, type=TABLE_TYPE, location=desc.qualified_name,
                 checksum=table_checksum(data), description=entity_description, role=role,
                 derived_from=derived_from,
                 comment=f"{rows} rows; TAP table {desc.qualified_name}")
    if conn.execute(text("SELECT 1 FROM provenance.entity WHERE id = :c"),
                    {"c": DEMO_COLLECTION_ID}).first() is None and role == "spec-z catalog":
        act.generate(DEMO_COLLECTION_ID, name="pzvo demo tables", type=COLLECTION_TYPE,
                     description=DEMO_COLLECTION, members=[entity_id])
    else:
        act.add_members(DEMO_COLLECTION_ID, [entity_id])
    return entity_id, rows


def load_demo(services: Services, *, force: bool = False) -> dict[str, int]:
    """Load the demo tables, then the Training Set Maker's demo inputs (:mod:`vo_service.demo._tsm`)
    and the Validation Cooperative's demo challenge (:mod:`vo_service.demo._coop`), each unless
    already there; returns the rows of each table and product."""
    counts = _load_demo_tables(services, force=force)
    counts.update(load_tsm_demo(services, SOURCE, force=force))
    counts.update(load_coop_demo(services, SOURCE))
    return counts


def _load_demo_tables(services: Services, *, force: bool = False) -> dict[str, int]:
    """Load the demo tables unless they are already there with the expected row counts.

    Each table is loaded and its provenance recorded in one transaction (two activities:
    the spec-z compilation, then the photo-z estimation that used it).
    """
    engine, registry = services.owner_engine, services.products
    key = services.settings.object_key_column
    wanted = {"pz.specz_demo": load_table("pz.specz_demo"),
              "pz.photoz_demo": with_object_key(load_table("pz.photoz_demo"), key)}
    present = {name: table_rows(engine, name) for name in wanted}
    if not force and all(present[n] == d.extra.get("x_rows") for n, d in wanted.items()) \
            and published_column(engine, "pz.photoz_demo", key):
        log.info("demo data already loaded", extra={"tables": list(wanted)})
        return {n: int(r) for n, r in present.items() if r is not None}
    source = file_entity(SOURCE, location=f"shared/data/{SOURCE.name}", description=SOURCE_CATALOG,
                         name=SOURCE.name)
    agent = user_agent()
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        with record_activity(conn, name="demo spec-z compilation", description=DEMO_SPECZ,
                             parameters={**_footprint_parameters(), "n_specz": N_SPECZ},
                             agent=agent, used=[(source, "catalog")]) as specz_act:
            sim = simulate_specz(SOURCE)
            specz_id, counts["pz.specz_demo"] = _publish_with_provenance(
                conn, specz_act, wanted["pz.specz_demo"], sim.specz, role="spec-z catalog",
                derived_from=[source.id], entity_description=SPECZ_CATALOG)
        _register_product(conn, registry, "specz_demo", "speczcat", wanted["pz.specz_demo"], sim.specz,
                          counts["pz.specz_demo"], SPECZ_ROLES)
    vacuum_analyze(engine, qualified(wanted["pz.specz_demo"]))
    estimator = demo_estimator()
    with engine.begin() as conn:
        with record_activity(conn, name="demo kNN photo-z estimation", description=DEMO_PHOTOZ,
                             parameters={**_footprint_parameters(), **_estimator_parameters(estimator),
                                         "z_flag_min": Z_FLAG_MIN},
                             agent=agent, used=[(source.id, "photometry"), (specz_id, "training set")],
                             informed_by=[specz_act.id]) as photoz_act:
            photoz = estimate_photoz(sim, estimator, object_key=key)
            _, counts["pz.photoz_demo"] = _publish_with_provenance(
                conn, photoz_act, wanted["pz.photoz_demo"], photoz, role="PZ table",
                derived_from=[source.id, specz_id], entity_description=PZ_TABLE)
        _register_product(conn, registry, "photoz_demo", "pztable", wanted["pz.photoz_demo"], photoz,
                          counts["pz.photoz_demo"], photoz_roles(key),
                          pz_code=f"pzvo {estimator.name} {estimator.version} (demo, k={estimator.params['k']})")
    vacuum_analyze(engine, qualified(wanted["pz.photoz_demo"]))
    return counts
