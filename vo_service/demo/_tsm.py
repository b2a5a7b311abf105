"""The Training Set Maker's demo inputs: an Object catalog and three overlapping spec-z catalogs.

All four come from the shared Buzzard galaxies (``../shared/data``) with fixed seeds, so every
installation serves the same rows (``docs/tsm.md``, "Demo data"):

- ``demo_objects`` (``objectcatalog``): every galaxy as an LSST Object row, at the sky position the
  other demo tables give it and with photerr's LSST 10-year fluxes (``pipeline.catalog.demo_objects``);
  also written as a Parquet dataset split in Dec bands (:func:`objects_dir`), which the TSM's
  crossmatch reads file by file.
- ``demo_specz_6dfgs``, ``demo_specz_vvds``, ``demo_specz_desi`` (``speczcat``): subsets of the same
  galaxies as three surveys would have measured them: each its own column names, position jitter,
  redshift noise, native quality flags (values that ``pipeline/tsm/flag_rules.yaml`` translates),
  wrong redshifts where the flag says they are likely, galaxies observed twice, and (6dFGS) stars.

Each catalog is a Parquet file that a provenance activity (the simulation, using the Buzzard file)
generates, then a product of the ``demo-tsm`` release registered from that file, all in one
transaction.  A second load finds them and does nothing.
"""
from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import text
from sqlalchemy.engine import Connection

from pipeline.catalog import DEC_COLUMN, DEMO_FOOTPRINT, DEMO_SEED, ID_COLUMN, RA_COLUMN, demo_objects
from pipeline.photometry import BANDS, flux_column, flux_err_column
from vo_service.auth import User
from vo_service.demo._tables import SOURCE_CATALOG
from vo_service.products import ProductNotFoundError, ProductRegistry, RegistrationRequest
from vo_service.provenance import (
    FILE_TYPE,
    ActivityDescription,
    EntityDescription,
    GenerationDescription,
    ParameterDescription,
    UsageDescription,
    file_entity,
    record_activity,
    user_agent,
)
from vo_service.services import Services

log = logging.getLogger(__name__)

#: The spec-z catalogs' own seed (the objects use the demo catalog's, ``DEMO_SEED``).
TSM_SEED = 20261216
RELEASE = "demo-tsm"
OBJECTS = "demo_objects"
OBJECT_FILES = 4
C_KMS = 299_792.458
#: No jitter moves a position further than this from its object (arcsec), so every row matches.
MAX_OFFSET_ARCSEC = 0.9


@dataclass(frozen=True)
class SurveyModel:
    """How one survey sees the galaxies: who it targets, how precisely, how often it fails."""

    product: str
    survey: str
    n_galaxies: int
    n_repeats: int
    n_stars: int
    jitter_arcsec: float
    sigma_kms: float
    description: str


SIXDF = SurveyModel(
    "demo_specz_6dfgs", "6dFGS", 2_000, 40, 15, 0.20, 45.0,
    "6dFGS-like: the bright end (true i < 22), Q 1-4 and 6 (star), no redshift error, no survey column.")
VVDS = SurveyModel(
    "demo_specz_vvds", "VVDS", 3_000, 40, 0, 0.15, 276.0,
    "VVDS-like: magnitude-limited 17.5 <= i <= 24, decimal flags (class 0-4, 9; 1x AGN, 2x secondary target).")
DESI = SurveyModel(
    "demo_specz_desi", "DESI_DR1", 5_000, 60, 0, 0.08, 20.0,
    "DESI DR1-like: bright galaxies (r < 20.5) and fainter z > 0.4 targets, ZWARN bitmask, small ZERR.")
SURVEYS = (SIXDF, VVDS, DESI)

#: Probability that a redshift is wrong, by the survey's homogenized confidence.
_WRONG = {0: 1.0, 1: 0.5, 2: 0.2, 3: 0.05, 4: 0.005}

_OBJECT_ROLES = {ID_COLUMN: "id", RA_COLUMN: "ra", DEC_COLUMN: "dec",
                 **{flux_column(b): f"flux_{b}" for b in BANDS},
                 **{flux_err_column(b): f"fluxerr_{b}" for b in BANDS}}
