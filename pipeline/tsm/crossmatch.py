"""Training Set Maker: crossmatch a spec-z catalog with the LSST Object catalog on Dask.

For every spec-z row, the nearest object within ``radius_arcsec`` (great-circle separation),
as astropy's ``SkyCoord.match_to_catalog_sky`` followed by a separation cut ``sep <= radius``;
equal separations go to the smaller ``objectId``.  Several spec-z rows may match the same
object (each keeps it; ``counts["shared_objects"]`` says how many objects were matched more
than once).

How it scales: one Dask task per object file (``pipeline.catalog.list_partitions``; a HATS
collection's pixel files or any Parquet tree).  The client reads each file's footer only, takes
the file's footprint from the ``coord_ra``/``coord_dec`` statistics (a box in RA and Dec; the
whole sky when statistics are missing) and sends the task the spec-z rows inside the footprint
plus a margin of one radius (in RA the margin is ``asin(sin r / cos dec)``, with RA taken
modulo 360, and every RA within one radius of a pole).  Any spec-z row with an object within
the radius is therefore sent to that object's file, whatever the file's shape.  Each task reads
only ``objectId``/``coord_ra``/``coord_dec``, finds its nearest object per spec-z row with a
sorted zones search (below), then reads the requested columns of the row groups that hold
matches.  The client reduces the per-file winners to one per spec-z row (smallest separation,
then smallest objectId), so a pair across a file edge is never lost nor duplicated.

The zones search (Gray et al. 2007, "The zones algorithm"): objects sorted by an integer key
(Dec zone of height >= radius, then RA quantized to 2**-36 of a turn); for each spec-z row, the
key ranges of the zones its circle touches and its RA interval (two ranges across RA = 0/360,
the whole zone near a pole) are found by binary search, and the exact separation (Vincenty's
formula, as astropy) is computed for those candidates only.  Sorting a file's objects costs less
than building a k-d tree on them (docs/tsm.md has the measurements).

Column naming in ``matched``: every spec-z column as is, then ``objectId``, ``separation_arcsec``,
the requested object columns under their own names and, with ``magnitudes=True``, ``mag_<band>``
and ``magerr_<band>``.  An object-side name that a spec-z column already has is prefixed with
``object_`` (``CrossmatchResult.object_columns`` maps object names to output names).
"""
from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dask.distributed import Client, LocalCluster, as_completed

from pipeline.catalog import DEC_COLUMN, ID_COLUMN, RA_COLUMN, list_partitions
from pipeline.photometry import BANDS, flux_column, flux_err_column, njy_to_mag

log = logging.getLogger(__name__)

SEPARATION_COLUMN = "separation_arcsec"
OBJECT_PREFIX = "object_"
#: RA quantization of the zone keys: 2**36 steps per turn (19 micro-arcsec), zone index above.
_RA_BITS = 36
_RA_STEPS = float(1 << _RA_BITS)
_RA_MAX = (1 << _RA_BITS) - 1
#: Zones are at least this tall (deg) so the zone index fits the key's upper bits at any radius.
_MIN_ZONE_DEG = 1e-5
#: Widening of every search bound, relative: candidates are a superset, the exact cut decides.
_SLACK = 1e-9
_POGSON = 2.5 / math.log(10.0)


class CrossmatchError(ValueError):
    """Bad input to :func:`crossmatch`, found before any work starts."""


@dataclass
class CrossmatchResult:
    """Matched spec-z rows (with their object), unmatched spec-z rows, and counts."""

    matched: pa.Table
    unmatched: pa.Table
    counts: dict[str, int]
    object_columns: dict[str, str] = field(default_factory=dict)

    def to_pandas(self) -> tuple[Any, Any]:
        """``(matched, unmatched)`` as pandas DataFrames."""
        return self.matched.to_pandas(), self.unmatched.to_pandas()


# --- the per-file task ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Queries:
    """Spec-z positions sent to one file's task: global row numbers and coordinates (deg)."""

    rows: np.ndarray
    ra: np.ndarray
    dec: np.ndarray


@dataclass
class _PartResult:
    rows: np.ndarray
    separation: np.ndarray
    object_id: np.ndarray
    extra: pa.Table
    objects_read: int


