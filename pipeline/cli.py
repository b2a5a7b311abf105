"""``pzvo pipeline run|evaluate``: the pipeline's command-line parser.

Every ``pzvo`` command builds this parser, so this module imports nothing heavy: the
commands themselves (:mod:`pipeline.commands`, which loads Dask, the estimators and the
registry) are imported when a pipeline command runs.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vo_service.core.settings import Settings
    from vo_service.services import Services

#: The default estimator's name, repeated here so that building the parser imports no estimator
#: (tests/pipeline/test_cli.py checks that it equals pipeline.estimators.DEFAULT_ESTIMATOR).
DEFAULT_ESTIMATOR = "mlp"


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


def cmd_run(args: argparse.Namespace, settings: Settings, *,
            services_for: Callable[[Settings], Services]) -> int:
    from pipeline.commands import run_command  # noqa: PLC0415 - deferred: Dask and the registry

    return run_command(args, settings, services_for)


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.commands import evaluate_command  # noqa: PLC0415 - deferred: the estimators

    return evaluate_command(args)
