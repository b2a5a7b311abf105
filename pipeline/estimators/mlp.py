"""The default estimator: an ensemble of small neural networks over redshift bins, calibrated
PDFs, and a point estimate that avoids catastrophic outliers.

Measured on the shared Buzzard galaxies with photerr LSST 10-year errors, gold sample i < 25.3,
by ``benchmarks/bench_pipeline.py`` (the figures and the commands are in docs/performance.md and
docs/pipeline.md); every choice below was made on the pooled 4-fold cross-validation of the
41,349 gold galaxies (fold 0 is the fixed split's test set), because the fixed split's 10,338
test galaxies put a standard error of 0.2 % on the outlier fraction and 3 % on each PIT bin.

- Features: the six asinh magnitudes and the five adjacent asinh colours, standardized (the
  softening is the training set's median flux error per band, as in ``knn``).
- Model: ``members`` (4) scikit-learn ``MLPClassifier`` networks (two ReLU layers of 128, Adam)
  over redshift bins, differing in their seeds; their softmax outputs are pooled
  geometrically (the softmax of the mean logits).  A mean of PDFs is wider than each member's
  and left the PIT humped by 10 %; the product keeps the width.  Against one network the
  ensemble lowers sigma_MAD by about 0.001 and the outliers by 0.1 %.
- Bins (version 4.2): uniform in ln(1+z), ``bin_width`` 0.015 wide (``log_bins``; off: uniform
  in z, 0.025 wide until 4.1).  Photo-z errors grow as (1+z): bins of 0.025 in z were 0.021 (1+z)
  at z = 0.2, as wide as the scatter itself, and 0.010 (1+z) at z = 1.6; bins of 0.015 in
  ln(1+z) are 0.015 (1+z) everywhere, and there are 80 of them instead of 92 (a smaller output
  layer: faster training and inference).  Against 4.1's bins, same networks otherwise (one
  run per width and seed, seeds 1-3): log bins of 0.0125-0.02 gave fixed-split outliers of
  3.78-3.92 % (4.1: 3.82-4.02 %), and at 0.0125-0.015 an unseen-set CDE loss of -8.36 to
  -8.45 (4.1: -8.20 to -8.27); the pooled 4-fold cross-validation at 0.015: 0.0227, 3.83 %,
  PIT p 0.58, CDE -8.42 (4.1: 0.0228, 3.87 %, 0.44, -8.26).
  Coarser log bins lose the PIT: 0.02 failed the fixed split with one seed of 3 (p = 0.006),
  0.03 failed both (p < 5e-5); 0.0125 (seed 1) gave 0.015's figures with 20 % more bins
  (docs/pipeline.md).
- Targets (version 4.1): two-hot, drawn.  A galaxy at z lies a fraction f of the way from the
  bin centre just below z to the next one (:func:`neighbour_bins`); each epoch its label is
  the upper bin with probability f, else the lower, so in expectation the target is the
  two-hot vector whose mean centre is z (``two_hot``; ``draw_labels`` off gives the same
  target as two weighted rows per galaxy, :func:`two_hot_targets`, at twice the cost per
  epoch).  Hard labels (the bin that contains z, ``two_hot`` off, 4.0) throw away where in a
  bin a galaxy lies.  The weighted rows sharpened the networks but their PIT failed the
  unseen set with 2 seeds of 5 (docs/pipeline.md).
- Learning rate (4.1): when the hold-out loss has not improved for ``stall`` (4) epochs,
  Adam's rate is divided by 3, at most ``rate_cuts`` (2) times; training then ends
  ``patience`` (10) epochs after the best.  With drawn two-hot labels and the shrunk map
  (below), seeds 1-5 (``benchmarks/bench_pit_seeds.py --seeds 5 --unseen``, 2026-12-05):
  fixed split sigma_MAD 0.0224-0.0230, outliers 3.82-4.02 %, PIT p 0.033-0.143; unseen set
  0.0233-0.0236, 3.61-3.70 %, p 0.014-0.555 (4.0: 0.0237-0.0241, 3.58-3.84 %, two seeds over
  3.7 %), CDE loss -8.2 (4.0: -7.8), training 39-42 s on 41,349 galaxies (4.0: 23-25 s).
- Calibration: 20 % of the training set (fixed seed) is held out.  The members train on the
  other 80 % and stop early on the hold-out's log loss (``train_member``); the ensemble's PIT
  values on the hold-out give the map that flattens the PIT (Bordoloi et al. 2010), fitted
  smoothly (4 sine terms, ``_pit_map``) and applied as a change of quantile levels.  The map
  and the networks it corrects are the same networks, and nothing is trained after the map is
  fitted: that is what keeps the PDFs calibrated on galaxies outside the training set (issue
  19).  ``mlp`` 2.0 then retrained every member on all galaxies (``refit``, still available,
  off by default) and applied the map to those new networks: on 10,420 unseen gold galaxies
  (pzflow's catalog rows that are not among the shared 80,000) its PIT failed the flatness
  test (chi-square p = 5e-5), against p = 0.01 for the same networks without the refit.  Two
  trainings of one recipe differ by more than the map can tolerate: each member's median PIT
  on the unseen set ranges over 0.493-0.522, and the refitted ensemble's moved from 0.507 to
  0.518 (the truth above the median more often, bins 9-10 +8 %).  Early stopping on the
  hold-out (not on scikit-learn's internal 10 % of the training rows, selected on accuracy)
  lets the networks use all of the 80 %.
- The map's own noise: 8,269 hold-out galaxies (20 % of 41,349) carry sampling noise
  comparable to a 10,000-galaxy test set's.  With PITs that need no correction, the 4-sine map
  fitted on 8,269 of them failed the flatness test (p < 0.01) on 10,420 new ones in 12 % of
  draws, against 0.5 % with no map and 38 % with the raw quantiles as the map
  (``benchmarks/bench_pit_seeds.py``).  Version 4.1 shrinks each sine coefficient by its own
  noise (``shrink_map``, ``_pit_map``): 3.6 % of draws fail; a real width error (8-11 standard
  errors in the second sine on these networks) is kept nearly whole.  Over seeds 1-5 the
  lowest PIT p rose from 0.017 to 0.060 on the fixed split and from 0.025 to 0.069 on the
  unseen set, sigma_MAD and outliers unchanged (4.0's networks: ``--params '{"two_hot": false,
  "rate_cuts": 0, "log_bins": false, "bin_width": 0.025, "core_weight": 0.05}'``).  A
  2-parameter map (location and scale in probit space) carries less noise (6 % in the same
  simulation) but misfits the real PIT's tails: on the same networks it failed the pooled
  cross-validation (p = 7e-8, against 0.13 for the sines), so it was not kept.
- Point estimate ``z_phot`` (since version 4.0; ``core_weight`` 0.07 since 4.2, below): each
  candidate redshift z (every 0.01) gets the score
  P(|dz|/(1+z) <= 0.15) + ``core_weight`` P(|dz|/(1+z) <= ``core_width``) under the PDF (the
  outlier window plus a narrow core window), one matrix product for all candidates; ``z_phot``
  is the PDF median unless the best candidate scores more than ``tolerance`` higher than the
  median, and then that candidate.  The outlier window alone (``core_weight`` 0) is maximal on
  a plateau 0.1-0.5 wide and moves estimates off the peaks; the core term keeps them on a peak.
  Version 3.0 moved the estimate to the redshift closest to the median whose outlier window held
  within ``tolerance`` of the best (sigma_MAD 0.0248, 3.87 % pooled over the 4-fold
  cross-validation; 0.0248, 3.62 % on the unseen set).  ``core_weight`` was chosen on the pooled
  cross-validation (``core_width`` 0.02, ``tolerance`` 0.005): 0 -> 0.0260 and 3.83 %; 0.03 ->
  0.0240 and 3.89 %; 0.05 -> 0.0236 and 3.92 % (the default); 0.07 -> 0.0233 and 3.94 %; 0.1 ->
  0.0231 and 3.98 %; ``core_width`` 0.015 or 0.025 at 0.05: 0.0238 / 0.0236 (all with candidates
  every 0.005; every 0.01, shipped: 0.0236 and 3.93 %, 7 % faster in memory).  On 4.2's
  networks (log bins) the same cross-validation (``benchmarks/bench_zphot_rule.py``) gives, at
  ``tolerance`` 0.005: 0.03 -> 0.0231
  and 3.79 %; 0.05 -> 0.0227 and 3.83 %; 0.07 -> 0.0224 and 3.83 % (the default since 4.2: as
  few outliers as 0.05, lower scatter); 0.1 -> 0.0221 and 3.87 %; tolerances 0, 0.01 and 0.02
  lie on or behind that front.  The PDF median
  alone: 0.0220 and 4.60 % on the fixed split.  Tried and not kept (fixed split / unseen set,
  same rule): 6 members 0.0235 / 0.0237 (1.5x the inference cost), two layers of 192 0.0232 /
  0.0240, ``alpha`` 1e-3 0.0233 / 0.0237, bins of 0.02 0.0237 / 0.0240, and a
  separate regression network (squared loss on ln(1+z), trained on all galaxies) as the base
  point instead of the median, 0.0246 / 0.0246.  The column description says what ``z_phot``
  is; ``z_mode`` is the PDF's mode.
- Cost: the members train in parallel processes (``jobs``, one per core by default), one BLAS
  thread each: the matrices are too small for threads to help, and two processes on two cores
  train 4 networks on 33,000 galaxies in about 50 s.  Inference is three float32 matrix
  products per member in blocks of 4,096 rows (one BLAS thread per worker) and the summaries
  (quantiles, outlier windows as one matrix product).
"""
from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from pipeline.estimators.base import PDF_COLUMNS, Estimator, Photometry, pdf_columns
from pipeline.pdf import LEVELS, MEDIAN_INDEX
from pipeline.quality import OUTLIER_LIMIT

