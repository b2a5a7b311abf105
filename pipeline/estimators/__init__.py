"""Photo-z estimators behind one interface (:class:`Estimator`), looked up by name.

Built in: ``mlp`` (the default: an ensemble of small neural networks over redshift bins),
``knn`` (nearest neighbours in colour-magnitude space, the fastest), ``cells`` (k-means colour
cells), ``rail`` (any RAIL informer/estimator pair, with the optional ``[rail]`` extra) and
``toy`` (closed-form, for tests); docs/pipeline.md compares them.  Another package
adds its own with :func:`register`, or a configuration names a class as ``module:Class``.
"""
from __future__ import annotations

import importlib
from typing import Any

from pipeline.estimators.base import Estimator, Photometry, output_column
from pipeline.estimators.cells import ColourCellEstimator
from pipeline.estimators.knn import NearestNeighbourEstimator
from pipeline.estimators.mlp import NeuralNetworkEstimator
from pipeline.estimators.rail import RailEstimator
from pipeline.estimators.toy import LinearToyEstimator

ESTIMATORS: dict[str, type[Estimator]] = {
    cls.name: cls for cls in (NearestNeighbourEstimator, NeuralNetworkEstimator, ColourCellEstimator,
                               RailEstimator, LinearToyEstimator)
}
#: The one that meets the quality goals (docs/performance.md); ``knn`` is 2x faster.
DEFAULT_ESTIMATOR = NeuralNetworkEstimator.name


def register(cls: type[Estimator]) -> type[Estimator]:
    """Make an estimator class available by its ``name`` (usable as a decorator)."""
    ESTIMATORS[cls.name] = cls
    return cls


def make_estimator(name: str, params: dict[str, Any] | None = None) -> Estimator:
    """An unfitted estimator from its registered name or ``package.module:Class``."""
    if ":" in name:
        module, _, attr = name.partition(":")
        cls = getattr(importlib.import_module(module), attr)
    else:
        try:
            cls = ESTIMATORS[name]
        except KeyError:
            raise ValueError(f"unknown estimator {name!r}; known: {sorted(ESTIMATORS)}") from None
    return cls(**(params or {}))


__all__ = ["DEFAULT_ESTIMATOR", "ESTIMATORS", "Estimator", "Photometry", "make_estimator", "output_column",
           "register"]
