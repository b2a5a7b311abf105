"""The stored PDF form (quantiles at LEVELS) reads back into qp with the same CDF."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.pdf import LEVELS, cdf_at, density_at, from_qp, integral_of_square, pdf_on_grid, to_qp


@pytest.fixture
def locs() -> np.ndarray:
    rng = np.random.default_rng(3)
    centre = rng.uniform(1.0, 2.5, 50)  # support inside 0 < z < 4
    width = rng.uniform(0.02, 0.2, 50)
    from scipy.special import ndtri

    q = np.concatenate([[-4], ndtri(LEVELS[1:-1]), [4]])
    return centre[:, None] + width[:, None] * q[None, :]


def test_qp_round_trip(locs: np.ndarray) -> None:
    ens = to_qp(locs)
    assert ens.npdf == len(locs)
    np.testing.assert_allclose(from_qp(ens)[:, 1:-1], locs[:, 1:-1], atol=1e-6)
    assert np.allclose(ens.cdf(locs[:, 8:9]).ravel(), 0.5, atol=1e-6)  # median level


def test_cdf_matches_qp(locs: np.ndarray) -> None:
    """Same CDF at every stored quantile; between them qp's quadratic interpolation stays close."""
    ens = to_qp(locs)
    for j in range(1, LEVELS.size - 1):
        np.testing.assert_allclose(ens.cdf(locs[:, j:j + 1]).ravel(), LEVELS[j], atol=1e-6)
    x = np.random.default_rng(4).uniform(locs[:, 1], locs[:, -2])
    np.testing.assert_allclose(cdf_at(locs, x), ens.cdf(x[:, None]).ravel(), atol=0.04)


def test_cdf_outside_support_is_0_or_1(locs: np.ndarray) -> None:
    assert np.all(cdf_at(locs, locs[:, 0] - 1) == 0)
    assert np.all(cdf_at(locs, locs[:, -1] + 1) == 1)


def test_density_integrates_to_one(locs: np.ndarray) -> None:
    grid = np.linspace(0, 4, 40001)
    dens = np.array([density_at(locs, np.full(len(locs), g)) for g in grid]).T
    np.testing.assert_allclose(np.trapezoid(dens, grid, axis=1), 1.0, atol=2e-3)
    np.testing.assert_allclose(np.trapezoid(dens**2, grid, axis=1), integral_of_square(locs), rtol=2e-2)


def test_histogram_on_grid_reads_into_qp_hist(locs: np.ndarray) -> None:
    import qp

    grid = np.linspace(0, 4, 201)
    hist = pdf_on_grid(locs, grid)
    np.testing.assert_allclose(hist.sum(axis=1), 1.0, atol=1e-9)
    ens = qp.Ensemble(qp.hist, data={"bins": grid, "pdfs": hist / np.diff(grid)})
    np.testing.assert_allclose(ens.cdf(locs[:, 8:9]).ravel(), 0.5, atol=0.02)


def test_pit_flatness_statistics_know_calibrated_from_too_narrow() -> None:
    """Truths drawn from the stored Gaussians: the PIT is flat (chi-square p not small); PDFs
    half as wide as the truth's scatter: a U-shaped PIT, rejected by both statistics."""
    from scipy.special import ndtri

    from pipeline.quality import pdf_metrics

    rng = np.random.default_rng(5)
    n = 20_000
    centre, width = rng.uniform(0.5, 2.0, n), 0.05
    q = np.concatenate([[-6], ndtri(LEVELS[1:-1]), [6]])
    locs = centre[:, None] + width * q[None, :]
    calibrated = pdf_metrics(locs, centre + width * rng.standard_normal(n))
    narrow = pdf_metrics(locs, centre + 2 * width * rng.standard_normal(n))
    assert calibrated["pit_chi2_p"] > 1e-3 and calibrated["pit_max_deviation"] < 0.1
    assert narrow["pit_chi2_p"] < 1e-12 and narrow["pit_max_deviation"] > 0.5
    assert sum(calibrated["pit_histogram"]) == n
