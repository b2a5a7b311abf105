"""A toy estimator whose every output is known in closed form, for known-answer tests.

z_phot = intercept + slope * (i - 22), with i the Pogson i magnitude (clipped to z >= 0), and a
Gaussian PDF of width ``sigma`` (1 + z): tests compute the expected table with a calculator.
``delay`` (seconds per partition) lets the resume test kill a run half-way.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from pipeline.estimators.base import ODDS_HALF_WIDTH, Estimator, Photometry
from pipeline.pdf import HI68_INDEX, LEVELS, LO68_INDEX
from pipeline.photometry import BANDS, njy_to_mag

#: Gaussian quantiles at LEVELS, with the 0 and 1 levels put at +-4 sigma.
_NORMAL_Q = np.concatenate([[-4.0], ndtri(LEVELS[1:-1]), [4.0]])


class LinearToyEstimator(Estimator):
    name = "toy"
    version = "1.0"

    def __init__(self, intercept: float = 0.5, slope: float = 0.2, sigma: float = 0.05,
                 delay: float = 0.0, **extra: Any) -> None:
        if extra:
            raise TypeError(f"unknown toy parameters: {sorted(extra)}")
        super().__init__(intercept=float(intercept), slope=float(slope), sigma=float(sigma))
        self.intercept, self.slope, self.sigma, self.delay = float(intercept), float(slope), float(sigma), float(delay)

    def fit(self, training: Photometry, redshift: np.ndarray) -> LinearToyEstimator:
        self.training_rows = len(training)
        return self

    def estimate(self, objects: Photometry) -> dict[str, np.ndarray]:
        if self.delay:
            time.sleep(self.delay)
        i_mag = np.nan_to_num(njy_to_mag(objects.flux[:, BANDS.index("i")]), nan=30.0)
        z = np.maximum(self.intercept + self.slope * (i_mag - 22.0), 0.0)
        width = self.sigma * (1.0 + z)
        locs = z[:, None] + width[:, None] * _NORMAL_Q[None, :]
        odds = ndtr(ODDS_HALF_WIDTH * (1 + z) / width) - ndtr(-ODDS_HALF_WIDTH * (1 + z) / width)
        return {"z_phot": z.astype(np.float32), "z_mode": z.astype(np.float32),
                "z_err": (0.5 * (locs[:, HI68_INDEX] - locs[:, LO68_INDEX])).astype(np.float32),
                "odds": odds.astype(np.float32), "z_pdf": locs.astype(np.float32)}
