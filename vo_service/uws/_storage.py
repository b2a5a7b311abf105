"""The ``uws.jobs`` table: every read and write of job state, and the claim/lease protocol.

The owner's quotas (active jobs, stored bytes) are summed and the write they allow is made in
one transaction under an advisory lock per owner (``uws:<owner>``), so concurrent requests of
one owner are checked one after the other and cannot all pass on the same sum.

Workers claim jobs with ``SELECT ... FOR UPDATE SKIP LOCKED`` inside one UPDATE, so two
workers never get the same job and a claim never waits behind another worker's lock.  A
claimed job carries the worker's name and a heartbeat; every state change a worker makes is
conditional on ``phase = 'EXECUTING' AND worker = <itself>``, so a worker whose job was
aborted, deleted or taken back (lease expired) cannot overwrite what happened meanwhile.
"""
from __future__ import annotations

import builtins
import datetime as dt
import json
from collections.abc import Iterable, Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine, RowMapping

from vo_service.uws._models import TAP_KIND, WAITABLE_PHASES, ExecutionPhase, Job

#: Destruction as Python can hold it: rows written by versions before migration 0008 may
#: carry times psycopg cannot convert (before year 1), which must not make a read fail.
_DESTRUCTION = ("greatest(least(destruction, TIMESTAMPTZ '9998-12-31 00:00:00+00'), "
                "TIMESTAMPTZ '1970-01-01 00:00:00+00') AS destruction")
_COLUMNS = ("job_id, owner, run_id, phase, parameters, execution_duration, " + _DESTRUCTION + ", "
            "creation_time, queued_at, start_time, end_time, worker, heartbeat_at, attempts, "
            "progress, error_type, error_message, result_path, result_mime, result_size, "
            "result_rows, overflow, input_bytes, kind, outcome")
#: Advisory lock taken (without waiting) by a claim that may start an anonymous job.
_ANONYMOUS_CLAIM_LOCK = "uws-claim:anonymous"


class OverByteQuota(Exception):
    """A write refused because the owner's jobs hold ``used`` bytes, which leaves no room for
    it in the quota; the service turns it into its 403."""

    def __init__(self, used: int) -> None:
        super().__init__(used)
        self.used = used


def _of_owner(owner: str | None) -> str:
    """The owner's rows, written so that the owner index serves anonymous rows too (``IS NOT
    DISTINCT FROM`` cannot use it)."""
    return "owner IS NULL" if owner is None else "owner = :owner"


