"""Pipeline runs as the registry keeps them (``registry.pipeline_runs``, written by
:class:`pipeline.run.JobRecord`): read-only queries for the REST API."""
from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

_COLUMNS = ("run_id, release, table_name, estimator, fingerprint, inputs, output_dir, phase, done, total, rows, "
            "started, updated, finished, error, summary")


class RunNotFoundError(LookupError):
    pass


def list_runs(engine: Engine, *, phase: str | None = None, release: str | None = None,
              page: int = 1, page_size: int = 25) -> tuple[list[dict[str, Any]], int]:
    """Runs, newest first, and how many match."""
    where = " AND ".join(c for c, v in (("phase = :phase", phase), ("release = :release", release)) if v) or "true"
    params = {"phase": phase, "release": release, "limit": page_size, "offset": (page - 1) * page_size}
    with engine.connect() as conn:
        total = conn.execute(text(f"SELECT count(*) FROM registry.pipeline_runs WHERE {where}"), params).scalar_one()
        rows = conn.execute(text(f"SELECT {_COLUMNS} FROM registry.pipeline_runs WHERE {where} "
                                 "ORDER BY started DESC, run_id LIMIT :limit OFFSET :offset"), params).mappings()
        return [_document(r) for r in rows], total


def get_run(engine: Engine, run_id: str) -> dict[str, Any]:
    try:
        key = uuid.UUID(run_id)
    except ValueError:
        raise RunNotFoundError(f"no pipeline run {run_id!r}") from None
    with engine.connect() as conn:
        row = conn.execute(text(f"SELECT {_COLUMNS} FROM registry.pipeline_runs WHERE run_id = :id"),
                           {"id": str(key)}).mappings().first()
    if row is None:
        raise RunNotFoundError(f"no pipeline run {run_id!r}")
    return _document(row)


def _document(row: Any) -> dict[str, Any]:
    doc = dict(row)
    doc["run_id"] = str(doc["run_id"])
    doc["progress"] = doc["done"] / doc["total"] if doc["total"] else None
    return doc
