"""The interface every photo-z estimator of the pipeline implements.

Small on purpose, so that a recipient's algorithm (or RAIL's, behind an adapter) plugs in: an
estimator is trained once on a training set, then estimates partitions independently (so Dask
can send one copy of the trained model to every worker and run partitions anywhere), and it
declares its output columns and version (so the table description, the felis schema and the
provenance record derive from the estimator, not from a hand-written list).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from pipeline.pdf import HI68_INDEX, LEVELS, LO68_INDEX, MEDIAN_INDEX, cdf_at
from pipeline.photometry import BANDS, FLUX_SIGMA_10YR, asinh_magnitude
from vo_service.core.columns import Column


@dataclass(frozen=True)
class Photometry:
    """Fluxes of n objects in the six LSST bands, in nJy, as the Object catalog gives them.

    ``flux`` and ``flux_err`` are (n, 6) arrays in :data:`BANDS` order; ``flux_err`` is None
    when the input has no errors (a magnitude file without ``<band>_err`` columns).  NaN flux
    means "not measured".
    """

    flux: np.ndarray
    flux_err: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.flux.ndim != 2 or self.flux.shape[1] != len(BANDS):
            raise ValueError(f"flux must be (n, {len(BANDS)}), got {self.flux.shape}")

    def __len__(self) -> int:
        return self.flux.shape[0]

    def take(self, index: np.ndarray | slice) -> Photometry:
        return Photometry(self.flux[index], None if self.flux_err is None else self.flux_err[index])

    def softening(self) -> np.ndarray:
        """Per-band asinh softening (nJy): the median positive flux error, the data's own noise
        level, or LSST's 10-year 1-sigma depth where there are no errors."""
        depth = np.array([FLUX_SIGMA_10YR[b] for b in BANDS])
        if self.flux_err is None:
            return depth
        soft = np.nanmedian(np.where(self.flux_err > 0, self.flux_err, np.nan), axis=0)
        return np.where(np.isfinite(soft), soft, depth)

    def asinh_magnitudes(self, softening: np.ndarray) -> np.ndarray:
        """(n, 6) asinh magnitudes: finite for zero and negative fluxes."""
        return np.column_stack([asinh_magnitude(self.flux[:, j], softening[j]) for j in range(len(BANDS))])


def output_column(name: str, arrow_type: pa.DataType, description: str, ucd: str | None = None,
                  unit: str | None = None, *, principal: bool = False, indexed: bool = False) -> Column:
    """One column an estimator writes, described once for Parquet, TAP_SCHEMA and felis."""
    return Column.from_arrow(name, arrow_type, description=description, ucd=ucd, unit=unit,
                             principal=principal, indexed=indexed)


#: The columns of a PDF-producing estimator that follows the pipeline's conventions.
PDF_COLUMNS = (
    output_column("z_phot", pa.float32(), "Photometric redshift point estimate: the median of the PDF.",
                 "src.redshift.phot", principal=True, indexed=True),
    output_column("z_mode", pa.float32(), "Mode of the photo-z PDF.", "src.redshift.phot", principal=True),
    output_column("z_err", pa.float32(), "Half-width of the central 68 % interval of the photo-z PDF.",
                 "stat.error;src.redshift.phot", principal=True),
    output_column("odds", pa.float32(), "Probability within 0.06(1+z) of the mode (BPZ odds).",
                 "stat.likelihood;src.redshift.phot", principal=True),
    output_column("z_pdf", pa.list_(pa.float32(), len(LEVELS)),
                 "Photo-z PDF as the redshifts at which its CDF reaches the quantile levels "
                 + ", ".join(f"{q:g}" for q in LEVELS) + " (qp 'quant' parameterization).",
                 "src.redshift.phot;stat.probability"),
)


#: Half-width, in units of (1 + z), of the window around the mode that ``odds`` integrates (BPZ).
ODDS_HALF_WIDTH = 0.06


def pdf_columns(locs: np.ndarray, mode: np.ndarray, z_phot: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The :data:`PDF_COLUMNS` from quantile ``locs`` (n, len(LEVELS)) and the ``mode``: ``z_phot``
    the median unless given, ``z_err`` half the central 68 % interval, ``odds`` the probability
    within ODDS_HALF_WIDTH (1 + mode) of the mode."""
    w = ODDS_HALF_WIDTH * (1.0 + mode)
    odds = cdf_at(locs, mode + w) - cdf_at(locs, mode - w)
    return {
        "z_phot": (locs[:, MEDIAN_INDEX] if z_phot is None else z_phot).astype(np.float32),
        "z_mode": mode.astype(np.float32),
        "z_err": (0.5 * (locs[:, HI68_INDEX] - locs[:, LO68_INDEX])).astype(np.float32),
        "odds": np.clip(odds, 0.0, 1.0).astype(np.float32),
        "z_pdf": locs.astype(np.float32),
    }


class Estimator(ABC):
    """A photo-z algorithm: ``fit`` once, then ``estimate`` any number of partitions.

    Subclasses set :attr:`name` and :attr:`version` (bump the version whenever outputs change
    for the same inputs: it is part of the provenance and of the resume fingerprint) and take
    their parameters as keyword arguments, which :attr:`params` returns for the provenance.
    A fitted estimator must pickle: it is broadcast to the Dask workers.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    #: An estimator may set its own (a description that names one of its parameters).
    columns: tuple[Column, ...] = PDF_COLUMNS

    def __init__(self, **params: Any) -> None:
        self._params = dict(params)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    @abstractmethod
    def fit(self, training: Photometry, redshift: np.ndarray) -> Estimator:
        """Train on objects with known redshift; returns self."""

    @abstractmethod
    def estimate(self, objects: Photometry) -> dict[str, np.ndarray]:
        """Estimate one partition: a mapping from every name in :attr:`columns` to an array
        (the PDF as an (n, len(LEVELS)) array)."""

    def describe(self) -> dict[str, Any]:
        """Name, version and parameters: what a provenance record of a run needs."""
        return {"name": self.name, "version": self.version, "params": self.params}

