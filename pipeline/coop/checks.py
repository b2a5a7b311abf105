"""Everything wrong with a submission, found at once and told in words a participant can act on.

A participant who fixes one problem per upload wastes a day per problem, so no check stops at the
first failure: each check counts the objects it concerns and names the first few of them, and
:func:`check_submission` raises one :class:`SubmissionError` listing every problem.  The checks
of a PDF's own form (:func:`quantile_problems`, :func:`histogram_problems`,
:func:`mixture_problems`, :func:`sample_problems`) run while the file is read
(:mod:`pipeline.coop.formats`), where the form is still there to check; their findings travel in
``Submission.problems``.
"""
from __future__ import annotations

import numpy as np

from pipeline.coop._models import Submission, SubmissionError
from pipeline.pdf import LEVELS

__all__ = ["NORM_TOLERANCE", "SubmissionError", "check_submission", "histogram_problems", "mixture_problems",
           "quantile_problems", "sample_problems"]

#: A histogram's integral may be off by this fraction (rounding, a grid that clips a far tail).
NORM_TOLERANCE = 0.01
#: Mixture weights of one object may sum to 1 within this.
WEIGHT_TOLERANCE = 0.01
#: Ids a message names before "...".
SHOWN = 5


def _ids_text(values: np.ndarray) -> str:
    shown = ", ".join(str(v) for v in values[:SHOWN])
    return shown + (", ..." if values.size > SHOWN else "")


def _ids_count(count: int, singular: str, plural: str, of: str = "") -> str:
    return f"1 id{of} {singular}" if count == 1 else f"{count:,} ids{of} {plural}"


def _ids_named(values: np.ndarray) -> str:
    return f"id {_ids_text(values)}" if values.size == 1 else f"ids {_ids_text(values)}"


def _rows(mask: np.ndarray, ids: np.ndarray, what: str) -> list[str]:
    """``[message]`` when any row is flagged: count, what is wrong, and the first ids."""
    count = int(np.count_nonzero(mask))
    if not count:
        return []
    if count == 1:
        return [f"1 object {what.replace('have ', 'has ', 1)} ({_ids_named(ids[mask])})"]
    return [f"{count:,} objects {what} (ids {_ids_text(ids[mask])})"]


def _row_any(mask: np.ndarray) -> np.ndarray:
    return np.asarray(mask.any(axis=1) if mask.ndim == 2 else mask, dtype=bool)


def _finite_nonnegative(values: np.ndarray, ids: np.ndarray, what: str) -> tuple[list[str], np.ndarray]:
    """Problems with NaN/inf and negative values; returns the rows that are finite too."""
    finite = np.isfinite(values)
    bad = _row_any(~finite)
    problems = _rows(bad, ids, f"have a NaN or infinite {what}")
    negative = _row_any(np.where(finite, values, 0.0) < 0)
    problems += _rows(negative, ids, f"have a negative {what}")
    return problems, ~bad


def quantile_problems(levels: np.ndarray, locs: np.ndarray, ids: np.ndarray) -> list[str]:
    """Quantile PDFs: levels in [0, 1] and increasing; locations finite, >= 0, non-decreasing."""
    problems: list[str] = []
    if levels.size < 2:
        problems.append(f"a quantile PDF needs at least 2 levels, the file gives {levels.size}")
    if np.any(~np.isfinite(levels)) or np.any((levels < 0) | (levels > 1)):
        problems.append(f"quantile levels must lie in [0, 1]: {levels.tolist()}")
    if np.any(np.diff(levels) <= 0):
        problems.append(f"quantile levels must increase strictly: {levels.tolist()}")
    found, finite = _finite_nonnegative(locs, ids, "quantile")
    problems += found
    with np.errstate(invalid="ignore"):
        decreasing = finite & (np.diff(locs, axis=1) < 0).any(axis=1)
    problems += _rows(decreasing, ids, "have quantiles that are not monotone (a higher level at a lower redshift)")
    return problems


def histogram_problems(values: np.ndarray, grid: np.ndarray, ids: np.ndarray,
                       expected: np.ndarray | None = None) -> list[str]:
    """Histograms: a grid of edges (one more than the values: densities in bins, qp ``hist``) or of
    points (as many as the values: densities at the points, qp ``interp``); PDFs finite,
    non-negative, integrating to 1 within :data:`NORM_TOLERANCE`."""
    problems: list[str] = []
    if expected is not None and (expected.shape != grid.shape or not np.allclose(expected, grid, rtol=0, atol=1e-6)):
        problems.append(f"the histogram grid ({_grid_text(grid)}) is not the challenge's grid ({_grid_text(expected)})")
    width = values.shape[1]
    if grid.size not in (width, width + 1):
        problems.append(f"the histogram has {width} values per object, which fits neither a grid of {grid.size} edges "
                        f"({grid.size - 1} values) nor of {grid.size} points ({grid.size} values)")
        return problems
    if np.any(~np.isfinite(grid)) or np.any(np.diff(grid) <= 0):
        problems.append("the histogram grid must be finite and strictly increasing")
        return problems
    if grid[0] < 0:
        problems.append(f"the histogram grid starts at a negative redshift ({grid[0]:g})")
    found, finite = _finite_nonnegative(values, ids, "PDF value")
    problems += found
    integral = histogram_integral(np.where(np.isfinite(values), values, 0.0), grid)
    off = finite & (np.abs(integral - 1.0) > NORM_TOLERANCE)
    hint = ""
    if off.any() and np.allclose(np.sum(values[off], axis=1), 1.0, atol=NORM_TOLERANCE):
        hint = "; their values sum to 1: give densities (probability / bin width), not probabilities"
    problems += _rows(off, ids, f"have a PDF that does not integrate to 1 within {NORM_TOLERANCE:.0%} "
                                f"(integrals from {np.min(integral[off], initial=np.inf):.3g} "
                                f"to {np.max(integral[off], initial=-np.inf):.3g}){hint}")
    return problems


