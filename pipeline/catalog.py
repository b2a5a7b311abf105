"""Object catalogs and training sets as the pipeline reads them, and the demo catalog it builds.

An object catalog is a Parquet dataset: a directory of Parquet files (any depth, so a HATS
catalog's ``Norder=*/Dir=*/Npix=*.parquet`` tree works as is), one pipeline task per file, with
LSST Object columns: ``objectId``, ``coord_ra``, ``coord_dec``, ``<band>_cModelFlux`` and
``<band>_cModelFluxErr`` in nJy.  A training set has the same flux columns and a redshift; or
(for ``pzvo pipeline evaluate``) AB magnitudes ``u g r i z y``, optional ``u_err ... y_err``
and ``redshift``.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from photerr import LsstErrorModel

from pipeline.estimators.base import Photometry
from pipeline.hats_catalog import is_hats_catalog
from pipeline.photometry import (
    BANDS,
    flux_column,
    flux_err_column,
    mag_to_njy,
    njy_to_mag,
)

log = logging.getLogger(__name__)

ID_COLUMN, RA_COLUMN, DEC_COLUMN = "objectId", "coord_ra", "coord_dec"
FLUX_COLUMNS = [flux_column(b) for b in BANDS]
FLUX_ERR_COLUMNS = [flux_err_column(b) for b in BANDS]
OBJECT_COLUMNS = [ID_COLUMN, RA_COLUMN, DEC_COLUMN, *FLUX_COLUMNS, *FLUX_ERR_COLUMNS]
HATS_METADATA = {"_metadata", "_common_metadata"}


@dataclass(frozen=True)
class Partition:
    """One input file and the output file it becomes."""

    source: Path
    relative: str  # path below the dataset root, the output keeps the same layout

    @property
    def key(self) -> str:
        """Unique per relative path (``a/b.parquet`` and ``a__b.parquet`` differ), readable."""
        digest = hashlib.sha1(self.relative.encode()).hexdigest()[:10]
        return f"{self.relative.replace('/', '__')}-{digest}"


#: Output Parquet metadata key: the :func:`input_identity` of the file the output was made from.
INPUT_KEY = b"pzvo.input"


def stored_input_identity(output: Path) -> str | None:
    """The identity of the input an output file was made from, as the run recorded it."""
    value = (pq.read_schema(output).metadata or {}).get(INPUT_KEY)
    return value.decode() if value else None


def input_identity(path: Path) -> str:
    """A cheap identity of a Parquet file's content: its size and its footer (schema, row
    groups, and every column chunk's statistics), so a resumed run notices an input that was
    replaced, without reading the data.  A file with no Parquet footer gets its size alone (its
    task fails on it anyway)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        h.update(str(size).encode())
        if size >= 12:
            fh.seek(size - 8)
            tail = fh.read(8)
            length = int.from_bytes(tail[:4], "little")
            if tail[4:] == b"PAR1" and length <= size - 12:
                fh.seek(size - 8 - length)
                h.update(fh.read(length))
    return h.hexdigest()[:32]


def hats_primary_catalog(root: Path) -> Path:
    """A HATS collection's object catalog (its margin caches and indexes would only add
    duplicates or lack coordinates); any other path as is."""
    props = root / "collection.properties"
    if not props.is_file():
        return root
    for line in props.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "hats_primary_table_url" and value.strip():
            return root / value.strip()
    raise ValueError(f"{props}: no hats_primary_table_url")


def list_partitions(root: Path) -> list[Partition]:
    """Every Parquet file under ``root`` (or ``root`` itself when it is a file), sorted.

    Of a HATS collection, its primary catalog's; of a HATS catalog, only the pixel files
    (``dataset/Norder=*/Dir=*/Npix=*``, files or directories of files): its root may also hold
    Parquet files that are not objects, such as
    ``data_thumbnail.parquet`` and ``per_partition_statistics.parquet``.
    """
    root = Path(root)
    if root.is_file():
        return [Partition(root, root.name)]
    root = hats_primary_catalog(root)  # a HATS collection: its object catalog
    if is_hats_catalog(root):
        files = sorted(p for p in (root / "dataset").glob("Norder=*/Dir=*/Npix=*")
                       if p.is_file() and p.name.endswith(".parquet"))
        files += sorted(f for d in (root / "dataset").glob("Norder=*/Dir=*/Npix=*") if d.is_dir()
                        for f in d.rglob("*.parquet") if f.is_file())
        files.sort()
    else:
        files = sorted(p for p in root.rglob("*.parquet") if p.name not in HATS_METADATA and p.is_file())
    if not files:
        raise FileNotFoundError(f"no Parquet files under {root}")
    return [Partition(p, p.relative_to(root).as_posix()) for p in files]


def photometry_from_objects(table: pa.Table) -> Photometry:
    """Fluxes (and errors when present) of an Object-like table."""
    flux = np.column_stack([_f64(table, c) for c in FLUX_COLUMNS])
    have_err = all(c in table.column_names for c in FLUX_ERR_COLUMNS)
    err = np.column_stack([_f64(table, c) for c in FLUX_ERR_COLUMNS]) if have_err else None
    return Photometry(flux, err)


def photometry_from_magnitudes(table: pa.Table) -> Photometry:
    """Fluxes from AB magnitude columns ``u ... y`` (and ``u_err ... y_err`` when all exist)."""
    mags = np.column_stack([_f64(table, b) for b in BANDS])
    flux = mag_to_njy(mags)
    flux[~np.isfinite(mags)] = np.nan
    if all(f"{b}_err" in table.column_names for b in BANDS):
        errs = np.column_stack([_f64(table, f"{b}_err") for b in BANDS])
        return Photometry(flux, flux * errs / 1.0857362047581294)
    return Photometry(flux, None)