def _zone_height(radius_deg: float) -> float:
    return max(radius_deg, _MIN_ZONE_DEG)


def _ra_key(ra: np.ndarray) -> np.ndarray:
    t = np.multiply(ra, _RA_STEPS / 360.0)
    np.floor(t, out=t)
    np.clip(t, 0, _RA_MAX, out=t)
    return t.astype(np.int64)


def _zone(dec: np.ndarray, height: float) -> np.ndarray:
    n_zones = int(math.ceil(180.0 / height)) + 1
    t = np.add(dec, 90.0)
    t /= height
    np.floor(t, out=t)
    np.clip(t, 0, n_zones - 1, out=t)
    return t.astype(np.int64)


def _keys(ra: np.ndarray, dec: np.ndarray, height: float) -> np.ndarray:
    keys = _zone(dec, height)
    keys <<= _RA_BITS
    keys |= _ra_key(ra)
    return keys


def ra_halfwidth(dec: np.ndarray, radius_deg: float) -> np.ndarray:
    """Largest RA offset (deg) of a point within ``radius_deg`` of a point at ``dec``; 180 when
    the circle holds a pole."""
    r = math.radians(radius_deg) * (1.0 + _SLACK)
    cosd = np.cos(np.radians(np.minimum(np.abs(dec), 90.0)))
    ratio = math.sin(r) / np.maximum(cosd, 1e-300)
    full = (ratio >= 1.0) | (np.abs(dec) + radius_deg * (1.0 + _SLACK) >= 90.0)
    half = np.degrees(np.arcsin(np.minimum(ratio, 1.0))) * (1.0 + _SLACK) + 1e-12
    return np.where(full, 180.0, half)


def angular_separation_deg(ra1: np.ndarray, dec1: np.ndarray, ra2: np.ndarray, dec2: np.ndarray) -> np.ndarray:
    """Vincenty's formula (as astropy's ``angular_separation``): accurate at every angle."""
    l1, b1, l2, b2 = (np.radians(x) for x in (ra1, dec1, ra2, dec2))
    dl = l2 - l1
    sdl, cdl = np.sin(dl), np.cos(dl)
    sb1, cb1, sb2, cb2 = np.sin(b1), np.cos(b1), np.sin(b2), np.cos(b2)
    num1 = cb2 * sdl
    num2 = cb1 * sb2 - sb1 * cb2 * cdl
    return np.degrees(np.arctan2(np.hypot(num1, num2), sb1 * sb2 + cb1 * cb2 * cdl))


