"""Estimators: known answers on the toy estimator and on constructed data, the interface."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.special import ndtri

from pipeline.estimators import ESTIMATORS, Estimator, Photometry, make_estimator
from pipeline.pdf import LEVELS, MEDIAN_INDEX
from pipeline.photometry import BANDS, mag_to_njy


def photometry(mags: np.ndarray) -> Photometry:
    return Photometry(mag_to_njy(np.asarray(mags, float)))


def test_registry_has_three_estimators() -> None:
    assert {"knn", "cells", "toy"} <= set(ESTIMATORS)
    for cls in ESTIMATORS.values():
        assert issubclass(cls, Estimator) and cls.version
        assert [c.name for c in cls.columns] == ["z_phot", "z_mode", "z_err", "odds", "z_pdf"]


def test_unknown_estimator_and_parameter() -> None:
    with pytest.raises(ValueError, match="unknown estimator"):
        make_estimator("nope")
    with pytest.raises(TypeError):
        make_estimator("knn", {"kk": 3})


def test_toy_known_answer() -> None:
    est = make_estimator("toy", {"intercept": 0.5, "slope": 0.2, "sigma": 0.05})
    mags = np.full((3, 6), 22.0)
    mags[:, BANDS.index("i")] = [22.0, 24.0, 19.0]
    out = est.fit(photometry(mags), np.zeros(3)).estimate(photometry(mags))
    np.testing.assert_allclose(out["z_phot"], [0.5, 0.9, 0.0], atol=1e-6)
    expected = 0.9 + 0.05 * 1.9 * ndtri(LEVELS[1:-1])
    np.testing.assert_allclose(out["z_pdf"][1, 1:-1], expected, atol=1e-5)
    np.testing.assert_allclose(out["z_err"][1], 0.05 * 1.9 * ndtri(0.84), rtol=1e-4)


def _two_populations(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Blue galaxies at z = 0.3 and red ones at z = 1.2, well apart in colour."""
    blue = 22 + rng.normal(0, 0.02, (n, 6)) + np.linspace(0.0, -0.5, 6)
    red = 22 + rng.normal(0, 0.02, (n, 6)) + np.linspace(2.5, 0.0, 6)
    return np.vstack([blue, red]), np.repeat([0.3, 1.2], n)


@pytest.mark.parametrize("name,params", [("knn", {"k": 10}), ("cells", {"cells": 20})])
def test_constructed_populations_known_answer(name: str, params: dict) -> None:
    rng = np.random.default_rng(1)
    mags, z = _two_populations(200, rng)
    est = make_estimator(name, params).fit(photometry(mags), z)
    test_mags, test_z = _two_populations(20, rng)
    out = est.estimate(photometry(test_mags))
    np.testing.assert_allclose(out["z_phot"], test_z, atol=0.03)
    assert np.all(out["odds"] > 0.9)
    assert out["z_pdf"].shape == (40, LEVELS.size)
    assert np.all(np.diff(out["z_pdf"], axis=1) >= 0)


def test_knn_median_of_neighbours_and_pickles() -> None:
    """With calibration off, z_phot is the median of the k neighbours' redshifts."""
    rng = np.random.default_rng(2)
    mags = 22 + rng.normal(0, 0.3, (500, 6))
    z = rng.uniform(0, 2, 500)
    est = make_estimator("knn", {"k": 9, "eps": 0.0, "calibrate": False}).fit(photometry(mags), z)
    clone = pickle.loads(pickle.dumps(est))
    test = photometry(mags[:25] + 0.01)
    nn = clone.neighbours(test)
    out = clone.estimate(test)
    np.testing.assert_allclose(out["z_phot"], np.median(z[nn], axis=1), atol=1e-6)
    assert out["z_pdf"][:, MEDIAN_INDEX].tolist() == out["z_phot"].tolist()


def test_knn_uses_errors_when_given() -> None:
    rng = np.random.default_rng(5)
    flux = mag_to_njy(22 + rng.normal(0, 0.3, (300, 6)))
    z = rng.uniform(0, 2, 300)
    with_err = make_estimator("knn", {"k": 5}).fit(Photometry(flux, flux * 0.5), z)
    without = make_estimator("knn", {"k": 5}).fit(Photometry(flux), z)
    assert not np.allclose(with_err.softening, without.softening)
