"""What ``pzvo tsm run`` does: load the configuration, run with a progress bar, print a
one-screen summary (or the report as JSON); bad input is one line on stderr, exit status 1."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError
from tqdm import tqdm

from pipeline.quality import json_safe
from pipeline.tsm.config import load_config
from pipeline.tsm.run import STEPS, TsmProgress, TsmResult, run

if TYPE_CHECKING:
    from vo_service.core.settings import Settings
    from vo_service.services import Services


class StepBar:
    """tqdm bar over the run's steps."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None

    def __call__(self, progress: TsmProgress) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            self._bar = tqdm(total=progress.total, unit="step", desc="tsm", file=sys.stderr)
        self._bar.n = progress.index
        self._bar.set_postfix_str(progress.step)  # refreshes the bar once

    def close(self) -> None:
        if self._bar is not None:
            self._bar.n = len(STEPS)
            self._bar.set_postfix_str("done", refresh=False)
            self._bar.close()


def summary_text(result: TsmResult) -> str:
    s = result.summary()
    lines = [
        f"Training Set Maker run {result.run_id}",
        f"  spec-z rows in      {s['rows_in']:>10,}  ({len(result.report['inputs'])} catalogs)",
        f"  invalid (no pos/z)  {s['invalid']:>10,}",
        f"  cut by flag         {s['cut']:>10,}  (flag_cut {result.report['combine']['flag_cut']}, stars, "
        f"unknown dropped {s['unknown_dropped']:,})",
        f"  duplicates removed  {s['duplicates_removed']:>10,}  "
        + ", ".join(f"{k} {v:,}" for k, v in result.report["combine"]["resolved_by"].items()),
        f"  unresolved ties     {s['unresolved_ties']:>10,}  groups ({result.report['combine']['tie']})",
        f"  combined catalog    {s['combined']:>10,}",
        f"  matched             {s['matched']:>10,}",
        f"  unmatched           {s['unmatched']:>10,}",
        f"  training            {s['training']:>10,}",
        f"  validation          {s['validation']:>10,}",
        f"  files               {result.files['combined'].parent}",
    ]
    if s["products"]:
        lines.append(f"  products            {', '.join(s['products'])}")
    lines.append(f"  seconds             {result.report['seconds'].get('total', 0):>10}")
    return "\n".join(lines)


def run_command(args: argparse.Namespace, settings: Settings, services_for: Callable[[Settings], Services]) -> int:
    bar = StepBar(not args.no_progress)
    try:
        config = load_config(args.config)
        if args.workers:
            config = replace(config, workers=args.workers)
        if args.scheduler:
            config = replace(config, scheduler=args.scheduler)
        if args.no_publish:
            config = replace(config, output=replace(config.output, publish=False))
        registry = owner = None
        needs_registry = config.output.publish or any(c.source.startswith("product:") for c in config.catalogs) \
            or bool(config.objects and config.objects.product)
        if needs_registry:
            services = services_for(settings)
            registry = services.products
            owner = services.operator(args.user or os.environ.get("PZVO_USER"))
        logging.getLogger("distributed").setLevel(logging.WARNING)
        result = run(config, registry=registry, owner=owner, hooks=[bar])
    except (OSError, ValueError, TypeError, LookupError) as exc:
        bar.close()
        print(f"pzvo tsm run: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        bar.close()
        print(f"pzvo tsm run: database: {getattr(exc, 'orig', None) or exc}", file=sys.stderr)
        return 1
    bar.close()
    print(json.dumps(json_safe(result.report), indent=1, default=str) if args.json else summary_text(result))
    return 0
