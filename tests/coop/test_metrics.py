"""The validation pipeline's metrics on submissions whose answers are known."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import norm

from pipeline.coop.formats import Submission
from pipeline.coop.metrics import DEFAULT_Z_BINS, METRICS_VERSION, validate
from pipeline.pdf import LEVELS
from pipeline.quality import crps

N = 4000
RNG = np.random.default_rng(7)
Z_TRUE = RNG.uniform(0.1, 2.9, N)
MAG = RNG.uniform(20.0, 25.5, N)
IDS = np.arange(N, dtype=np.int64)
SCATTER = 0.05
INNER_PPF = norm.ppf(np.clip(LEVELS, 1e-6, 1 - 1e-6))


def gaussian_submission(centre: np.ndarray, width: np.ndarray | None, z_phot: np.ndarray | None = None) -> Submission:
    locs = None if width is None else (centre[:, None] + width[:, None] * INNER_PPF[None, :]).astype(np.float32)
    return Submission(ids=IDS, z_phot=centre if z_phot is None else z_phot, locs=locs, form="quantiles", rows=N)


def test_a_perfect_estimator():
    result = validate(gaussian_submission(Z_TRUE, np.full(N, 1e-4)), Z_TRUE, MAG)
    assert result["metrics_version"] == METRICS_VERSION
    assert result["n"] == N and result["sigma_mad"] == 0.0 and result["bias"] == 0.0
    assert result["outlier_fraction"] == 0.0
    assert result["crps"] < 1e-4
    for binning in ("z_true", "mag_i"):
        for b in result["bins"][binning]["bins"]:
            assert b["n"] == 0 or (b["sigma_mad"] == 0.0 and b["bias"] == 0.0 and b["outlier_fraction"] == 0.0)
    json.dumps(result, allow_nan=False)


def test_a_biased_estimator():
    z_phot = Z_TRUE + 0.05 * (1 + Z_TRUE)
    result = validate(gaussian_submission(z_phot, None), Z_TRUE, MAG)
    assert result["bias"] == pytest.approx(0.05, abs=1e-12)
    assert result["sigma_mad"] == pytest.approx(0.0, abs=1e-12) and result["outlier_fraction"] == 0.0
    assert "pit_chi2_p" not in result and "crps" not in result and result["pdf"] is False
    bins = result["bins"]["z_true"]
    assert bins["edges"] == list(DEFAULT_Z_BINS) and bins["outside"] == 0
    assert sum(b["n"] for b in bins["bins"]) == N
    assert all(b["bias"] == pytest.approx(0.05, abs=1e-12) for b in bins["bins"] if b["n"])
    # An estimator that is off by 0.2 (1 + z) for a tenth of the objects: outliers 10 %.
    far = z_phot.copy()
    far[: N // 10] = Z_TRUE[: N // 10] + 0.2 * (1 + Z_TRUE[: N // 10])
    assert validate(gaussian_submission(far, None), Z_TRUE)["outlier_fraction"] == pytest.approx(0.1)


def test_pit_flatness_fails_for_too_narrow_pdfs_and_passes_for_calibrated_ones():
    scatter = SCATTER * (1 + Z_TRUE)
    z_phot = Z_TRUE + scatter * RNG.standard_normal(N)
    calibrated = validate(gaussian_submission(z_phot, scatter), Z_TRUE, MAG)
    narrow = validate(gaussian_submission(z_phot, scatter / 5), Z_TRUE, MAG)
    assert calibrated["pit_chi2_p"] > 0.01, calibrated["pit_histogram"]
    assert narrow["pit_chi2_p"] < 0.01
    assert calibrated["sigma_mad"] == pytest.approx(SCATTER, rel=0.1) == narrow["sigma_mad"]
    # too-narrow PDFs: the truths pile up in the PIT's end bins, and CDE loss and CRPS are worse
    assert narrow["pit_histogram"][0] > 3 * calibrated["pit_histogram"][0]
    assert narrow["pit_outlier_rate"] > calibrated["pit_outlier_rate"]
    assert narrow["cde_loss"] > calibrated["cde_loss"] and narrow["crps"] > calibrated["crps"]
    # every bin of magnitude gets the same metrics
    mag_bins = [b for b in calibrated["bins"]["mag_i"]["bins"] if b["n"]]
    assert {"sigma_mad", "pit_chi2_p", "cde_loss", "crps", "pit_histogram"} <= set(mag_bins[0])
    assert sum(b["n"] for b in mag_bins) + calibrated["bins"]["mag_i"]["outside"] == N


def test_crps_matches_the_gaussian_closed_form():
    mu, sigma = np.full(200, 1.0), 0.1
    z = mu + np.linspace(-0.4, 0.4, 200)
    locs = mu[:, None] + sigma * norm.ppf(np.clip(LEVELS, 1e-4, 1 - 1e-4))[None, :]
    w = (z - mu) / sigma
    exact = sigma * (w * (2 * norm.cdf(w) - 1) + 2 * norm.pdf(w) - 1 / np.sqrt(np.pi))
    assert np.allclose(crps(locs, z), exact, rtol=0.02, atol=1e-4)
    # far from the PDF the CRPS is the distance to its mean less sigma / sqrt(pi)
    assert crps(locs[:1], np.array([3.0]))[0] == pytest.approx(2.0 - sigma / np.sqrt(np.pi), abs=0.005)


def test_metric_set_and_bins_are_chosen_by_the_caller():
    sub = gaussian_submission(Z_TRUE, np.full(N, 0.05))
    result = validate(sub, Z_TRUE, metric_set=("bias", "crps"), z_bins=(0.0, 1.0, 2.0))
    assert result["metric_set"] == ["bias", "crps"]
    assert {"bias", "crps", "n"} <= set(result) and "sigma_mad" not in result and "pit_histogram" not in result
    assert "mag_i" not in result["bins"]
    assert [b["n"] for b in result["bins"]["z_true"]["bins"]] == [
        int(np.sum(Z_TRUE < 1.0)), int(np.sum((Z_TRUE >= 1.0) & (Z_TRUE <= 2.0)))]
    assert result["bins"]["z_true"]["outside"] == int(np.sum(Z_TRUE > 2.0))
    with pytest.raises(ValueError, match="unknown metrics"):
        validate(sub, Z_TRUE, metric_set=("brier",))
    with pytest.raises(ValueError, match="true redshifts"):
        validate(sub, Z_TRUE[:-1])
