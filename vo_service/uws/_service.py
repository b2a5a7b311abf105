"""Async TAP jobs (UWS 1.1): creation, access rules, phase changes, blocking WAIT, results.

No Flask here.  The HTTP layer hands in the user, the merged request parameters and the
multipart file parts; the worker (``_worker``) executes what this service queues.

Who may see a job
    A job belongs to the user who created it (``ownerId``).  Other users get 403.  When the
    service is public-read, anonymous users may create jobs too: such a job has no owner
    (``ownerId`` nil), is reachable only through its URL (the job id is 128 random bits, a
    capability), never appears in a job list, and all anonymous users share one quota of
    active jobs.
"""
from __future__ import annotations

import datetime as dt
import secrets
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from vo_service.auth import User
from vo_service.config import Settings
from vo_service.tap._uploads import (UploadLimits, collect_uploads, parse_upload_param,
                                     read_votable)
from vo_service.uws._exceptions import (InvalidPhaseError, JobNotFoundError, ParameterError,
                                        PermissionDeniedError, QuotaExceededError)
from vo_service.uws._models import (FINAL_PHASES, RESULT_ID, WAITABLE_PHASES, ExecutionPhase,
                                    Job)
from vo_service.uws._storage import JobStore

#: Parameters that steer UWS itself rather than the query; never stored as job parameters.
UWS_CONTROL = frozenset({"phase", "action", "runid", "executionduration", "destruction", "wait"})


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def format_time(value: dt.datetime | None) -> str:
    """UWS 1.1 wants ISO 8601 in UTC with a trailing Z (millisecond precision here)."""
    if value is None:
        return ""
    value = value.astimezone(dt.timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_time(value: str, what: str) -> dt.datetime:
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ParameterError(f"{what}={value!r} is not an ISO 8601 date and time "
                             "(e.g. 2030-01-31T12:00:00Z).") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def jobs_root(settings: Settings) -> Path:
    """``var/uws/<database>``: one folder per database, so services (or test runs) on other
    databases of the same cluster never see, or reap, each other's job files."""
    from sqlalchemy.engine import make_url

    database = make_url(settings.owner_url()).database or settings.db_name
    return settings.var_dir / "uws" / database


def job_dir(settings: Settings, job_id: str) -> Path:
    """Where a job keeps its uploads and result (``var/uws/<database>/<job id>``)."""
    return jobs_root(settings) / job_id


class UwsService:
    """The job life cycle seen from the web side; see the module docstring for access rules."""

    def __init__(self, *, settings: Settings, store: JobStore) -> None:
        self.settings = settings
        self.store = store

    # -- access --------------------------------------------------------------------------------
    def get_job(self, user: User, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job is None:
            raise JobNotFoundError(f"No job {job_id}: it never existed, was deleted, or passed "
                                   "its destruction time.")
        self._check_access(user, job)
        return job

    @staticmethod
    def _check_access(user: User, job: Job) -> None:
        if job.owner is None or (not user.anonymous and (user.name == job.owner or user.is_admin)):
            return
        raise PermissionDeniedError(f"Job {job.job_id} belongs to another user.")

    @staticmethod
    def owner_of(user: User) -> str | None:
        return None if user.anonymous else user.name

    def list_jobs(self, user: User, *, phases: Sequence[str] = (), after: str | None = None,
                  last: str | None = None) -> list[Job]:
        """The user's jobs; anonymous users see an empty list (their jobs are unlisted)."""
        valid = {p.value for p in ExecutionPhase}
        for phase in phases:
            if phase.upper() not in valid:
                raise ParameterError(f"PHASE={phase} is not a UWS phase; use one of "
                                     f"{', '.join(sorted(valid))}.")
        after_time = parse_time(after, "AFTER") if after else None
        last_n = None
        if last is not None:
            try:
                last_n = int(last)
            except ValueError:
                last_n = -1
            if last_n < 0:
                raise ParameterError(f"LAST={last} is not a non-negative integer.")
        if user.anonymous:
            return []
        return self.store.list(user.name, phases=[p.upper() for p in phases], after=after_time,
                               last=last_n)

    # -- creation ------------------------------------------------------------------------------
    def create_job(self, user: User, params: Mapping[str, list[str]],
                   files: Mapping[str, BinaryIO]) -> Job:
        """Keep the uploads and store a PENDING (or QUEUED) job.

        Uploads are read, limited and checked now, because their bytes exist only in this
        request.  Every other TAP parameter (LANG, QUERY, MAXREC, RESPONSEFORMAT) is checked
        when the job runs, and a problem sends the job to ERROR with the message: TAP 1.1
        clients (and taplint's QAS stage) expect a job to be created for any query.
        """
        limits = UploadLimits.from_settings(self.settings)
        specs = parse_upload_param(v for v in params.get("upload", []) if v)
        uploads = collect_uploads(specs, files, limits)
        for spec, data in uploads:
            read_votable(spec.name, data, limits)  # refuse unusable tables now, not later
        now = utcnow()
        job = Job(
            job_id=secrets.token_urlsafe(16), owner=self.owner_of(user),
            phase=ExecutionPhase.PENDING,
            parameters=[(name, value) for name, values in params.items()
                        if name not in UWS_CONTROL for value in values],
            execution_duration=self.settings.uws_execution_duration_s,
            destruction=now + dt.timedelta(seconds=self.settings.uws_retention_s),
            creation_time=now, run_id=_single(params, "runid"))
        if _single(params, "executionduration") is not None:
            job.execution_duration = self._duration(_single(params, "executionduration"))
        if _single(params, "destruction") is not None:
            job.destruction = self._destruction(job, _single(params, "destruction"))
        phase = _single(params, "phase")
        if phase is not None and phase.upper() != "RUN":
            raise ParameterError(f"PHASE={phase} cannot be given when creating a job; use "
                                 "PHASE=RUN to start it at once, or leave it out.")
        folder = job_dir(self.settings, job.job_id)
        if uploads:
            folder.mkdir(parents=True, exist_ok=True)
            for spec, data in uploads:
                (folder / f"upload-{spec.name}.vot").write_bytes(data)
        if phase is None:
            self.store.insert(job)
            return job
        # PHASE=RUN at creation: the job is stored already QUEUED or not at all, so a full
        # quota leaves no PENDING job behind that the 429 gave the client no URL for.
        job.phase, job.queued_at = ExecutionPhase.QUEUED, now
        if not self.store.insert(job, max_active=self.settings.uws_max_active_jobs):
            shutil.rmtree(folder, ignore_errors=True)
            raise self._quota_error(job.owner, "create the job again")
        return job

    # -- phase changes -------------------------------------------------------------------------
    def run(self, user: User, job_id: str) -> Job:
        """PHASE=RUN: queue a PENDING job (a job already queued or running is left alone)."""
        job = self.get_job(user, job_id)
        if job.phase in (ExecutionPhase.QUEUED, ExecutionPhase.EXECUTING):
            return job
        if job.phase not in (ExecutionPhase.PENDING, ExecutionPhase.HELD):
            raise InvalidPhaseError(f"Job {job_id} is {job.phase.value}; only a PENDING job can "
                                    "be started. Create a new job to run the query again.")
        queued, full = self.store.queue(job_id, job.owner, self.settings.uws_max_active_jobs)
        if full:
            raise self._quota_error(job.owner, "send PHASE=RUN again")
        return queued or self.get_job(user, job_id)

    def _quota_error(self, owner: str | None, retry: str) -> QuotaExceededError:
        who = "Anonymous users" if owner is None else f"User {owner}"
        return QuotaExceededError(
            f"{who} already have {self.settings.uws_max_active_jobs} jobs queued or executing, "
            f"the limit; wait for one to finish (or abort one), then {retry}.")

    def abort(self, user: User, job_id: str) -> Job:
        """PHASE=ABORT: a job that has not finished becomes ABORTED; its worker cancels the
        query at its next heartbeat."""
        job = self.get_job(user, job_id)
        if job.phase in FINAL_PHASES:
            return job
        aborted = self.store.update(job_id, only_in=WAITABLE_PHASES, phase=ExecutionPhase.ABORTED,
                                    end_time="now()")
        return aborted or self.get_job(user, job_id)

    def delete(self, user: User, job_id: str) -> None:
        """DELETE (or ACTION=DELETE): the record and files go; a running query is cancelled
        by its worker, which finds the record gone."""
        self.get_job(user, job_id)
        self.store.delete(job_id)
        shutil.rmtree(job_dir(self.settings, job_id), ignore_errors=True)

    def set_parameters(self, user: User, job_id: str, params: Mapping[str, list[str]]) -> Job:
        """POST to /parameters: only while PENDING (UWS 1.1 section 2.2.3.6)."""
        job = self.get_job(user, job_id)
        control = {k: v for k, v in params.items() if k in UWS_CONTROL}
        query = {k: v for k, v in params.items() if k not in UWS_CONTROL}
        if query and job.phase != ExecutionPhase.PENDING:
            raise InvalidPhaseError(f"Job {job_id} is {job.phase.value}; parameters can only be "
                                    "changed while it is PENDING.")
        updates: dict[str, object] = {}
        if query:
            merged = {k: list(v) for k, v in job.parameter_map().items()}
            merged.update({k: list(v) for k, v in query.items()})
            if "upload" in query:
                raise ParameterError("Uploads are given when the job is created (a multipart "
                                     "POST to /async); they cannot be added afterwards.")
            updates["parameters"] = [(n, v) for n, vs in merged.items() for v in vs]
        if "runid" in control:
            updates["run_id"] = _single(control, "runid")
        if "destruction" in control:
            updates["destruction"] = self._destruction(job, _single(control, "destruction"))
        job = self._apply(user, job, updates, duration=_single(control, "executionduration"))
        if "phase" in control:
            return self.change_phase(user, job_id, _single(control, "phase") or "")
        return job

    def _apply(self, user: User, job: Job, updates: dict[str, object],
               duration: str | None = None) -> Job:
        if duration is not None:
            if job.phase != ExecutionPhase.PENDING:
                raise InvalidPhaseError(f"Job {job.job_id} is {job.phase.value}; the execution "
                                        "duration can only be changed while it is PENDING.")
            updates["execution_duration"] = self._duration(duration)
        if not updates:
            return job
        return self.store.update(job.job_id, **updates) or self.get_job(user, job.job_id)

    def change_phase(self, user: User, job_id: str, phase: str) -> Job:
        value = phase.strip().upper()
        if value == "RUN":
            return self.run(user, job_id)
        if value == "ABORT":
            return self.abort(user, job_id)
        raise ParameterError(f"PHASE={phase} is not allowed; send PHASE=RUN or PHASE=ABORT.")

    def set_execution_duration(self, user: User, job_id: str, value: str) -> Job:
        return self._apply(user, self.get_job(user, job_id), {}, duration=value)

    def set_destruction(self, user: User, job_id: str, value: str) -> Job:
        job = self.get_job(user, job_id)
        return self._apply(user, job, {"destruction": self._destruction(job, value)})

    def _duration(self, value: str | None) -> int:
        """Seconds; 0 (UWS: unlimited) and anything above the hard limit become the limit."""
        try:
            seconds = int(str(value).strip())
        except ValueError:
            raise ParameterError(f"EXECUTIONDURATION={value!r} is not a whole number of "
                                 "seconds.") from None
        if seconds < 0:
            raise ParameterError(f"EXECUTIONDURATION={seconds} is negative.")
        hard = self.settings.uws_max_execution_duration_s
        return hard if seconds == 0 else min(seconds, hard)

    def _destruction(self, job: Job, value: str | None) -> dt.datetime:
        """The requested destruction time, no later than the retention limit allows."""
        wanted = parse_time(value or "", "DESTRUCTION")
        latest = job.creation_time + dt.timedelta(seconds=self.settings.uws_max_retention_s)
        return min(wanted, latest)

    # -- reading -------------------------------------------------------------------------------
    def wait(self, user: User, job_id: str, seconds: str, phase: str | None = None) -> Job:
        """Blocking WAIT (UWS 1.1 section 2.2.1.1): return when the job leaves its current
        phase (or the given PHASE), reaches a final phase, or ``seconds`` pass.

        ``WAIT=-1`` means as long as the service allows (``uws_wait_max_s``).  The job's phase
        is re-read from the database with a poll that starts at 50 ms and backs off to 500 ms.
        """
        try:
            timeout = float(seconds)
        except ValueError:
            raise ParameterError(f"WAIT={seconds!r} is not a number of seconds.") from None
        limit = self.settings.uws_wait_max_s
        timeout = limit if timeout < 0 else min(timeout, limit)
        job = self.get_job(user, job_id)
        start_phase = job.phase
        if phase is not None and phase.strip().upper() != start_phase.value:
            return job
        if start_phase not in WAITABLE_PHASES:
            return job
        deadline = time.monotonic() + timeout
        delay = 0.05
        while time.monotonic() < deadline:
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 0.5)
            current = self.store.phase(job_id)
            if current is None or current != start_phase:
                break
        return self.get_job(user, job_id)

    def result_file(self, user: User, job_id: str, result_id: str) -> tuple[Path, str]:
        """(path, MIME type) of a completed job's result."""
        job = self.get_job(user, job_id)
        if result_id != RESULT_ID or not job.has_result:
            raise JobNotFoundError(f"Job {job_id} has no result {result_id!r} "
                                   f"(phase {job.phase.value}).")
        path = Path(job.result_path or "")
        if not path.exists():
            raise JobNotFoundError(f"The result of job {job_id} is gone (destroyed).")
        return path, job.result_mime or "application/octet-stream"


def _single(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name) or []
    return values[-1] if values else None
