"""The one validation pipeline: a submission's metrics against the validation set's truth.

The metrics are the photo-z pipeline's own (:mod:`pipeline.quality`, the same code, so that a
challenge's numbers and a pipeline run's quality report mean the same thing): with
dz = (z_phot - z_true) / (1 + z_true),

- ``sigma_mad`` = 1.4826 median|dz - median(dz)|, ``bias`` = median(dz), ``outlier_fraction`` =
  fraction with |dz| > 0.15 (``pipeline.quality.OUTLIER_LIMIT``);
- ``pit``: the PIT (each PDF's CDF at the truth) histogram in 10 bins, its largest relative
  deviation from flat, the chi-square test of flatness (``pit_chi2``, ``pit_chi2_p``) and the
  fraction of PIT values within 1e-4 of 0 or 1 (``pit_outlier_rate``, truths outside the PDF);
- ``cde_loss``: integral of p^2 minus twice the mean p(z_true) (lower is better);
- ``crps``: the mean continuous ranked probability score (:func:`pipeline.quality.crps`).

Every metric is given over all objects and again in bins of true redshift
(:data:`DEFAULT_Z_BINS`) and, when the validation set has it, of i-band magnitude
(:data:`DEFAULT_MAG_BINS`); an object outside a binning's edges counts in the totals only.  The
result is JSON-ready (undefined values are null) and carries :data:`METRICS_VERSION`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.coop._models import Submission
from pipeline.quality import crps, json_safe, pdf_metrics, point_metrics

__all__ = ["ALL_METRICS", "DEFAULT_MAG_BINS", "DEFAULT_METRICS", "DEFAULT_Z_BINS", "METRICS_VERSION", "validate"]

#: The version of the metric code, recorded with every result (provenance): change it whenever a
#: metric's definition, binning default or output changes, so that older results can be told apart.
METRICS_VERSION = "coop-metrics-1"
ALL_METRICS = ("sigma_mad", "bias", "outlier_fraction", "pit", "cde_loss", "crps")
DEFAULT_METRICS = ALL_METRICS
#: Edges of the true-redshift bins: finer where most galaxies of an LSST-like sample are.
DEFAULT_Z_BINS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
#: Edges of the i-band magnitude bins (AB): up to the LSST gold sample's i < 25.3, and beyond.
DEFAULT_MAG_BINS = (16.0, 20.0, 21.0, 22.0, 23.0, 24.0, 24.5, 25.0, 25.3, 26.0)
_PIT_KEYS = ("pit_histogram", "pit_max_deviation", "pit_chi2", "pit_chi2_p", "pit_outlier_rate")
_PDF_METRICS = ("pit", "cde_loss", "crps")


def validate(sub: Submission, z_true: np.ndarray, mag_i: np.ndarray | None = None,
             metric_set: Sequence[str] = DEFAULT_METRICS, *, z_bins: Sequence[float] = DEFAULT_Z_BINS,
             mag_bins: Sequence[float] = DEFAULT_MAG_BINS) -> dict[str, Any]:
    """The metrics of ``sub`` against ``z_true`` (and ``mag_i``), both aligned with ``sub.ids``.

    PDF metrics are left out for a submission without PDFs.  Raises ValueError for an unknown
    metric or arrays that do not match the submission.
    """
    unknown = sorted(set(metric_set) - set(ALL_METRICS))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {', '.join(ALL_METRICS)}")
    z_true = np.asarray(z_true, dtype=np.float64)
    if z_true.shape != (sub.rows,):
        raise ValueError(f"{z_true.size} true redshifts for {sub.rows} objects")
    if mag_i is not None:
        mag_i = np.asarray(mag_i, dtype=np.float64)
        if mag_i.shape != (sub.rows,):
            raise ValueError(f"{mag_i.size} magnitudes for {sub.rows} objects")
    chosen = tuple(m for m in ALL_METRICS if m in metric_set)
    z_phot = np.asarray(sub.z_phot, dtype=np.float64)
    locs = None if sub.locs is None else np.asarray(sub.locs, dtype=np.float64)
    result: dict[str, Any] = {"metrics_version": METRICS_VERSION, "metric_set": list(chosen), "form": sub.form,
                              "pdf": locs is not None}
    result.update(_metrics(z_phot, locs, z_true, chosen))
    binnings: dict[str, Any] = {"z_true": _binned(z_true, z_bins, z_phot, locs, z_true, chosen)}
    if mag_i is not None:
        binnings["mag_i"] = _binned(mag_i, mag_bins, z_phot, locs, z_true, chosen)
    result["bins"] = binnings
    return dict(json_safe(result))


def _metrics(z_phot: np.ndarray, locs: np.ndarray | None, z_true: np.ndarray,
             chosen: tuple[str, ...]) -> dict[str, Any]:
    """The chosen metrics of one set of objects (all, or one bin)."""
    if z_true.size == 0:
        return {"n": 0}
    out: dict[str, Any] = {"n": int(z_true.size)}
    out.update({k: v for k, v in point_metrics(z_phot, z_true).items() if k in chosen})
    if locs is None:
        return out
    if "pit" in chosen or "cde_loss" in chosen:
        pdf = pdf_metrics(locs, z_true)
        keep = (_PIT_KEYS if "pit" in chosen else ()) + (("cde_loss",) if "cde_loss" in chosen else ())
        out.update({k: pdf[k] for k in keep})
    if "crps" in chosen:
        out["crps"] = float(np.mean(crps(locs, z_true)))
    return out


def _binned(values: np.ndarray, edges: Sequence[float], z_phot: np.ndarray, locs: np.ndarray | None,
            z_true: np.ndarray, chosen: tuple[str, ...]) -> dict[str, Any]:
    """The metrics in bins of ``values`` (objects outside the edges, or NaN, are in none)."""
    edge = np.asarray(edges, dtype=np.float64)
    if edge.ndim != 1 or edge.size < 2 or np.any(np.diff(edge) <= 0):
        raise ValueError(f"bin edges must increase strictly: {list(edges)}")
    index = np.searchsorted(edge, values, side="right") - 1
    index[values == edge[-1]] = edge.size - 2  # the last bin includes its upper edge
    inside = np.isfinite(values) & (index >= 0) & (index < edge.size - 1)
    order = np.argsort(np.where(inside, index, edge.size), kind="stable")
    counts = np.bincount(index[inside], minlength=edge.size - 1)
    starts = np.concatenate([[0], np.cumsum(counts)])
    bins = []
    for i in range(edge.size - 1):
        rows = order[starts[i]:starts[i + 1]]
        metrics = _metrics(z_phot[rows], None if locs is None else locs[rows], z_true[rows], chosen)
        bins.append({"lo": float(edge[i]), "hi": float(edge[i + 1]), **metrics})
    return {"edges": edge.tolist(), "outside": int(np.count_nonzero(~inside)), "bins": bins}
