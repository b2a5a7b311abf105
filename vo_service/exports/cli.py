"""``pzvo export felis|parquet|hats TABLE ...``: a published table for a federating site.

Built by every ``pzvo`` command, so it imports nothing heavy; the export modules (pyarrow, ADBC,
felis, hats-import) are imported when an export runs.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vo_service.core.settings import Settings
    from vo_service.services import Services


def add_subcommands(sub: argparse._SubParsersAction, services_for: Callable[[Settings], Services]) -> None:
    """Add the ``export`` command group to the ``pzvo`` parser."""
    export = sub.add_parser("export", help="a published table as felis YAML, Parquet files or a HATS catalog "
                                           "(what a federating site such as the RSP loads)")
    actions = export.add_subparsers(dest="export_command", required=True)
    felis = actions.add_parser("felis", help="the table's description as a Rubin felis schema (validated)")
    felis.add_argument("table", help="schema.table, as TAP_SCHEMA lists it")
    felis.add_argument("--out", type=Path, help="output file (default: <schema>.<table>.felis.yaml here; - for stdout)")
    parquet = actions.add_parser("parquet", help="the table's rows as Parquet files (TAP names and types)")
    hats = actions.add_parser("hats", help="the table as a HATS catalog (hats-import), in DIR/<schema>_<table>")
    for p in (parquet, hats):
        p.add_argument("table", help="schema.table, as TAP_SCHEMA lists it")
        p.add_argument("dir", type=Path, help="output directory")
        p.add_argument("--rows-per-file", type=int, default=1_000_000, help="rows per Parquet file (default 1000000)")
        p.add_argument("--no-progress", action="store_true")
    hats.add_argument("--workers", type=int, default=1, help="hats-import threads (default 1)")
    hats.add_argument("--pixel-threshold", type=int, default=1_000_000,
                      help="most rows in one HEALPix pixel file (default 1000000)")
    hats.add_argument("--highest-order", type=int, default=10, help="deepest HEALPix order (default 10)")
    for p in (felis, parquet, hats):
        p.set_defaults(func=partial(cmd_export, services_for=services_for))


def cmd_export(args: argparse.Namespace, settings: Settings, *,
               services_for: Callable[[Settings], Services]) -> int:
    from vo_service.exports.commands import run_export  # noqa: PLC0415 - deferred: pyarrow, ADBC, felis

    try:
        return run_export(args, settings, services_for(settings))
    except ValueError as exc:  # ExportError, and a bad argument value
        print(f"pzvo export {args.export_command}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
