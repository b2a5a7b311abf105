"""``pzvo tsm run CONFIG.yaml``: the Training Set Maker's command line.

Built by every ``pzvo`` command, so it imports nothing heavy; :mod:`pipeline.tsm.commands`
(Dask, the registry) is imported when a TSM command runs.
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


def add_subcommands(sub: argparse._SubParsersAction, services_for: Callable[[Settings], Services]) -> None:
    """Add the ``tsm`` command group to the ``pzvo`` parser."""
    tsm = sub.add_parser("tsm", help="the Training Set Maker: combine spec-z catalogs, crossmatch, split")
    actions = tsm.add_subparsers(dest="tsm_command", required=True)
    run = actions.add_parser("run", help="run a TSM configuration (YAML; docs/examples/tsm_demo.yaml)")
    run.add_argument("config", type=Path)
    run.add_argument("--scheduler", help="address of an existing Dask scheduler (default: local threads)")
    run.add_argument("--workers", type=int, help="local Dask workers (default: one per core)")
    run.add_argument("--no-publish", action="store_true", help="write the Parquet files only")
    run.add_argument("--json", action="store_true", help="print the whole report as JSON, not the summary")
    run.add_argument("--no-progress", action="store_true")
    run.add_argument("--user", help="who owns the products: an existing user (default $PZVO_USER, else the "
                                    "operator account 'pzvo')")
    run.set_defaults(func=partial(cmd_run, services_for=services_for))


def cmd_run(args: argparse.Namespace, settings: Settings, *,
            services_for: Callable[[Settings], Services]) -> int:
    from pipeline.tsm.commands import run_command  # noqa: PLC0415 - deferred: Dask and the registry

    return run_command(args, settings, services_for)
