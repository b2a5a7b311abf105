"""Spec-z quality flags: each survey's flag to one homogenized 0-6 scale and an instrument type.

The rules live in a YAML file (the shipped `flag_rules.yaml`, or a user's); its header documents
the rule language.  `homogenize_flags` is vectorised: it translates each (survey, distinct flag)
pair once and broadcasts the result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

DEFAULT_FLAG_RULES = Path(__file__).with_name("flag_rules.yaml")
INSTRUMENTS = ("spectroscopic", "grism", "photometric")
STAR_FLAG = 6
_FIRST = 5  # how many offending values an error names


class FlagError(ValueError):
    """A rule file that cannot be read, or a survey / flag value that no rule translates."""


@dataclass(frozen=True)
class SurveyRule:
    name: str
    source: str
    instrument: str
    values: dict[float, tuple[int, str]] = field(default_factory=dict)
    ranges: tuple[tuple[float, float, int], ...] = ()
    classes: dict[int, int] | None = None
    prefixes: frozenset[int] = frozenset({0})
    fraction: bool = False
    note: str = ""
    missing: int | None = None
    """Homogenized flag of a row with no flag (null or NaN); None: such a row is outside the rule."""

    def translate(self, value: float) -> tuple[int, str] | None:
        """(homogenized flag, instrument) for one survey flag value, None when outside the rule."""
        if math.isnan(value):
            return None if self.missing is None else (self.missing, self.instrument)
        if not math.isfinite(value):
            return None
        if value in self.values:
            return self.values[value]
        for low, high, flag in self.ranges:
            if low <= value <= high:
                return flag, self.instrument
        if self.classes is not None and value >= 0:
            whole = math.floor(value)
            if whole != value and not self.fraction:
                return None
            digit, prefix = whole % 10, whole // 10
            if prefix in self.prefixes and digit in self.classes:
                return self.classes[digit], self.instrument
        return None


@dataclass(frozen=True)
class FlagRules:
    """Survey rules by upper-cased survey name, and the file they came from."""

    surveys: dict[str, SurveyRule]
    path: Path | None = None

    def rule(self, survey: str) -> SurveyRule | None:
        return self.surveys.get(survey.upper())

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.surveys.values()]


@dataclass
class FlagResult:
    """Per row: homogenized flag (int8, -1 where untranslated), instrument ('' where untranslated),
    keep mask; and a report: rows/kept per survey, dropped rows by reason."""

    flags: np.ndarray
    instruments: np.ndarray
    keep: np.ndarray
    report: dict[str, Any]


def _where(path: Path | None, survey: str | None = None) -> str:
    place = str(path) if path is not None else "flag rules"
    return f"{place}: survey {survey!r}" if survey else place


def _number(raw: Any, what: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise FlagError(f"{what}: {raw!r} is not a number")
    return float(raw)


def _homogenized(raw: Any, what: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= STAR_FLAG:
        raise FlagError(f"{what}: homogenized flag {raw!r} is not an integer 0-6")
    return raw


def _instrument(raw: Any, what: str) -> str:
    if raw not in INSTRUMENTS:
        raise FlagError(f"{what}: instrument {raw!r} is not one of {', '.join(INSTRUMENTS)}")
    return str(raw)


def _survey_rule(name: str, body: Any, path: Path | None) -> SurveyRule:
    where = _where(path, name)
    if not isinstance(body, Mapping):
        raise FlagError(f"{where}: the rule must be a mapping")
    unknown = set(body) - {"source", "instrument", "values", "ranges", "decimal_class", "missing", "note"}
    if unknown:
        raise FlagError(f"{where}: unknown key(s) {sorted(map(str, unknown))}")
    source = body.get("source")
    if not isinstance(source, str) or not source.strip():
        raise FlagError(f"{where}: 'source' (the survey's documentation of its flag) is required")
    instrument = _instrument(body.get("instrument"), where)
    values: dict[float, tuple[int, str]] = {}
    raw_values = body.get("values") or {}
    if not isinstance(raw_values, Mapping):
        raise FlagError(f"{where}: 'values' must be a mapping of flag value to homogenized flag")
    for key, target in raw_values.items():
        value = _number(key, f"{where}: values")
        if isinstance(target, Mapping):
            values[value] = (_homogenized(target.get("flag"), f"{where}: values[{key}]"),
                             _instrument(target.get("instrument", instrument), f"{where}: values[{key}]"))
        else:
            values[value] = (_homogenized(target, f"{where}: values[{key}]"), instrument)
    ranges = []
    raw_ranges = body.get("ranges") or []
    if not isinstance(raw_ranges, list):
        raise FlagError(f"{where}: 'ranges' must be a list of {{min, max, flag}}")
    for item in raw_ranges:
        if not isinstance(item, Mapping) or set(item) != {"min", "max", "flag"}:
            raise FlagError(f"{where}: each range must be {{min, max, flag}}, not {item!r}")
        ranges.append((_number(item["min"], f"{where}: ranges"), _number(item["max"], f"{where}: ranges"),
                       _homogenized(item["flag"], f"{where}: ranges")))
    classes: dict[int, int] | None = None
    prefixes: frozenset[int] = frozenset({0})
    fraction = False
    decimal = body.get("decimal_class")
    if decimal is not None:
        if not isinstance(decimal, Mapping) or not isinstance(decimal.get("classes"), Mapping):
            raise FlagError(f"{where}: 'decimal_class' needs a 'classes' mapping of digit to homogenized flag")
        classes = {}
        for digit, target in decimal["classes"].items():
            if isinstance(digit, bool) or not isinstance(digit, int) or not 0 <= digit <= 9:
                raise FlagError(f"{where}: decimal_class digit {digit!r} is not 0-9")
            classes[digit] = _homogenized(target, f"{where}: decimal_class[{digit}]")
        raw_prefixes = decimal.get("prefixes", [0])
        if not isinstance(raw_prefixes, list) or not all(isinstance(p, int) and p >= 0 for p in raw_prefixes):
            raise FlagError(f"{where}: decimal_class prefixes must be a list of non-negative integers")
        prefixes = frozenset(raw_prefixes)
        fraction = bool(decimal.get("fraction", False))
    missing = None if body.get("missing") is None else _homogenized(body["missing"], f"{where}: missing")
    if not values and not ranges and classes is None and missing is None:
        raise FlagError(f"{where}: no 'values', 'ranges', 'decimal_class' or 'missing'")
    return SurveyRule(name=name, source=source.strip(), instrument=instrument, values=values,
                      ranges=tuple(ranges), classes=classes, prefixes=prefixes, fraction=fraction,
                      note=str(body.get("note", "")), missing=missing)


def load_flag_rules(path: str | Path | None = None) -> FlagRules:
    """Read a translation file (default: the shipped one); FlagError names what is wrong."""
    file = Path(path) if path is not None else DEFAULT_FLAG_RULES
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FlagError(f"{file}: cannot read the flag rules ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise FlagError(f"{file}: not valid YAML ({exc})") from exc
    if not isinstance(document, Mapping) or not isinstance(document.get("surveys"), Mapping):
        raise FlagError(f"{file}: expected a mapping with a 'surveys' mapping of survey name to rule")
    surveys: dict[str, SurveyRule] = {}
    for name, body in document["surveys"].items():
        name = str(name)
        if name.upper() in surveys:
            raise FlagError(f"{_where(file, name)}: defined twice (names are case-insensitive)")
        surveys[name.upper()] = _survey_rule(name, body, file)
    if not surveys:
        raise FlagError(f"{file}: no survey rules")
    return FlagRules(surveys=surveys, path=file)


def _as_numpy(values: Any, *, text: bool) -> np.ndarray:
    """numpy array from a numpy array, a pyarrow array/chunked array or a sequence; nulls become
    '' (text) or NaN (numbers)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        if text:
            if pa.types.is_dictionary(values.type):
                values = values.dictionary_decode()
            values = pc.fill_null(pc.cast(values, pa.string()), "")
            return np.asarray(values.to_numpy(zero_copy_only=False), dtype=object)
        values = pc.fill_null(pc.cast(values, pa.float64()), math.nan)
        return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
    if text:
        array = np.asarray(values, dtype=object)
        array[_is_none(array)] = ""
        return array.astype(str).astype(object)
    return np.asarray(values, dtype=np.float64)


