"""The YAML configuration of a pipeline run (``pzvo pipeline run CONFIG.yaml``).

Relative paths are relative to the project root, so a configuration means the same from any
working directory.  ``docs/examples/pipeline_demo.yaml`` documents every key.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.estimators import DEFAULT_ESTIMATOR
from vo_service.core.columns import OBJECT_KEY
from vo_service.core.settings import PROJECT_ROOT


class ConfigError(ValueError):
    """A pipeline configuration is malformed."""


#: A published table's name is also a product name (registry rule: ``[a-z][a-z0-9_]``, at most 40
#: characters) and so is ``<name>_quality``: at most 32 characters, or the second would not fit.
TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
SCHEMA_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
OBJECT_KEY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class DemoInputs:
    """Build the demo inputs from the shared Buzzard catalog when they are missing."""

    source: Path
    partitions: int = 8
    seed: int = 20261125
    train_fraction: float = 0.75
    copies: int = 1


@dataclass(frozen=True)
class PipelineConfig:
    release: str
    objects: Path
    training: Path
    output: Path
    table_schema: str = "pz"
    table_name: str = "photoz"
    table_description: str | None = None
    object_key: str | None = None
    """Name of the PZ table's Object key column (``table: object_key:``); unset: the
    ``object_key_column`` setting (the RSP's ``objectId``)."""
    validation: Path | None = None
    redshift_column: str = "redshift"
    estimator: str = DEFAULT_ESTIMATOR
    estimator_params: dict[str, Any] = field(default_factory=dict)
    scheduler: str | None = None
    workers: int | None = None
    processes: bool = True
    publish: bool = False
    publish_partitions: int = 16
    publish_workers: int = 2
    demo: DemoInputs | None = None
    training_product: str | None = None
    """``product:<name>[@<version>]``: a registered training set, resolved when the run starts."""

    @property
    def key(self) -> str:
        """The Object key's name in the outputs (``object_key``, else the RSP's ``objectId``)."""
        return self.object_key or OBJECT_KEY

    @property
    def qualified_table(self) -> str:
        return f"{self.table_schema}.{self.table_name}"


def _path(value: Any, base: Path) -> Path:
    path = Path(str(value))
    return path if path.is_absolute() else (base / path).resolve()


def parse_config(raw: dict[str, Any], base: Path = PROJECT_ROOT) -> PipelineConfig:
    """A :class:`PipelineConfig` from the mapping a YAML file holds."""
    for key in ("release", "objects", "training", "output"):
        if key not in raw:
            raise ConfigError(f"pipeline configuration lacks {key!r}")
    est = raw.get("estimator") or {}
    if isinstance(est, str):
        est = {"name": est}
    table = raw.get("table") or {}
    dask = raw.get("dask") or {}
    pub = raw.get("publish") or {}
    if isinstance(pub, bool):
        pub = {"enabled": pub}
    demo = raw.get("demo")
    training_product = str(raw["training"]) if str(raw["training"]).startswith("product:") else None
    table_schema, table_name = str(table.get("schema", "pz")), str(table.get("name", "photoz"))
    if not TABLE_NAME.match(table_name):
        raise ConfigError(f"table name {table_name!r}: lower-case letters, digits and _, starting with a letter, "
                          "at most 32 characters (it names the product and <name>_quality)")
    if not SCHEMA_NAME.match(table_schema):
        raise ConfigError(f"table schema {table_schema!r}: lower-case letters, digits and _, starting with a letter")
    object_key = table.get("object_key")
    if object_key is not None and not OBJECT_KEY_NAME.match(str(object_key)):
        raise ConfigError(f"table object_key {object_key!r}: a regular ADQL identifier (letters, digits and _, "
                          "starting with a letter), such as objectId")
    publish_partitions, publish_workers = int(pub.get("partitions", 16)), int(pub.get("workers", 2))
    if publish_partitions < 1 or publish_workers < 1:
        raise ConfigError("publish: partitions and workers must be at least 1")
    return PipelineConfig(
        release=str(raw["release"]), objects=_path(raw["objects"], base),
        training=Path() if training_product else _path(raw["training"], base),
        training_product=training_product,
        output=_path(raw["output"], base),
        validation=_path(raw["validation"], base) if raw.get("validation") else None,
        redshift_column=raw.get("redshift_column", "redshift"),
        table_schema=table_schema, table_name=table_name,
        table_description=table.get("description"), object_key=None if object_key is None else str(object_key),
        estimator=est.get("name", DEFAULT_ESTIMATOR), estimator_params=dict(est.get("params") or {}),
        scheduler=dask.get("scheduler"), workers=dask.get("workers"), processes=bool(dask.get("processes", True)),
        publish=bool(pub.get("enabled", False)), publish_partitions=publish_partitions,
        publish_workers=publish_workers,
        demo=None if not demo else DemoInputs(
            source=_path(demo.get("source", "../shared/data/buzzard_ugrizy_80k.parquet"), base),
            partitions=int(demo.get("partitions", 8)), seed=int(demo.get("seed", 20261125)),
            train_fraction=float(demo.get("train_fraction", 0.75)), copies=int(demo.get("copies", 1))),
    )


def load_config(path: Path, base: Path = PROJECT_ROOT) -> PipelineConfig:
    with Path(path).open() as fh:
        raw = yaml.safe_load(fh)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: not a mapping")
    return parse_config(raw, base)
