"""Example science-driven split for ``split.hook`` (docs/tsm.md, "Split").

:func:`faint_validation` mimics the usual mismatch of photo-z work: the spectroscopic training
set is brighter than the photometric sample it serves.  Training takes the brightest rows,
validation the faintest, and each training row gets a weight (Lima et al. 2008, MNRAS 390, 118:
the ratio of validation to training density in magnitude space, from k nearest neighbours) so
that the weighted training set resembles the validation set.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from scipy.spatial import cKDTree


def faint_validation(table: pa.Table, *, fraction: float, rng: np.random.Generator, band: str = "mag_i",
                     features: Sequence[str] = ("mag_g", "mag_r", "mag_i", "mag_z"),
                     k: int = 20) -> tuple[pa.Table, pa.Table]:
    """Brightest ``fraction`` in ``band`` to training (with a ``weight`` column), the rest to
    validation.  ``rng`` is unused: the split is deterministic."""
    del rng
    missing = [c for c in {band, *features} if c not in table.column_names]
    if missing:
        raise ValueError(f"faint_validation needs the column(s) {', '.join(sorted(missing))} "
                         "(crossmatch with magnitudes: true)")
    mag = np.asarray(table.column(band).to_numpy(zero_copy_only=False), dtype=np.float64)
    mag = np.where(np.isfinite(mag), mag, np.inf)
    order = np.argsort(mag, kind="stable")
    take = math.floor(fraction * len(order) + 0.5)
    mask = np.zeros(len(order), dtype=bool)
    mask[order[:take]] = True
    space = np.column_stack([np.asarray(table.column(c).to_numpy(zero_copy_only=False), dtype=np.float64)
                             for c in features])
    space = np.where(np.isfinite(space), space, 99.0)
    training, validation = space[mask], space[~mask]
    weights = np.ones(len(training))
    if len(training) > k and len(validation):
        radius = cKDTree(training).query(training, k=k + 1)[0][:, -1]
        counts = np.array([len(ix) for ix in cKDTree(validation).query_ball_point(training, radius)])
        weights = counts / k * len(training) / len(validation)
    train_table = table.filter(pa.array(mask)).append_column("weight", pa.array(weights))
    return train_table, table.filter(pa.array(~mask))
