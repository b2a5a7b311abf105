"""Photo-z estimators behind one interface (:class:`Estimator`), looked up by name.

Built in: ``knn`` (the default), ``mlp`` (a small neural network over redshift bins), ``cells`` (k-means colour cells) and ``toy`` (closed-form, for
tests).  Another package adds its own with :func:`register`, or a configuration names a class
as ``module:Class``.
"""
from __future__ import annotations

import importlib
from typing import Any

from pipeline.estimators.base import Estimator, OutputColumn, Photometry
from pipeline.estimators.cells import ColourCellEstimator
from pipeline.estimators.knn import NearestNeighbourEstimator
from pipeline.estimators.mlp import NeuralNetworkEstimator
from pipeline.estimators.toy import LinearToyEstimator

ESTIMATORS: dict[str, type[Estimator]] = {
    cls.name: cls for cls in (NearestNeighbourEstimator, NeuralNetworkEstimator, ColourCellEstimator,
                               LinearToyEstimator)
}
DEFAULT_ESTIMATOR = NearestNeighbourEstimator.name


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


__all__ = ["DEFAULT_ESTIMATOR", "ESTIMATORS", "Estimator", "OutputColumn", "Photometry", "make_estimator",
           "register"]
