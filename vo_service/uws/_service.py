"""Async TAP jobs (UWS 1.1): creation, access rules, phase changes, blocking WAIT, results.

No Flask here.  The HTTP layer hands in the user, the merged request parameters and the
multipart file parts; the worker (``_worker``) executes what this service queues.

Who may see a job
    A job belongs to the user who created it (``ownerId``).  Other users get 403.  When the
    service is public-read, anonymous users may create jobs too: such a job has no owner
    (``ownerId`` nil), is reachable only through its URL (the job id is 128 random bits, a
    capability), never appears in a job list, and all anonymous users share one quota of
    active jobs.

Limits (the service is public; see docs/async.md for each setting)
    Every UWS parameter is parsed strictly and kept in range before anything is stored:
    DESTRUCTION in the future and no later than creation + ``uws_max_retention_s``;
    EXECUTIONDURATION within the owner's limit (anonymous jobs the shortest); WAIT, LAST,
    PHASE and AFTER well-formed.  Anonymous jobs share a small quota of active jobs, and their
    own slots in the workers (``_storage.JobStore.claim_next``).  Each owner's jobs may hold
    a quota of bytes (parameters, uploads, results).  Blocking WAITs are counted per client
    and per process (:class:`WaitSlots`), so they never hold more than a share of the threads.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import re
import secrets
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url

from vo_service.auth import User
from vo_service.core.settings import Settings
from vo_service.tap import UploadLimits, collect_uploads, parse_upload_param, read_votable
from vo_service.uws._exceptions import (
    InvalidPhaseError,
    JobNotFoundError,
    ParameterError,
    PermissionDeniedError,
    QuotaExceededError,
    StorageQuotaError,
)
from vo_service.uws._models import FINAL_PHASES, RESULT_ID, TAP_KIND, WAITABLE_PHASES, ExecutionPhase, Job
from vo_service.uws._storage import JobStore, OverByteQuota

log = logging.getLogger(__name__)

#: Parameters that steer UWS itself rather than the query; never stored as job parameters.
UWS_CONTROL = frozenset({"phase", "action", "runid", "executionduration", "destruction", "wait"})
#: Job ids are ``secrets.token_urlsafe(16)``; anything else is no job, and never reaches SQL.
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Longest RUNID and parameter name kept: both are echoed in every job document.
MAX_RUN_ID_CHARS = 1000
MAX_PARAMETER_NAME_CHARS = 100
#: What a job's database record costs in its owner's quota besides its parameters, so that
#: a flood of empty PENDING jobs also runs into the quota.
JOB_RECORD_BYTES = 1024
#: LAST=<n> beyond this is taken as this (the list is never longer than the owner's jobs).
MAX_LAST = 100_000
#: Characters XML 1.0 cannot carry (and NUL, which PostgreSQL text cannot): a parameter with
#: one could be stored but never shown in a job document.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
#: ISO 8601 as DALI and xs:dateTime write it: a date, optionally a time to the second (with
#: a fraction), optionally Z or a numeric offset after a time.
_ISO_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})"
                       r"(?:T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,12}))?(Z|[+-]\d{2}:\d{2})?)?",
                       re.ASCII)
_WHOLE = re.compile(r"\+?(\d+)", re.ASCII)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def format_time(value: dt.datetime | None) -> str:
    """UWS 1.1 wants ISO 8601 in UTC with a trailing Z (millisecond precision here)."""
    if value is None:
        return ""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def shown(value: object, limit: int = 60) -> str:
    """A client's value as it may appear in a message: quoted, escaped, shortened."""
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def format_bytes(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"


def parse_time(value: str, what: str) -> dt.datetime:
    """An ISO 8601 time (UTC unless it says otherwise), strictly: no other forms, and only
    times that exist in UTC between years 1 and 9999."""
    match = _ISO_TIME.fullmatch(value.strip())
    if match is None:
        raise ParameterError(f"{what}={shown(value)} is not an ISO 8601 date and time "
                             "(e.g. 2030-01-31T12:00:00Z).")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        tz = dt.UTC
        if zone and zone != "Z":
            sign = -1 if zone[0] == "-" else 1
            tz = dt.timezone(sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
        parsed = dt.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                             int(second or 0), int((fraction or "0")[:6].ljust(6, "0")), tz)
        return parsed.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise ParameterError(f"{what}={shown(value)} is not a valid time in UTC between years 1 "
                             "and 9999 (e.g. 2030-01-31T12:00:00Z).") from None


def parse_whole(value: str, what: str, unit: str = "") -> int | None:
    """A whole, non-negative number; None for one too long to matter (above 10**15)."""
    match = _WHOLE.fullmatch(value.strip())
    if match is None:
        raise ParameterError(f"{what}={shown(value)} is not a whole, non-negative number{unit}.")
    digits = match.group(1).lstrip("0") or "0"
    return None if len(digits) > 15 else int(digits)


def parse_wait(value: str, longest: float) -> float:
    """WAIT in seconds, within ``[0, longest]``; negative means as long as allowed (UWS 1.1:
    -1), and so does a number too large to hold (1e400)."""
    text = value.strip()
    if _NUMBER.fullmatch(text) is None:
        raise ParameterError(f"WAIT={shown(value)} is not a number of seconds (-1 waits as long "
                             f"as the service allows, {longest:g} s).")
    seconds = float(text)
    if math.isnan(seconds) or seconds < 0 or seconds > longest:
        return longest
    return seconds


def parse_phase(value: str, what: str = "PHASE") -> ExecutionPhase:
    try:
        return ExecutionPhase(value.strip().upper())
    except ValueError:
        raise ParameterError(f"{what}={shown(value)} is not a UWS phase; use one of "
                             f"{', '.join(p.value for p in ExecutionPhase)}.") from None


def check_text(name: str, value: str) -> None:
    """Refuse characters that a job document (XML) or PostgreSQL cannot hold."""
    bad = _NOT_XML.search(name) or _NOT_XML.search(value)
    if bad is not None:
        raise ParameterError(f"Parameter {shown(name.upper())} contains the character "
                             f"U+{ord(bad.group()):04X}, which cannot be stored or shown in a job "
                             "document; remove it.")
    if len(name) > MAX_PARAMETER_NAME_CHARS:
        raise ParameterError(f"The parameter name {shown(name)} is longer than "
                             f"{MAX_PARAMETER_NAME_CHARS} characters.")


def duration_limit(settings: Settings, owner: str | None) -> int:
    """Longest execution duration the owner's jobs may have (anonymous ones the shortest)."""
    limit = settings.uws_max_execution_duration_s
    if owner is None:
        limit = min(limit, settings.uws_anonymous_max_execution_duration_s)
    return max(1, limit)


def retention_limit(settings: Settings, owner: str | None) -> int:
    """Longest time from creation to destruction of the owner's jobs (anonymous ones the shortest)."""
    limit = settings.uws_max_retention_s
    if owner is None:
        limit = min(limit, settings.uws_anonymous_retention_s)
    return max(1, limit)


def active_limit(settings: Settings, owner: str | None) -> int:
    """Jobs the owner may have QUEUED or EXECUTING (all anonymous users together)."""
    return settings.uws_anonymous_max_active_jobs if owner is None else settings.uws_max_active_jobs


def storage_quota(settings: Settings, owner: str | None) -> int:
    """Bytes the owner's jobs may hold (inputs and results; all anonymous users together)."""
    if owner is None:
        return settings.quota_anonymous_job_result_bytes
    return settings.quota_job_result_bytes


def wait_threads(settings: Settings) -> int:
    """Request threads of one web process that may block in WAIT at once."""
    return max(1, int(settings.web_threads * settings.uws_wait_thread_share))


def record_bytes(parameters: Sequence[tuple[str, str]], run_id: str | None) -> int:
    """What a job's record costs in the quota: its parameters, RUNID and a fixed share."""
    text_bytes = sum(len(n.encode()) + len(v.encode()) for n, v in parameters)
    return JOB_RECORD_BYTES + text_bytes + len((run_id or "").encode())


def jobs_root(settings: Settings) -> Path:
    """``var/uws/<database>``: one folder per database, so services (or test runs) on other
    databases of the same cluster never see, or reap, each other's job files."""
    database = make_url(settings.owner_url()).database or settings.db_name
    return settings.var_dir / "uws" / database


def job_dir(settings: Settings, job_id: str) -> Path:
    """Where a job keeps its uploads and result (``var/uws/<database>/<job id>``)."""
    return jobs_root(settings) / job_id


class WaitSlots:
    """The blocking WAITs of one web process, counted per client and in all.

    A WAIT holds a request thread for up to ``uws_wait_max_s``; without a bound a few clients
    could hold every thread of the process.  A WAIT over either bound is answered at once,
    which UWS 1.1 allows (the client sees the current phase and asks again).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: Counter[str] = Counter()
        self._total = 0

    @contextmanager
    def take(self, client: str, *, per_client: int, total: int) -> Iterator[bool]:
        with self._lock:
            granted = self._clients[client] < per_client and self._total < total
            if granted:
                self._clients[client] += 1
                self._total += 1
        try:
            yield granted
        finally:
            if granted:
                with self._lock:
                    self._total -= 1
                    self._clients[client] -= 1
                    if self._clients[client] <= 0:
                        del self._clients[client]

    def held(self, client: str | None = None) -> int:
        with self._lock:
            return self._total if client is None else self._clients[client]


class UwsService:
    """The job life cycle seen from the web side; see the module docstring for access rules."""

    def __init__(self, *, settings: Settings, store: JobStore) -> None:
        self.settings = settings
        self.store = store
        self.wait_slots = WaitSlots()

    # -- access --------------------------------------------------------------------------------
    def get_job(self, user: User, job_id: str, *, kind: str = TAP_KIND) -> Job:
        """The job if ``user`` may see it; a job of another kind is not found (a TAP client
        never sees pipeline jobs at /tap/async, nor the reverse)."""
        job = self.store.get(job_id) if _JOB_ID.fullmatch(job_id) else None
        if job is None or job.kind != kind:
            raise JobNotFoundError(f"No job {shown(job_id)}: it never existed, was deleted, or "
                                   "passed its destruction time.")
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
                  last: str | None = None, kind: str = TAP_KIND) -> list[Job]:
        """The user's jobs; anonymous users see an empty list (their jobs are unlisted)."""
        wanted = [parse_phase(phase).value for phase in phases]
        after_time = parse_time(after, "AFTER") if after is not None else None
        last_n = None
        if last is not None:
            last_n = parse_whole(last, "LAST")
            last_n = MAX_LAST if last_n is None else min(last_n, MAX_LAST)
        if user.anonymous:
            return []
        return self.store.list(user.name, phases=wanted, after=after_time, last=last_n, kind=kind)

    # -- creation ------------------------------------------------------------------------------
    def create_job(self, user: User, params: Mapping[str, list[str]],
                   files: Mapping[str, IO[bytes]]) -> Job:
        """Keep the uploads and store a PENDING (or QUEUED) job.

        The UWS parameters (PHASE, RUNID, EXECUTIONDURATION, DESTRUCTION) and uploads are
        checked now, uploads because their bytes exist only in this request.  Every other TAP
        parameter (LANG, QUERY, MAXREC, RESPONSEFORMAT) is checked when the job runs, and a
        problem sends the job to ERROR with the message: TAP 1.1 clients (and taplint's QAS
        stage) expect a job to be created for any query.
        """
        for name, values in params.items():
            for value in values:
                check_text(name, value)
        owner = self.owner_of(user)
        phase = _single(params, "phase")
        if phase is not None and phase.strip().upper() != "RUN":
            raise ParameterError(f"PHASE={shown(phase)} cannot be given when creating a job; use "
                                 "PHASE=RUN to start it at once, or leave it out.")
        now = utcnow()
        limit = duration_limit(self.settings, owner)
        job = Job(
            job_id=secrets.token_urlsafe(16), owner=owner, phase=ExecutionPhase.PENDING,
            parameters=[(name, value) for name, values in params.items()
                        if name not in UWS_CONTROL for value in values],
            execution_duration=min(self.settings.uws_execution_duration_s, limit),
            destruction=now + dt.timedelta(seconds=min(self.settings.uws_retention_s,
                                                       retention_limit(self.settings, owner))),
            creation_time=now, run_id=_run_id(_single(params, "runid")))
        if (requested_duration := _single(params, "executionduration")) is not None:
            job.execution_duration = self._duration(owner, requested_duration)
        if (requested_destruction := _single(params, "destruction")) is not None:
            job.destruction = self._destruction(job, requested_destruction)
        limits = UploadLimits.from_settings(self.settings)
        specs = parse_upload_param(v for v in params.get("upload", []) if v)
        uploads = collect_uploads(specs, files, limits)
        for spec, data in uploads:
            read_votable(spec.name, data, limits)  # refuse unusable tables now, not later
        job.input_bytes = (record_bytes(job.parameters, job.run_id)
                           + sum(len(data) for _, data in uploads))
        self._check_storage(owner, adding=job.input_bytes)  # before writing any file
        folder = job_dir(self.settings, job.job_id)
        if uploads:  # before the job exists: a worker may claim a QUEUED one at once
            folder.mkdir(parents=True, exist_ok=True)
            for spec, data in uploads:
                (folder / f"upload-{spec.name}.vot").write_bytes(data)
        # PHASE=RUN at creation: the job is stored already QUEUED or not at all, so a full
        # quota leaves no PENDING job behind that the 429 gave the client no URL for.
        if phase is not None:
            job.phase, job.queued_at = ExecutionPhase.QUEUED, now
        try:
            stored = self.store.insert(
                job, max_bytes=storage_quota(self.settings, owner),
                max_active=None if phase is None else active_limit(self.settings, owner))
        except OverByteQuota as full:  # concurrent creations took the room meanwhile
            shutil.rmtree(folder, ignore_errors=True)
            raise self._storage_error(owner, full.used, job.input_bytes) from None
        if not stored:
            shutil.rmtree(folder, ignore_errors=True)
            raise self._quota_error(owner, "create the job again")
        return job

    def create_task(self, user: User, kind: str, parameters: Sequence[tuple[str, str]], *,
                    run_id: str | None = None) -> Job:
        """Queue a pipeline job of ``kind`` (checked by its caller) for a signed-in user.

        Stored QUEUED or not at all, under the same quotas as TAP jobs (active jobs, stored
        bytes) and with the user's execution-duration and retention limits.
        """
        if kind == TAP_KIND:
            raise ParameterError("TAP queries are created through /tap/async")
        if user.anonymous:
            raise PermissionDeniedError("pipeline jobs register products: send a token")
        for name, value in parameters:
            check_text(name, value)
        owner = self.owner_of(user)
        now = utcnow()
        job = Job(job_id=secrets.token_urlsafe(16), owner=owner, phase=ExecutionPhase.QUEUED,
                  parameters=list(parameters), execution_duration=duration_limit(self.settings, owner),
                  destruction=now + dt.timedelta(seconds=min(self.settings.uws_retention_s,
                                                             retention_limit(self.settings, owner))),
                  creation_time=now, run_id=_run_id(run_id), queued_at=now, kind=kind)
        job.input_bytes = record_bytes(job.parameters, job.run_id)
        self._check_storage(owner, adding=job.input_bytes)
        try:
            stored = self.store.insert(job, max_bytes=storage_quota(self.settings, owner),
                                       max_active=active_limit(self.settings, owner))
        except OverByteQuota as full:
            raise self._storage_error(owner, full.used, job.input_bytes) from None
        if not stored:
            raise self._quota_error(owner, "submit it again")
        return job

    def _check_storage(self, owner: str | None, adding: int) -> None:
        """Refuse a new job that clearly does not fit before its files are written.  Only a
        first look: the store checks again under the owner's lock in the transaction that
        inserts, which is what holds against concurrent requests."""
        used = self.store.stored_bytes(owner)
        if used + adding > storage_quota(self.settings, owner):
            raise self._storage_error(owner, used, adding)

    def _storage_error(self, owner: str | None, used: int, adding: int = 0) -> StorageQuotaError:
        """The 403 for a full quota of stored job bytes: how much is held and what helps."""
        quota = storage_quota(self.settings, owner)
        who = "Jobs without a token (all anonymous users together)" if owner is None \
            else f"The jobs of {owner}"
        return StorageQuotaError(
            f"{who} hold {format_bytes(used)} of uploads and results; the quota is "
            f"{format_bytes(quota)}"
            + (f" and this job would add {format_bytes(adding)}" if adding else "")
            + ". Delete jobs you no longer need (DELETE /tap/async/<job id>) to free space"
            + (", or use a token: each user has a quota of their own." if owner is None else "."))

    # -- phase changes -------------------------------------------------------------------------
    def run(self, user: User, job_id: str) -> Job:
        """PHASE=RUN: queue a PENDING job (a job already queued or running is left alone)."""
        job = self.get_job(user, job_id)
        if job.phase in (ExecutionPhase.QUEUED, ExecutionPhase.EXECUTING):
            return job
        if job.phase not in (ExecutionPhase.PENDING, ExecutionPhase.HELD):
            raise InvalidPhaseError(f"Job {job_id} is {job.phase.value}; only a PENDING job can "
                                    "be started. Create a new job to run the query again.")
        try:
            queued, full = self.store.queue(job_id, job.owner,
                                            active_limit(self.settings, job.owner),
                                            max_bytes=storage_quota(self.settings, job.owner))
        except OverByteQuota as over:
            raise self._storage_error(job.owner, over.used) from None
        if full:
            raise self._quota_error(job.owner, "send PHASE=RUN again")
        return queued or self.get_job(user, job_id)

    def _quota_error(self, owner: str | None, retry: str) -> QuotaExceededError:
        who = "Anonymous users" if owner is None else f"User {owner}"
        return QuotaExceededError(
            f"{who} already have {active_limit(self.settings, owner)} jobs queued or executing, "
            f"the limit; wait for one to finish (or abort one), then {retry}.")

    def abort(self, user: User, job_id: str, *, kind: str = TAP_KIND) -> Job:
        """PHASE=ABORT: a job that has not finished becomes ABORTED; its worker cancels the
        query at its next heartbeat."""
        job = self.get_job(user, job_id, kind=kind)
        if job.phase in FINAL_PHASES:
            return job
        aborted = self.store.update(job_id, only_in=WAITABLE_PHASES, phase=ExecutionPhase.ABORTED,
                                    end_time="now()")
        return aborted or self.get_job(user, job_id, kind=kind)

    def delete(self, user: User, job_id: str, *, kind: str = TAP_KIND) -> None:
        """DELETE (or ACTION=DELETE): the record and files go; a running query is cancelled
        by its worker, which finds the record gone."""
        job = self.get_job(user, job_id, kind=kind)
        self.store.delete(job.job_id)
        shutil.rmtree(job_dir(self.settings, job.job_id), ignore_errors=True)

    def set_parameters(self, user: User, job_id: str, params: Mapping[str, list[str]]) -> Job:
        """POST to /parameters: only while PENDING (UWS 1.1 section 2.2.3.6)."""
        for name, values in params.items():
            for value in values:
                check_text(name, value)
        job = self.get_job(user, job_id)
        control = {k: v for k, v in params.items() if k in UWS_CONTROL}
        query = {k: v for k, v in params.items() if k not in UWS_CONTROL}
        if query and job.phase != ExecutionPhase.PENDING:
            raise InvalidPhaseError(f"Job {job_id} is {job.phase.value}; parameters can only be "
                                    "changed while it is PENDING.")
        updates: dict[str, object] = {}
        parameters, run_id = job.parameters, job.run_id
        if query:
            if "upload" in query:
                raise ParameterError("Uploads are given when the job is created (a multipart "
                                     "POST to /async); they cannot be added afterwards.")
            merged = {k: list(v) for k, v in job.parameter_map().items()}
            merged.update({k: list(v) for k, v in query.items()})
            parameters = [(n, v) for n, vs in merged.items() for v in vs]
            updates["parameters"] = parameters
        if "runid" in control:
            run_id = _run_id(_single(control, "runid"))
            updates["run_id"] = run_id
        if "destruction" in control:
            updates["destruction"] = self._destruction(job, _single(control, "destruction"))
        if "phase" in control:
            value = (_single(control, "phase") or "").strip().upper()
            if value not in ("RUN", "ABORT"):
                raise ParameterError(f"PHASE={shown(_single(control, 'phase'))} is not allowed; "
                                     "send PHASE=RUN or PHASE=ABORT.")
        grown = 0
        if "parameters" in updates or "run_id" in updates:
            grown = record_bytes(parameters, run_id) - record_bytes(job.parameters, job.run_id)
            updates["input_bytes"] = max(0, job.input_bytes + grown)
        job = self._apply(user, job, updates, duration=_single(control, "executionduration"),
                          grown=grown)
        if "phase" in control:
            return self.change_phase(user, job_id, _single(control, "phase") or "")
        return job

    def _apply(self, user: User, job: Job, updates: dict[str, object],
               duration: str | None = None, grown: int = 0) -> Job:
        """Store the changes; ``grown`` more stored bytes only if the owner's quota has room
        (checked by the store in the same transaction)."""
        if duration is not None:
            if job.phase != ExecutionPhase.PENDING:
                raise InvalidPhaseError(f"Job {job.job_id} is {job.phase.value}; the execution "
                                        "duration can only be changed while it is PENDING.")
            updates["execution_duration"] = self._duration(job.owner, duration)
        if not updates:
            return job
        try:
            updated = self.store.update(
                job.job_id, only_in=None, adding_bytes=grown,
                max_bytes=storage_quota(self.settings, job.owner) if grown > 0 else None,
                **updates)
        except OverByteQuota as full:
            raise self._storage_error(job.owner, full.used, grown) from None
        return updated or self.get_job(user, job.job_id)

    def change_phase(self, user: User, job_id: str, phase: str) -> Job:
        value = phase.strip().upper()
        if value == "RUN":
            return self.run(user, job_id)
        if value == "ABORT":
            return self.abort(user, job_id)
        raise ParameterError(f"PHASE={shown(phase)} is not allowed; send PHASE=RUN or "
                             "PHASE=ABORT.")

    def set_execution_duration(self, user: User, job_id: str, value: str) -> Job:
        return self._apply(user, self.get_job(user, job_id), {}, duration=value)

    def set_destruction(self, user: User, job_id: str, value: str) -> Job:
        job = self.get_job(user, job_id)
        return self._apply(user, job, {"destruction": self._destruction(job, value)})

    def _duration(self, owner: str | None, value: str) -> int:
        """Seconds; 0 (UWS: unlimited) and anything above the owner's limit become the limit."""
        check_text("executionduration", value)
        seconds = parse_whole(value, "EXECUTIONDURATION", " of seconds")
        limit = duration_limit(self.settings, owner)
        return limit if not seconds else min(seconds, limit)

    def _destruction(self, job: Job, value: str | None) -> dt.datetime:
        """A future time, no later than the retention limit allows (later ones are cut)."""
        wanted = parse_time(value or "", "DESTRUCTION")
        if wanted <= utcnow():
            raise ParameterError(f"DESTRUCTION={shown(value)} is in the past; give a future time "
                                 "(to delete the job now, send DELETE or ACTION=DELETE).")
        latest = job.creation_time + dt.timedelta(seconds=retention_limit(self.settings, job.owner))
        return min(wanted, latest)

    # -- reading -------------------------------------------------------------------------------
    @staticmethod
    def wait_client(user: User, address: str | None) -> str:
        """Who a WAIT is counted against: the user, or the address of an anonymous caller."""
        return f"address:{address or '?'}" if user.anonymous else f"user:{user.name}"

    def wait(self, user: User, job_id: str, seconds: str, phase: str | None = None, *,
             address: str | None = None) -> Job:
        """Blocking WAIT (UWS 1.1 section 2.2.1.1): return when the job leaves its current
        phase (or the given PHASE), reaches a final phase, or ``seconds`` pass.

        ``WAIT=-1`` means as long as the service allows (``uws_wait_max_s``).  A client with
        ``uws_wait_per_client`` WAITs open, or a process whose share of request threads is
        waiting already, gets the job at once.  The job's phase is re-read from the database
        with a poll that starts at 50 ms and backs off to 500 ms.
        """
        timeout = parse_wait(seconds, self.settings.uws_wait_max_s)
        wanted = parse_phase(phase) if phase is not None else None
        job = self.get_job(user, job_id)
        start_phase = job.phase
        if wanted is not None and wanted != start_phase:
            return job
        if start_phase not in WAITABLE_PHASES or timeout <= 0:
            return job
        client = self.wait_client(user, address)
        with self.wait_slots.take(client, per_client=self.settings.uws_wait_per_client,
                                  total=wait_threads(self.settings)) as granted:
            if not granted:
                log.info("WAIT answered at once: its client or this process has as many "
                         "blocking WAITs as allowed", extra={"job_id": job_id, "client": client})
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
            raise JobNotFoundError(f"Job {job_id} has no result {shown(result_id)} "
                                   f"(phase {job.phase.value}).")
        path = Path(job.result_path or "")
        if not path.exists():
            raise JobNotFoundError(f"The result of job {job_id} is gone (destroyed).")
        return path, job.result_mime or "application/octet-stream"


def _single(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name) or []
    return values[-1] if values else None


def _run_id(value: str | None) -> str | None:
    if value is not None and len(value) > MAX_RUN_ID_CHARS:
        raise ParameterError(f"RUNID is {len(value)} characters long; the limit is "
                             f"{MAX_RUN_ID_CHARS}.")
    return value
