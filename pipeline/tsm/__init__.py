"""Training Set Maker: combine spec-z catalogs, crossmatch them with the Object catalog, split,
publish with provenance (docs/tsm.md).

The notebook API: ``combine``, ``crossmatch``, ``split``, ``run`` with ``load_config`` /
``parse_config``, and the flag translation.  Every name is imported on first use: ``pzvo``
imports this package to build its parser (``pipeline.tsm.cli``), and the web process checks job
configurations (``pipeline.tsm.checks``) without Dask.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.tsm.combine import CombineResult, combine
    from pipeline.tsm.config import TsmConfig, TsmConfigError, load_config, parse_config
    from pipeline.tsm.crossmatch import CrossmatchResult, crossmatch
    from pipeline.tsm.flags import (
        DEFAULT_FLAG_RULES,
        FlagError,
        FlagResult,
        FlagRules,
        SurveyRule,
        homogenize_flags,
        load_flag_rules,
    )
    from pipeline.tsm.run import TsmResult, run
    from pipeline.tsm.split import SplitResult, split

_WHERE = {
    "combine": "combine", "CombineResult": "combine",
    "TsmConfig": "config", "TsmConfigError": "config", "load_config": "config", "parse_config": "config",
    "crossmatch": "crossmatch", "CrossmatchResult": "crossmatch",
    "DEFAULT_FLAG_RULES": "flags", "FlagError": "flags", "FlagResult": "flags", "FlagRules": "flags",
    "SurveyRule": "flags", "homogenize_flags": "flags", "load_flag_rules": "flags",
    "run": "run", "TsmResult": "run", "split": "split", "SplitResult": "split",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"pipeline.tsm.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'pipeline.tsm' has no attribute {name!r}")


__all__ = ["CombineResult", "CrossmatchResult", "DEFAULT_FLAG_RULES", "FlagError", "FlagResult", "FlagRules",
           "SplitResult", "SurveyRule", "TsmConfig", "TsmConfigError", "TsmResult", "combine", "crossmatch",
           "homogenize_flags", "load_config", "load_flag_rules", "parse_config", "run", "split"]
