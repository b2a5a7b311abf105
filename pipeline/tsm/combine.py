"""Combine spec-z catalogs: homogenize flags, cross-identify the same galaxy, resolve duplicates.

Input catalogs are Arrow tables with the standard columns of :data:`STANDARD_COLUMNS` (see
``pipeline.tsm.inputs`` for how products and files get there).  The rules, in the order they
apply (docs/tsm.md, "Combining spec-z catalogs"):

1. Every input row gets a ``combined_id`` (1, 2, ... in catalog order, then row order) before
   anything is cut, so that a row keeps its id when a cut or a mode changes.
2. Rows without a position or a redshift, or with a position off the sphere, are cut (counted as
   ``invalid``); flags are translated (``pipeline.tsm.flags``) and rows below ``flag_cut`` cut.
3. Except in ``concatenate`` mode, rows within ``radius_arcsec`` of each other are the same
   galaxy, across catalogs and within one: groups are the connected components of the pair graph
   (friends of friends, so a chain of close pairs is one group).
4. In each group the best row wins by, in turn: higher homogenized flag, instrument type
   (spectroscopic > grism > photometric), smaller redshift error (unknown errors last), earlier
   place in ``survey_priority`` (unlisted surveys last).  If several rows are still equal and
   their redshifts differ by at most ``z_threshold`` they are one measurement: the smallest
   ``combined_id`` is kept.  Otherwise the tie is resolved by ``tie``: ``keep_all`` (all kept,
   code 2), ``remove_all`` (all code 0) or ``draw_one`` (one drawn with ``seed``, code 1).
5. ``tie_result``: 1 kept, 0 removed, 2 unresolved tie kept, 3 star (with ``keep_stars``; stars
   are never resolved against galaxies, as in LIneA's combine-redshift-dedup).
   ``remove_duplicates`` keeps the rows whose code is not 0; ``mark_duplicates`` keeps every row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from pipeline.tsm.flags import INSTRUMENTS, STAR_FLAG, FlagRules, homogenize_flags

Mode = Literal["concatenate", "mark_duplicates", "remove_duplicates"]
Tie = Literal["keep_all", "remove_all", "draw_one"]
MODES: tuple[str, ...] = ("concatenate", "mark_duplicates", "remove_duplicates")
TIES: tuple[str, ...] = ("keep_all", "remove_all", "draw_one")

#: What every input catalog provides (``z_err``, ``z_flag`` and ``survey`` may be all null).
STANDARD_COLUMNS: tuple[str, ...] = ("id", "ra", "dec", "z", "z_err", "z_flag", "survey")
#: The decisive rules, in order; each removed row counts under the rule that removed it.
RULES: tuple[str, ...] = ("flag", "instrument", "z_err", "survey_priority", "same_redshift")

KEPT, REMOVED, TIED, STAR = 1, 0, 2, 3


class CombineError(ValueError):
    """A combination that cannot run: a bad parameter or a catalog without a needed column."""


@dataclass(frozen=True)
class SpeczCatalog:
    """One input catalog with its columns standardized; ``label`` names it in the output."""

    label: str
    table: pa.Table


@dataclass
class CombineResult:
    """The combined catalog (Arrow) and what happened to every input row."""

    table: pa.Table
    report: dict[str, Any] = field(default_factory=dict)

    def to_pandas(self) -> Any:
        return self.table.to_pandas()


def _unit_vectors(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    cos_dec = np.cos(dec)
    return np.column_stack((cos_dec * np.cos(ra), cos_dec * np.sin(ra), np.sin(dec)))


def chord_for(radius_arcsec: float) -> float:
    """The straight-line distance between unit vectors separated by ``radius_arcsec``; a hair
    wider so that a pair exactly at the radius is not lost to rounding."""
    return 2.0 * math.sin(math.radians(radius_arcsec / 3600.0) / 2.0) * (1.0 + 1e-12)


def sky_groups(ra: np.ndarray, dec: np.ndarray, radius_arcsec: float) -> np.ndarray:
    """Group label per position (0..n_groups-1): the connected components of the graph whose
    edges join positions within ``radius_arcsec``."""
    n = len(ra)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    tree = cKDTree(_unit_vectors(ra, dec))
    pairs = tree.query_pairs(chord_for(radius_arcsec), output_type="ndarray")
    if len(pairs) == 0:
        return np.arange(n, dtype=np.int64)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def _column(table: pa.Table, name: str, dtype: pa.DataType) -> pa.ChunkedArray:
    column = table.column(name)
    if column.type != dtype:
        try:
            column = pc.cast(column, dtype)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise CombineError(f"column {name!r} ({column.type}) cannot be read as {dtype}: {exc}") from exc
    return column


def _standardize(catalog: SpeczCatalog, first_id: int, extra: Sequence[str]) -> pa.Table:
    table = catalog.table
    missing = [c for c in STANDARD_COLUMNS if c not in table.column_names]
    if missing:
        raise CombineError(f"catalog {catalog.label!r} lacks the column(s) {', '.join(missing)}")
    n = table.num_rows
    ids = table.column("id")
    columns = {
        "combined_id": pa.array(np.arange(first_id, first_id + n, dtype=np.int64)),
        "source": pa.repeat(pa.scalar(catalog.label, pa.string()), n),
        "source_row": pa.array(np.arange(n, dtype=np.int64)),
        "source_id": pc.cast(ids, pa.string()) if ids.type != pa.string() else ids,
        "ra": _column(table, "ra", pa.float64()),
        "dec": _column(table, "dec", pa.float64()),
        "z": _column(table, "z", pa.float64()),
        "z_err": _column(table, "z_err", pa.float64()),
        "z_flag": _column(table, "z_flag", pa.float64()),
        "survey": _column(table, "survey", pa.string()),
    }
    for name in extra:
        if name in table.column_names:
            columns[name] = table.column(name)
    return pa.table(columns)


def _check(mode: str, tie: str, radius_arcsec: float, z_threshold: float) -> None:
    if mode not in MODES:
        raise CombineError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if tie not in TIES:
        raise CombineError(f"tie {tie!r} is not one of {', '.join(TIES)}")
    if not (isinstance(radius_arcsec, int | float) and math.isfinite(radius_arcsec) and radius_arcsec > 0):
        raise CombineError(f"radius_arcsec must be a number > 0, not {radius_arcsec!r}")
    if not (isinstance(z_threshold, int | float) and math.isfinite(z_threshold) and z_threshold >= 0):
        raise CombineError(f"z_threshold must be a number >= 0, not {z_threshold!r}")


def combine(catalogs: Sequence[SpeczCatalog], rules: FlagRules, *, mode: Mode = "remove_duplicates",
            radius_arcsec: float = 1.0, tie: Tie = "keep_all", survey_priority: Sequence[str] = (),
            z_threshold: float = 0.001, flag_cut: int = 0, on_unknown: Literal["error", "drop"] = "error",
            keep_stars: bool = False, extra_columns: Sequence[str] = (), seed: int = 0) -> CombineResult:
    """Combine ``catalogs`` by the rules of the module docstring; every parameter is in the report."""
    _check(mode, tie, radius_arcsec, z_threshold)
    if not catalogs:
        raise CombineError("no spec-z catalogs to combine")
    labels = [c.label for c in catalogs]
    if len(set(labels)) != len(labels):
        raise CombineError(f"catalog labels must be unique: {labels}")
    parts, next_id = [], 1
    for catalog in catalogs:
        parts.append(_standardize(catalog, next_id, extra_columns))
        next_id += catalog.table.num_rows
    table = pa.concat_tables(parts, promote_options="permissive")
    inputs = {c.label: c.table.num_rows for c in catalogs}

    ra, dec, z = (table.column(c).to_numpy(zero_copy_only=False) for c in ("ra", "dec", "z"))
    ra, dec, z = (np.asarray(a, dtype=np.float64) for a in (ra, dec, z))
    valid = np.isfinite(ra) & np.isfinite(dec) & np.isfinite(z) & (np.abs(dec) <= 90.0)
    flagged = homogenize_flags(table.column("survey"), table.column("z_flag"), rules, on_unknown=on_unknown,
                               min_flag=flag_cut, keep_stars=keep_stars)
    keep = valid & flagged.keep
    table = table.append_column("z_flag_homogenized", pa.array(flagged.flags, pa.int8()))
    table = table.append_column("instrument_type", pa.array(flagged.instruments.astype(str), pa.string()))
    table = table.filter(pa.array(keep))
    ra, dec, z = ra[keep] % 360.0, dec[keep], z[keep]
    table = table.set_column(table.column_names.index("ra"), "ra", pa.array(ra))

    n = table.num_rows
    flags = flagged.flags[keep].astype(np.int64)
    stars = flags == STAR_FLAG
    groups = np.arange(n, dtype=np.int64)  # compact labels 0..n_groups-1
    if mode != "concatenate":
        galaxies = np.flatnonzero(~stars)
        found = sky_groups(ra[galaxies], dec[galaxies], radius_arcsec)
        n_found = int(found.max()) + 1 if len(found) else 0
        groups[galaxies] = found
        groups[stars] = n_found + np.arange(int(stars.sum()))
    counts = np.bincount(groups, minlength=1)
    tie_result, resolved, tie_groups = _resolve(
        table, groups, counts, flags, stars, z, survey_priority=survey_priority, z_threshold=z_threshold, tie=tie,
        seed=seed, active=mode != "concatenate")
    ids = table.column("combined_id").to_numpy()
    group_id = _group_min(groups, ids)
    group_size = counts[groups]
    table = table.append_column("group_id", pa.array(group_id))
    table = table.append_column("group_size", pa.array(group_size.astype(np.int32)))
    table = table.append_column("tie_result", pa.array(tie_result, pa.int8()))
    if mode == "remove_duplicates":
        table = table.filter(pa.array(tie_result != REMOVED))
    duplicate_groups = int(np.count_nonzero(counts > 1))
    report = {
        "mode": mode, "radius_arcsec": radius_arcsec, "tie": tie, "survey_priority": list(survey_priority),
        "z_threshold": z_threshold, "flag_cut": flag_cut, "on_unknown": on_unknown, "keep_stars": keep_stars,
        "seed": seed, "inputs": inputs, "rows_in": sum(inputs.values()),
        "invalid": int(np.count_nonzero(~valid)),
        "flags": flagged.report,
        "cut": int(np.count_nonzero(valid & ~flagged.keep)),
        "duplicate_groups": duplicate_groups,
        "rows_in_duplicate_groups": int(np.count_nonzero(group_size > 1)),
        "resolved_by": resolved, "unresolved_ties": tie_groups,
        "tie_results": {name: int(np.count_nonzero(tie_result == code))
                        for name, code in (("kept", KEPT), ("removed", REMOVED), ("tie", TIED), ("star", STAR))},
        "rows_out": table.num_rows,
    }
    return CombineResult(table=table, report=report)


def _group_min(groups: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row, the smallest ``values`` of its group (labels 0..n_groups-1)."""
    if len(groups) == 0:
        return values.copy()
    smallest = np.full(int(groups.max()) + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(smallest, groups, values)
    return smallest[groups]


def _resolve(table: pa.Table, groups: np.ndarray, counts: np.ndarray, flags: np.ndarray, stars: np.ndarray,
             z: np.ndarray, *,
             survey_priority: Sequence[str], z_threshold: float, tie: str, seed: int,
             active: bool) -> tuple[np.ndarray, dict[str, int], dict[str, int]]:
    """Tie-result code per row; per rule, how many rows it removed; unresolved tie counts."""
    n = len(groups)
    result = np.full(n, KEPT, dtype=np.int8)
    result[stars] = STAR
    resolved = dict.fromkeys(RULES, 0)
    ties = {"groups": 0, "rows": 0, "removed": 0, "drawn": 0}
    if not active or n == 0:
        return result, resolved, ties
    rows = np.flatnonzero((counts[groups] > 1) & ~stars)
    if len(rows) == 0:
        return result, resolved, ties
    picked = table.take(pa.array(rows))
    instrument_rank = pc.index_in(picked.column("instrument_type"), value_set=pa.array(INSTRUMENTS))
    priority = pc.index_in(pc.utf8_upper(picked.column("survey")),
                           value_set=pa.array([s.upper() for s in survey_priority], pa.string()))
    z_err = np.asarray(pc.fill_null(picked.column("z_err"), np.inf).to_numpy(), dtype=np.float64)
    ids = table.column("combined_id").to_numpy()

    g = groups[rows]
    keys = [
        -flags[rows].astype(np.float64),
        np.asarray(pc.fill_null(instrument_rank, len(INSTRUMENTS)).to_numpy(), dtype=np.float64),
        np.where(np.isfinite(z_err), z_err, np.inf),
        np.asarray(pc.fill_null(priority, len(survey_priority)).to_numpy(), dtype=np.float64),
    ]
    order = np.lexsort((ids[rows], *reversed(keys), g))
    rows, g, keys = rows[order], g[order], [k[order] for k in keys]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = g[1:] != g[:-1]
    head = np.maximum.accumulate(np.where(first, np.arange(len(rows)), 0))
    n_groups = int(first.sum())
    group_index = np.cumsum(first) - 1
    still = np.ones(len(rows), dtype=bool)
    eliminated_at = np.full(len(rows), -1)
    for level, key in enumerate(keys):
        now = still & (key == key[head])
        eliminated_at[still & ~now] = level
        still = now
    open_groups = np.bincount(group_index, weights=still, minlength=n_groups) > 1
    zs = z[rows]
    z_low = np.full(n_groups, np.inf)
    z_high = np.full(n_groups, -np.inf)
    np.minimum.at(z_low, group_index[still], zs[still])
    np.maximum.at(z_high, group_index[still], zs[still])
    same = open_groups & (z_high - z_low <= z_threshold + 1e-12)
    eliminated_at[still & ~first & same[group_index]] = RULES.index("same_redshift")
    unresolved = open_groups & ~same

    codes = np.full(len(rows), REMOVED, dtype=np.int8)
    codes[first & ~unresolved[group_index]] = KEPT  # the head is the best row, smallest id among equals
    tied_rows = still & unresolved[group_index]
    if tie == "keep_all":
        codes[tied_rows] = TIED
    elif tie == "draw_one":
        draw = np.random.default_rng(seed).random(len(rows))
        draw[~tied_rows] = -1.0
        best = np.full(n_groups, -1.0)
        np.maximum.at(best, group_index, draw)
        codes[tied_rows & (draw == best[group_index])] = KEPT
        ties["drawn"] = int(np.count_nonzero(unresolved))
    result[rows] = codes
    for level, name in enumerate(RULES):
        resolved[name] = int(np.count_nonzero(eliminated_at == level))
    ties["groups"] = int(np.count_nonzero(unresolved))
    ties["rows"] = int(np.count_nonzero(tied_rows))
    ties["removed"] = int(np.count_nonzero(tied_rows & (codes == REMOVED)))
    return result, resolved, ties