def nearest_within(obj_ra: np.ndarray, obj_dec: np.ndarray, obj_id: np.ndarray, q_ra: np.ndarray,
                   q_dec: np.ndarray, radius_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each query position, the nearest object within the radius (ties: smaller id).

    Returns ``(query index, object index, separation deg)`` of the queries that have one.
    """
    empty = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64))
    if obj_ra.size == 0 or q_ra.size == 0:
        return empty
    height = _zone_height(radius_deg)
    keys = _keys(obj_ra, obj_dec, height)
    order = np.argsort(keys)
    keys = keys[order]
    q_order = np.argsort(_keys(q_ra, q_dec, height))  # monotone searches: cache friendly
    q_ra, q_dec = q_ra[q_order], q_dec[q_order]

    reach = radius_deg * (1.0 + _SLACK) + 1e-12
    zlo = _zone(q_dec - reach, height)
    zhi = _zone(q_dec + reach, height)
    half = ra_halfwidth(q_dec, radius_deg)
    full = half >= 180.0
    lo, hi = q_ra - half, q_ra + half
    wrap_lo, wrap_hi = (lo < 0) & ~full, (hi >= 360.0) & ~full
    a_lo = np.where(full, 0, _ra_key(np.where(wrap_lo, lo + 360.0, lo)) - 1)
    a_hi = np.where(full | wrap_lo | wrap_hi, _RA_MAX, _ra_key(hi) + 1)
    two = wrap_lo | wrap_hi
    b_hi = np.where(wrap_lo, _ra_key(hi) + 1, _ra_key(hi - 360.0) + 1)
    a_lo, a_hi, b_hi = (np.clip(x, 0, _RA_MAX) for x in (a_lo, a_hi, b_hi))

    starts, stops, owners = [], [], []
    q_index = np.arange(q_ra.size, dtype=np.int64)
    for dz in range(int((zhi - zlo).max()) + 1):
        z = zlo + dz
        inside = z <= zhi
        base = z << _RA_BITS
        for sel, rlo, rhi in ((inside, a_lo, a_hi), (inside & two, np.zeros_like(b_hi), b_hi)):
            if not sel.any():
                continue
            start = np.searchsorted(keys, (base | rlo)[sel], side="left")
            stop = np.searchsorted(keys, (base | rhi)[sel], side="right")
            starts.append(start)
            stops.append(stop)
            owners.append(q_index[sel])
    start = np.concatenate(starts)
    count = np.concatenate(stops) - start
    owner = np.concatenate(owners)
    total = int(count.sum())
    if total == 0:
        return empty
    keep = count > 0
    start, count, owner = start[keep], count[keep], owner[keep]
    offsets = np.cumsum(count) - count
    pos = np.repeat(start - offsets, count) + np.arange(total, dtype=np.int64)
    cand_obj = order[pos]
    cand_q = np.repeat(owner, count)
    sep = angular_separation_deg(q_ra[cand_q], q_dec[cand_q], obj_ra[cand_obj], obj_dec[cand_obj])
    ok = sep <= radius_deg
    cand_q, cand_obj, sep = cand_q[ok], cand_obj[ok], sep[ok]
    if cand_q.size == 0:
        return empty
    best = _first_per_group(cand_q, sep, obj_id[cand_obj])
    return q_order[cand_q[best]], cand_obj[best], sep[best]


def _first_per_group(group: np.ndarray, sep: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Indices of each group's smallest separation, then smallest id.  Most groups have a single
    candidate: only the others are sorted."""
    single = np.bincount(group)[group] == 1
    alone = np.flatnonzero(single)
    several = np.flatnonzero(~single)
    if several.size == 0:
        return alone
    order = np.lexsort((ids[several], sep[several], group[several]))
    g = group[several][order]
    first = np.ones(g.size, dtype=bool)
    first[1:] = g[1:] != g[:-1]
    return np.concatenate([alone, several[order[first]]])


def _match_file(path: str, queries: _Queries, radius_deg: float, columns: Sequence[str]) -> _PartResult:
    """One Dask task: the nearest object of this file for each spec-z row sent to it."""
    pf = pq.ParquetFile(path)
    coords = pf.read(columns=[ID_COLUMN, RA_COLUMN, DEC_COLUMN], use_threads=False)
    n = coords.num_rows
    ids = _numpy(coords, ID_COLUMN, np.int64)
    ra = _numpy(coords, RA_COLUMN, np.float64)
    dec = _numpy(coords, DEC_COLUMN, np.float64)
    del coords
    good = np.isfinite(ra) & np.isfinite(dec)
    index = None
    if not good.all():
        index = np.flatnonzero(good)
        ra, dec, ids = ra[index], dec[index], ids[index]
    del good
    if ra.size and (ra.min() < 0.0 or ra.max() >= 360.0):
        ra = np.mod(ra, 360.0)
    q, obj, sep = nearest_within(ra, dec, ids, queries.ra, queries.dec, radius_deg)
    del ra, dec
    by_row = np.argsort(obj)
    q, obj, sep = q[by_row], obj[by_row], sep[by_row]
    matched_ids = ids[obj]
    rows = obj if index is None else index[obj]
    return _PartResult(queries.rows[q], sep * 3600.0, matched_ids, _take_rows(pf, rows, columns), n)


def _numpy(table: pa.Table, name: str, dtype: Any) -> np.ndarray:
    col = table.column(name)
    if col.null_count:
        col = pc.fill_null(col.cast(pa.float64()), float("nan")) if dtype is np.float64 else col
    return col.to_numpy(zero_copy_only=False).astype(dtype, copy=False)


def _take_rows(pf: pq.ParquetFile, rows: np.ndarray, columns: Sequence[str]) -> pa.Table:
    """The requested columns of the given rows (ascending), reading only the row groups that hold
    them."""
    if not columns:
        return pa.table({})
    if rows.size == 0:
        return pf.schema_arrow.empty_table().select(list(columns))
    sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    group = np.searchsorted(bounds, rows, side="right") - 1
    cuts = np.flatnonzero(np.diff(group)) + 1
    pieces = []
    for part in np.split(np.arange(rows.size), cuts):  # one row group at a time: memory stays small
        g = int(group[part[0]])
        table = pf.read_row_group(g, columns=list(columns), use_threads=False)
        pieces.append(table.take(pa.array(rows[part] - bounds[g])))
    return pa.concat_tables(pieces)


# --- footprints and spec-z selection --------------------------------------------------------------

@dataclass(frozen=True)
class Footprint:
    """A file's box: Dec range and RA range (deg); ``None`` RA range is every RA."""

    dec_min: float
    dec_max: float
    ra_min: float | None
    ra_max: float | None
    rows: int

    @classmethod
    def whole_sky(cls, rows: int) -> Footprint:
        return cls(-90.0, 90.0, None, None, rows)


def file_footprint(meta: pq.FileMetaData) -> Footprint:
    """From the footer's column statistics (no data read); the whole sky when they are missing."""
    names = [meta.schema.column(i).path for i in range(meta.num_columns)]
    ra_i, dec_i = names.index(RA_COLUMN), names.index(DEC_COLUMN)
    lo: dict[int, float] = {}
    hi: dict[int, float] = {}
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        if rg.num_rows == 0:
            continue
        for i in (ra_i, dec_i):
            stats = rg.column(i).statistics
            if stats is None or not stats.has_min_max:
                return Footprint.whole_sky(meta.num_rows)
            try:
                a, b = float(stats.min), float(stats.max)
            except (TypeError, ValueError):
                return Footprint.whole_sky(meta.num_rows)
            if not (math.isfinite(a) and math.isfinite(b)):
                return Footprint.whole_sky(meta.num_rows)
            lo[i] = min(lo.get(i, a), a)
            hi[i] = max(hi.get(i, b), b)
    if not lo:
        return Footprint(0.0, 0.0, 0.0, 0.0, 0)
    ra_lo, ra_hi = lo[ra_i], hi[ra_i]
    if ra_lo < 0.0 or ra_hi >= 360.0 or ra_hi - ra_lo >= 360.0:
        ra_box: tuple[float | None, float | None] = (None, None)
    else:
        ra_box = (ra_lo, ra_hi)
    return Footprint(max(lo[dec_i], -90.0), min(hi[dec_i], 90.0), *ra_box, meta.num_rows)


class SpeczIndex:
    """The spec-z positions sorted by RA once, so that each file's candidates are found by binary
    search on its RA range rather than by a pass over the whole catalog."""

    def __init__(self, rows: np.ndarray, ra: np.ndarray, dec: np.ndarray, radius_deg: float) -> None:
        order = np.argsort(ra)
        self.rows, self.ra, self.dec = rows[order], ra[order], dec[order]
        self.half = ra_halfwidth(self.dec, radius_deg)
        self.radius_deg = radius_deg

    def select(self, fp: Footprint) -> _Queries:
        """The spec-z rows that may have an object of this footprint within the radius."""
        reach = self.radius_deg * (1.0 + _SLACK) + 1e-12
        widest = float(ra_halfwidth(np.array([max(abs(fp.dec_min - reach), abs(fp.dec_max + reach))]),
                                    self.radius_deg)[0])
        if fp.ra_min is None or fp.ra_max is None or widest >= 180.0:
            spans = [(0, self.ra.size)]
        else:
            lo, hi = fp.ra_min - widest, fp.ra_max + widest
            bounds = [(lo + 360.0, 360.0), (0.0, hi)] if lo < 0 else \
                [(lo, 360.0), (0.0, hi - 360.0)] if hi >= 360.0 else [(lo, hi)]
            spans = [(int(np.searchsorted(self.ra, a, "left")), int(np.searchsorted(self.ra, b, "right")))
                     for a, b in bounds]
        index = np.concatenate([np.arange(a, b) for a, b in spans]) if len(spans) > 1 else slice(*spans[0])
        ra, dec, half = self.ra[index], self.dec[index], self.half[index]
        mask = (dec >= fp.dec_min - reach) & (dec <= fp.dec_max + reach)
        if fp.ra_min is not None and fp.ra_max is not None:
            offset = np.mod(ra - fp.ra_min + half, 360.0)
            mask &= (half >= 180.0) | (offset <= fp.ra_max - fp.ra_min + 2.0 * half)
        return _Queries(self.rows[index][mask], ra[mask], dec[mask])


def may_overlap(ra: np.ndarray, dec: np.ndarray, footprints: Sequence[Footprint], radius_arcsec: float) -> bool:
    """Whether any position may have an object of these footprints within the radius: the
    crossmatch's own candidate selection, on footprints alone (no object read)."""
    finite = np.isfinite(ra) & np.isfinite(dec)
    index = SpeczIndex(np.flatnonzero(finite), np.mod(ra[finite], 360.0), dec[finite], radius_arcsec / 3600.0)
    return any(fp.rows > 0 and index.select(fp).rows.size > 0 for fp in footprints)


# --- Dask -----------------------------------------------------------------------------------------

#: No dashboard, and the scheduler's HTTP endpoint on a free port (8787 may be someone else's).
QUIET_SCHEDULER = {"dashboard": False, "dashboard_address": "127.0.0.1:0"}


@contextmanager
def dask_client(client: Any = None, scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """The given client; or one on ``scheduler``; or a local cluster of ``workers`` threads.

    Threads, not processes, locally: the work is in numpy and Arrow, which release the GIL, and
    a threaded cluster starts in a fraction of the time of a process cluster (docs/tsm.md).
    """
    if client is not None:
        yield client
        return
    if scheduler:
        with Client(scheduler) as remote:
            yield remote
        return
    n = workers or os.cpu_count() or 1
    with LocalCluster(n_workers=1, threads_per_worker=n, processes=False, dashboard_address=None,
                      scheduler_kwargs=QUIET_SCHEDULER, silence_logs=logging.WARNING) as cluster, \
            Client(cluster) as local:
        yield local


# --- the public function --------------------------------------------------------------------------

def _object_files(objects: Path | str | Sequence[Path]) -> list[Path]:
    try:
        if isinstance(objects, str | Path):
            return [p.source for p in list_partitions(Path(objects))]
        files = [Path(p) for p in objects]
    except (FileNotFoundError, ValueError) as exc:
        raise CrossmatchError(f"no object files: {exc}") from None
    if not files:
        raise CrossmatchError("no object files given")
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise CrossmatchError(f"object files not found: {', '.join(missing[:5])}")
    return files


def _spec_coords(specz: pa.Table, ra: str, dec: str) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for name in (ra, dec):
        if name not in specz.column_names:
            raise CrossmatchError(f"spec-z catalog has no column {name!r} (columns: {', '.join(specz.column_names)})")
        col = specz.column(name)
        if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type) or pa.types.is_decimal(col.type)):
            raise CrossmatchError(f"spec-z column {name!r} is {col.type}, not a number of degrees")
        out.append(pc.fill_null(col.cast(pa.float64()), float("nan")).to_numpy())
    sra, sdec = out
    bad = np.isfinite(sdec) & (np.abs(sdec) > 90.0)
    if bad.any():
        raise CrossmatchError(f"spec-z column {dec!r}: {int(bad.sum())} values outside [-90, 90], "
                              f"e.g. {sdec[bad][0]!r}")
    return np.mod(sra, 360.0), sdec


