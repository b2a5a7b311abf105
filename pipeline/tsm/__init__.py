"""Training Set Maker (issue 16): spec-z quality-flag homogenization so far (pipeline/tsm/flags.py)."""

from pipeline.tsm.flags import (
    DEFAULT_FLAG_RULES,
    FlagError,
    FlagResult,
    FlagRules,
    SurveyRule,
    homogenize_flags,
    load_flag_rules,
)

__all__ = ["DEFAULT_FLAG_RULES", "FlagError", "FlagResult", "FlagRules", "SurveyRule", "homogenize_flags",
           "load_flag_rules"]