log = logging.getLogger(__name__)

#: Probabilities below this per bin are set to zero (keeps the PDF's support finite).
MIN_BIN_PROBABILITY = 1e-5
#: Rows per block in estimation: the activations stay in cache (2.2x faster than one block of 100,000).
CHUNK_ROWS = 4096
#: Sine terms of the smooth PIT map (see ``_pit_map``).
MAP_TERMS = 4
#: Training rows from which ``jobs: 0`` trains the members in parallel processes (starting them
#: costs about a second, more than training on a few hundred galaxies).
PARALLEL_ROWS = 5000
#: Factor by which a stalled training divides the learning rate (``rate_cuts``).
RATE_CUT = 3.0
#: Spacing of the candidate redshifts for the outlier-aware point estimate.
CANDIDATE_STEP = 0.01
#: The point estimate's score adds CORE_WEIGHT times the probability within |dz|/(1+z) <= CORE_WIDTH.
CORE_WEIGHT = 0.07
CORE_WIDTH = 0.02


def z_phot_description(tolerance: float, core_weight: float = 0.0, core_width: float = 0.0) -> str:
    """The ``z_phot`` column's description, with the estimator's own parameters."""
    score = "the probability within |dz|/(1+z) <= 0.15"
    if core_weight:
        score += f" plus {core_weight:g} times the probability within {core_width:g}"
    return ("Photometric redshift point estimate: the median of the PDF, unless another redshift scores "
            f"more than {tolerance:g} higher, score = {score} (fewer catastrophic outliers); then the "
            "best-scoring redshift.")


