"""The ``rail`` estimator: RAIL's own stages behind the pipeline's interface: KNearNeigh,
TrainZ and SklNeurNet (three different qp parameterizations) and BPZ template fitting.

RAIL is installed by ``make test`` (the ``[rail]`` and ``[bpz]`` extras), so these tests run the real
informer and estimator, never a stand-in.
"""
from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from scipy.special import ndtr, ndtri

from pipeline.estimators import Photometry, make_estimator
from pipeline.estimators.rail import NONDETECT, rail_class, rail_magnitudes
from pipeline.pdf import LEVELS, to_qp
from pipeline.photometry import BANDS, mag_to_njy

VENV_BIN = Path(sys.executable).parent
#: One neighbour count and one Gaussian width: RAIL's KNN PDF is then known in closed form.
FIXED = {"nneigh_min": 3, "nneigh_max": 3, "sigma_grid_min": 0.05, "sigma_grid_max": 0.05, "ngrid_sigma": 1}


def _two_populations(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Blue galaxies all at z = 0.3 and red ones all at z = 1.2, far apart in colour."""
    blue = 22 + rng.normal(0, 0.02, (n, 6)) + np.linspace(0.0, -0.5, 6)
    red = 22 + rng.normal(0, 0.02, (n, 6)) + np.linspace(2.5, 0.0, 6)
    return np.vstack([blue, red]), np.repeat([0.3, 1.2], n)


def test_known_answer_gaussian_pdfs() -> None:
    """Every neighbour of a blue galaxy is at z = 0.3, so RAIL's PDF is N(0.3, 0.05): the stored
    quantiles, z_err and odds must be that Gaussian's."""
    rng = np.random.default_rng(3)
    mags, z = _two_populations(300, rng)
    est = make_estimator("rail", {"config": FIXED}).fit(Photometry(mag_to_njy(mags)), z)
    test_mags, test_z = _two_populations(10, rng)
    out = est.estimate(Photometry(mag_to_njy(test_mags)))
    np.testing.assert_allclose(out["z_phot"], test_z, atol=1e-4)
    np.testing.assert_allclose(out["z_mode"], test_z, atol=0.006)  # RAIL's mode on its 0.01 grid
    inner = LEVELS[1:-1]
    gaussian = test_z[:, None] + 0.05 * ndtri(inner)[None, :]
    np.testing.assert_allclose(out["z_pdf"][:, 1:-1], gaussian, atol=5e-4)  # qp inverts numerically
    np.testing.assert_allclose(out["z_err"], 0.05 * ndtri(0.84), atol=5e-4)
    # BPZ odds, P(|z - mode| < 0.06 (1 + mode)): exact at z = 0.3 (+-1.56 sigma, inside the
    # stored 2.5-97.5 % quantiles); at z = 1.2 (+-2.64 sigma) the window ends in the linear tails.
    np.testing.assert_allclose(out["odds"][:10], 2 * ndtr(0.078 / 0.05) - 1, atol=0.01)
    assert np.all((out["odds"][10:] > 0.95) & (out["odds"][10:] < 2 * ndtr(0.132 / 0.05) - 1))
    assert np.all(np.diff(out["z_pdf"], axis=1) >= 0) and out["z_pdf"].min() >= 0.0
    ens = to_qp(out["z_pdf"])
    np.testing.assert_allclose(ens.median().ravel(), test_z, atol=1e-3)


def test_pickled_model_gives_the_same_pdfs_and_provenance() -> None:
    rng = np.random.default_rng(4)
    mags, z = _two_populations(200, rng)
    est = make_estimator("rail", {"config": FIXED}).fit(Photometry(mag_to_njy(mags)), z)
    test = Photometry(mag_to_njy(_two_populations(5, rng)[0]))
    copy = pickle.loads(pickle.dumps(est))
    for key, value in est.estimate(test).items():
        np.testing.assert_array_equal(copy.estimate(test)[key], value)
    described = est.describe()
    assert described["name"] == "rail" and described["params"]["config"] == FIXED
    assert {"pz-rail-base", "pz-rail-sklearn", "qp-prob"} <= set(described["software"])
    empty = est.estimate(Photometry(np.empty((0, 6))))
    assert empty["z_pdf"].shape == (0, LEVELS.size)


def test_non_detections_become_rails_marker() -> None:
    limits = {f"mag_{b}_lsst": 27.0 for b in BANDS}
    flux = np.full((4, 6), 1000.0)  # 23.9 mag
    flux[0, 0], flux[1, 1], flux[2, 2] = np.nan, -5.0, mag_to_njy(np.array([27.5]))[0]  # 27.5 > limit
    table = rail_magnitudes(Photometry(flux, np.full((4, 6), 10.0)), limits)
    assert table["mag_u_lsst"][0] == NONDETECT and table["mag_err_u_lsst"][0] == NONDETECT
    assert table["mag_g_lsst"][1] == NONDETECT and table["mag_r_lsst"][2] == NONDETECT
    np.testing.assert_allclose(table["mag_i_lsst"], 31.4 - 2.5 * np.log10(1000.0))
    np.testing.assert_allclose(table["mag_err_i_lsst"], 2.5 / np.log(10) * 0.01)


def test_train_z_every_pdf_is_the_training_n_of_z() -> None:
    """RAIL's TrainZ gives every object the training set's N(z) as a ``qp.interp`` histogram:
    the stored quantiles must be the training redshifts' quantiles (to RAIL's 0.01 bins)."""
    rng = np.random.default_rng(7)
    mags, _ = _two_populations(300, rng)
    z = rng.uniform(0.2, 1.4, mags.shape[0])
    est = make_estimator("rail", {"informer": "TrainZInformer", "estimator": "TrainZEstimator",
                                  "config": {"zmin": 0.0, "zmax": 3.0, "nzbins": 301}})
    out = est.fit(Photometry(mag_to_njy(mags)), z).estimate(Photometry(mag_to_njy(_two_populations(4, rng)[0])))
    assert np.all(out["z_pdf"] == out["z_pdf"][0])
    np.testing.assert_allclose(out["z_pdf"][0, 1:-1], np.quantile(z, LEVELS[1:-1]), atol=0.015)
    np.testing.assert_allclose(out["z_phot"], np.median(z), atol=0.015)
    assert est.describe()["params"]["informer"] == "TrainZInformer"


def test_sklearn_neural_net_gaussian_pdfs_around_its_point_estimate() -> None:
    """RAIL's SklNeurNet: a ``qp.stats.norm`` ensemble N(zmode, width (1 + zmode)); the
    quantiles must be that Gaussian's around RAIL's own zmode, which must find both populations."""
    rng = np.random.default_rng(8)
    mags, z = _two_populations(300, rng)
    est = make_estimator("rail", {"informer": "SklNeurNetInformer", "estimator": "SklNeurNetEstimator",
                                  "config": {"width": 0.04}}).fit(Photometry(mag_to_njy(mags)), z)
    test_mags, test_z = _two_populations(5, rng)
    out = est.estimate(Photometry(mag_to_njy(test_mags)))
    np.testing.assert_allclose(out["z_mode"], test_z, atol=0.05)
    np.testing.assert_allclose(out["z_phot"], out["z_mode"], atol=1e-4)
    mode = out["z_mode"][:, None]
    np.testing.assert_allclose(out["z_pdf"][:, 1:-1], mode + 0.04 * (1 + mode) * ndtri(LEVELS[1:-1]), atol=5e-4)


def test_bpz_template_fitting_finds_its_own_templates_redshifts(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """Template fitting (RAIL's BPZ, the ``[bpz]`` extra): noise-free fluxes of BPZ's own CWW/SB
    templates at known redshifts, with 1 % errors and no prior, are fitted at those redshifts.
    BPZ writes its template-flux tables once, during ``fit``, into the configured data
    directory, and its prints go to the log, not to stdout (which carries the CLI's JSON)."""
    from rail.utils.path_utils import RAILDIR

    data = Path(RAILDIR) / "rail" / "examples_data" / "estimation_data" / "data"
    for sub in ("SED", "FILTER"):
        shutil.copytree(data / sub, tmp_path / sub)
    (tmp_path / "AB").mkdir()
    rng = np.random.default_rng(9)
    mags = 22 + rng.normal(0, 0.3, (100, 6))
    est = make_estimator("rail", {"informer": "BPZliteInformer", "estimator": "BPZliteEstimator",
                                  "config": {"bpz_ref_data_path": str(tmp_path), "no_prior": True}})
    est.fit(Photometry(mag_to_njy(mags), 0.01 * mag_to_njy(mags)), rng.uniform(0.1, 1.5, 100))
    assert len(list((tmp_path / "AB").glob("*.AB"))) == 8 * len(BANDS)  # 8 templates in CWWSB4.list
    assert capfd.readouterr().out == ""

    templates, z_true = ["El_B2004a", "Sbc_B2004a", "Im_B2004a", "SB2_B2004a"], np.array([0.3, 0.7, 1.1, 1.6, 2.2])
    flux = np.array([[np.interp(z0, *np.loadtxt(tmp_path / "AB" / f"{t}.DC2LSST_{b}.nomadau.AB", unpack=True))
                      for b in BANDS] for t in templates for z0 in z_true])
    flux *= mag_to_njy(np.array([22.0]))[0] / flux[:, [BANDS.index("i")]]
    out = est.estimate(Photometry(flux, 0.01 * flux))
    mode, z = out["z_mode"].reshape(len(templates), -1), np.tile(z_true, (len(templates), 1))
    # Exact on the 0.01 grid, except the irregular (Im) template, whose colours BPZ's interpolated
    # templates mimic at nearby redshifts (still well inside BPZ's odds window, 0.06 (1 + z)).
    np.testing.assert_allclose(np.delete(mode, 2, axis=0), np.delete(z, 2, axis=0), atol=0.011)
    assert np.all(np.abs(mode - z) <= 0.06 * (1 + z))
    assert capfd.readouterr().out == ""
    assert {"pz-rail-bpz", "pz-rail-base"} <= set(est.describe()["software"])


def test_one_object_partition() -> None:
    """qp answers a one-object ensemble in 1-D; the adapter must still give one row (equal to
    that object's row in a larger partition, to qp's numerical inversion of the CDF)."""
    rng = np.random.default_rng(10)
    mags, z = _two_populations(100, rng)
    est = make_estimator("rail", {"config": FIXED}).fit(Photometry(mag_to_njy(mags)), z)
    test = Photometry(mag_to_njy(_two_populations(3, rng)[0]))
    full, one = est.estimate(test), est.estimate(test.take(slice(2, 3)))
    assert one["z_pdf"].shape == (1, LEVELS.size)
    for key, value in one.items():
        np.testing.assert_allclose(value, full[key][2:3], atol=5e-4)


def test_bad_configuration_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no RAIL stage 'NoSuchInformer'"):
        rail_class("NoSuchInformer")
    with pytest.raises(TypeError, match="go in 'config'"):
        make_estimator("rail", {"nneigh_max": 3})
    with pytest.raises(ValueError, match="adapter.s to set"):
        make_estimator("rail", {"config": {"hdf5_groupname": "photometry"}})
    with pytest.raises(RuntimeError, match="before fit"):
        make_estimator("rail").estimate(Photometry(np.ones((1, 6))))


def test_pipeline_run_with_rail_end_to_end(demo_inputs: dict[str, Path], tmp_path: Path) -> None:
    """``pzvo pipeline run`` with RAIL's KNN on two Dask worker processes: every object gets a
    PDF, the quality report is RAIL's KNN's, the job record names the RAIL packages."""
    out = tmp_path / "out"
    cfg = tmp_path / "rail.yaml"
    cfg.write_text(yaml.safe_dump({
        "release": "rail-test", "objects": str(demo_inputs["objects"]), "training": str(demo_inputs["training"]),
        "validation": str(demo_inputs["validation"]), "output": str(out),
        "estimator": {"name": "rail", "params": {"config": {"nneigh_min": 5, "nneigh_max": 5, "ngrid_sigma": 3}}},
        "dask": {"workers": 2, "processes": True}, "publish": {"enabled": False}}))
    proc = subprocess.run([str(VENV_BIN / "pzvo"), "pipeline", "run", str(cfg), "--no-progress"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["rows"] == 80_000 and result["estimator"]["name"] == "rail"
    assert "pz-rail-sklearn" in result["estimator"]["software"]
    table = pq.read_table(out / "data").to_pandas()
    assert len(table) == 80_000 and table["z_phot"].notna().all()
    assert np.all(np.diff(np.stack(table["z_pdf"].to_numpy()), axis=1) >= 0)
    quality = json.loads((out / "quality" / "quality.json").read_text())
    assert 0.015 < quality["sigma_mad"] < 0.04 and quality["outlier_fraction"] < 0.1


def test_configured_limits_override_the_training_depths_band_by_band() -> None:
    """A u-band limit of 20 makes every u magnitude (22-24.5) a non-detection; the other bands
    keep the training set's own 1-sigma depths."""
    rng = np.random.default_rng(5)
    mags, z = _two_populations(200, rng)
    phot = Photometry(mag_to_njy(mags))
    est = make_estimator("rail", {"config": {**FIXED, "mag_limits": {"mag_u_lsst": 20.0}}}).fit(phot, z)
    limits = est.stage_config["mag_limits"]
    assert limits["mag_u_lsst"] == 20.0 and set(limits) == {f"mag_{b}_lsst" for b in BANDS}
    assert limits["mag_i_lsst"] == pytest.approx(31.4 - 2.5 * np.log10(phot.softening()[BANDS.index("i")]))
    table = rail_magnitudes(phot, limits)
    assert np.all(table["mag_u_lsst"] == NONDETECT) and np.all(table["mag_i_lsst"] < 24)


@pytest.mark.parametrize("nondetect_val", [99.0, float("nan")])
def test_rail_sees_non_detections_at_the_limit(nondetect_val: float) -> None:
    """What RAIL's KNearNeigh trains on: a u non-detection (missing flux) is placed at the u
    limit by RAIL itself, with either of its conventions for the marker (99 or NaN), so the
    model's u-g colour of those galaxies is limit - g, never 99 - g."""
    rng = np.random.default_rng(6)
    mags, z = _two_populations(200, rng)
    flux = mag_to_njy(mags)
    flux[::4, 0] = np.nan
    config = {**FIXED, "nondetect_val": nondetect_val, "mag_limits": {"mag_u_lsst": 26.5}}
    est = make_estimator("rail", {"config": config}).fit(Photometry(flux), z)
    colours = np.asarray(est.model["kdtree"].data)  # RAIL's own training features, in input order
    u_g = np.where(np.isnan(flux[:, 0]), 26.5, mags[:, 0]) - mags[:, 1]
    np.testing.assert_allclose(colours[:, 0], u_g, atol=1e-6)
