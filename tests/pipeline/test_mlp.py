"""The neural-network estimator (``mlp``): known answers on constructed data and PDFs."""
from __future__ import annotations

import pickle

import numpy as np

from pipeline.estimators import Photometry, make_estimator
from pipeline.pdf import LEVELS, MEDIAN_INDEX
from pipeline.photometry import mag_to_njy


def photometry(mags: np.ndarray) -> Photometry:
    return Photometry(mag_to_njy(np.asarray(mags, float)))


def _populations(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Blue galaxies at z ~ 0.3 and red ones at z ~ 1.2, well apart in colour."""
    blue = 22 + rng.normal(0, 0.02, (n, 6)) + np.linspace(0.0, -0.5, 6)
    red = 22 + rng.normal(0, 0.02, (n, 6)) + np.linspace(2.5, 0.0, 6)
    z = np.concatenate([rng.normal(0.3, 0.03, n), rng.normal(1.2, 0.03, n)])
    return np.vstack([blue, red]), z


def _fitted(rng: np.random.Generator):
    mags, z = _populations(300, rng)
    return make_estimator("mlp", {"hidden": (32,), "max_iter": 200, "early_stopping": False}).fit(photometry(mags), z)


def test_constructed_populations_known_answer_and_pickle() -> None:
    rng = np.random.default_rng(1)
    est = _fitted(rng)
    test_mags, _ = _populations(20, rng)
    centre = np.repeat([0.3, 1.2], 20)  # the colours carry the population, not the scatter within
    out = pickle.loads(pickle.dumps(est)).estimate(photometry(test_mags))
    assert set(out) == {c.name for c in est.columns}
    np.testing.assert_allclose(out["z_phot"], centre, atol=0.05)
    np.testing.assert_allclose(out["z_mode"], centre, atol=0.05)
    assert np.all(out["odds"] > 0.8) and np.all(out["z_err"] < 0.1)
    assert out["z_pdf"].shape == (40, LEVELS.size) and out["z_pdf"].dtype == np.float32
    assert np.all(np.diff(out["z_pdf"], axis=1) >= 0)


def test_point_estimate_median_unless_another_window_is_more_probable() -> None:
    est = _fitted(np.random.default_rng(3))
    est.edges = np.arange(101) * 0.025  # bins up to z = 2.5 (the training set stops at 1.25)
    est._prepare_candidates()
    centres = 0.5 * (est.edges[1:] + est.edges[:-1])
    p = np.zeros((2, centres.size), dtype=np.float32)
    p[0, np.argmin(np.abs(centres - 0.8))] = 1.0  # unimodal: z_phot is the median
    # 0.4 at 0.3, 0.3 at 1.0 and 0.3 at 2.0: the median (in the 1.0 bin) is an outlier for the
    # 0.6 of the probability away from 1.0, the window around 0.3 holds more (0.4).
    for z, w in ((0.3, 0.4), (1.0, 0.3), (2.0, 0.3)):
        p[1, np.argmin(np.abs(centres - z))] = w
    out = est.summarize(p)
    assert out["z_phot"][0] == out["z_pdf"][0, MEDIAN_INDEX]
    assert abs(out["z_pdf"][1, MEDIAN_INDEX] - 1.0) < 0.03
    assert abs(out["z_phot"][1] - 0.3) <= 0.15 * 1.3 + 1e-6
    assert abs(out["z_mode"][1] - 0.3) < 0.03


def test_core_weight_trades_outlier_hedging_for_the_peak() -> None:
    """0.7 of the probability at z = 0.6, 0.3 at 0.95: the median's outlier window holds 0.7, and
    any redshift in 0.68-0.84 holds both peaks (1.0) but neither in its core window.  A small
    core weight moves z_phot there (fewer outliers); a large one keeps the median (the peak)."""
    est = _fitted(np.random.default_rng(3))
    est.edges = np.arange(101) * 0.025
    centres = 0.5 * (est.edges[1:] + est.edges[:-1])
    p = np.zeros((1, centres.size), dtype=np.float32)
    p[0, np.argmin(np.abs(centres - 0.6125))] = 0.7
    p[0, np.argmin(np.abs(centres - 0.9625))] = 0.3
    est.core_weight = 0.05
    est._prepare_candidates()
    hedged = est.summarize(p)
    assert 0.675 <= hedged["z_phot"][0] <= 0.845 and abs(hedged["z_pdf"][0, MEDIAN_INDEX] - 0.618) < 0.01
    est.core_weight = 1.0
    est._prepare_candidates()
    assert est.summarize(p)["z_phot"][0] == est.summarize(p)["z_pdf"][0, MEDIAN_INDEX]


def test_params_and_schema() -> None:
    est = make_estimator("mlp", {"tolerance": 0.02, "core_weight": 0.1})
    assert est.params["tolerance"] == 0.02 and est.params["core_weight"] == 0.1 and est.describe()["name"] == "mlp"
    assert est.params["core_width"] == 0.02 and est.version == "4.2"
    assert est.params["log_bins"] is True and est.params["bin_width"] == 0.015
    assert make_estimator("mlp").params["core_weight"] == 0.07
    assert est.params["two_hot"] is True and est.params["draw_labels"] is True
    assert est.params["shrink_map"] is True and est.params["rate_cuts"] == 2 and est.params["stall"] == 4
    assert [c.name for c in est.columns] == ["z_phot", "z_mode", "z_err", "odds", "z_pdf"]
    description = est.columns[0].description or ""
    assert "median of the PDF" in description and "more than 0.02 higher" in description
    assert "plus 0.1 times the probability within 0.02" in description
    import pytest

    with pytest.raises(ValueError, match="core_width"):
        make_estimator("mlp", {"core_width": 0.2})


def test_members_are_pooled_as_a_normalized_product() -> None:
    rng = np.random.default_rng(5)
    mags, z = _populations(300, rng)
    est = make_estimator("mlp", {"hidden": (16,), "members": 2, "max_iter": 100, "early_stopping": False,
                                 "refit": False}).fit(photometry(mags), z)
    from pipeline.estimators.mlp import magnitude_colour_features

    x = (magnitude_colour_features(photometry(mags[::50]), est.softening) - est._mean) / est._std
    pooled, nets = est._forward(x).astype(np.float64), est._nets
    single = []
    for net in nets:
        est._nets = [net]
        single.append(est._forward(x).astype(np.float64))
    est._nets = nets
    product = np.sqrt(single[0] * single[1])
    product /= product.sum(axis=1, keepdims=True)
    keep = (pooled > 1e-3) & (product > 1e-3)
    np.testing.assert_allclose(pooled[keep], product[keep], rtol=1e-3)
    assert not np.allclose(single[0], single[1], atol=1e-3)  # the members differ


def test_pit_map_flattens_a_known_distortion() -> None:
    from pipeline.estimators.mlp import NeuralNetworkEstimator

    rng = np.random.default_rng(7)
    # Mild distortions (PDFs 10 % too wide, too narrow, biased) from 20,000 galaxies,
    # and a strong one the sines cannot follow (the raw quantiles then), from a large sample.
    for a, b, n, atol in ((1.15, 1.15, 20_000, 0.01), (0.87, 0.87, 20_000, 0.01), (1.1, 1.0, 20_000, 0.01),
                          (2.0, 2.0, 200_000, 0.003)):
        pit = rng.beta(a, b, n)
        levels = NeuralNetworkEstimator._pit_map(pit)
        assert levels[0] == 0.0 and levels[-1] == 1.0 and np.all(np.diff(levels) > 0)
        fresh = rng.beta(a, b, 400_000)  # the map must flatten new draws, not just its own sample
        below = np.array([np.mean(fresh <= level) for level in levels])
        np.testing.assert_allclose(below, LEVELS, atol=atol)
        assert np.max(np.abs(below - LEVELS)) < 0.5 * np.max(np.abs(np.quantile(fresh, LEVELS) - LEVELS))


def test_pit_map_shrinks_the_noise_of_flat_pits() -> None:
    """PITs that are already flat: the 4.0 map fitted on 8,269 of them bends the levels by its
    sampling noise; the shrunk map (4.1) stays nearer the identity, and a flatness test of fresh
    PITs fails less often through it (the sines' noise is what the shrinkage removes)."""
    from scipy.stats import chisquare

    from pipeline.estimators.mlp import NeuralNetworkEstimator

    rng = np.random.default_rng(11)
    bend = {True: [], False: []}
    fails = {True: 0, False: 0}
    for _ in range(60):
        cal, fresh = rng.uniform(size=8_269), rng.uniform(size=10_420)
        for shrink in (True, False):
            levels = NeuralNetworkEstimator._pit_map(cal, shrink)
            bend[shrink].append(np.max(np.abs(levels - LEVELS)))
            counts = np.histogram(np.interp(fresh, levels, LEVELS), 10, (0.0, 1.0))[0]
            fails[shrink] += chisquare(counts).pvalue < 0.05
    assert np.median(bend[True]) < 0.5 * np.median(bend[False])
    assert fails[True] < fails[False]
    # A real width error (PDFs about 10 % too narrow) is kept: over ten draws of 8,269 galaxies
    # the shrunk map is as close to the true quantile function as the unshrunk one, and far from
    # the identity.
    from scipy.stats import beta

    truth = beta.ppf(LEVELS, 0.87, 0.87)
    error = {True: [], False: []}
    for _ in range(10):
        pit = rng.beta(0.87, 0.87, 8_269)
        for shrink in (True, False):
            error[shrink].append(np.max(np.abs(NeuralNetworkEstimator._pit_map(pit, shrink) - truth)))
        assert np.max(np.abs(NeuralNetworkEstimator._pit_map(pit) - LEVELS)) > 0.015
    assert np.mean(error[True]) <= np.mean(error[False])


def test_refit_retrains_members_on_all_galaxies() -> None:
    rng = np.random.default_rng(9)
    mags, z = _populations(300, rng)
    params = {"hidden": (16,), "members": 2, "max_iter": 60, "early_stopping": False}
    held = make_estimator("mlp", params).fit(photometry(mags), z)
    refit = make_estimator("mlp", {**params, "refit": True}).fit(photometry(mags), z)
    assert held.epochs == refit.epochs and refit.params["refit"] is True
    np.testing.assert_array_equal(held._raw_levels, refit._raw_levels)  # calibrated before refitting
    assert not np.allclose(held._nets[0][0][0], refit._nets[0][0][0])
    assert all(net[3] <= epochs for net, epochs in zip(refit._nets, refit.epochs, strict=True))


def test_members_trained_in_parallel_processes_are_the_same() -> None:
    rng = np.random.default_rng(11)
    mags, z = _populations(150, rng)
    params = {"hidden": (16,), "members": 2, "max_iter": 30}
    serial = make_estimator("mlp", {**params, "jobs": 1}).fit(photometry(mags), z)
    parallel = make_estimator("mlp", {**params, "jobs": 2}).fit(photometry(mags), z)
    assert serial.epochs == parallel.epochs and "jobs" not in parallel.params
    for a, b in zip(serial._nets, parallel._nets, strict=True):
        for wa, wb in zip(a[0], b[0], strict=True):
            np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(serial._raw_levels, parallel._raw_levels)


def test_two_hot_targets_put_the_expected_bin_centre_on_the_redshift() -> None:
    from pipeline.estimators.mlp import two_hot_targets

    x = np.arange(4.0).reshape(4, 1)
    z = np.array([0.05, 0.10, 0.125, 0.9999])  # a bin centre, an edge, a quarter, past the last centre
    rows, labels, weights = two_hot_targets(x, z, 0.1, 10)
    assert np.isclose(np.mean(weights), 1.0)
    per = {i: {} for i in range(4)}
    for row, label, weight in zip(rows[:, 0].astype(int), labels, weights, strict=True):
        per[row][int(label)] = per[row].get(int(label), 0.0) + weight
    total = {i: sum(per[i].values()) for i in per}
    assert per[0] == {0: total[0]}  # exactly on a centre: one bin, the other row dropped
    np.testing.assert_allclose([per[1][0] / total[1], per[1][1] / total[1]], [0.5, 0.5])
    np.testing.assert_allclose([per[2][0] / total[2], per[2][1] / total[2]], [0.25, 0.75])
    assert per[3] == {9: total[3]}  # beyond the last centre: all on the last bin
    centres = 0.05 + 0.1 * np.arange(10)
    for i in range(3):
        np.testing.assert_allclose(sum(w * centres[b] for b, w in per[i].items()) / total[i], z[i])


def test_two_hot_labels_place_the_pdf_within_a_bin() -> None:
    """Galaxies all at z = 0.32 and 1.22 with bins of 0.1: hard labels only say "in [0.3, 0.4)",
    so the PDF median sits near the bin's middle (0.35); two-hot labels (0.3 on the 0.25 centre,
    0.7 on 0.35), as two weighted rows or drawn anew each epoch (4.1's default), put it within
    0.02 of the truth."""
    rng = np.random.default_rng(13)
    mags, _ = _populations(300, rng)
    z = np.repeat([0.32, 1.22], 300)
    params = {"hidden": (32,), "max_iter": 150, "early_stopping": False, "bin_width": 0.1, "members": 1,
              "log_bins": False}
    test, _ = _populations(20, rng)
    truth = np.repeat([0.32, 1.22], 20)
    medians = {}
    for targets in ({"two_hot": False}, {"draw_labels": False}, {}):
        est = make_estimator("mlp", {**params, **targets}).fit(photometry(mags), z)
        est._raw_levels = LEVELS.copy()  # the PDFs as the networks learned them, no calibration map
        medians[str(targets)] = est.estimate(photometry(test))["z_pdf"][:, MEDIAN_INDEX]
    assert np.all(np.abs(medians["{'two_hot': False}"] - truth) > 0.02)
    assert np.all(np.abs(medians["{'draw_labels': False}"] - truth) < 0.02)
    assert np.all(np.abs(medians["{}"] - truth) < 0.02)


def test_neighbour_bins_give_the_fraction_towards_the_upper_centre() -> None:
    """Drawn labels take the upper bin with probability f: a galaxy three quarters of the way
    from one centre to the next has f = 0.75, one on a centre 0, one past the last centre stays
    in the last bin."""
    from pipeline.estimators.mlp import neighbour_bins

    below, above, f = neighbour_bins(np.array([0.125, 0.05, 0.9999]), 0.1, 10)
    assert below.tolist() == [0, 0, 9] and above.tolist() == [1, 1, 9]
    np.testing.assert_allclose(f[:2], [0.75, 0.0])


def test_learning_rate_is_cut_when_the_hold_out_loss_stalls() -> None:
    """With ``rate_cuts`` a stall of ``stall`` epochs lowers the learning rate and training goes
    on from there; with none the same network trains at one rate until ``patience`` epochs pass
    without improvement: the two part ways at the first stall."""
    rng = np.random.default_rng(17)
    mags, z = _populations(400, rng)
    params = {"hidden": (16,), "members": 1, "max_iter": 300, "patience": 6, "stall": 2, "jobs": 1}
    plain = make_estimator("mlp", {**params, "rate_cuts": 0}).fit(photometry(mags), z)
    cut = make_estimator("mlp", {**params, "rate_cuts": 2}).fit(photometry(mags), z)
    assert cut.params["rate_cuts"] == 2 and plain.params["rate_cuts"] == 0
    assert not np.allclose(cut._nets[0][0][0], plain._nets[0][0][0])


def test_log_bins_are_uniform_in_log1p_z_and_the_summaries_follow_their_widths() -> None:
    """Bins of 0.1 in ln(1+z): edges 0, 0.105, 0.221, 0.350, ... (wider with redshift, like
    the errors). All probability in one bin puts the median in its middle and the mode there
    too; the known-answer populations come out where they were made."""
    rng = np.random.default_rng(19)
    mags, z = _populations(300, rng)
    est = make_estimator("mlp", {"hidden": (32,), "max_iter": 150, "early_stopping": False, "bin_width": 0.1,
                                 "members": 1}).fit(photometry(mags), z)
    assert est.params["log_bins"] is True
    np.testing.assert_allclose(np.diff(np.log1p(est.edges)), 0.1)
    assert est.edges[0] == 0.0 and est.edges[-1] >= z.max()
    est._raw_levels = LEVELS.copy()
    p = np.zeros((1, est.edges.size - 1), dtype=np.float32)
    p[0, 3] = 1.0  # [0.350, 0.492)
    out = est.summarize(p)
    middle = 0.5 * (est.edges[3] + est.edges[4])
    assert abs(out["z_pdf"][0, MEDIAN_INDEX] - middle) < 1e-6 and abs(out["z_mode"][0] - middle) < 1e-6
    assert np.isclose(out["z_pdf"][0, 0], est.edges[3]) and np.isclose(out["z_pdf"][0, -1], est.edges[4])
    test, _ = _populations(20, rng)
    np.testing.assert_allclose(est.estimate(photometry(test))["z_phot"], np.repeat([0.3, 1.2], 20), atol=0.06)
