"""The Training Set Maker as an async job (kind ``tsm``): ``POST /api/tsm`` queues it, a
``pzvo worker`` runs it in the async job pool, ``GET /api/tsm/<id>`` follows it.

A configuration sent over HTTP is the YAML configuration as JSON, with what a remote user must
not reach taken out: inputs are registered products only (no server paths, no remote TAP
service that the server would call), the shipped flag rules, shipped split hooks only (a hook
is imported code), no output directory and no Dask scheduler (the service's own are used), and
the products are always published, owned by the user who sent it.  The same checks run when the
job is queued (so a typo is a 422 at once) and when it starts (a product may have gone since).
"""
from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.product_tables import is_product_spec
from pipeline.quality import json_safe
from pipeline.tsm.checks import TsmError, check_run
from pipeline.tsm.config import TsmConfig, TsmConfigError, parse_config
from vo_service.auth import User
from vo_service.products import ProductRegistry
from vo_service.uws import JobRunner, TaskContext, TaskFailed

log = logging.getLogger(__name__)

KIND = "tsm"
#: The job parameter that holds the configuration (JSON).
PARAMETER = "config"
#: Split hooks a remote user may name (a hook is imported and run inside the worker).
SHIPPED_HOOKS = "pipeline.tsm.hooks:"


class JobConfigError(ValueError):
    """A configuration sent for a job that cannot be run; the message names the key."""


def _source(item: Any) -> Any:
    return item.get("source") if isinstance(item, Mapping) else item


def _restrict(raw: Mapping[str, Any]) -> None:
    """Refuse what a remote user must not ask the server to do (module docstring)."""
    for i, item in enumerate(raw.get("catalogs") or []):
        source = _source(item)
        if not (isinstance(source, str) and is_product_spec(source)):
            raise JobConfigError(f"catalogs[{i}]: a job reads registered products only (product:NAME[@V]); "
                                 "register a file first (POST /api/products)")
    objects = raw.get("objects")
    if objects is not None and not (isinstance(objects, str) and is_product_spec(objects)):
        raise JobConfigError("objects: a job crossmatches with a registered object catalog (product:NAME[@V])")
    if raw.get("flags", "default") not in (None, "default"):
        raise JobConfigError("flags: a job uses the shipped flag rules (default); run `pzvo tsm run` with your "
                             "own file, or ask the operators to add the rules")
    hook = (raw.get("split") or {}).get("hook") if isinstance(raw.get("split"), Mapping) else None
    if hook is not None and not (isinstance(hook, str) and hook.startswith(SHIPPED_HOOKS)):
        raise JobConfigError(f"split.hook: a job may use the shipped hooks ({SHIPPED_HOOKS}...) only")
    output = raw.get("output") or {}
    if isinstance(output, Mapping):
        if "dir" in output:
            raise JobConfigError("output.dir: a job writes in its own folder; leave it out")
        if output.get("publish", True) is not True:
            raise JobConfigError("output.publish: a job always publishes its products; use `pzvo tsm run` "
                                 "--no-publish for files only")
    if "dask" in raw:
        raise JobConfigError("dask: a job runs on the service's Dask cluster; leave it out")


def job_config(raw: Any, *, user: User, registry: ProductRegistry, work_dir: Path | None = None) -> TsmConfig:
    """The run a job's configuration asks for, checked as far as possible without reading data.

    Raises :class:`JobConfigError` (or its subclasses' messages as one) naming what is wrong.
    """
    if not isinstance(raw, Mapping):
        raise JobConfigError("the body must be a TSM configuration (a JSON object; see docs/tsm.md)")
    _restrict(raw)
    output = dict(raw.get("output") or {})
    output.update(publish=True, dir=str(work_dir or registry.storage_dir / "tsm-check"))
    try:
        config = parse_config({**raw, "output": output})
        check_run(config, registry, user)
    except (TsmConfigError, TsmError) as exc:
        raise JobConfigError(str(exc)) from exc
    return config


def job_parameters(raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The job record's parameters: the configuration as sent."""
    return [(PARAMETER, json.dumps(raw, sort_keys=True))]


def make_runner(registry: ProductRegistry, users: Callable[[str], User], *, scheduler: str | None = None) -> JobRunner:
    """The worker's runner of ``tsm`` jobs; ``users`` finds the owner's account by name."""
    def run_job(ctx: TaskContext) -> Mapping[str, object]:
        from pipeline.tsm.run import run  # noqa: PLC0415 - Dask, only in workers that run a job

        values = ctx.job.parameter_map().get(PARAMETER) or []
        if ctx.job.owner is None or not values:
            raise TaskFailed("the job has no owner or no configuration")
        try:
            raw = json.loads(values[0])
            owner = users(ctx.job.owner)
            config = job_config(raw, user=owner, registry=registry, work_dir=ctx.folder / "run")
        except (ValueError, LookupError) as exc:
            raise TaskFailed(f"check: {exc}") from exc
        if scheduler:
            config = replace(config, scheduler=scheduler)
        ctx.report("queued steps: check")

        def progress(step: Any) -> None:
            ctx.check()
            ctx.report(f"{step.index + 1}/{step.total} {step.step}")

        try:
            result = run(config, registry=registry, owner=owner, hooks=[progress])
        except (ValueError, OSError) as exc:
            raise TaskFailed(" ".join(str(exc).split())) from exc
        finally:
            shutil.rmtree(ctx.folder / "run", ignore_errors=True)  # the products hold copies
        summary = result.summary()
        outcome = {"run_id": result.run_id, "summary": {k: v for k, v in summary.items() if k != "products"},
                   "products": [{"name": p.name, "version": p.version, "product_type": p.product_type,
                                 "rows": p.row_count, "table": p.table_name} for p in result.products],
                   "report": json_safe(result.report)}
        log.info("tsm job finished", extra={"job_id": ctx.job.job_id, "run_id": result.run_id,
                                            "products": summary["products"]})
        return outcome

    return run_job
