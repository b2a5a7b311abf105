"""LSST photometric errors from the Ivezic et al. (2019, ApJ 873, 111) model, section 3.2.

Used to give the simulated Buzzard magnitudes (which have no errors) realistic 10-year errors.
"""
from __future__ import annotations

import numpy as np

BANDS = ("u", "g", "r", "i", "z", "y")
#: 10-year coadded 5-sigma point-source depths (Ivezic et al. 2019, table 2 scaled to 10 years).
M5_10YR = {"u": 25.6, "g": 26.9, "r": 26.9, "i": 26.4, "z": 25.6, "y": 24.8}
GAMMA = {"u": 0.038, "g": 0.039, "r": 0.039, "i": 0.039, "z": 0.039, "y": 0.039}
SIGMA_SYS = 0.005


def magnitude_error(mag: np.ndarray, band: str) -> np.ndarray:
    """Expected 1-sigma error of an AB magnitude in ``band`` after 10 years."""
    x = 10.0 ** (0.4 * (mag - M5_10YR[band]))
    gamma = GAMMA[band]
    sigma_rand2 = (0.04 - gamma) * x + gamma * x * x
    return np.sqrt(SIGMA_SYS**2 + sigma_rand2)


def observe(mags: dict[str, np.ndarray], rng: np.random.Generator) -> tuple[dict, dict]:
    """Add Gaussian flux noise to true magnitudes; return observed magnitudes and their errors.

    The noise is drawn in flux, so faint sources scatter as they do in real photometry; a
    non-positive flux is reported as NaN (no detection) with NaN error.
    """
    observed, errors = {}, {}
    for band in BANDS:
        true = np.asarray(mags[band], dtype=np.float64)
        err = magnitude_error(true, band)
        flux = 10.0 ** (-0.4 * true)
        noisy = flux * (1.0 + rng.normal(0.0, 1.0, true.size) * err / 1.0857)
        with np.errstate(invalid="ignore", divide="ignore"):
            obs = np.where(noisy > 0, -2.5 * np.log10(noisy), np.nan)
        observed[band] = obs
        errors[band] = np.where(np.isfinite(obs), magnitude_error(np.nan_to_num(obs, nan=99.0), band), np.nan)
    return observed, errors