ROLES: dict[str, dict[str, str]] = {
    OBJECTS: _OBJECT_ROLES,
    SIXDF.product: {"SPECID": "id", "RA": "ra", "DEC": "dec", "Z": "redshift", "QUALITY": "quality_flag"},
    VVDS.product: {"num": "id", "alpha": "ra", "delta": "dec", "zspec": "redshift", "zerr": "redshift_err",
                   "zflags": "quality_flag", "survey": "survey"},
    DESI.product: {"TARGETID": "id", "TARGET_RA": "ra", "TARGET_DEC": "dec", "Z": "redshift",
                   "ZERR": "redshift_err", "ZWARN": "quality_flag", "survey": "survey"},
}
ROWS: dict[str, int] = {OBJECTS: 80_000, **{s.product: s.n_galaxies + s.n_repeats + s.n_stars for s in SURVEYS}}

OBJECT_FILE = EntityDescription(
    id="pzvo:entitydescription/object-catalog-file", name="object catalog file", category="file",
    description="LSST Object-like rows: objectId, position, cModel fluxes and errors in nJy.")
SPECZ_FILE = EntityDescription(
    id="pzvo:entitydescription/specz-catalog-file", name="spec-z catalog file", category="file",
    description="A survey's spectroscopic redshifts with its own columns and quality flags.")
DEMO_TSM_INPUTS = ActivityDescription(
    id="pzvo:activitydescription/demo-tsm-inputs/1", name="demo TSM inputs simulation",
    version="1", type="simulation", subtype="object and spec-z catalogs",
    description="Observes the simulated galaxies as an LSST Object catalog (positions in the demo "
                "footprint, photerr LSST 10-year fluxes) and as three spec-z surveys (6dFGS-, VVDS- and "
                "DESI DR1-like: selection, position jitter, redshift noise, native flags, repeats, stars) "
                "(vo_service/demo/_tsm.py:build_tsm_demo).",
    parameters=(
        ParameterDescription("object_seed", "long", "Seed of the objects' positions and fluxes", None, "meta.code"),
        ParameterDescription("specz_seed", "long", "Seed of the spec-z catalogs", None, "meta.code"),
        ParameterDescription("ra_min", "double", "Footprint lower right ascension", "deg", "pos.eq.ra;stat.min"),
        ParameterDescription("ra_max", "double", "Footprint upper right ascension", "deg", "pos.eq.ra;stat.max"),
        ParameterDescription("dec_min", "double", "Footprint lower declination", "deg", "pos.eq.dec;stat.min"),
        ParameterDescription("dec_max", "double", "Footprint upper declination", "deg", "pos.eq.dec;stat.max"),
        ParameterDescription("years", "double", "LSST years of the photometric errors", "yr", "time.duration"),
        *(ParameterDescription(f"{s.survey.lower()}_{what}", kind, f"{s.survey}: {label}", unit, None)
          for s in SURVEYS for what, kind, label, unit in (
              ("galaxies", "int", "distinct galaxies", None),
              ("repeats", "int", "galaxies observed a second time", None),
              ("stars", "int", "stars", None),
              ("jitter", "double", "position error per coordinate", "arcsec"),
              ("sigma_v", "double", "redshift error as a velocity", "km/s")))),
    usages=(UsageDescription("catalog", "Simulated galaxies with true redshifts", FILE_TYPE,
                             entity_description=SOURCE_CATALOG),),
    generations=(GenerationDescription("object catalog", "The Object catalog file", FILE_TYPE,
                                       entity_description=OBJECT_FILE),
                 GenerationDescription("spec-z catalog", "One survey's spec-z file", FILE_TYPE,
                                       multiplicity="*", entity_description=SPECZ_FILE)))


@dataclass
class TsmDemo:
    """The four tables, and for each spec-z catalog the true galaxy (row of ``objects``) of each row."""

    objects: pa.Table
    catalogs: dict[str, pa.Table]
    truth: dict[str, np.ndarray]


