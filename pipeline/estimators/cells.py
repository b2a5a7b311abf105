"""A second, different estimator: colour cells from k-means, each with its redshift PDF.

The idea of the self-organizing-map estimators of DES (Buchs et al. 2019), with k-means in place
of the SOM: training partitions colour-magnitude space into cells and keeps the redshift
distribution of each cell's training galaxies; estimation assigns an object to its nearest
cell centre and copies that cell's PDF.  It shares nothing with the kNN estimator but the
features and the output convention, which is the point: it proves the estimator interface
(train once, estimate partitions, declare columns and version) is not shaped around kNN.
Coarser than kNN (every object of a cell gets the same PDF), and faster.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from scipy.cluster.vq import kmeans2
from scipy.spatial import cKDTree

from pipeline.estimators.base import Estimator, Photometry
from pipeline.estimators.knn import (
    DEFAULT_WEIGHTS,
    colour_magnitude_features,
    summarize,
)
from pipeline.pdf import LEVELS
from pipeline.photometry import BANDS, FLUX_SIGMA_10YR

log = logging.getLogger(__name__)


class ColourCellEstimator(Estimator):
    """k-means colour cells with per-cell quantile PDFs."""

    name = "cells"
    version = "1.0"

    def __init__(self, cells: int = 1000, seed: int = 12345, iterations: int = 20, **extra: Any) -> None:
        if extra:
            raise TypeError(f"unknown cells parameters: {sorted(extra)}")
        super().__init__(cells=int(cells), seed=int(seed), iterations=int(iterations))
        self.cells, self.seed, self.iterations = int(cells), int(seed), int(iterations)
        self._tree: cKDTree | None = None

    def fit(self, training: Photometry, redshift: np.ndarray) -> ColourCellEstimator:
        started = time.perf_counter()
        self.softening = np.array([FLUX_SIGMA_10YR[b] for b in BANDS])
        x = colour_magnitude_features(training, self.softening)
        self._mean, self._std = x.mean(axis=0), np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
        points = (x - self._mean) / self._std * np.asarray(DEFAULT_WEIGHTS)
        n_cells = max(1, min(self.cells, len(points) // 10))
        centres, label = kmeans2(points, n_cells, iter=self.iterations, minit="points", seed=self.seed)
        z = np.asarray(redshift, dtype=np.float64)
        order = np.argsort(label, kind="stable")
        bounds = np.searchsorted(label[order], np.arange(n_cells + 1))
        locs = np.empty((n_cells, LEVELS.size))
        samples = np.full((n_cells, 11), np.nan)
        for c in range(n_cells):
            members = np.sort(z[order[bounds[c]:bounds[c + 1]]])
            if members.size == 0:
                members = np.quantile(z, LEVELS)  # an empty cell predicts the training n(z)
            locs[c] = np.quantile(members, LEVELS)
            samples[c] = np.quantile(members, np.linspace(0, 1, 11))
        self._centres = centres
        self._columns = summarize(locs, samples)
        log.info("trained estimator", extra={"estimator": self.name, "rows": len(z), "cells": n_cells,
                                             "seconds": round(time.perf_counter() - started, 3)})
        return self

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_tree": None}

    def estimate(self, objects: Photometry) -> dict[str, np.ndarray]:
        if self._tree is None:
            self._tree = cKDTree(self._centres)
        x = (colour_magnitude_features(objects, self.softening) - self._mean) / self._std
        _, cell = self._tree.query(x * np.asarray(DEFAULT_WEIGHTS), k=1)
        return {name: values[cell] for name, values in self._columns.items()}
