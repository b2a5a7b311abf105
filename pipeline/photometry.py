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


# --- LSST Object-catalog photometry (fluxes in nJy) --------------------------------------------

#: AB magnitude of a 1 nJy source: m = 31.4 - 2.5 log10(f / nJy).
AB_NJY_ZEROPOINT = 31.4
#: 1-sigma coadded flux limit (nJy) per band after 10 years, from the 5-sigma depths above.
#: Used as the asinh softening when a training set carries no errors of its own.
FLUX_SIGMA_10YR = {b: 10.0 ** (-0.4 * (m5 - AB_NJY_ZEROPOINT)) / 5.0 for b, m5 in M5_10YR.items()}
_POGSON = 2.5 / np.log(10.0)


def flux_column(band: str) -> str:
    """The LSST Object column of a band's cModel flux (nJy)."""
    return f"{band}_cModelFlux"


def flux_err_column(band: str) -> str:
    return f"{band}_cModelFluxErr"


def mag_to_njy(mag: np.ndarray) -> np.ndarray:
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=np.float64) - AB_NJY_ZEROPOINT))


def njy_to_mag(flux: np.ndarray) -> np.ndarray:
    """Pogson AB magnitude; NaN for non-positive flux."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(flux > 0, AB_NJY_ZEROPOINT - _POGSON * np.log(np.where(flux > 0, flux, 1.0)), np.nan)


def asinh_magnitude(flux: np.ndarray, softening: float) -> np.ndarray:
    """Lupton et al. (1999) asinh magnitude of a flux in nJy.

    Why asinh: the Object catalog has zero and negative fluxes for faint galaxies in u and y;
    Pogson magnitudes turn them into NaN (a hole in feature space), asinh magnitudes stay finite
    and tend to Pogson for bright sources.  ``softening`` is the 1-sigma noise of the band.
    """
    b = float(softening)
    f = np.nan_to_num(np.asarray(flux, dtype=np.float64), nan=0.0)
    return AB_NJY_ZEROPOINT - _POGSON * (np.arcsinh(f / (2.0 * b)) + np.log(b))