def _read_columns(files: Sequence[Path], columns: Sequence[str] | None,
                  magnitudes: bool) -> tuple[list[str], list[str], list[pq.FileMetaData]]:
    """Check every footer before any work: the columns to return and those to read."""
    metas, names = [], None
    for path in files:
        try:
            meta = pq.read_metadata(path)
        except (OSError, pa.ArrowException) as exc:
            raise CrossmatchError(f"{path}: not a readable Parquet file ({exc})") from None
        have = set(meta.schema.to_arrow_schema().names)
        lacking = [c for c in (ID_COLUMN, RA_COLUMN, DEC_COLUMN) if c not in have]
        if lacking:
            raise CrossmatchError(f"{path}: object file lacks {', '.join(lacking)}")
        names = have if names is None else names & have
        metas.append(meta)
    assert names is not None
    fluxes = [c for b in BANDS for c in (flux_column(b), flux_err_column(b)) if c in names]
    if columns is None:
        wanted = fluxes
    else:
        wanted = list(dict.fromkeys(columns))
        for c in wanted:
            if c not in names:
                raise CrossmatchError(f"object column {c!r} is not in every object file")
    wanted = [c for c in wanted if c != ID_COLUMN]
    read = list(dict.fromkeys([*wanted, *(fluxes if magnitudes else [])]))
    return wanted, read, metas


