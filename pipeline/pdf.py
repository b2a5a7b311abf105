"""Photo-z PDFs stored as quantiles, the way the ``qp`` package defines them.

Why quantiles: a PDF on a fine redshift grid (351 points for 0 <= z <= 3.5) costs 1.4 kB per
object in float32, 14 TB for 10 billion objects; 17 quantiles cost 68 bytes and keep what users
compute from a PDF (intervals, PIT, CDF at a redshift, a PDF on any grid).  The form is qp's
``quant`` parameterization: the shared quantile levels :data:`LEVELS` (stored once, in the
Parquet metadata and the table description) and, per object, the redshifts ``locs`` at which the
CDF reaches them.  The first and last level are 0 and 1, so qp needs no extrapolation of its own,
and the pipeline's CDF is the linear interpolation of (locs, LEVELS), its density constant
between two quantiles.  qp interpolates the same points quadratically: both pass through every
stored quantile, and between them they differ by at most a few hundredths in CDF (tested).
:func:`to_qp` builds the ensemble, :func:`pdf_on_grid` evaluates a PDF on a fixed redshift grid without qp.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import qp

#: Quantile levels of the stored PDFs (0 and 1 are the support's ends).
LEVELS = np.array([0.0, 0.025, 0.05, 0.1, 0.16, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.84, 0.9,
                   0.95, 0.975, 1.0])
MEDIAN_INDEX = int(np.flatnonzero(LEVELS == 0.5)[0])
LO68_INDEX = int(np.flatnonzero(LEVELS == 0.16)[0])
HI68_INDEX = int(np.flatnonzero(LEVELS == 0.84)[0])
#: Redshift grid of the PDFs the quality report and :func:`pdf_on_grid` use by default.
ZGRID = np.linspace(0.0, 3.5, 351)


def quantiles_from_knots(knot_z: np.ndarray, knot_p: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Invert piecewise-linear CDFs that share their knot probabilities.

    ``knot_z`` (n, m) are each object's non-decreasing knot redshifts, ``knot_p`` (m,) the CDF
    value at every knot (the same for all objects, which is what makes this vectorized: every
    level falls between the same two knots for every object).  Returns (n, len(levels)).
    """
    levels = np.clip(np.asarray(levels, dtype=np.float64), knot_p[0], knot_p[-1])
    j = np.clip(np.searchsorted(knot_p, levels, side="right") - 1, 0, knot_p.size - 2)
    width = knot_p[j + 1] - knot_p[j]
    t = np.where(width > 0, (levels - knot_p[j]) / np.where(width > 0, width, 1.0), 0.0)
    return knot_z[:, j] + t * (knot_z[:, j + 1] - knot_z[:, j])


def cdf_at(locs: np.ndarray, x: np.ndarray, levels: np.ndarray = LEVELS) -> np.ndarray:
    """CDF of each object's quantile PDF at its own redshift ``x`` (PIT when x is the truth)."""
    locs = np.asarray(locs, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    j = (locs <= x[:, None]).sum(axis=1)
    inside = (j > 0) & (j < locs.shape[1])
    jj = np.clip(j, 1, locs.shape[1] - 1)
    rows = np.arange(locs.shape[0])
    z0, z1 = locs[rows, jj - 1], locs[rows, jj]
    width = z1 - z0
    t = np.where(width > 0, (x - z0) / np.where(width > 0, width, 1.0), 1.0)
    value = levels[jj - 1] + t * (levels[jj] - levels[jj - 1])
    return np.where(inside, value, np.where(j == 0, 0.0, 1.0))


def density_at(locs: np.ndarray, x: np.ndarray, levels: np.ndarray = LEVELS,
               min_width: float = 1e-3) -> np.ndarray:
    """PDF value of each object at its own ``x``: the CDF's slope in the segment holding x.

    ``min_width`` keeps a segment whose two quantiles coincide from giving an infinite density
    (a kNN PDF whose neighbours share a redshift).
    """
    locs = np.asarray(locs, dtype=np.float64)
    j = (locs <= np.asarray(x, dtype=np.float64)[:, None]).sum(axis=1)
    inside = (j > 0) & (j < locs.shape[1])
    jj = np.clip(j, 1, locs.shape[1] - 1)
    rows = np.arange(locs.shape[0])
    width = np.maximum(locs[rows, jj] - locs[rows, jj - 1], min_width)
    return np.where(inside, (levels[jj] - levels[jj - 1]) / width, 0.0)


def integral_of_square(locs: np.ndarray, levels: np.ndarray = LEVELS, min_width: float = 1e-3) -> np.ndarray:
    """Integral of p(z)^2 dz per object (the first term of the CDE loss)."""
    dz = np.maximum(np.diff(np.asarray(locs, dtype=np.float64), axis=1), min_width)
    dp = np.diff(levels)
    return (dp[None, :] ** 2 / dz).sum(axis=1)


def pdf_on_grid(locs: np.ndarray, grid: np.ndarray = ZGRID, levels: np.ndarray = LEVELS) -> np.ndarray:
    """Histogram of each PDF on a fixed grid: the probability in each grid cell, as qp ``hist``.

    ``grid`` holds the cell edges; the result has one column fewer and rows summing to the
    probability inside the grid (1 when the grid covers the support).
    """
    locs = np.asarray(locs, dtype=np.float64)
    cdf = np.empty((locs.shape[0], grid.size))
    for i, edge in enumerate(grid):
        cdf[:, i] = cdf_at(locs, np.full(locs.shape[0], edge), levels)
    return np.diff(cdf, axis=1)


def to_qp(locs: np.ndarray, levels: np.ndarray = LEVELS) -> qp.Ensemble:
    """A ``qp.Ensemble`` of the stored PDFs (qp's ``quant`` parameterization)."""
    import qp  # noqa: PLC0415 - qp: 0.1 s, only to hand PDFs to qp users

    return qp.Ensemble(qp.quant, data={"quants": np.asarray(levels, dtype=np.float64),
                                       "locs": np.asarray(locs, dtype=np.float64)})


def from_qp(ensemble: qp.Ensemble, levels: np.ndarray = LEVELS) -> np.ndarray:
    """Quantile locs of any qp ensemble at ``levels`` (converts other parameterizations)."""
    inner = np.clip(np.asarray(levels, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.asarray(ensemble.ppf(inner), dtype=np.float64)