def _jitter(ra: np.ndarray, dec: np.ndarray, sigma_arcsec: float,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian offsets in the tangent plane, capped at MAX_OFFSET_ARCSEC."""
    dx, dy = rng.normal(0.0, sigma_arcsec, (2, ra.size))
    r = np.hypot(dx, dy)
    scale = np.minimum(1.0, MAX_OFFSET_ARCSEC / np.maximum(r, 1e-12))
    dx, dy = dx * scale / 3600.0, dy * scale / 3600.0
    return ra + dx / np.cos(np.radians(dec)), dec + dy


def _measure(z_true: np.ndarray, confidence: np.ndarray, sigma_kms: float,
             rng: np.random.Generator) -> np.ndarray:
    """Redshifts with the survey's velocity error, wrong (uniform 0.01-2) as often as the flag says."""
    z = z_true + rng.normal(0.0, sigma_kms / C_KMS, z_true.size) * (1.0 + z_true)
    wrong = rng.uniform(size=z.size) < np.array([_WRONG[k] for k in range(5)])[confidence]
    z[wrong] = rng.uniform(0.01, 2.0, int(wrong.sum()))
    return np.round(np.maximum(z, 0.0), 6)


def _draw(pool: np.ndarray, model: SurveyModel, rng: np.random.Generator) -> np.ndarray:
    """Distinct galaxies, then repeats of some of them, in a shuffled order."""
    galaxies = rng.choice(pool, model.n_galaxies, replace=False)
    repeats = rng.choice(galaxies, model.n_repeats, replace=False)
    return np.concatenate([galaxies, repeats])


def _sixdf(idx: np.ndarray, stars: np.ndarray, z_true: np.ndarray, ra: np.ndarray, dec: np.ndarray,
           rng: np.random.Generator) -> pa.Table:
    quality = rng.choice(np.array([1, 2, 3, 4], np.int16), idx.size, p=[0.04, 0.08, 0.18, 0.70])
    confidence = np.array([0, 1, 3, 4], np.int16)[quality - 1]
    z = _measure(z_true[idx], confidence, SIXDF.sigma_kms, rng)
    z_star = np.round(rng.normal(0.0, 100.0 / C_KMS, stars.size), 6)
    rows = np.concatenate([idx, stars])
    r, d = _jitter(ra[rows], dec[rows], SIXDF.jitter_arcsec, rng)
    return pa.table({
        "SPECID": np.arange(1, rows.size + 1, dtype=np.int64) + 100_000,
        "RA": r, "DEC": d, "Z": np.concatenate([z, z_star]),
        "QUALITY": np.concatenate([quality, np.full(stars.size, 6, np.int16)]),
    })


def _vvds(idx: np.ndarray, z_true: np.ndarray, ra: np.ndarray, dec: np.ndarray,
          rng: np.random.Generator) -> pa.Table:
    digit = rng.choice(np.array([0, 1, 2, 3, 4, 9], np.int16), idx.size, p=[0.03, 0.09, 0.24, 0.30, 0.26, 0.08])
    prefix = rng.choice(np.array([0, 1, 2], np.int16), idx.size, p=[0.90, 0.02, 0.08])
    confidence = np.where(digit == 9, 2, digit)
    z = _measure(z_true[idx], confidence, VVDS.sigma_kms, rng)
    zerr = np.round(VVDS.sigma_kms / C_KMS * (1.0 + z) * rng.lognormal(0.0, 0.25, idx.size), 6)
    r, d = _jitter(ra[idx], dec[idx], VVDS.jitter_arcsec, rng)
    return pa.table({
        "num": np.arange(1, idx.size + 1, dtype=np.int64) + 20_000_000,
        "alpha": r, "delta": d, "zspec": z, "zerr": zerr,
        "zflags": (10 * prefix + digit).astype(np.int16),
        "survey": pa.array([VVDS.survey] * idx.size, pa.string()),
    })


def _desi(idx: np.ndarray, z_true: np.ndarray, ra: np.ndarray, dec: np.ndarray,
          rng: np.random.Generator) -> pa.Table:
    warned = rng.uniform(size=idx.size) < 0.06
    zwarn = np.where(warned, rng.choice(np.array([4, 36, 512, 1024, 2048]), idx.size, p=[0.5, 0.2, 0.1, 0.1, 0.1]), 0)
    z = _measure(z_true[idx], np.where(warned, 1, 4), DESI.sigma_kms, rng)
    zerr = np.round(DESI.sigma_kms / C_KMS * (1.0 + z) * rng.lognormal(0.0, 0.4, idx.size), 7)
    r, d = _jitter(ra[idx], dec[idx], DESI.jitter_arcsec, rng)
    target = 39_627_000_000_000_000 + np.sort(rng.choice(10_000_000, idx.size, replace=False))
    return pa.table({
        "TARGETID": rng.permutation(target).astype(np.int64),
        "TARGET_RA": r, "TARGET_DEC": d, "Z": z, "ZERR": zerr, "ZWARN": zwarn.astype(np.int64),
        "SPECTYPE": pa.array(["GALAXY"] * idx.size, pa.string()),
        "survey": pa.array([DESI.survey] * idx.size, pa.string()),
    })


def build_tsm_demo(source: Path) -> TsmDemo:
    """The four demo tables in memory (fixed seeds; about a second)."""
    objects, z_true = demo_objects(source, DEMO_SEED)
    mags = pq.read_table(source, columns=["r", "i"])
    r_mag, i_mag = mags.column("r").to_numpy(), mags.column("i").to_numpy()
    ra, dec = objects.column(RA_COLUMN).to_numpy(), objects.column(DEC_COLUMN).to_numpy()
    rng = np.random.default_rng(TSM_SEED)

    sixdf = _draw(np.flatnonzero(i_mag < 22.0), SIXDF, rng)
    vvds = _draw(np.flatnonzero((i_mag >= 17.5) & (i_mag <= 24.0)), VVDS, rng)
    bright = np.flatnonzero(r_mag < 20.5)
    faint = np.flatnonzero((r_mag >= 20.5) & (r_mag < 23.5) & (z_true > 0.4))
    desi_bright = rng.choice(bright, int(0.9 * bright.size), replace=False)
    desi_pool = np.concatenate([desi_bright, rng.choice(faint, DESI.n_galaxies - desi_bright.size, replace=False)])
    desi = _draw(desi_pool, DESI, rng)
    taken = np.zeros(objects.num_rows, bool)
    taken[np.concatenate([sixdf, vvds, desi])] = True
    stars = rng.choice(np.flatnonzero((i_mag < 22.0) & ~taken), SIXDF.n_stars, replace=False)

    truth = {SIXDF.product: np.concatenate([sixdf, stars]), VVDS.product: vvds, DESI.product: desi}
    catalogs = {SIXDF.product: _sixdf(sixdf, stars, z_true, ra, dec, rng),
                VVDS.product: _vvds(vvds, z_true, ra, dec, rng),
                DESI.product: _desi(desi, z_true, ra, dec, rng)}
    for name, table in catalogs.items():
        order = rng.permutation(table.num_rows)
        catalogs[name], truth[name] = table.take(order), truth[name][order]
    return TsmDemo(objects=objects, catalogs=catalogs, truth=truth)


def demo_dir(var_dir: Path) -> Path:
    """Where the demo inputs are kept as files (``var/demo/tsm``)."""
    return var_dir / "demo" / "tsm"


def objects_dir(var_dir: Path) -> Path:
    """The Object catalog as a Parquet dataset, one file per Dec band, for the TSM's crossmatch."""
    return demo_dir(var_dir) / "objects"


def _write_atomic(table: pa.Table, path: Path) -> None:
    """Replace ``path`` in one step: runs sharing ``var/`` write identical bytes, never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp, row_group_size=100_000)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_tsm_files(demo: TsmDemo, var_dir: Path) -> dict[str, Path]:
    """The product files (``<name>.parquet``) and the Object dataset; returns each product's file."""
    root = demo_dir(var_dir)
    paths = {OBJECTS: root / f"{OBJECTS}.parquet", **{n: root / f"{n}.parquet" for n in demo.catalogs}}
    _write_atomic(demo.objects, paths[OBJECTS])
    for name, table in demo.catalogs.items():
        _write_atomic(table, paths[name])
    by_dec = demo.objects.sort_by(DEC_COLUMN)
    bounds = np.linspace(0, by_dec.num_rows, OBJECT_FILES + 1).astype(int)
    for p in range(OBJECT_FILES):
        _write_atomic(by_dec.slice(bounds[p], bounds[p + 1] - bounds[p]),
                      objects_dir(var_dir) / f"part-{p:04d}.parquet")
    return paths


def _files_present(var_dir: Path) -> bool:
    names = [demo_dir(var_dir) / f"{n}.parquet" for n in ROWS]
    names += [objects_dir(var_dir) / f"part-{p:04d}.parquet" for p in range(OBJECT_FILES)]
    return all(p.is_file() for p in names)


def _present(registry: ProductRegistry) -> dict[str, int]:
    """Products of the demo that are registered with their expected row counts."""
    found = {}
    for name, rows in ROWS.items():
        try:
            product = registry.get(name, user=None)
        except ProductNotFoundError:
            continue
        if product.status == "published" and product.row_count == rows and product.release == RELEASE:
            found[name] = rows
    return found


def _parameters() -> dict[str, object]:
    values: dict[str, object] = {
        "object_seed": DEMO_SEED, "specz_seed": TSM_SEED,
        "ra_min": DEMO_FOOTPRINT["ra"][0], "ra_max": DEMO_FOOTPRINT["ra"][1],
        "dec_min": DEMO_FOOTPRINT["dec"][0], "dec_max": DEMO_FOOTPRINT["dec"][1], "years": 10.0}
    for s in SURVEYS:
        key = s.survey.lower()
        values.update({f"{key}_galaxies": s.n_galaxies, f"{key}_repeats": s.n_repeats, f"{key}_stars": s.n_stars,
                       f"{key}_jitter": s.jitter_arcsec, f"{key}_sigma_v": s.sigma_kms})
    return values


def _lineage(source: Path, files: dict[str, Path]) -> Callable[[Connection], None]:
    """Record the simulation that made the files (those not recorded yet), in the registration's
    transaction: the registrations then use these file entities."""
    def record(conn: Connection) -> None:
        conn.execute(text("INSERT INTO registry.users (name, is_admin) VALUES ('pzvo', true) "
                          "ON CONFLICT (name) DO NOTHING"))
        entities = {name: file_entity(path, name=path.name, location=f"var/demo/tsm/{path.name}",
                                      description=OBJECT_FILE if name == OBJECTS else SPECZ_FILE)
                    for name, path in files.items()}
        known = {row[0] for row in conn.execute(text("SELECT id FROM provenance.entity WHERE id = ANY(:ids)"),
                                                {"ids": [e.id for e in entities.values()]})}
        new = {name: e for name, e in entities.items() if e.id not in known}
        if not new:
            return
        origin = file_entity(source, location=f"shared/data/{source.name}", description=SOURCE_CATALOG,
                             name=source.name)
        with record_activity(conn, name="demo TSM inputs simulation", description=DEMO_TSM_INPUTS,
                             parameters=_parameters(), agent=user_agent(),
                             used=[(origin, "catalog")]) as act:
            for name, entity in new.items():
                act.generate(replace(entity, comment=f"{ROWS[name]} rows; product {name}"),
                             role="object catalog" if name == OBJECTS else "spec-z catalog",
                             derived_from=[origin.id])
    return record


def _request(name: str, path: Path, object_key: str) -> RegistrationRequest:
    """The product of one demo file; the Object catalog's key is published as the RSP spells it
    (``object_key``, the ``object_key_column`` setting)."""
    columns: dict[str, dict[str, str]] = {column: {"role": role} for column, role in ROLES[name].items()}
    if name == OBJECTS:
        columns[ID_COLUMN]["name"] = object_key
        ptype, display = "objectcatalog", "demo objects"
        about = ("The 80,000 demo galaxies as an LSST Object catalog: positions as in pz.photoz_demo, "
                 "cModel fluxes and errors in nJy from photerr's LSST 10-year error model.")
    else:
        model = next(s for s in SURVEYS if s.product == name)
        ptype, display = "speczcat", f"demo spec-z {model.survey}"
        about = model.description + " Simulated from the demo galaxies for the Training Set Maker."
    return RegistrationRequest(
        name=name, product_type=ptype, main_file=path, main_file_name=path.name, display_name=display,
        release=RELEASE, official=True, description=about, columns=columns)


def load_tsm_demo(services: Services, source: Path, *, force: bool = False) -> dict[str, int]:
    """Register the four products unless they are there (and write their files unless they are).

    Returns the row count of each product.
    """
    registry, var_dir = services.products, services.settings.var_dir
    present = {} if force else _present(registry)
    if len(present) == len(ROWS) and _files_present(var_dir):
        log.info("TSM demo data already loaded", extra={"products": list(present)})
        return present
    demo = build_tsm_demo(source)
    files = write_tsm_files(demo, var_dir)
    missing = [name for name in ROWS if name not in present]
    if missing:
        registry.register_many([_request(name, files[name], registry.object_key) for name in missing],
                               User("pzvo", is_admin=True), lineage=_lineage(source, files))
        log.info("TSM demo data loaded", extra={"products": missing})
    return dict(ROWS)
