"""Pipeline runs as the registry keeps them (``registry.pipeline_runs``): the job record of each
photo-z pipeline run, written as the run goes (:class:`PipelineRunStore`: ``start``,
``progress``, ``finish``, ``fail``) and read by the REST API and the pages (``get``, ``list``).

Each write is its own short transaction: a run's record is visible while the run goes on.
"""
from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

_COLUMNS = ("run_id, release, table_name, estimator, fingerprint, inputs, output_dir, phase, done, total, rows, "
            "started, updated, finished, error, summary")

#: The phases a run record goes through (the table's CHECK constraint allows these only).
EXECUTING, COMPLETED, ERROR = "EXECUTING", "COMPLETED", "ERROR"
PHASES = (EXECUTING, COMPLETED, ERROR)


class RunNotFoundError(LookupError):
    pass


class PipelineRunStore:
    """Write and read ``registry.pipeline_runs`` (owner role)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- writes --------------------------------------------------------------------------------
    def start(self, *, release: str, table_name: str, estimator: Mapping[str, Any], fingerprint: str,
              inputs: Mapping[str, Any], output_dir: str | Path, run_id: str | None = None) -> str:
        """Record a run that begins (phase EXECUTING, nothing done); returns its id (``run_id``,
        or a new UUID)."""
        run_id = str(uuid.UUID(run_id)) if run_id else str(uuid.uuid4())
        with self.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO registry.pipeline_runs (run_id, release, table_name, estimator, fingerprint, "
                "inputs, output_dir, phase) VALUES (:run_id, :release, :table, CAST(:estimator AS jsonb), "
                ":fingerprint, CAST(:inputs AS jsonb), :output_dir, :phase)"),
                {"run_id": run_id, "release": release, "table": table_name, "estimator": _json(estimator),
                 "fingerprint": fingerprint, "inputs": _json(inputs), "output_dir": str(output_dir),
                 "phase": EXECUTING})
        return run_id

    def progress(self, run_id: str, *, done: int, total: int | None, rows: int,
                 summary: Mapping[str, Any] | None = None) -> None:
        """``done`` of ``total`` partitions finished, ``rows`` written so far (still EXECUTING)."""
        self._update(run_id, phase=EXECUTING, done=done, total=total, rows=rows, finished=False,
                     error=None, summary=summary)

    def finish(self, run_id: str, *, done: int, total: int | None, rows: int,
               summary: Mapping[str, Any] | None = None, phase: str = COMPLETED) -> None:
        """The run ended (COMPLETED unless ``phase`` says otherwise); ``finished`` is now."""
        self._update(run_id, phase=phase, done=done, total=total, rows=rows, finished=True, error=None,
                     summary=summary)

    def fail(self, run_id: str, *, error: str | None, done: int, total: int | None, rows: int,
             summary: Mapping[str, Any] | None = None) -> None:
        """The run stopped on ``error`` (phase ERROR); ``finished`` is now."""
        self._update(run_id, phase=ERROR, done=done, total=total, rows=rows, finished=True, error=error,
                     summary=summary)

    def _update(self, run_id: str, *, phase: str, done: int, total: int | None, rows: int, finished: bool,
                error: str | None, summary: Mapping[str, Any] | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(
                "UPDATE registry.pipeline_runs SET phase = :phase, done = :done, total = :total, rows = :rows, "
                "updated = now(), finished = CASE WHEN :finished THEN now() END, error = :error, "
                "summary = CAST(:summary AS jsonb) WHERE run_id = :run_id"),
                {"run_id": str(run_id), "phase": phase, "done": done, "total": total, "rows": rows,
                 "finished": finished, "error": error, "summary": _json(summary) if summary else None})

    # -- reads ---------------------------------------------------------------------------------
    def list(self, *, phase: str | None = None, release: str | None = None,
             page: int = 1, page_size: int = 25) -> tuple[list[dict[str, Any]], int]:
        """Runs, newest first, and how many match."""
        where = " AND ".join(c for c, v in (("phase = :phase", phase), ("release = :release", release)) if v) \
            or "true"
        params = {"phase": phase, "release": release, "limit": page_size, "offset": (page - 1) * page_size}
        with self.engine.connect() as conn:
            total = conn.execute(text(f"SELECT count(*) FROM registry.pipeline_runs WHERE {where}"),
                                 params).scalar_one()
            rows = conn.execute(text(f"SELECT {_COLUMNS} FROM registry.pipeline_runs WHERE {where} "
                                     "ORDER BY started DESC, run_id LIMIT :limit OFFSET :offset"), params).mappings()
            return [_document(r) for r in rows], total

    def get(self, run_id: str) -> dict[str, Any]:
        """One run's record; :class:`RunNotFoundError` when there is none (or the id is no UUID)."""
        try:
            key = uuid.UUID(str(run_id))
        except ValueError:
            raise RunNotFoundError(f"no pipeline run {run_id!r}") from None
        with self.engine.connect() as conn:
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


def _json(value: Any) -> str:
    """JSON for a jsonb column: no NaN or infinity (jsonb refuses them: they become null), and
    what JSON has no type for as its text."""
    return json.dumps(_finite(value), default=str)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
