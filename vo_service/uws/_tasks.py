"""Pipeline jobs in the async queue: what a runner of a job kind other than ``tap`` receives.

A runner is a function of the package that owns the work (``pipeline.tsm.job`` for ``tsm``),
given to the worker by the entry point that builds it (``pzvo worker``), so this package never
imports the pipeline.  It gets a :class:`TaskContext` (the job, a folder of its own, a way to
report progress and to learn that the job was aborted, deleted or ran out of time) and returns
the job's outcome, a JSON-ready mapping that the job's REST API shows.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from vo_service.uws._models import Job


class TaskFailed(Exception):
    """The job cannot go on; the message is what its owner reads in the job's error."""


class TaskCancelled(Exception):
    """Raised by :meth:`TaskContext.check` once the job was aborted, deleted or timed out."""


@dataclass(frozen=True)
class TaskContext:
    job: Job
    folder: Path
    report: Callable[[str], None]
    """Set the job's progress text (written to the job record at once)."""
    cancelled: Callable[[], bool]

    def check(self) -> None:
        """Stop here (raise :class:`TaskCancelled`) if the job should not go on."""
        if self.cancelled():
            raise TaskCancelled()


JobRunner = Callable[[TaskContext], Mapping[str, object]]