def histogram_integral(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Integral of each PDF over the grid: bins (edges) or trapezoids (points)."""
    if grid.size == values.shape[1] + 1:
        return np.asarray(values @ np.diff(grid), dtype=np.float64)
    return np.asarray(np.trapezoid(values, grid, axis=1), dtype=np.float64)


def _grid_text(grid: np.ndarray) -> str:
    return f"{grid.size} values from {grid[0]:g} to {grid[-1]:g}" if grid.size else "empty"


def mixture_problems(means: np.ndarray, stds: np.ndarray, weights: np.ndarray, ids: np.ndarray) -> list[str]:
    """Gaussian mixtures: same shape; means >= 0; stds > 0; weights >= 0 summing to 1."""
    if not (means.shape == stds.shape == weights.shape):
        return [f"means, stds and weights must have the same shape per object: {means.shape[1:]}, "
                f"{stds.shape[1:]}, {weights.shape[1:]}"]
    problems, finite_m = _finite_nonnegative(means, ids, "mixture mean")
    finite_s = np.isfinite(stds).all(axis=1)
    finite_w = np.isfinite(weights).all(axis=1)
    problems += _rows(~(finite_s & finite_w), ids, "have a NaN or infinite mixture std or weight")
    problems += _rows(finite_s & (stds <= 0).any(axis=1), ids, "have a mixture std that is zero or negative")
    problems += _rows(finite_w & (weights < 0).any(axis=1), ids, "have a negative mixture weight")
    total = np.sum(np.where(np.isfinite(weights), weights, 0.0), axis=1)
    problems += _rows(finite_w & (np.abs(total - 1.0) > WEIGHT_TOLERANCE), ids,
                      f"have mixture weights that do not sum to 1 within {WEIGHT_TOLERANCE:g}")
    return problems


def sample_problems(samples: np.ndarray, ids: np.ndarray) -> list[str]:
    """Samples: at least 2 per object, finite, non-negative."""
    if samples.shape[1] < 2:
        return [f"a sampled PDF needs at least 2 samples per object, the file gives {samples.shape[1]}"]
    return _finite_nonnegative(samples, ids, "sample")[0]


def check_submission(sub: Submission, validation_ids: np.ndarray) -> None:
    """Raise :class:`SubmissionError` listing every problem of ``sub`` against the validation set."""
    problems = list(sub.problems)
    ids = np.asarray(sub.ids)
    truth = np.asarray(validation_ids)
    if sub.rows == 0:
        problems.append("the file has no rows")
    unique, counts = np.unique(ids, return_counts=True)
    repeated = unique[counts > 1]
    if repeated.size:
        problems.append(f"{_ids_count(repeated.size, 'appears', 'appear')} more than once "
                        f"({int(counts[counts > 1].sum()):,} rows; {_ids_named(repeated)}): give one row per object")
    # Both id sets sorted once, matched by binary search (np.setdiff1d took 1.2 s per million).
    expected = np.unique(truth)
    at = np.minimum(np.searchsorted(expected, unique), max(expected.size - 1, 0))
    known = expected[at] == unique if expected.size else np.zeros(unique.size, dtype=bool)
    unknown = unique[~known]
    matched = np.zeros(expected.size, dtype=bool)
    matched[at[known]] = True
    missing = expected[~matched]
    if unknown.size:
        problems.append(f"{_ids_count(unknown.size, 'is', 'are')} not in the validation set ({_ids_named(unknown)})")
    if missing.size:
        problems.append(f"{_ids_count(missing.size, 'is', 'are', ' of the validation set')} missing "
                        f"({_ids_named(missing)}): "
                        f"give a result for each of its {expected.size:,} objects")
    if sub.source.get("point_column", True):
        problems += _finite_nonnegative(np.asarray(sub.z_phot, np.float64), ids, "point estimate (z_phot)")[0]
    if sub.locs is not None:
        locs = np.asarray(sub.locs)
        if locs.shape != (sub.rows, LEVELS.size):
            problems.append(f"the PDFs have shape {locs.shape}, not ({sub.rows}, {LEVELS.size})")
        else:
            problems += quantile_problems(LEVELS, locs, ids)
    if problems:
        raise SubmissionError(problems)