def _parameters(value: object) -> list[tuple[str, str]]:
    """The stored (name, value) pairs; anything else in the column is skipped, not fatal."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    if not isinstance(value, list):
        return []
    return [(str(item[0]), str(item[1])) for item in value
            if isinstance(item, list | tuple) and len(item) == 2]


def _job(row: RowMapping) -> Job:
    return Job(
        job_id=row["job_id"], owner=row["owner"], run_id=row["run_id"],
        phase=ExecutionPhase(row["phase"]), parameters=_parameters(row["parameters"]),
        execution_duration=row["execution_duration"], destruction=row["destruction"],
        creation_time=row["creation_time"], queued_at=row["queued_at"],
        start_time=row["start_time"], end_time=row["end_time"], worker=row["worker"],
        heartbeat_at=row["heartbeat_at"], attempts=row["attempts"], progress=row["progress"],
        error_type=row["error_type"], error_message=row["error_message"],
        result_path=row["result_path"], result_mime=row["result_mime"],
        result_size=row["result_size"], result_rows=row["result_rows"], overflow=row["overflow"],
        input_bytes=row["input_bytes"] or 0, kind=row["kind"], outcome=_outcome(row["outcome"]))


def _outcome(value: object) -> dict[str, object] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


class JobStore:
    """Job records in PostgreSQL, written by the owner role (web processes and workers)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- web side ------------------------------------------------------------------------------
    def insert(self, job: Job, *, max_active: int | None = None,
               max_bytes: int | None = None) -> bool:
        """Store a new job, only if its owner's quotas have room for it, else nothing.

        With ``max_bytes``, the owner's jobs plus this one's ``input_bytes`` must fit in it
        (else :class:`OverByteQuota`); with ``max_active``, the owner's queued and executing
        jobs must be fewer (else False).  Both are counted under the owner's lock in the
        insert's transaction, as in :meth:`queue`.
        """
        with self.engine.begin() as conn:
            if not self._quotas_allow(conn, job.owner, max_active=max_active,
                                      max_bytes=max_bytes, adding=job.input_bytes):
                return False
            conn.execute(text(
                "INSERT INTO uws.jobs (job_id, owner, run_id, phase, parameters, "
                "execution_duration, destruction, creation_time, queued_at, input_bytes, kind) VALUES "
                "(:id, :owner, :run_id, :phase, CAST(:params AS jsonb), :duration, :destruction, "
                ":created, :queued_at, :input_bytes, :kind)"),
                {"id": job.job_id, "owner": job.owner, "run_id": job.run_id,
                 "phase": job.phase.value, "params": json.dumps(job.parameters),
                 "duration": job.execution_duration, "destruction": job.destruction,
                 "created": job.creation_time, "queued_at": job.queued_at,
                 "input_bytes": job.input_bytes, "kind": job.kind})
        return True

    def get(self, job_id: str) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(text(f"SELECT {_COLUMNS} FROM uws.jobs WHERE job_id = :id"),
                               {"id": job_id}).mappings().first()
        return _job(row) if row else None

    def phase(self, job_id: str) -> ExecutionPhase | None:
        with self.engine.connect() as conn:
            value = conn.execute(text("SELECT phase FROM uws.jobs WHERE job_id = :id"),
                                 {"id": job_id}).scalar()
        return ExecutionPhase(value) if value else None

    def list(self, owner: str, *, phases: Iterable[str] = (), after: dt.datetime | None = None,
             last: int | None = None, kind: str = TAP_KIND) -> list[Job]:
        """Jobs of ``owner`` (never anonymous ones) of one kind, filtered as UWS 1.1 section
        2.2.2.1 says."""
        clauses = ["owner = :owner", "kind = :kind"]
        args: dict[str, object] = {"owner": owner, "kind": kind}
        phases = list(phases)
        if phases:
            clauses.append("phase = ANY(:phases)")
            args["phases"] = phases
        else:
            clauses.append("phase <> 'ARCHIVED'")
        if after is not None:
            clauses.append("date_trunc('milliseconds', creation_time) > :after")  # as shown
            args["after"] = after
        sql = f"SELECT {_COLUMNS} FROM uws.jobs WHERE {' AND '.join(clauses)}"
        if last is not None:
            sql += " ORDER BY creation_time DESC LIMIT :last"
            args["last"] = last
        else:
            sql += " ORDER BY creation_time"
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(text(sql), args).mappings()]

    def stored_bytes(self, owner: str | None, *, exclude: str | None = None) -> int:
        """Bytes the owner's jobs hold (inputs and results; anonymous jobs all together),
        leaving out the job ``exclude``'s result (the one being written).  A snapshot: a
        write that must stay within the quota checks it again in its own transaction."""
        with self.engine.connect() as conn:
            return self._stored(conn, owner, exclude)

    @staticmethod
    def _stored(conn: Connection, owner: str | None, exclude: str | None = None) -> int:
        """:meth:`stored_bytes` in the caller's transaction (after its lock, if it took one)."""
        return int(conn.execute(text(
            "SELECT coalesce(sum(input_bytes + CASE WHEN job_id = :exclude THEN 0 "
            f"ELSE coalesce(result_size, 0) END), 0) FROM uws.jobs WHERE {_of_owner(owner)}"),
            {"owner": owner, "exclude": exclude}).scalar_one())

    def count_active(self, owner: str | None) -> int:
        with self.engine.connect() as conn:
            return conn.execute(text(
                f"SELECT count(*) FROM uws.jobs WHERE {_of_owner(owner)} "
                "AND phase IN ('QUEUED', 'EXECUTING')"), {"owner": owner}).scalar_one()

    def update(self, job_id: str, *, only_in: Iterable[ExecutionPhase] | None = None,
               max_bytes: int | None = None, adding_bytes: int = 0,
               **values: object) -> Job | None:
        """Set columns of a job; with ``only_in``, only while it is in one of those phases.

        With ``max_bytes``, a change that makes the job hold ``adding_bytes`` more is made
        only if its owner's jobs still fit in the quota with them (checked under the owner's
        lock in the same transaction), else :class:`OverByteQuota`.
        Returns the updated job, or None when it does not exist or was in another phase.
        """
        sets = []
        args: dict[str, object] = {"id": job_id}
        for name, value in values.items():
            if name == "parameters":
                sets.append("parameters = CAST(:parameters AS jsonb)")
                args["parameters"] = json.dumps(value)
            elif value == "now()":
                sets.append(f"{name} = now()")
            else:
                sets.append(f"{name} = :{name}")
                args[name] = value.value if isinstance(value, ExecutionPhase) else value
        where = "job_id = :id"
        if only_in is not None:
            where += " AND phase = ANY(:only_in)"
            args["only_in"] = [p.value for p in only_in]
        with self.engine.begin() as conn:
            if max_bytes is not None:
                owner = conn.execute(text("SELECT owner FROM uws.jobs WHERE job_id = :id"),
                                     {"id": job_id}).first()
                if owner is None:
                    return None
                self._quotas_allow(conn, owner[0], max_bytes=max_bytes, adding=adding_bytes)
            row = conn.execute(text(f"UPDATE uws.jobs SET {', '.join(sets)} WHERE {where} "
                                    f"RETURNING {_COLUMNS}"), args).mappings().first()
        return _job(row) if row else None

    def queue(self, job_id: str, owner: str | None, max_active: int, *,
              max_bytes: int | None = None) -> tuple[Job | None, bool]:
        """PENDING/HELD -> QUEUED unless the owner's quota is full; (job, quota_full).

        The owner's count and the change happen in one transaction under an advisory lock
        per owner, so two concurrent RUNs cannot both take the last place.  With
        ``max_bytes``, the owner's jobs must hold less than it (else :class:`OverByteQuota`),
        checked under the same lock, so a creation that fills the quota meanwhile is seen.
        """
        with self.engine.begin() as conn:
            if not self._quotas_allow(conn, owner, max_active=max_active, max_bytes=max_bytes):
                return None, True
            row = conn.execute(text(
                f"UPDATE uws.jobs SET phase = 'QUEUED', queued_at = now() WHERE job_id = :id "
                f"AND phase IN ('PENDING', 'HELD') RETURNING {_COLUMNS}"),
                {"id": job_id}).mappings().first()
        return (_job(row) if row else None), False

    @classmethod
    def _quotas_allow(cls, conn: Connection, owner: str | None, *,
                      max_active: int | None = None, max_bytes: int | None = None,
                      adding: int = 0) -> bool:
        """Lock the owner's quotas until the end of this transaction, then check them.

        Stored bytes: with ``adding``, the owner's jobs plus it must fit in ``max_bytes``;
        without, they must hold less (a job may not start at or over the quota).  Over it:
        :class:`OverByteQuota`.  Active jobs: False when ``max_active`` are queued or executing.
        Every writer takes the lock before it sums, so no two of them act on the same sum.
        """
        if max_active is None and max_bytes is None:
            return True
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('uws:' || coalesce(:o, '')))"),
                     {"o": owner})
        if max_bytes is not None:
            used = cls._stored(conn, owner)
            if (used + adding > max_bytes) if adding else (used >= max_bytes):
                raise OverByteQuota(used)
        if max_active is None:
            return True
        active = conn.execute(text(
            f"SELECT count(*) FROM uws.jobs WHERE {_of_owner(owner)} "
            "AND phase IN ('QUEUED', 'EXECUTING')"), {"owner": owner}).scalar_one()
        return active < max_active

    @staticmethod
    def retire_owner(conn: Connection, owner: str) -> int:
        """For a user being deleted, in the caller's transaction: abort the owner's unfinished
        jobs and make all of them expire now, so the reaper removes them with their files as
        any expired job; the number of jobs."""
        return conn.execute(text(
            "UPDATE uws.jobs SET destruction = now(), "
            "end_time = CASE WHEN phase = ANY(:active) THEN now() ELSE end_time END, "
            "phase = CASE WHEN phase = ANY(:active) THEN 'ABORTED' ELSE phase END "
            "WHERE owner = :owner"),
            {"owner": owner, "active": sorted(p.value for p in WAITABLE_PHASES)}).rowcount

    def delete(self, job_id: str) -> Job | None:
        with self.engine.begin() as conn:
            row = conn.execute(text(f"DELETE FROM uws.jobs WHERE job_id = :id RETURNING {_COLUMNS}"),
                               {"id": job_id}).mappings().first()
        return _job(row) if row else None

    # -- worker side ---------------------------------------------------------------------------
    def claim_next(self, worker: str, *, anonymous_slots: int | None = None,
                   kinds: Sequence[str] = (TAP_KIND,)) -> Job | None:
        """Take the oldest QUEUED job of one of ``kinds`` for ``worker``; None when there is none.

        With ``anonymous_slots``, an anonymous job is taken only while fewer anonymous jobs
        run, so anonymous users cannot fill every worker.  The count is made under an advisory
        lock that no claim waits for: a claim that does not get it takes only users' jobs
        this time, so claims still never queue behind each other.
        """
        with self.engine.begin() as conn:
            anonymous_ok = True
            if anonymous_slots is not None:
                anonymous_ok = anonymous_slots > 0 and bool(conn.execute(text(
                    "SELECT pg_try_advisory_xact_lock(hashtext(:key))"),
                    {"key": _ANONYMOUS_CLAIM_LOCK}).scalar())
                if anonymous_ok:
                    running = conn.execute(text(
                        "SELECT count(*) FROM uws.jobs WHERE phase = 'EXECUTING' "
                        "AND owner IS NULL")).scalar_one()
                    anonymous_ok = running < anonymous_slots
            row = conn.execute(text(
                f"UPDATE uws.jobs SET phase = 'EXECUTING', worker = :w, start_time = now(), "
                f"heartbeat_at = now(), attempts = attempts + 1, progress = NULL "
                f"WHERE job_id = (SELECT job_id FROM uws.jobs WHERE phase = 'QUEUED' "
                f"AND (owner IS NOT NULL OR :anonymous_ok) AND kind = ANY(:kinds) "
                f"ORDER BY queued_at, job_id LIMIT 1 FOR UPDATE SKIP LOCKED) "
                f"RETURNING {_COLUMNS}"), {"w": worker, "anonymous_ok": anonymous_ok, "kinds": list(kinds)}
            ).mappings().first()
        return _job(row) if row else None

    def heartbeat(self, job_id: str, worker: str, progress: str | None = None) -> bool:
        """Renew the lease; False when the job is no longer this worker's running job
        (aborted, deleted, or taken back), which tells the worker to cancel it."""
        with self.engine.begin() as conn:
            row = conn.execute(text(
                "UPDATE uws.jobs SET heartbeat_at = now(), progress = coalesce(:p, progress) "
                "WHERE job_id = :id AND worker = :w AND phase = 'EXECUTING' RETURNING 1"),
                {"id": job_id, "w": worker, "p": progress}).first()
        return row is not None

    def finish(self, job_id: str, worker: str, phase: ExecutionPhase, **values: object) -> bool:
        """Record the end of a run, only if the job is still this worker's running job."""
        sets = ["phase = :phase", "end_time = now()"]
        args: dict[str, object] = {"id": job_id, "w": worker, "phase": phase.value}
        for name, value in values.items():
            if name == "outcome":
                sets.append("outcome = CAST(:outcome AS jsonb)")
                value = json.dumps(value, default=str)
            else:
                sets.append(f"{name} = :{name}")
            args[name] = value
        with self.engine.begin() as conn:
            row = conn.execute(text(
                f"UPDATE uws.jobs SET {', '.join(sets)} WHERE job_id = :id AND worker = :w "
                f"AND phase = 'EXECUTING' RETURNING 1"), args).first()
        return row is not None

    def stale_jobs(self, lease_s: float) -> builtins.list[str]:
        """EXECUTING jobs whose worker has not renewed the lease for ``lease_s`` seconds."""
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(text(
                "SELECT job_id FROM uws.jobs WHERE phase = 'EXECUTING' "
                "AND heartbeat_at < now() - make_interval(secs => :lease)"), {"lease": lease_s})]

    def reclaim(self, job_id: str, lease_s: float, max_attempts: int) -> str | None:
        """Send one job of a dead worker back to the queue, or to ERROR after ``max_attempts``
        starts; the new phase, or None when it was no longer stale."""
        with self.engine.begin() as conn:
            return conn.execute(text(
                "UPDATE uws.jobs SET "
                "phase = CASE WHEN attempts >= :max THEN 'ERROR' ELSE 'QUEUED' END, "
                "queued_at = CASE WHEN attempts >= :max THEN queued_at ELSE now() END, "
                "end_time = CASE WHEN attempts >= :max THEN now() ELSE NULL END, "
                "error_type = CASE WHEN attempts >= :max THEN 'transient' END, "
                "error_message = CASE WHEN attempts >= :max THEN "
                "  'The worker running this job stopped (' || coalesce(worker, '?') || ') ' || "
                "  attempts || ' times; the job was not retried again. Submit it anew.' END, "
                "start_time = CASE WHEN attempts >= :max THEN start_time END, "
                "progress = CASE WHEN attempts >= :max THEN progress ELSE "
                "  'requeued: worker ' || coalesce(worker, '?') || ' stopped' END, "
                "worker = NULL "
                "WHERE job_id = :id AND phase = 'EXECUTING' "
                "AND heartbeat_at < now() - make_interval(secs => :lease) RETURNING phase"),
                {"id": job_id, "max": max_attempts, "lease": lease_s}).scalar()

    def expired_jobs(self) -> builtins.list[str]:
        """Jobs past their destruction time, oldest first (ids only: reading them cannot fail)."""
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(text(
                "SELECT job_id FROM uws.jobs WHERE destruction <= now() ORDER BY destruction"))]

    def destroy(self, job_id: str) -> tuple[str | None, str] | None:
        """Delete one expired job's record: (owner, destruction as text), or None when it was
        gone or is no longer expired.  The caller removes its files."""
        with self.engine.begin() as conn:
            row = conn.execute(text(
                "DELETE FROM uws.jobs WHERE job_id = :id AND destruction <= now() "
                "RETURNING owner, destruction::text"), {"id": job_id}).first()
        return (row[0], row[1]) if row else None

    def job_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(text("SELECT job_id FROM uws.jobs"))}
