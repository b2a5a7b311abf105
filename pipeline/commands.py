"""What ``pzvo pipeline run|evaluate`` do: load the configuration, run, print one JSON
document; bad input is one line on stderr and exit status 1, never a traceback.

:mod:`pipeline.cli` builds the parser (imported by every ``pzvo`` command) and imports this
module only when a pipeline command runs.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy.exc import SQLAlchemyError
from tqdm import tqdm

from pipeline.catalog import read_training_set
from pipeline.config import load_config
from pipeline.estimators import make_estimator
from pipeline.estimators.rail import RailNotInstalled
from pipeline.hats_catalog import HatsCatalogError
from pipeline.outputs import Progress
from pipeline.quality import evaluate_columns, json_safe
from pipeline.run import OutputBusyError, PartitionError, run_pipeline

if TYPE_CHECKING:
    from vo_service.core.settings import Settings
    from vo_service.services import Services

#: What bad input raises (a configuration, a file, a parameter): one message, no traceback.
INPUT_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ValueError, TypeError, yaml.YAMLError, PartitionError, HatsCatalogError, RailNotInstalled,
    OutputBusyError)


class ProgressBar:
    """tqdm progress bar over partitions, as a pipeline ProgressHook."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._bar: Any = None

    def __call__(self, progress: Progress) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            self._bar = tqdm(total=progress.total, unit="partition", desc="photo-z", file=sys.stderr)
        self._bar.n = progress.done
        self._bar.set_postfix(rows=progress.rows, refresh=False)
        self._bar.refresh()
        if progress.done >= progress.total:
            self._bar.close()


def _fail(command: str, exc: BaseException) -> int:
    # pyarrow raises FileNotFoundError(path), the OS FileNotFoundError(errno, text, path).
    missing = exc.filename or (str(exc) if " " not in str(exc) else None) \
        if isinstance(exc, FileNotFoundError) else None
    if missing:
        message = f"no such file or directory: {missing}"
    else:
        message = str(exc) or type(exc).__name__
    print(f"pzvo pipeline {command}: {' '.join(message.split())}", file=sys.stderr)  # one line
    logging.getLogger(__name__).debug("traceback", exc_info=exc)
    return 1


def run_command(args: argparse.Namespace, settings: Settings,
                services_for: Callable[[Settings], Services]) -> int:
    """``pzvo pipeline run``."""
    try:
        return run(args, settings, services_for)
    except INPUT_ERRORS as exc:
        return _fail("run", exc)
    except SQLAlchemyError as exc:  # the database's own words, without SQLAlchemy's SQL dump and link
        return _fail("run", RuntimeError(f"database: {getattr(exc, 'orig', None) or exc}"))


def evaluate_command(args: argparse.Namespace) -> int:
    """``pzvo pipeline evaluate``."""
    try:
        return evaluate(args)
    except INPUT_ERRORS as exc:
        return _fail("evaluate", exc)


def run(args: argparse.Namespace, settings: Settings, services_for: Callable[[Settings], Services]) -> int:
    config = load_config(args.config)
    if config.object_key is None:
        config = replace(config, object_key=settings.object_key_column)
    if args.workers:
        config = replace(config, workers=args.workers)
    if args.no_publish:
        config = replace(config, publish=False)
    registry = owner = None
    if config.publish or config.training_product:  # the product registry, from the composition root
        services = services_for(settings)
        registry = services.products
        owner = services.operator() if config.publish else None
    logging.getLogger("distributed").setLevel(logging.WARNING)
    result = run_pipeline(config, scheduler=args.scheduler, registry=registry, owner=owner,
                          progress=[ProgressBar(not args.no_progress)])
    summary = {k: v for k, v in result.to_json().items() if k not in ("partition_seconds",)}
    if result.quality:
        summary["quality"] = {k: result.quality[k] for k in ("n", "sigma_mad", "bias", "outlier_fraction",
                                                             "pit_max_deviation", "cde_loss")}
    print(json.dumps(json_safe(summary), indent=1, default=str, allow_nan=False))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    params = {}
    for item in args.param:
        key, _, value = item.partition("=")
        params[key] = yaml.safe_load(value)
    train_phot, train_z = read_training_set(args.train)
    test_phot, test_z = read_training_set(args.test)
    for path, z in ((args.train, train_z), (args.test, test_z)):
        if len(z) == 0:
            raise ValueError(f"{path}: no galaxies (with a redshift) to {'train on' if path == args.train else 'test'}")
    estimator = make_estimator(args.estimator, params).fit(train_phot, train_z)
    report = evaluate_columns(estimator.estimate(test_phot), test_z)
    report["estimator"] = estimator.describe()
    report["errors_used"] = train_phot.flux_err is not None
    print(json.dumps(json_safe(report), allow_nan=False))
    return 0