def magnitude_colour_features(phot: Photometry, softening: np.ndarray) -> np.ndarray:
    """(n, 11) float64: the six asinh magnitudes and the five adjacent asinh colours."""
    mags = phot.asinh_magnitudes(softening)
    return np.column_stack([mags, mags[:, :-1] - mags[:, 1:]])


def neighbour_bins(z: np.ndarray, bin_width: float, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each redshift, the bins whose centres are just below and just above it, and the
    fraction f of the way from the lower centre to the upper one."""
    u = z / bin_width - 0.5
    below = np.floor(u).astype(np.int64)
    f = u - below
    return np.clip(below, 0, n_bins - 1), np.clip(below + 1, 0, n_bins - 1), f


def two_hot_targets(x: np.ndarray, z: np.ndarray, bin_width: float,
                    n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, bin labels and sample weights that spread each galaxy over its two nearest bin centres.

    A galaxy at z gets weight 1 - f on the bin whose centre is just below z and f on the next
    one, so the expected bin centre is z itself: the network learns where in a bin a galaxy lies,
    which hard labels (the bin containing z) throw away.  The weights are scaled to average 1 per
    row (scikit-learn divides the L2 penalty by each batch's sum of weights).
    """
    below, above, f = neighbour_bins(z, bin_width, n_bins)
    labels = np.concatenate([below, above])
    weights = np.concatenate([1.0 - f, f])
    keep = weights > 1e-3
    rows = np.concatenate([x, x])[keep]
    return rows, labels[keep], weights[keep] * (keep.sum() / weights[keep].sum())


def train_member(x: np.ndarray, z: np.ndarray, seed: int, stop: tuple[np.ndarray, np.ndarray] | None,
                 epochs: int | None, *, hidden: tuple[int, ...], alpha: float, max_iter: int, patience: int,
                 n_bins: int, bin_width: float, two_hot: bool, draw_labels: bool = False, rate_cuts: int = 0,
                 stall: int = 4) -> tuple[list, list, np.ndarray, int]:
    """One network's float32 weights, biases, classes and epochs.

    ``z`` is the variable in which the bins are uniform, ``bin_width`` wide: ln(1+z) with log
    bins (4.2), else the redshift itself.

    The targets are the two-hot labels of :func:`two_hot_targets` (``two_hot``) or the bin
    containing each redshift. With ``stop`` (the calibration hold-out's features and the bins of its
    redshifts), early stopping on that hold-out's log loss: one epoch at a time, the weights of the
    best epoch are kept, and training ends ``patience`` epochs without improvement; before that, up
    to ``rate_cuts`` times, ``stall`` epochs without improvement divide Adam's learning rate by
    :data:`RATE_CUT` and training goes on from there. The networks then learn from every galaxy not
    held out (scikit-learn's own early stopping would set aside another 10 % of them and select on
    accuracy, not on the probabilities the PDFs are made of). With ``epochs``, exactly that many;
    with neither, ``max_iter``. One BLAS thread: the matrices are small, and the members run in
    parallel processes instead.
    """
    from sklearn.exceptions import ConvergenceWarning  # noqa: PLC0415 - sklearn: 0.3 s, training only; not a main dependency (pzvo[rail], tests)
    from sklearn.neural_network import MLPClassifier  # noqa: PLC0415 - sklearn: see above

    drawn = two_hot and draw_labels
    if two_hot and not drawn:
        x, label, weight = two_hot_targets(x, z, bin_width, n_bins)
    else:
        label, weight = np.clip((z / bin_width).astype(np.int64), 0, n_bins - 1), None
    if drawn:
        below, above, f = neighbour_bins(z, bin_width, n_bins)
        draws = np.random.default_rng((seed, 2))

    def epoch_labels() -> np.ndarray:
        return np.where(draws.random(len(z)) < f, above, below) if drawn else label

    clf = MLPClassifier(hidden, alpha=alpha, max_iter=epochs or max_iter,
                        batch_size=int(np.clip(len(z) // 100, 32, 256)), learning_rate_init=2e-3,
                        random_state=seed)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if stop is None and drawn:
            for _ in range(epochs or max_iter):
                clf.partial_fit(x, epoch_labels(), classes=np.arange(n_bins))
            return ([w.astype(np.float32) for w in clf.coefs_], [b.astype(np.float32) for b in clf.intercepts_],
                    np.arange(n_bins, dtype=np.int64), epochs or max_iter)
        if stop is None:
            clf.fit(x, label, sample_weight=weight)
            return ([w.astype(np.float32) for w in clf.coefs_], [b.astype(np.float32) for b in clf.intercepts_],
                    clf.classes_.astype(np.int64), int(clf.n_iter_))
        classes = np.arange(n_bins)
        rows = np.arange(len(stop[1]))
        kept: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
        best, best_loss, since, cuts = 0, np.inf, 0, 0
        for epoch in range(1, max_iter + 1):
            clf.partial_fit(x, epoch_labels(), sample_weight=weight, classes=classes)
            loss = -np.mean(np.log(np.maximum(clf.predict_proba(stop[0])[rows, stop[1]], 1e-12)))
            if loss < best_loss - 1e-4:
                best, best_loss, since = epoch, loss, 0
                kept = ([w.astype(np.float32) for w in clf.coefs_], [b.astype(np.float32) for b in clf.intercepts_])
                continue
            since += 1
            if since >= stall and cuts < rate_cuts:
                # scikit-learn has no learning-rate schedule for Adam: its optimizer object, kept
                # between partial_fit calls, reads learning_rate_init at every step.
                clf._optimizer.learning_rate_init /= RATE_CUT
                cuts, since = cuts + 1, 0
            elif epoch - best >= patience:
                break
    return kept[0], kept[1], classes.astype(np.int64), best


class NeuralNetworkEstimator(Estimator):
    """An ensemble of softmax-over-redshift-bins networks with calibrated quantile PDFs (see the
    module docstring for the choices and their measurements)."""

    name = "mlp"
    version = "4.2"
    columns = (replace(PDF_COLUMNS[0], description=z_phot_description(0.005, CORE_WEIGHT, CORE_WIDTH)),
               *PDF_COLUMNS[1:])

    def __init__(self, hidden: tuple[int, ...] = (128, 128), members: int = 4, bin_width: float = 0.015,
                 alpha: float = 1e-4, max_iter: int = 200, calibration_fraction: float = 0.2,
                 tolerance: float = 0.005, core_weight: float = CORE_WEIGHT, core_width: float = CORE_WIDTH,
                 refit: bool = False, seed: int = 1, threads: int = 1,
                 early_stopping: bool = True, patience: int = 10, two_hot: bool = True, draw_labels: bool = True,
                 shrink_map: bool = True, rate_cuts: int = 2, stall: int = 4, log_bins: bool = True, jobs: int = 0,
                 **extra: Any) -> None:
        if extra:
            raise TypeError(f"unknown mlp parameters: {sorted(extra)}")
        if int(members) < 1:
            raise ValueError("mlp: members must be at least 1")
        super().__init__(hidden=[int(h) for h in hidden], members=int(members), bin_width=float(bin_width),
                         alpha=float(alpha), max_iter=int(max_iter), calibration_fraction=float(calibration_fraction),
                         tolerance=float(tolerance), core_weight=float(core_weight), core_width=float(core_width),
                         refit=bool(refit), seed=int(seed), threads=int(threads),
                         early_stopping=bool(early_stopping), patience=int(patience), two_hot=bool(two_hot),
                         draw_labels=bool(draw_labels), shrink_map=bool(shrink_map), rate_cuts=int(rate_cuts),
                         stall=int(stall), log_bins=bool(log_bins))
        self.hidden, self.members = tuple(int(h) for h in hidden), int(members)
        self.bin_width, self.alpha, self.max_iter = float(bin_width), float(alpha), int(max_iter)
        self.calibration_fraction, self.tolerance = float(calibration_fraction), float(tolerance)
        self.core_weight, self.core_width = float(core_weight), float(core_width)
        if not 0.0 < self.core_width < OUTLIER_LIMIT or self.core_weight < 0:
            raise ValueError(f"mlp: core_width must be in (0, {OUTLIER_LIMIT}) and core_weight >= 0")
        self.seed, self.threads, self.early_stopping = int(seed), int(threads), bool(early_stopping)
        self.refit, self.patience, self.two_hot = bool(refit), int(patience), bool(two_hot)
        self.shrink_map, self.rate_cuts, self.stall = bool(shrink_map), int(rate_cuts), int(stall)
        self.draw_labels, self.log_bins = bool(draw_labels), bool(log_bins)
        self.jobs = int(jobs)  # changes the training time, never the result: not a provenance parameter
        self.columns = (replace(PDF_COLUMNS[0], description=z_phot_description(self.tolerance, self.core_weight,
                                                                                self.core_width)),
                        *PDF_COLUMNS[1:])

    # -- training ------------------------------------------------------------------------------
    def fit(self, training: Photometry, redshift: np.ndarray) -> NeuralNetworkEstimator:
        started = time.perf_counter()
        self.softening = soft = training.softening()
        z = np.asarray(redshift, dtype=np.float64)
        x = magnitude_colour_features(training, soft)
        self._mean, self._std = x.mean(axis=0), x.std(axis=0)
        self._std[self._std == 0] = 1.0
        x = (x - self._mean) / self._std
        binned = np.log1p(z) if self.log_bins else z  # the variable in which the bins are uniform
        n_bins = max(2, int(np.ceil((binned.max() + 1e-9) / self.bin_width)))
        grid = np.arange(n_bins + 1) * self.bin_width
        self.edges = np.expm1(grid) if self.log_bins else grid
        label = np.clip((binned / self.bin_width).astype(np.int64), 0, n_bins - 1)

        order = np.random.default_rng(self.seed).permutation(len(z))
        n_cal = int(self.calibration_fraction * len(z)) if len(z) >= 200 else 0
        cal, fit_rows = order[:n_cal], order[n_cal:]
        stop = (x[cal], label[cal]) if self.early_stopping and n_cal > 50 else None
        self._nets = self._train_all([(x[fit_rows], binned[fit_rows], self.seed + m, stop, None)
                                      for m in range(self.members)], n_bins)
        self._classes = self._nets[0][2]
        self.epochs = [net[3] for net in self._nets]
        self._prepare_candidates()
        self._raw_levels = LEVELS.copy()
        if n_cal > 50:
            self._raw_levels = self._pit_map(self._pit(x[cal], z[cal]), self.shrink_map)
            if self.refit:
                self._nets = self._train_all([(x, binned, self.seed + m, None, net[3])
                                              for m, net in enumerate(self._nets)], n_bins)
                self._classes = self._nets[0][2]
        log.info("trained estimator", extra={"estimator": self.name, "rows": len(z), "members": self.members,
                                             "epochs": self.epochs, "refit": self.refit,
                                             "seconds": round(time.perf_counter() - started, 3)})
        return self

    def _train_all(self, tasks: list[tuple], n_bins: int) -> list[tuple[list, list, np.ndarray, int]]:
        """The members, trained in ``jobs`` processes (0: one per core, from :data:`PARALLEL_ROWS`
        training rows up): each member is a pure function of its data and seed, so the result is
        the same however many processes run."""
        settings: dict[str, Any] = {"hidden": self.hidden, "alpha": self.alpha, "max_iter": self.max_iter,
                                    "patience": self.patience, "n_bins": n_bins, "bin_width": self.bin_width,
                                    "two_hot": self.two_hot, "draw_labels": self.draw_labels,
                                    "rate_cuts": self.rate_cuts, "stall": self.stall}
        jobs = min(len(tasks), self.jobs or (os.cpu_count() or 1 if len(tasks[0][1]) >= PARALLEL_ROWS else 1))
        if jobs <= 1:
            return [train_member(*task, **settings) for task in tasks]
        from joblib import (  # type: ignore[import-untyped]  # noqa: PLC0415 - with scikit-learn, training only
            Parallel,
            delayed,
        )

        return list(Parallel(n_jobs=jobs, backend="loky")(delayed(train_member)(*task, **settings) for task in tasks))

    def _pit(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Uncalibrated PIT values of standardized features ``x`` at their true redshifts."""
        return self._cdf_interp(self._cdf_at_edges(self._forward(x)), z)

    @staticmethod
    def _pit_map(pit: np.ndarray, shrink: bool = True) -> np.ndarray:
        """The quantile levels that flatten the PIT: a smooth fit of its quantile function.

        The deviation of the PIT's quantile function from the diagonal, fitted by
        :data:`MAP_TERMS` sines (zero at 0 and 1) on 200 levels: a few thousand calibration
        galaxies give the 15 raw quantiles with errors of 0.005-0.006, enough to tilt a PIT bin
        by 5 %; the fit shares the information between levels (fixed split: 7.5 % instead of
        9.7 %; 4-fold cross-validation: 3.1 % instead of 3.4 %).  A distortion the sines cannot
        follow (a fit further than three standard errors of a median from the data somewhere)
        gets the raw quantiles instead.

        ``shrink`` (version 4.1): each sine's coefficient c_k is shrunk by its own sampling
        noise, c_k max(0, 1 - s_k^2 / c_k^2) (positive-part James-Stein).  For PITs that are
        already flat, the quantile function of n of them deviates from the diagonal like a
        Brownian bridge over sqrt(n), whose sine coefficients are independent with variance
        s_k^2 = 2 / (k^2 pi^2 n): a coefficient of a few s_k is mostly noise and is mostly
        dropped, the large ones (a real width or bias error) are kept nearly whole.
        """
        u = (np.arange(200) + 0.5) / 200
        empirical = np.quantile(pit, u)
        k = np.arange(1, MAP_TERMS + 1)
        coef, *_ = np.linalg.lstsq(np.sin(np.pi * np.outer(u, k)), empirical - u, rcond=None)
        misfit = np.max(np.abs(u + np.sin(np.pi * np.outer(u, k)) @ coef - empirical))
        if misfit > 3.0 * np.sqrt(0.25 / len(pit)):
            inner = np.quantile(pit, LEVELS[1:-1])
        else:
            if shrink:
                noise = 2.0 / (k ** 2 * np.pi ** 2 * len(pit))
                coef = coef * np.maximum(0.0, 1.0 - noise / np.maximum(coef ** 2, 1e-300))
            inner = LEVELS[1:-1] + np.sin(np.pi * np.outer(LEVELS[1:-1], k)) @ coef
        return np.concatenate([[0.0], np.maximum.accumulate(np.clip(inner, 0.0, 1.0)), [1.0]])

    def _prepare_candidates(self) -> None:
        """Candidate point estimates and the interpolation weights of their scoring windows
        (the same for every object, so each candidate's score is one matrix product with the
        bin probabilities): the outlier window plus ``core_weight`` times the core window."""
        self._cand = np.arange(0.0, self.edges[-1] + 1e-9, CANDIDATE_STEP)
        window = self._window_matrix(OUTLIER_LIMIT)
        if self.core_weight:
            window = window + self.core_weight * self._window_matrix(self.core_width)
        self._window = window.astype(np.float32)

    def _window_matrix(self, limit: float) -> np.ndarray:
        """(n_bins, n_cand): bin probabilities @ this = the probability that |dz|/(1+z) <= limit
        at each candidate (the window [(c - limit)/(1 + limit), (c + limit)/(1 - limit)])."""
        lo = (self._cand - limit) / (1 + limit)
        hi = (self._cand + limit) / (1 - limit)
        window = self._interp_matrix(hi) - self._interp_matrix(lo)  # (n_edges, n_cand), on the CDF
        cumulative = np.triu(np.ones((self.edges.size - 1, self.edges.size)), 1)  # bins -> CDF at edges
        return cumulative @ window

    def _window_mass(self, cdf: np.ndarray, z: np.ndarray, limit: float) -> np.ndarray:
        """Each object's probability that |dz|/(1+z) <= limit around its own redshift z."""
        return (self._cdf_interp(cdf, (z + limit) / (1 - limit))
                - self._cdf_interp(cdf, (z - limit) / (1 + limit)))

    def _interp_matrix(self, x: np.ndarray) -> np.ndarray:
        """(n_edges, len(x)): the CDF at x is cdf_at_edges @ this matrix."""
        e = self.edges
        xc = np.clip(x, e[0], e[-1])
        j = np.clip(np.searchsorted(e, xc, side="right") - 1, 0, e.size - 2)
        t = (xc - e[j]) / (e[j + 1] - e[j])
        m = np.zeros((e.size, x.size))
        cols = np.arange(x.size)
        m[j, cols] += 1 - t
        m[j + 1, cols] += t
        return m

    # -- estimation ----------------------------------------------------------------------------
    def _forward(self, x: np.ndarray) -> np.ndarray:
        """Bin probabilities (n, n_bins), float32, the smallest zeroed.

        The members are pooled geometrically (the normalized product of their PDFs, i.e. the
        softmax of the mean logits): a mean of PDFs is wider than each member's, a product
        keeps the width while averaging the members' independent errors.
        """
        xs = np.ascontiguousarray(x, dtype=np.float32)
        logits = None
        for weights, biases, _, _ in self._nets:
            h = xs
            for w, b in zip(weights[:-1], biases[:-1], strict=True):
                h = h @ w
                h += b
                np.maximum(h, 0.0, out=h)
            out = h @ weights[-1]
            out += biases[-1]
            if logits is None:
                logits = out
            else:
                logits += out
        assert logits is not None, "an ensemble has at least one member"
        logits -= logits.max(axis=1, keepdims=True)
        logits *= np.float32(1.0 / len(self._nets))
        np.maximum(logits, -30.0, out=logits)  # exp() stays above float32's denormals (slow on x86)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        p = np.zeros((len(x), self.edges.size - 1), dtype=np.float32)
        p[:, self._classes] = np.where(logits >= MIN_BIN_PROBABILITY, logits, 0.0)
        p /= p.sum(axis=1, keepdims=True)
        return p

    @staticmethod
    def _cdf_at_edges(p: np.ndarray) -> np.ndarray:
        cdf = np.zeros((p.shape[0], p.shape[1] + 1), dtype=np.float32)
        np.cumsum(p, axis=1, out=cdf[:, 1:])
        cdf /= cdf[:, -1:]
        return cdf

    def _cdf_interp(self, cdf: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Each object's histogram CDF at its own redshift z."""
        e = self.edges
        zc = np.clip(z, e[0], e[-1])
        j = np.clip(np.searchsorted(e, zc, side="right") - 1, 0, e.size - 2)
        t = (zc - e[j]) / (e[j + 1] - e[j])
        rows = np.arange(len(z))
        return cdf[rows, j] * (1 - t) + cdf[rows, j + 1] * t

    def _quantiles(self, cdf: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """(n, len(levels)): the histogram CDF inverted at each level (linear within a bin)."""
        n = cdf.shape[0]
        out = np.empty((n, levels.size))
        rows = np.arange(n)
        last = cdf.shape[1] - 2
        inner = cdf[:, 1:]
        widths = np.diff(self.edges)
        for i, level in enumerate(levels):
            if level <= 0.0:  # the support's lower end: the first bin with probability
                out[:, i] = self.edges[np.argmax(inner > 0.0, axis=1)]
                continue
            if level >= 1.0:  # the upper end: after the last bin with probability
                j = np.argmax(inner >= np.float32(1.0 - 1e-6), axis=1)
                out[:, i] = self.edges[np.minimum(j + 1, last + 1)]
                continue
            j = np.minimum(np.argmax(inner >= np.float32(level), axis=1), last)  # rows are non-decreasing
            c0, c1 = cdf[rows, j].astype(np.float64), cdf[rows, j + 1].astype(np.float64)
            t = np.where(c1 > c0, (level - c0) / np.where(c1 > c0, c1 - c0, 1.0), 0.0)
            out[:, i] = self.edges[j] + np.clip(t, 0.0, 1.0) * widths[j]
        return out

    def estimate(self, objects: Photometry) -> dict[str, np.ndarray]:
        x = (magnitude_colour_features(objects, self.softening) - self._mean) / self._std
        with threadpool_limits(self.threads, user_api="blas"):  # once: each call scans the loaded libraries
            parts = [self.summarize(self._forward(x[i:i + CHUNK_ROWS]))
                     for i in range(0, max(len(x), 1), CHUNK_ROWS)]
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}

    def summarize(self, p: np.ndarray) -> dict[str, np.ndarray]:
        """The output columns from bin probabilities (n, n_bins) summing to 1 per row."""
        cdf = self._cdf_at_edges(p)
        locs = self._quantiles(cdf, self._raw_levels)
        median = locs[:, MEDIAN_INDEX]
        # Point estimate: the median, unless another candidate redshift scores more than
        # ``tolerance`` higher: score = P(not an outlier) + core_weight P(|dz|/(1+z) <= core_width).
        score = p @ self._window  # (n, n_candidates), both windows in one matrix product
        best = score.max(axis=1)
        at_median = self._window_mass(cdf, median, OUTLIER_LIMIT)
        if self.core_weight:
            at_median += self.core_weight * self._window_mass(cdf, median, self.core_width)
        z_phot = np.where(at_median >= best - self.tolerance, median, self._cand[np.argmax(score, axis=1)])
        # Mode: the bin of highest density, refined by a parabola through it and its neighbours.
        widths = np.diff(self.edges)
        density = p / widths.astype(np.float32)
        j = np.argmax(density, axis=1)
        rows = np.arange(len(p))
        left = density[rows, np.maximum(j - 1, 0)].astype(np.float64)
        right = density[rows, np.minimum(j + 1, p.shape[1] - 1)].astype(np.float64)
        mid = density[rows, j].astype(np.float64)
        curv = left - 2 * mid + right
        shift = np.where(curv < 0, 0.5 * (left - right) / np.where(curv < 0, curv, -1.0), 0.0)
        mode = self.edges[j] + (0.5 + np.clip(shift, -0.5, 0.5)) * widths[j]
        return pdf_columns(locs, mode, z_phot=z_phot)