def read_training_set(path: Path, redshift_column: str = "redshift") -> tuple[Photometry, np.ndarray]:
    """A training set in either form (Object fluxes or magnitudes), with its redshifts."""
    table = pq.read_table(path)
    if redshift_column not in table.column_names:
        raise ValueError(f"{path}: no redshift column {redshift_column!r}")
    if all(c in table.column_names for c in FLUX_COLUMNS):
        phot = photometry_from_objects(table)
    elif all(b in table.column_names for b in BANDS):
        phot = photometry_from_magnitudes(table)
    else:
        raise ValueError(f"{path}: needs the columns {FLUX_COLUMNS} or {list(BANDS)}")
    z = _f64(table, redshift_column)
    keep = np.isfinite(z)
    return phot.take(keep), z[keep]


def _f64(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


# --- the demo catalog -----------------------------------------------------------------------

DEMO_SEED = 20261125
GOLD_I_LIMIT = 25.3
#: The demo footprint (deg): where the demo catalog's galaxies are, and those of the demo tables
#: ``pz.photoz_demo`` and ``pz.specz_demo`` (``vo_service.demo``), drawn with the same seed.
DEMO_FOOTPRINT = {"ra": (50.0, 70.0), "dec": (-40.0, -25.0)}


def sky_positions(n: int, rng: np.random.Generator,
                  footprint: dict[str, tuple[float, float]] = DEMO_FOOTPRINT) -> tuple[np.ndarray, np.ndarray]:
    """Uniform on the sphere inside the footprint (uniform in RA and in sin Dec)."""
    ra = rng.uniform(*footprint["ra"], n)
    s0, s1 = np.sin(np.radians(footprint["dec"]))
    dec = np.degrees(np.arcsin(rng.uniform(s0, s1, n)))
    return ra, dec


def observe_lsst(mags: dict[str, np.ndarray], seed: int, years: float = 10.0) -> dict[str, np.ndarray]:
    """Observed fluxes and errors (nJy) with photerr's LSST error model (Ivezic et al. 2019).

    Output in flux ("maggy") so faint galaxies keep their zero or negative fluxes, as in the
    Object catalog.
    """
    model = LsstErrorModel(nYrObs=years, outputType="maggy")
    obs = model(pd.DataFrame({b: np.asarray(mags[b], float) for b in BANDS}), random_state=seed)
    to_njy = 3631e9
    out = {}
    for b in BANDS:
        out[flux_column(b)] = obs[b].to_numpy() * to_njy
        out[flux_err_column(b)] = obs[f"{b}_err"].to_numpy() * to_njy
    return out


def demo_objects(source: Path, seed: int = DEMO_SEED, copies: int = 1) -> tuple[pa.Table, np.ndarray]:
    """The shared Buzzard galaxies as an Object-like table (and their true redshifts).

    ``copies`` > 1 repeats the catalogue with fresh noise and positions (new objectIds), to make
    benchmark catalogues of any size from the same galaxies.
    """
    cat = pq.read_table(source)
    mags = {b: cat.column(b).to_numpy() for b in BANDS}
    ids = cat.column("galaxy_id").to_numpy().astype(np.int64)
    z = cat.column("redshift").to_numpy()
    tables, redshifts = [], []
    for copy in range(copies):
        rng = np.random.default_rng(seed + copy)
        ra, dec = sky_positions(len(ids), rng)
        cols = {ID_COLUMN: ids + copy * 10_000_000, RA_COLUMN: ra, DEC_COLUMN: dec}
        cols.update(observe_lsst(mags, seed + copy))
        tables.append(pa.table(cols))
        redshifts.append(z)
    return pa.concat_tables(tables), np.concatenate(redshifts)


def gold_mask(table: pa.Table) -> np.ndarray:
    """LSST gold sample: observed i < 25.3."""
    return np.nan_to_num(njy_to_mag(_f64(table, flux_column("i"))), nan=99.0) < GOLD_I_LIMIT


def write_demo_catalog(source: Path, objects_dir: Path, training_path: Path, validation_path: Path,
                       *, partitions: int = 8, seed: int = DEMO_SEED, train_fraction: float = 0.75,
                       copies: int = 1) -> dict[str, int]:
    """Write the demo object catalog (``partitions`` files) and the train/validation split.

    The split is of the gold sample (i < 25.3), with a fixed seed: ``train_fraction`` for
    training, the rest held out for the quality report.  Training and validation rows carry the
    Object columns plus ``redshift``.
    """
    objects, z = demo_objects(source, seed, copies)
    objects_dir.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, objects.num_rows, partitions + 1).astype(int)
    for p in range(partitions):
        part = objects.slice(bounds[p], bounds[p + 1] - bounds[p])
        pq.write_table(part, objects_dir / f"part-{p:04d}.parquet", row_group_size=100_000)
    first = objects.slice(0, len(z) // copies)
    gold = np.flatnonzero(gold_mask(first))
    np.random.default_rng(seed).shuffle(gold)
    n_train = int(train_fraction * gold.size)
    labelled = first.append_column("redshift", pa.array(z[: first.num_rows]))
    for path, rows in ((training_path, np.sort(gold[:n_train])), (validation_path, np.sort(gold[n_train:]))):
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(labelled.take(rows), path)
    counts = {"objects": objects.num_rows, "partitions": partitions, "training": n_train,
              "validation": int(gold.size - n_train)}
    log.info("wrote demo catalog", extra=counts)
    return counts
