"""Domain types of UWS 1.1: execution phases and the job record."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum


class ExecutionPhase(StrEnum):
    """UWS 1.1 execution phases (the ones this service uses are PENDING to ABORTED)."""

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    EXECUTING = "EXECUTING"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    ABORTED = "ABORTED"
    UNKNOWN = "UNKNOWN"
    HELD = "HELD"
    SUSPENDED = "SUSPENDED"
    ARCHIVED = "ARCHIVED"


#: Phases in which a job holds a place in its owner's quota.
ACTIVE_PHASES = frozenset({ExecutionPhase.QUEUED, ExecutionPhase.EXECUTING})
#: Phases a job never leaves (except by destruction).
FINAL_PHASES = frozenset({ExecutionPhase.COMPLETED, ExecutionPhase.ERROR, ExecutionPhase.ABORTED,
                          ExecutionPhase.ARCHIVED})
#: Phases a blocking WAIT waits in (UWS 1.1 section 2.2.1.1).
WAITABLE_PHASES = frozenset({ExecutionPhase.PENDING, ExecutionPhase.QUEUED,
                             ExecutionPhase.EXECUTING, ExecutionPhase.HELD,
                             ExecutionPhase.SUSPENDED})

#: The result name TAP 1.1 prescribes for the query result.
RESULT_ID = "result"
#: The kind of an async TAP query job (``/tap/async``); other kinds are pipeline work.
TAP_KIND = "tap"


@dataclass
class Job:
    """One UWS job as stored in ``uws.jobs``.

    ``owner`` is None for an anonymous job (allowed only when the service is public-read);
    ``parameters`` keeps the TAP parameters in the order given, names in lower case.
    """

    job_id: str
    owner: str | None
    phase: ExecutionPhase
    parameters: list[tuple[str, str]]
    execution_duration: int
    destruction: dt.datetime
    creation_time: dt.datetime
    run_id: str | None = None
    queued_at: dt.datetime | None = None
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    worker: str | None = None
    heartbeat_at: dt.datetime | None = None
    attempts: int = 0
    progress: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    result_path: str | None = None
    result_mime: str | None = None
    result_size: int | None = None
    result_rows: int | None = None
    overflow: bool | None = None
    input_bytes: int = 0
    """What the job's parameters, uploads and record hold; with ``result_size``, its share of
    the owner's quota of stored job bytes."""
    extra: dict[str, object] = field(default_factory=dict)
    kind: str = TAP_KIND
    """Which runner executes the job: ``tap`` (an ADQL query) or a pipeline kind (``tsm``)."""
    outcome: dict[str, object] | None = None
    """What a non-TAP job reported when it ended (counts, products), for its REST API."""

    def parameter_map(self) -> dict[str, list[str]]:
        """Parameters as the TAP parameter parser takes them (lower-case name -> values)."""
        merged: dict[str, list[str]] = {}
        for name, value in self.parameters:
            merged.setdefault(name.lower(), []).append(value)
        return merged

    @property
    def has_result(self) -> bool:
        return self.phase == ExecutionPhase.COMPLETED and self.result_path is not None
