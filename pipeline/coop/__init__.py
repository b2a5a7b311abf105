"""The PZ Validation Cooperative (docs/coop.md): challenges on standard training and validation
sets (:mod:`pipeline.coop.challenges`), participants' result files read in any of qp's PDF forms
and checked (:mod:`pipeline.coop.formats`, :mod:`pipeline.coop.checks`), stored in one standard
form and registered (:mod:`pipeline.coop.submit`), validated by one metrics pipeline
(:mod:`pipeline.coop.metrics`) in an async job (:mod:`pipeline.coop.job`).

Names are imported on first use: ``pzvo`` imports this package to build its parser.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.coop._models import Submission, SubmissionError

_WHERE = {"Submission": "_models", "SubmissionError": "_models"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"pipeline.coop.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'pipeline.coop' has no attribute {name!r}")


__all__ = ["Submission", "SubmissionError"]
