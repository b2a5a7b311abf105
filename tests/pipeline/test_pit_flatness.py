"""The PIT flatness test (chi-square over 10 bins, ``pipeline.quality.pdf_metrics``) on known answers.

Every galaxy's true redshift is drawn from its own Gaussian PDF; quantile PDFs made from that
very Gaussian are calibrated, so the test must pass them; PDFs 20 % too narrow or shifted by a
quarter of their width are the two miscalibrations issue 19 is about (the truth too often in the
tails, or too often on one side), so it must fail them.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import norm

from pipeline.pdf import LEVELS
from pipeline.quality import pdf_metrics

N = 10_000
ALPHA = 0.01


def _gaussian_quantiles(mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """The pipeline's 17-quantile form of N(mu, sigma), the ends at 1e-6 and 1 - 1e-6 as for RAIL's PDFs."""
    levels = np.clip(LEVELS, 1e-6, 1 - 1e-6)
    return mu[:, None] + sigma[:, None] * norm.ppf(levels)[None, :]


def _galaxies(seed: int, n: int = N) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mu = rng.uniform(0.2, 2.5, n)
    sigma = 0.03 * (1 + mu) * rng.uniform(0.5, 2.0, n)
    return mu, sigma, rng.normal(mu, sigma)


def test_calibrated_pdfs_pass_narrow_and_shifted_fail() -> None:
    mu, sigma, z = _galaxies(19)
    calibrated = pdf_metrics(_gaussian_quantiles(mu, sigma), z)
    narrow = pdf_metrics(_gaussian_quantiles(mu, 0.8 * sigma), z)
    shifted = pdf_metrics(_gaussian_quantiles(mu - 0.25 * sigma, sigma), z)
    assert calibrated["pit_chi2_p"] > ALPHA
    assert narrow["pit_chi2_p"] < ALPHA and shifted["pit_chi2_p"] < ALPHA
    counts = np.asarray(narrow["pit_histogram"])
    assert counts[0] > N / 10 and counts[-1] > N / 10 and counts[4] < N / 10  # too narrow: a U
    counts = np.asarray(shifted["pit_histogram"])
    assert counts[-1] > counts[0]  # PDFs below the truth: the PIT piles up high


def test_calibrated_pdfs_pass_at_the_stated_rate() -> None:
    """Over 200 independent draws of 2,000 galaxies the calibrated sets fail about 1 % of the
    time (the test's level; more than 7 has a chance of 1e-3), and the narrow ones nearly always."""
    draws = [_galaxies(seed, 2_000) for seed in range(100, 300)]
    failures = sum(pdf_metrics(_gaussian_quantiles(mu, sigma), z)["pit_chi2_p"] <= ALPHA for mu, sigma, z in draws)
    narrow = sum(pdf_metrics(_gaussian_quantiles(mu, 0.8 * sigma), z)["pit_chi2_p"] <= ALPHA
                 for mu, sigma, z in draws[:20])
    assert failures <= 7 and narrow >= 18
