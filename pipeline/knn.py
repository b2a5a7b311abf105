"""A k-nearest-neighbour photo-z estimator with a PDF, vectorized with a KD-tree.

Features are colours plus the i magnitude, standardized on the training set; the PDF of each
object is a Gaussian-kernel density of its neighbours' redshifts on a fixed grid, from which the
point estimate (mode), a 68 % half-width and the BPZ-style odds follow.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from pipeline.photometry import BANDS


@dataclass
class PhotoZEstimate:
    z_phot: np.ndarray
    z_err: np.ndarray
    odds: np.ndarray


def features(mags: dict[str, np.ndarray]) -> np.ndarray:
    """Colours of adjacent bands and the i magnitude; non-detections become the band's limit."""
    filled = {b: np.nan_to_num(np.asarray(mags[b], float), nan=30.0) for b in BANDS}
    cols = [filled[a] - filled[b] for a, b in zip(BANDS, BANDS[1:])]
    cols.append(filled["i"])
    return np.column_stack(cols)


class KNNPhotoZ:
    """Fit on spectroscopic redshifts, predict point estimates with a PDF summary."""

    def __init__(self, k: int = 20, zgrid: np.ndarray | None = None, bandwidth: float = 0.02) -> None:
        self.k = k
        self.zgrid = np.linspace(0.0, 3.5, 351) if zgrid is None else zgrid
        self.bandwidth = bandwidth

    def fit(self, mags: dict[str, np.ndarray], z: np.ndarray) -> "KNNPhotoZ":
        x = features(mags)
        self._mean, self._std = x.mean(axis=0), x.std(axis=0)
        self._tree = cKDTree((x - self._mean) / self._std)
        self._z = np.asarray(z, float)
        return self

    def predict(self, mags: dict[str, np.ndarray], chunk: int = 2_000) -> PhotoZEstimate:
        x = (features(mags) - self._mean) / self._std
        out = [self._predict_chunk(x[i:i + chunk]) for i in range(0, len(x), chunk)]
        return PhotoZEstimate(*(np.concatenate(parts) for parts in zip(*out)))

    def _predict_chunk(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        _, idx = self._tree.query(x, k=self.k)
        zn = self._z[idx]
        dz = self.zgrid[None, None, :] - zn[:, :, None]
        pdf = np.exp(-0.5 * (dz / self.bandwidth) ** 2).sum(axis=1)
        pdf /= pdf.sum(axis=1, keepdims=True)
        mode = self.zgrid[np.argmax(pdf, axis=1)]
        cdf = np.cumsum(pdf, axis=1)
        lo = self.zgrid[np.argmax(cdf >= 0.16, axis=1)]
        hi = self.zgrid[np.argmax(cdf >= 0.84, axis=1)]
        window = np.abs(self.zgrid[None, :] - mode[:, None]) <= 0.06 * (1.0 + mode[:, None])
        odds = (pdf * window).sum(axis=1)
        return mode, np.maximum((hi - lo) / 2.0, 1e-4), np.clip(odds, 0.0, 1.0)
