"""Training Set Maker: combine spec-z catalogs, crossmatch them with the Object catalog, split,
publish with provenance (docs/tsm.md).

The notebook API: ``combine``, ``crossmatch``, ``split``, ``run`` with ``load_config`` /
``parse_config``.  ``crossmatch`` and ``run`` are imported on first use: they bring Dask, which
the web process (checking a job's configuration through :mod:`pipeline.tsm.checks`) never needs.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pipeline.tsm.combine import CombineResult, combine
from pipeline.tsm.config import TsmConfig, TsmConfigError, load_config, parse_config
from pipeline.tsm.flags import (
    DEFAULT_FLAG_RULES,
    FlagError,
    FlagResult,
    FlagRules,
    SurveyRule,
    homogenize_flags,
    load_flag_rules,
)
from pipeline.tsm.split import SplitResult, split

if TYPE_CHECKING:
    from pipeline.tsm.crossmatch import CrossmatchResult, crossmatch
    from pipeline.tsm.run import TsmResult, run

_LAZY = {"crossmatch": "pipeline.tsm.crossmatch", "CrossmatchResult": "pipeline.tsm.crossmatch",
         "run": "pipeline.tsm.run", "TsmResult": "pipeline.tsm.run"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipeline.tsm' has no attribute {name!r}")


__all__ = ["DEFAULT_FLAG_RULES", "CombineResult", "CrossmatchResult", "FlagError", "FlagResult", "FlagRules",
           "SplitResult", "SurveyRule", "TsmConfig", "TsmConfigError", "TsmResult", "combine", "crossmatch",
           "homogenize_flags", "load_config", "load_flag_rules", "parse_config", "run", "split"]