def _add_magnitudes(extra: pa.Table) -> dict[str, pa.Array]:
    out = {}
    for b in BANDS:
        f, e = flux_column(b), flux_err_column(b)
        if f not in extra.column_names:
            continue
        flux = pc.fill_null(extra.column(f).cast(pa.float64()), float("nan")).to_numpy()
        mag = njy_to_mag(flux)
        out[f"mag_{b}"] = pa.array(mag, mask=~np.isfinite(mag))
        if e in extra.column_names:
            err = pc.fill_null(extra.column(e).cast(pa.float64()), float("nan")).to_numpy()
            with np.errstate(invalid="ignore", divide="ignore"):
                magerr = np.where(flux > 0, _POGSON * err / np.where(flux > 0, flux, 1.0), np.nan)
            out[f"magerr_{b}"] = pa.array(magerr, mask=~np.isfinite(magerr))
    return out


def crossmatch(specz: pa.Table, objects: Path | str | Sequence[Path], *, ra: str = "ra", dec: str = "dec",
               radius_arcsec: float = 1.0, columns: Sequence[str] | None = None, magnitudes: bool = False,
               client: Any = None, scheduler: str | None = None, workers: int | None = None,
               progress: Callable[[int, int], None] | None = None) -> CrossmatchResult:
    """Nearest LSST object within ``radius_arcsec`` of every spec-z row (module docstring).

    ``objects``: a Parquet dataset directory (any depth), a HATS catalog or collection (its
    primary catalog), one file, or a list of files.  ``columns``: object columns to bring back (default: the
    ``<band>_cModelFlux``/``<band>_cModelFluxErr`` columns present).  ``magnitudes``: add AB
    ``mag_<band>``/``magerr_<band>`` (null where the flux is not positive).  Dask: ``client``,
    else a client on ``scheduler``, else a local threaded cluster of ``workers`` threads.
    ``progress(done, total)`` is called after each object file.
    """
    if isinstance(specz, pa.RecordBatch):
        specz = pa.Table.from_batches([specz])
    if not isinstance(specz, pa.Table):
        raise CrossmatchError(f"spec-z catalog must be a pyarrow Table, not {type(specz).__name__}")
    try:
        radius = float(radius_arcsec)
    except (TypeError, ValueError):
        raise CrossmatchError(f"radius_arcsec must be a number, not {radius_arcsec!r}") from None
    if not math.isfinite(radius) or radius <= 0:
        raise CrossmatchError(f"radius_arcsec must be > 0, not {radius_arcsec!r}")
    if radius > 3600.0 * 10:
        raise CrossmatchError(f"radius_arcsec {radius} is more than 10 degrees: not a crossmatch")
    sra, sdec = _spec_coords(specz, ra, dec)
    files = _object_files(objects)
    wanted, read, metas = _read_columns(files, columns, magnitudes)

    radius_deg = radius / 3600.0
    renamed = {c: (OBJECT_PREFIX + c if c in specz.column_names else c)
               for c in [ID_COLUMN, SEPARATION_COLUMN, *wanted]}
    mag_names = [f"{p}_{b}" for b in BANDS for p in ("mag", "magerr")] if magnitudes else []
    renamed.update({c: (OBJECT_PREFIX + c if c in specz.column_names else c) for c in mag_names})
    clash = sorted({v for v in renamed.values() if v in specz.column_names})
    if clash:
        raise CrossmatchError(f"spec-z columns {clash} collide with the object columns even when prefixed")

    vrows = np.flatnonzero(np.isfinite(sra) & np.isfinite(sdec))
    index = SpeczIndex(vrows, sra[vrows], sdec[vrows], radius_deg)
    tasks = [(path, index.select(file_footprint(meta))) for path, meta in zip(files, metas, strict=True)
             if meta.num_rows]
    del index

    parts: list[_PartResult] = []
    objects_read = 0
    todo = [t for t in tasks if t[1].rows.size]
    done, total = len(files) - len(todo), len(files)
    if progress:
        progress(done, total)
    if todo:
        token = uuid.uuid4().hex[:8]
        with dask_client(client, scheduler, workers) as dc:
            futures = [dc.submit(_match_file, str(path), dc.scatter(q, direct=False) if q.rows.size > 100_000 else q,
                                 radius_deg, read, key=f"tsm-crossmatch-{i}-{token}", pure=False)
                       for i, (path, q) in enumerate(todo)]
            for future in as_completed(futures):
                result = future.result()
                parts.append(result)
                objects_read += result.objects_read
                done += 1
                if progress:
                    progress(done, total)
    return _reduce(specz, parts, wanted, renamed, magnitudes, objects_read, len(files))