def _codes(surveys: Any, names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct survey names and each row's index into them: Arrow's dictionary encoding
    when the input is Arrow (sorting a million Python strings takes a second)."""
    if isinstance(surveys, pa.ChunkedArray | pa.Array):
        array = surveys.combine_chunks() if isinstance(surveys, pa.ChunkedArray) else surveys
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        encoded = pc.dictionary_encode(pc.fill_null(pc.cast(array, pa.string()), ""))
        return (np.asarray(encoded.dictionary.to_pylist(), dtype=object),
                np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64))
    return np.unique(names, return_inverse=True)


def _is_none(array: np.ndarray) -> np.ndarray:
    """Where an object array holds None."""
    return np.array([v is None for v in array.ravel()], dtype=bool).reshape(array.shape)


def _shown(values: Sequence[float]) -> str:
    shown = [str(int(v)) if math.isfinite(v) and v == int(v) else str(v) for v in values[:_FIRST]]
    more = f" (and {len(values) - _FIRST} more)" if len(values) > _FIRST else ""
    return ", ".join(shown) + more


def homogenize_flags(surveys: Any, flags: Any, rules: FlagRules, *,
                     on_unknown: Literal["error", "drop"] = "error", min_flag: int = 0,
                     keep_stars: bool = False) -> FlagResult:
    """Translate each row's (survey, flag) to a homogenized flag and instrument type.

    A survey with no rule, or a flag outside its rule, raises FlagError naming the survey and the
    first few values, unless on_unknown="drop" (then counted in report["dropped"]).  Rows whose
    homogenized flag is below `min_flag`, and stars (6) unless `keep_stars`, are cut and counted.
    """
    if on_unknown not in ("error", "drop"):
        raise ValueError(f"on_unknown must be 'error' or 'drop', not {on_unknown!r}")
    names = _as_numpy(surveys, text=True)
    values = _as_numpy(flags, text=False)
    if names.shape != values.shape or names.ndim != 1:
        raise ValueError(f"surveys and flags must be 1-d of one length, not {names.shape} and {values.shape}")
    n = len(names)
    out_flags = np.full(n, -1, dtype=np.int8)
    out_instruments = np.full(n, "", dtype=object)
    dropped = {"unknown_survey": 0, "unknown_flag": 0, "below_min_flag": 0, "star": 0}
    per_survey: dict[str, dict[str, int]] = {}
    unique_names, name_index = _codes(surveys, names)
    for i, name in enumerate(unique_names):
        rows = np.flatnonzero(name_index == i)
        counts = per_survey.setdefault(str(name), {"rows": 0, "kept": 0, "unknown_survey": 0, "unknown_flag": 0,
                                                    "below_min_flag": 0, "star": 0})
        counts["rows"] += len(rows)
        rule = rules.rule(str(name))
        if rule is None:
            if on_unknown == "error":
                known = ", ".join(sorted(rules.names))
                raise FlagError(f"survey {str(name)!r} ({len(rows)} rows) has no flag rule in "
                                f"{_where(rules.path)}; known surveys: {known}")
            counts["unknown_survey"] += len(rows)
            dropped["unknown_survey"] += len(rows)
            continue
        distinct, value_index = np.unique(values[rows], return_inverse=True)
        translated = [rule.translate(float(v)) for v in distinct]
        missing = [float(v) for v, t in zip(distinct, translated, strict=True) if t is None]
        if missing and on_unknown == "error":
            raise FlagError(f"survey {str(name)!r}: flag value(s) {_shown(missing)} outside its rule in "
                            f"{_where(rules.path)}")
        lookup_flag = np.array([-1 if t is None else t[0] for t in translated], dtype=np.int8)
        lookup_instrument = np.array(["" if t is None else t[1] for t in translated], dtype=object)
        out_flags[rows] = lookup_flag[value_index]
        out_instruments[rows] = lookup_instrument[value_index]
        unknown = int(np.count_nonzero(out_flags[rows] < 0))
        counts["unknown_flag"] += unknown
        dropped["unknown_flag"] += unknown
    keep = out_flags >= 0
    stars = out_flags == STAR_FLAG
    below = keep & ~stars & (out_flags < min_flag)
    star_cut = stars if not keep_stars else np.zeros(n, dtype=bool)
    keep &= ~below & ~star_cut
    for i, name in enumerate(unique_names):
        mask = name_index == i
        counts = per_survey[str(name)]
        counts["below_min_flag"] = int(np.count_nonzero(below & mask))
        counts["star"] = int(np.count_nonzero(star_cut & mask))
        counts["kept"] = int(np.count_nonzero(keep & mask))
    dropped["below_min_flag"] = int(np.count_nonzero(below))
    dropped["star"] = int(np.count_nonzero(star_cut))
    report = {"rows": n, "kept": int(np.count_nonzero(keep)), "dropped": dropped, "surveys": per_survey,
              "min_flag": min_flag, "keep_stars": keep_stars, "rules": str(rules.path) if rules.path else None}
    return FlagResult(flags=out_flags, instruments=out_instruments, keep=keep, report=report)
