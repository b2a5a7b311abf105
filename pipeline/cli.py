"""``pzvo pipeline run|evaluate``: the pipeline's command-line front end (no logic of its own)."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.estimators import DEFAULT_ESTIMATOR

if TYPE_CHECKING:  # the pzvo CLI builds its parser on every call: keep numpy/scipy/dask out of it
    from pipeline.outputs import Progress
    from vo_service.core.settings import Settings
    from vo_service.services import Services


class ProgressBar:
    """tqdm progress bar over partitions, as a pipeline ProgressHook."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._bar: Any = None

    def __call__(self, progress: "Progress") -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=progress.total, unit="partition", desc="photo-z", file=sys.stderr)
        self._bar.n = progress.done
        self._bar.set_postfix(rows=progress.rows, refresh=False)
        self._bar.refresh()
        if progress.done >= progress.total:
            self._bar.close()


def add_subcommands(sub: argparse._SubParsersAction, services_for: Callable[[Settings], Services]) -> None:
    """Add the ``pipeline`` command group to the ``pzvo`` parser; ``services_for`` is the
    command line's access to the composition root (``vo_service.cli._services``)."""
    pipe = sub.add_parser("pipeline", help="the Dask photo-z pipeline")
    actions = pipe.add_subparsers(dest="pipeline_command", required=True)
    run = actions.add_parser("run", help="run a pipeline configuration (YAML)")
    run.add_argument("config", type=Path)
    run.add_argument("--scheduler", help="address of an existing Dask scheduler (default: a LocalCluster)")
    run.add_argument("--workers", type=int, help="LocalCluster workers (default: one per core)")
    run.add_argument("--no-publish", action="store_true", help="do not load the table into PostgreSQL")
    run.add_argument("--no-progress", action="store_true")
    run.set_defaults(func=partial(cmd_run, services_for=services_for))
    ev = actions.add_parser("evaluate", help="train on one file, print metrics on another as JSON")
    ev.add_argument("--train", type=Path, required=True, help="Parquet: u g r i z y redshift [u_err ...]")
    ev.add_argument("--test", type=Path, required=True)
    ev.add_argument("--estimator", default=DEFAULT_ESTIMATOR)
    ev.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="estimator parameter (YAML value), repeatable")
    ev.set_defaults(func=cmd_evaluate)


def _input_errors() -> tuple[type[BaseException], ...]:
    """What bad input raises (a configuration, a file, a parameter): one message, no traceback."""
    import yaml

    from pipeline.estimators.rail import RailNotInstalled
    from pipeline.hats_catalog import HatsCatalogError
    from pipeline.run import OutputBusyError, PartitionError

    return (OSError, ValueError, TypeError, yaml.YAMLError, PartitionError, HatsCatalogError, RailNotInstalled,
            OutputBusyError)


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


def cmd_run(args: argparse.Namespace, settings: Settings, *,
            services_for: Callable[[Settings], Services]) -> int:
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415 - deferred: see vo_service.cli._services

    try:
        return _run(args, settings, services_for)
    except _input_errors() as exc:
        return _fail("run", exc)
    except SQLAlchemyError as exc:  # the database's own words, without SQLAlchemy's SQL dump and link
        return _fail("run", RuntimeError(f"database: {getattr(exc, 'orig', None) or exc}"))


def _run(args: argparse.Namespace, settings: Settings, services_for: Callable[[Settings], Services]) -> int:
    from dataclasses import replace

    from pipeline.config import load_config
    from pipeline.quality import json_safe
    from pipeline.run import run_pipeline

    config = load_config(args.config)
    if args.workers:
        config = replace(config, workers=args.workers)
    if args.no_publish:
        config = replace(config, publish=False)
    engine = storage_dir = None
    if config.publish or config.training_product:  # the product registry: its database and storage
        services = services_for(settings)
        engine, storage_dir = services.owner_engine, services.settings.products_dir
    logging.getLogger("distributed").setLevel(logging.WARNING)
    result = run_pipeline(config, scheduler=args.scheduler, engine=engine, storage_dir=storage_dir,
                          progress=[ProgressBar(not args.no_progress)])
    summary = {k: v for k, v in result.to_json().items() if k not in ("partition_seconds",)}
    if result.quality:
        summary["quality"] = {k: result.quality[k] for k in ("n", "sigma_mad", "bias", "outlier_fraction",
                                                             "pit_max_deviation", "cde_loss")}
    print(json.dumps(json_safe(summary), indent=1, default=str, allow_nan=False))
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return _evaluate(args)
    except _input_errors() as exc:
        return _fail("evaluate", exc)


def _evaluate(args: argparse.Namespace) -> int:
    import yaml

    from pipeline.catalog import read_training_set
    from pipeline.estimators import make_estimator
    from pipeline.quality import evaluate_columns, json_safe

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