def _take(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """``table.take(rows)``; numeric columns without nulls through numpy (several times faster
    than Arrow's take across chunks)."""
    columns = []
    for col in table.columns:
        if col.null_count == 0 and (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
            columns.append(pa.array(col.to_numpy()[rows], col.type))
        else:
            columns.append(col.take(pa.array(rows)))
    return pa.Table.from_arrays(columns, schema=table.schema)


def _reduce(specz: pa.Table, parts: list[_PartResult], wanted: list[str], renamed: dict[str, str],
            magnitudes: bool, objects_read: int, n_files: int) -> CrossmatchResult:
    """Per spec-z row, the best of the files' winners; then the output tables."""
    rows = np.concatenate([p.rows for p in parts] or [np.empty(0, np.int64)])
    sep = np.concatenate([p.separation for p in parts] or [np.empty(0)])
    ids = np.concatenate([p.object_id for p in parts] or [np.empty(0, np.int64)])
    best = _first_per_group(rows, sep, ids) if rows.size else np.empty(0, np.int64)
    winner = np.full(specz.num_rows, -1, dtype=np.int64)
    winner[rows[best]] = best
    matched_rows = np.flatnonzero(winner >= 0)
    best = winner[matched_rows]
    extra_parts = [p.extra for p in parts if p.extra.num_columns]
    extra = pa.concat_tables(extra_parts, promote_options="permissive") if extra_parts else pa.table({})
    if extra.num_columns:
        extra = _take(extra, best)
    matched = _take(specz, matched_rows)
    add: dict[str, pa.Array | pa.ChunkedArray] = {
        renamed[ID_COLUMN]: pa.array(ids[best], pa.int64()),
        renamed[SEPARATION_COLUMN]: pa.array(sep[best], pa.float64()),
    }
    for c in wanted:
        add[renamed[c]] = extra.column(c) if extra.num_columns else pa.array([], pa.float64())
    if magnitudes:
        add.update({renamed[k]: v for k, v in _add_magnitudes(extra).items()} if extra.num_columns else {})
    for name, values in add.items():
        matched = matched.append_column(name, values)
    unmatched = _take(specz, np.flatnonzero(winner < 0))
    matched_ids = np.sort(ids[best])
    repeat = matched_ids[1:] == matched_ids[:-1]
    shared = int(np.count_nonzero(repeat[1:] & ~repeat[:-1])) + int(repeat[:1].sum())
    counts = {"specz": specz.num_rows, "matched": matched.num_rows, "unmatched": unmatched.num_rows,
              "partitions": n_files, "objects_read": objects_read,
              "shared_objects": shared}
    log.info("crossmatch done", extra=counts)
    return CrossmatchResult(matched, unmatched, counts, renamed)
