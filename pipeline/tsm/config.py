"""The YAML configuration of a Training Set Maker run (``pzvo tsm run CONFIG.yaml``).

``docs/examples/tsm_demo.yaml`` documents every key.  Relative paths are relative to the
project root, as in the pipeline's configuration.  Everything is checked here, before any work
starts: a run that begins has parameters that make sense.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.product_tables import is_product_spec
from pipeline.tsm.combine import MODES, STANDARD_COLUMNS, TIES
from pipeline.tsm.inputs import CatalogSpec
from pipeline.tsm.split import check_split
from vo_service.core.settings import PROJECT_ROOT

#: Output names: ``<name>_validation`` must fit the registry's 40 characters.
NAME = re.compile(r"^[a-z][a-z0-9_]{0,28}$")
TOP_KEYS = frozenset({"catalogs", "objects", "flags", "flag_cut", "on_unknown", "keep_stars", "mode", "radius_arcsec",
                      "match_radius_arcsec", "tie", "z_threshold", "survey_priority", "extra_columns", "split",
                      "magnitudes", "columns", "keep_unmatched", "plots", "output", "dask", "seed"})


class TsmConfigError(ValueError):
    """A TSM configuration that is malformed; the message names the key."""


@dataclass(frozen=True)
class ObjectsSpec:
    """Where the Object catalog comes from: a product, a Parquet dataset, or a remote TAP table."""

    product: str | None = None
    path: Path | None = None
    tap_url: str | None = None
    tap_table: str | None = None
    tap_token_env: str | None = None

    def describe(self) -> str:
        if self.product:
            return self.product
        if self.path:
            return str(self.path)
        return f"{self.tap_table} at {self.tap_url}"


@dataclass(frozen=True)
class SplitSpec:
    fraction: float = 0.7
    seed: int = 0
    stratify: int | bool | None = None
    hook: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputSpec:
    name: str = "tsm"
    release: str | None = None
    publish: bool = False
    dir: Path = PROJECT_ROOT / "var" / "tsm"
    official: bool = False
    description: str | None = None


@dataclass(frozen=True)
class TsmConfig:
    catalogs: tuple[CatalogSpec, ...]
    objects: ObjectsSpec | None
    flags: Path | None = None  # None: the shipped rules
    flag_cut: int = 0
    on_unknown: str = "error"
    keep_stars: bool = False
    mode: str = "remove_duplicates"
    radius_arcsec: float = 1.0
    match_radius_arcsec: float = 1.0
    tie: str = "keep_all"
    z_threshold: float = 0.001
    survey_priority: tuple[str, ...] = ()
    extra_columns: tuple[str, ...] = ()
    split: SplitSpec = field(default_factory=SplitSpec)
    magnitudes: bool = False
    columns: tuple[str, ...] | None = None
    keep_unmatched: bool = False
    plots: bool = True
    output: OutputSpec = field(default_factory=OutputSpec)
    scheduler: str | None = None
    workers: int | None = None
    seed: int = 0

    def parameters(self) -> dict[str, Any]:
        """Every parameter, JSON-ready, as provenance and the run record keep them."""
        return {
            "catalogs": [{"source": c.source, "columns": dict(c.columns), "survey": c.survey} for c in self.catalogs],
            "objects": self.objects.describe() if self.objects else None,
            "flags": str(self.flags) if self.flags else "default", "flag_cut": self.flag_cut,
            "on_unknown": self.on_unknown, "keep_stars": self.keep_stars, "mode": self.mode,
            "radius_arcsec": self.radius_arcsec, "match_radius_arcsec": self.match_radius_arcsec,
            "tie": self.tie, "z_threshold": self.z_threshold, "survey_priority": list(self.survey_priority),
            "extra_columns": list(self.extra_columns),
            "split": {"fraction": self.split.fraction, "seed": self.split.seed, "stratify": self.split.stratify,
                      "hook": self.split.hook, "params": self.split.params},
            "magnitudes": self.magnitudes, "columns": list(self.columns) if self.columns is not None else None,
            "keep_unmatched": self.keep_unmatched, "seed": self.seed,
            "output": {"name": self.output.name, "release": self.output.release, "publish": self.output.publish},
        }


def _path(value: Any, base: Path) -> Path:
    path = Path(str(value))
    return path if path.is_absolute() else (base / path).resolve()


def _number(raw: Mapping[str, Any], key: str, default: float, *, positive: bool = True) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TsmConfigError(f"{key} must be a number, not {value!r}")
    if positive and value <= 0:
        raise TsmConfigError(f"{key} must be > 0, not {value!r}")
    if not positive and value < 0:
        raise TsmConfigError(f"{key} must be >= 0, not {value!r}")
    return float(value)


def _int(raw: Mapping[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TsmConfigError(f"{key} must be an integer, not {value!r}")
    return value


def _choice(raw: Mapping[str, Any], key: str, default: str, choices: tuple[str, ...]) -> str:
    value = raw.get(key, default)
    if value not in choices:
        raise TsmConfigError(f"{key} must be one of {', '.join(choices)}, not {value!r}")
    return str(value)


def _strings(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TsmConfigError(f"{key} must be a list of names, not {value!r}")
    return tuple(value)


def _catalog(item: Any, index: int, base: Path) -> CatalogSpec:
    where = f"catalogs[{index}]"
    if isinstance(item, str):
        item = {"source": item}
    if not isinstance(item, Mapping):
        raise TsmConfigError(f"{where} must be product:NAME[@V], a file path, or a mapping with 'source'")
    unknown = set(item) - {"source", "columns", "survey", "label"}
    if unknown:
        raise TsmConfigError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    source = item.get("source")
    if not isinstance(source, str) or not source:
        raise TsmConfigError(f"{where}: 'source' (product:NAME[@V] or a file path) is required")
    columns = item.get("columns") or {}
    if not isinstance(columns, Mapping) or not all(isinstance(v, str) for v in columns.values()):
        raise TsmConfigError(f"{where}: 'columns' must map standard keys to column names")
    bad = sorted(set(map(str, columns)) - set(STANDARD_COLUMNS))
    if bad:
        raise TsmConfigError(f"{where}: unknown column key(s) {', '.join(bad)}; the keys are "
                             f"{', '.join(STANDARD_COLUMNS)}")
    survey = item.get("survey")
    if survey is not None and not isinstance(survey, str):
        raise TsmConfigError(f"{where}: 'survey' must be a survey name")
    label = item.get("label")
    return CatalogSpec(source=source if is_product_spec(source) else str(_path(source, base)),
                       columns={str(k): v for k, v in columns.items()}, survey=survey,
                       label=str(label) if label else (source if is_product_spec(source) else Path(source).name))


def _objects(raw: Any, base: Path) -> ObjectsSpec | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return ObjectsSpec(product=raw) if is_product_spec(raw) else ObjectsSpec(path=_path(raw, base))
    if isinstance(raw, Mapping) and "tap" in raw:
        unknown = set(raw) - {"tap", "table", "token_env"}
        if unknown or not isinstance(raw.get("table"), str):
            raise TsmConfigError("objects: {tap: URL, table: NAME, token_env: VARIABLE (optional)}")
        return ObjectsSpec(tap_url=str(raw["tap"]), tap_table=raw["table"], tap_token_env=raw.get("token_env"))
    raise TsmConfigError("objects must be product:NAME[@V], a Parquet dataset path, or {tap: URL, table: NAME}")


def parse_config(raw: Any, base: Path = PROJECT_ROOT) -> TsmConfig:
    if not isinstance(raw, Mapping):
        raise TsmConfigError("a TSM configuration is a mapping")
    unknown = sorted(set(map(str, raw)) - TOP_KEYS)
    if unknown:
        raise TsmConfigError(f"unknown key(s) {', '.join(unknown)}; the keys are {', '.join(sorted(TOP_KEYS))}")
    items = raw.get("catalogs")
    if not isinstance(items, list) or not items:
        raise TsmConfigError("catalogs: a list of at least one spec-z catalog (product:NAME[@V] or a file)")
    catalogs = tuple(_catalog(item, i, base) for i, item in enumerate(items))
    labels = [c.label for c in catalogs]
    if len(set(labels)) != len(labels):
        raise TsmConfigError(f"catalogs: two inputs have the same label ({labels}); give each a 'label'")
    flags = raw.get("flags", "default")
    flag_cut = _int(raw, "flag_cut", 0)
    if not 0 <= flag_cut <= 6:
        raise TsmConfigError(f"flag_cut must be 0-6 (the homogenized scale), not {flag_cut}")
    radius = _number(raw, "radius_arcsec", 1.0)
    split = raw.get("split") or {}
    if not isinstance(split, Mapping) or set(split) - {"fraction", "seed", "stratify", "hook", "params"}:
        raise TsmConfigError("split: {fraction, seed, stratify, hook, params}")
    split_spec = SplitSpec(fraction=split.get("fraction", 0.7), seed=_int(split, "seed", 0),
                           stratify=split.get("stratify"), hook=split.get("hook"),
                           params=dict(split.get("params") or {}))
    try:
        check_split(split_spec.fraction, split_spec.stratify)
    except ValueError as exc:
        raise TsmConfigError(str(exc)) from exc
    output = raw.get("output") or {}
    if not isinstance(output, Mapping) or set(output) - {"name", "release", "publish", "dir", "official",
                                                          "description"}:
        raise TsmConfigError("output: {name, release, publish, dir, official, description}")
    name = str(output.get("name", "tsm"))
    if not NAME.match(name):
        raise TsmConfigError(f"output name {name!r}: lower-case letters, digits and _, starting with a letter, "
                             "at most 29 characters (it names the products <name>_combined, _training, _validation)")
    dask = raw.get("dask") or {}
    if not isinstance(dask, Mapping) or set(dask) - {"scheduler", "workers"}:
        raise TsmConfigError("dask: {scheduler, workers}")
    columns = raw.get("columns")
    return TsmConfig(
        catalogs=catalogs, objects=_objects(raw.get("objects"), base),
        flags=None if flags in (None, "default") else _path(flags, base),
        flag_cut=flag_cut, on_unknown=_choice(raw, "on_unknown", "error", ("error", "drop")),
        keep_stars=bool(raw.get("keep_stars", False)),
        mode=_choice(raw, "mode", "remove_duplicates", MODES), radius_arcsec=radius,
        match_radius_arcsec=_number(raw, "match_radius_arcsec", radius),
        tie=_choice(raw, "tie", "keep_all", TIES), z_threshold=_number(raw, "z_threshold", 0.001, positive=False),
        survey_priority=_strings(raw, "survey_priority"), extra_columns=_strings(raw, "extra_columns"),
        split=split_spec, magnitudes=bool(raw.get("magnitudes", False)),
        columns=None if columns is None else _strings(raw, "columns"),
        keep_unmatched=bool(raw.get("keep_unmatched", False)), plots=bool(raw.get("plots", True)),
        output=OutputSpec(name=name, release=output.get("release"), publish=bool(output.get("publish", False)),
                          dir=_path(output.get("dir", "var/tsm"), base), official=bool(output.get("official", False)),
                          description=output.get("description")),
        scheduler=dask.get("scheduler"), workers=dask.get("workers"), seed=_int(raw, "seed", 0),
    )


def load_config(path: Path, base: Path = PROJECT_ROOT) -> TsmConfig:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise TsmConfigError(f"{path}: cannot read the configuration ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise TsmConfigError(f"{path}: not valid YAML ({exc})") from exc
    return parse_config(raw, base)
