"""The job runner behind ``pzvo worker``: claims queued jobs, runs them, reaps the rest.

Each worker process runs ``uws_worker_threads`` job threads and one reaper thread.

A job thread claims the oldest QUEUED job (``JobStore.claim_next``), runs it through the same
query path as sync TAP (:meth:`vo_service.tap.TapService.stream`, so both give identical
results), writes the encoded result to ``var/uws/<db>/<job>/result.<ext>`` and records it.  While
the query runs, a heartbeat renews the job's lease every ``uws_heartbeat_s`` and notices when
the job was aborted or deleted, or ran past its execution duration; then it cancels the query
on its connection (``adbc_cancel``, PostgreSQL's cancel request).  The statement timeout of
the session is set to the execution duration as a backstop.  The execution duration is held to
the owner's limit again here, and the result may only take the room left in the owner's quota
of stored job bytes when the job started: a larger one is dropped and the job ends in ERROR.
Anonymous jobs are claimed only while fewer than ``uws_anonymous_slots`` of them run.

Jobs of other kinds (pipeline work such as a Training Set Maker run) go through the same queue,
leases and phases; the worker claims them only when it was given a runner for their kind
(:mod:`vo_service.uws._tasks`), and records the runner's outcome or error.

The reaper (every few seconds, in every worker; the statements are idempotent) takes back
EXECUTING jobs whose lease expired because their worker died (back to QUEUED, or to ERROR
after ``uws_max_attempts`` starts), destroys jobs past their destruction time with their
files, and drops upload tables that a dead process left behind.  It handles one job at a time
and each step on its own, so a row it cannot handle is logged and skipped, never the end of
clean-up for everyone.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from vo_service.core.settings import Settings
from vo_service.tap import (
    QueryTimeoutError,
    TapError,
    TapService,
    UploadLimits,
    parse_query_params,
    query_infos,
    read_votable,
)
from vo_service.uws._models import TAP_KIND, ExecutionPhase, Job
from vo_service.uws._service import duration_limit, format_bytes, job_dir, jobs_root, storage_quota
from vo_service.uws._storage import JobStore
from vo_service.uws._tasks import JobRunner, TaskCancelled, TaskContext, TaskFailed

log = logging.getLogger("vo_service.uws.worker")

#: Seconds between reaper runs.
REAP_INTERVAL_S = 5.0
#: Seconds an idle job thread sleeps before looking at the queue again.
IDLE_POLL_S = 0.25


def _rows(status_box: list) -> str | None:
    """A running query's progress: the rows written so far."""
    rows = status_box[0].rows if status_box else None
    return f"{rows} rows" if rows is not None else None


class _JobCancelled(Exception):
    """The job was aborted, deleted or taken back, or ran past its execution duration."""


class _OverQuota(Exception):
    """The result being written would take the owner past the quota of stored job bytes."""

    def __init__(self, size: int, room: int, quota: int) -> None:
        super().__init__(size)
        self.size, self.room, self.quota = size, room, quota


class _Cancel:
    """Shared between a job thread and its heartbeat: the connection and why to stop."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.conn: object | None = None
        self.gone = False
        self.timed_out = False
        self.done = threading.Event()

    @property
    def requested(self) -> bool:
        return self.gone or self.timed_out

    def attach(self, conn: object) -> None:
        with self.lock:
            self.conn = conn
            if self.requested:
                raise _JobCancelled()

    def request(self, *, gone: bool = False, timed_out: bool = False) -> None:
        with self.lock:
            self.gone |= gone
            self.timed_out |= timed_out
            if self.conn is not None and not self.done.is_set():
                try:
                    self.conn.adbc_cancel()  # type: ignore[attr-defined]
                except Exception:  # the statement timeout is the backstop
                    log.warning("could not cancel a running query", exc_info=True)


class Worker:
    """Runs async TAP jobs; see the module docstring."""

    def __init__(self, *, settings: Settings, store: JobStore, tap: TapService,
                 name: str | None = None, threads: int | None = None,
                 runners: Mapping[str, JobRunner] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.tap = tap
        self.runners = dict(runners or {})
        self.kinds = (TAP_KIND, *sorted(self.runners))
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.threads = threads if threads is not None else settings.uws_worker_threads
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        for index in range(self.threads):
            thread = threading.Thread(target=self._job_loop, args=(f"{self.name}/{index}",),
                                      name=f"uws-job-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        reaper = threading.Thread(target=self._reap_loop, name="uws-reaper", daemon=True)
        reaper.start()
        self._threads.append(reaper)
        log.info("worker started", extra={"worker": self.name, "threads": self.threads})

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; running jobs finish (or their lease expires and they are requeued)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def wait(self) -> None:
        while not self._stop.wait(1.0):
            pass

    # -- job threads ---------------------------------------------------------------------------
    def _job_loop(self, worker_name: str) -> None:
        while not self._stop.is_set():
            try:
                ran = self.run_one(worker_name)
            except Exception:  # the database may be down; keep trying
                log.exception("claiming a job failed", extra={"worker": worker_name})
                ran = False
                self._stop.wait(2.0)
            if not ran:
                self._stop.wait(IDLE_POLL_S)

    def run_one(self, worker_name: str | None = None) -> bool:
        """Claim and run one job; False when the queue was empty."""
        worker_name = worker_name or self.name
        job = self.store.claim_next(worker_name, anonymous_slots=self.settings.uws_anonymous_slots,
                                    kinds=self.kinds)
        if job is None:
            return False
        if job.kind == TAP_KIND:
            self.execute(job, worker_name)
        else:
            self.execute_task(job, worker_name)
        return True

    def execute(self, job: Job, worker_name: str) -> None:
        """Run a claimed job to COMPLETED or ERROR (unless it was aborted or deleted meanwhile)."""
        started = time.perf_counter()
        cancel = _Cancel()
        status_box: list = []
        heartbeat = threading.Thread(target=self._heartbeat,
                                     args=(job, worker_name, cancel, lambda: _rows(status_box), started),
                                     name=f"uws-heartbeat-{job.job_id}", daemon=True)
        folder = job_dir(self.settings, job.job_id)
        partial: Path | None = None
        outcome: dict[str, object] = {"phase": "ERROR"}
        # Jobs stored by older versions (or before a setting changed) may ask for more than
        # their owner may have now.
        limit = duration_limit(self.settings, job.owner)
        job.execution_duration = min(job.execution_duration or limit, limit)
        try:
            quota = storage_quota(self.settings, job.owner)
            room = quota - self.store.stored_bytes(job.owner, exclude=job.job_id)
            heartbeat.start()
            params = parse_query_params(job.parameter_map(),
                                        maxrec_default=self.settings.maxrec_default,
                                        maxrec_limit=self.settings.maxrec_limit)
            limits = UploadLimits.from_settings(self.settings)
            uploads = [read_votable(spec.name, (folder / f"upload-{spec.name}.vot").read_bytes(),
                                    limits) for spec in params.uploads]
            result = self.tap.stream(params, uploads=uploads,
                                     statement_timeout_ms=job.execution_duration * 1000,
                                     on_connection=cancel.attach,
                                     infos=query_infos(params, JOB_ID=job.job_id))
            status_box.append(result.status)
            with result:  # closing it ends the query: connection back to the pool, uploads dropped
                folder.mkdir(parents=True, exist_ok=True)
                final = folder / result.filename
                partial = final.with_name(final.name + ".part")
                size = 0
                with partial.open("wb") as fh:
                    for chunk in result.chunks:
                        size += len(chunk)
                        if size > room:
                            raise _OverQuota(size, room, quota)
                        fh.write(chunk)
                        if cancel.requested:
                            raise _JobCancelled()
            if cancel.requested:
                raise _JobCancelled()
            if result.status.error:
                raise TapError(result.status.error)
            os.replace(partial, final)
            partial = None
            outcome = {"phase": "COMPLETED", "rows": result.status.rows, "bytes": size,
                       "overflow": result.status.overflow}
            if not self.store.finish(job.job_id, worker_name, ExecutionPhase.COMPLETED,
                                     result_path=str(final), result_mime=result.media_type,
                                     result_size=size, result_rows=result.status.rows,
                                     overflow=result.status.overflow,
                                     progress=f"{result.status.rows} rows"):
                outcome["phase"] = "gone"
        except (TapError, _JobCancelled, _OverQuota, OSError) as exc:
            outcome = self._fail(job, worker_name, cancel, exc)
        except Exception as exc:  # whatever happens, the job must end
            log.exception("job failed unexpectedly", extra={"job_id": job.job_id})
            outcome = self._fail(job, worker_name, cancel, exc)
        finally:
            cancel.done.set()
            heartbeat.join(5.0)
            if partial is not None:
                partial.unlink(missing_ok=True)
            if outcome.get("phase") == "gone" or (cancel.gone and self.store.phase(job.job_id) is None):
                shutil.rmtree(folder, ignore_errors=True)  # deleted while it ran
            queued = job.queued_at or job.start_time
            log.info("job", extra={
                "job_id": job.job_id, "owner": job.owner, "worker": worker_name,
                "attempt": job.attempts, "run_ms": round((time.perf_counter() - started) * 1e3, 1),
                "queue_ms": round((job.start_time - queued).total_seconds() * 1e3, 1)
                if queued and job.start_time else None, **outcome})

    def execute_task(self, job: Job, worker_name: str) -> None:
        """Run a claimed pipeline job through its kind's runner to COMPLETED or ERROR."""
        started = time.perf_counter()
        cancel = _Cancel()
        progress: list[str] = []
        heartbeat = threading.Thread(target=self._heartbeat,
                                     args=(job, worker_name, cancel, lambda: progress[-1] if progress else None,
                                           started),
                                     name=f"uws-heartbeat-{job.job_id}", daemon=True)
        folder = job_dir(self.settings, job.job_id)
        outcome: dict[str, object] = {"phase": "ERROR"}
        limit = duration_limit(self.settings, job.owner)
        job.execution_duration = min(job.execution_duration or limit, limit)

        def report(text: str) -> None:
            progress.append(text)
            if not self.store.heartbeat(job.job_id, worker_name, progress=text):
                cancel.request(gone=True)

        try:
            heartbeat.start()
            runner = self.runners.get(job.kind)
            if runner is None:  # claim_next takes only kinds with a runner
                raise TaskFailed(f"this worker cannot run jobs of kind {job.kind!r}")
            folder.mkdir(parents=True, exist_ok=True)
            result = dict(runner(TaskContext(job=job, folder=folder, report=report,
                                             cancelled=lambda: cancel.requested)))
            if cancel.requested:
                raise _JobCancelled()
            outcome = {"phase": "COMPLETED"}
            if not self.store.finish(job.job_id, worker_name, ExecutionPhase.COMPLETED, outcome=result,
                                     progress="done"):
                outcome["phase"] = "gone"
        except TaskCancelled:
            outcome = self._fail(job, worker_name, cancel, _JobCancelled())
        except (TaskFailed, _JobCancelled, OSError) as exc:
            outcome = self._fail(job, worker_name, cancel, exc)
        except Exception as exc:  # whatever happens, the job must end
            log.exception("job failed unexpectedly", extra={"job_id": job.job_id, "kind": job.kind})
            outcome = self._fail(job, worker_name, cancel, exc)
        finally:
            cancel.done.set()
            heartbeat.join(5.0)
            if outcome.get("phase") == "gone" or (cancel.gone and self.store.phase(job.job_id) is None):
                shutil.rmtree(folder, ignore_errors=True)
            log.info("job", extra={
                "job_id": job.job_id, "kind": job.kind, "owner": job.owner, "worker": worker_name,
                "attempt": job.attempts, "run_ms": round((time.perf_counter() - started) * 1e3, 1), **outcome})

    def _fail(self, job: Job, worker_name: str, cancel: _Cancel,
              exc: BaseException) -> dict[str, object]:
        if cancel.gone:
            return {"phase": "gone", "reason": "aborted, deleted or taken back"}
        if isinstance(exc, _OverQuota):
            message = (f"The result grew past {format_bytes(exc.size)}, more than the "
                       f"{format_bytes(max(0, exc.room))} left of the {format_bytes(exc.quota)} "
                       f"quota of stored job uploads and results "
                       f"{'of all anonymous users' if job.owner is None else 'of ' + job.owner}; "
                       "nothing was kept. Delete jobs you no longer need "
                       "(DELETE /tap/async/<job id>), or ask for fewer rows (MAXREC) or columns.")
        elif cancel.timed_out or isinstance(exc, QueryTimeoutError):
            limit = duration_limit(self.settings, job.owner)
            users_limit = self.settings.uws_max_execution_duration_s
            token = f"; {users_limit} s with a token" if limit < users_limit else ""
            message = (f"The job ran longer than its execution duration of "
                       f"{job.execution_duration} s and was cancelled. Ask for a longer "
                       f"EXECUTIONDURATION (up to {limit} s{token}) or narrow the query.")
        elif isinstance(exc, TapError):
            message = exc.message
        elif isinstance(exc, TaskFailed):
            message = str(exc)
        elif isinstance(exc, OSError):
            message = f"The job's files could not be written or read: {exc}"
        else:
            message = f"Internal error ({type(exc).__name__}); the service log has details."
        self.store.finish(job.job_id, worker_name, ExecutionPhase.ERROR, error_type="fatal",
                          error_message=message)
        return {"phase": "ERROR", "error": message}

    def _heartbeat(self, job: Job, worker_name: str, cancel: _Cancel, progress: Callable[[], str | None],
                   started: float) -> None:
        interval = self.settings.uws_heartbeat_s
        while not cancel.done.wait(interval):
            try:
                alive = self.store.heartbeat(job.job_id, worker_name, progress=progress())
            except Exception:  # lease expiry takes over if this keeps failing
                log.warning("heartbeat failed", extra={"job_id": job.job_id}, exc_info=True)
                continue
            if not alive:
                cancel.request(gone=True)
            elif time.perf_counter() - started > job.execution_duration:
                cancel.request(timed_out=True)

    # -- reaper --------------------------------------------------------------------------------
    def _reap_loop(self) -> None:
        while not self._stop.wait(REAP_INTERVAL_S):
            try:
                self.reap()
            except Exception:  # try again next round
                log.warning("reaper round failed", exc_info=True)

    def reap(self) -> dict[str, int]:
        """One round: take back jobs of dead workers, destroy expired jobs, drop orphans.

        Each step, and each job within a step, fails alone: a row or file that cannot be
        handled is logged and skipped, and everything else is still cleaned up.
        """
        counts: dict[str, int] = {}
        for name, step in (("reclaimed", self._reclaim_stale), ("destroyed", self._destroy_expired),
                           ("orphan_uploads", self._drop_orphan_uploads),
                           ("orphan_dirs", self._remove_orphan_dirs)):
            try:
                counts[name] = step()
            except Exception:  # the other steps still run; this one next round
                log.warning("reaper step failed", extra={"step": name}, exc_info=True)
                counts[name] = 0
        return counts

    def _reclaim_stale(self) -> int:
        reclaimed = 0
        for job_id in self.store.stale_jobs(self.settings.uws_lease_s):
            try:
                phase = self.store.reclaim(job_id, self.settings.uws_lease_s,
                                           self.settings.uws_max_attempts)
            except Exception:  # one bad row must not stop the others
                log.warning("could not take back a job", extra={"job_id": job_id}, exc_info=True)
                continue
            if phase is not None:
                reclaimed += 1
                log.warning("job taken back from a dead worker",
                            extra={"job_id": job_id, "new_phase": phase})
        return reclaimed

    def _destroy_expired(self) -> int:
        destroyed = 0
        for job_id in self.store.expired_jobs():
            try:
                gone = self.store.destroy(job_id)
                if gone is None:
                    continue
                shutil.rmtree(job_dir(self.settings, job_id), ignore_errors=True)
            except Exception:  # one bad row must not stop the others
                log.warning("could not destroy a job", extra={"job_id": job_id}, exc_info=True)
                continue
            destroyed += 1
            log.info("job destroyed", extra={"job_id": job_id, "owner": gone[0],
                                             "destruction": gone[1]})
        return destroyed

    def _drop_orphan_uploads(self) -> int:
        return self.tap.upload_store.drop_older_than(
            self.settings.uws_max_execution_duration_s + self.settings.query_timeout_s + 600)

    def _remove_orphan_dirs(self, min_age_s: float = 3600) -> int:
        """Job folders without a job record (a crash between writing uploads and the insert)."""
        root = jobs_root(self.settings)
        if not root.exists():
            return 0
        cutoff = time.time() - min_age_s
        candidates = []
        for path in root.iterdir():
            try:
                if path.is_dir() and path.stat().st_mtime < cutoff:
                    candidates.append(path)
            except OSError:  # removed meanwhile, or unreadable: not ours to judge now
                continue
        if not candidates:
            return 0
        known = self.store.job_ids()
        removed = 0
        for path in candidates:
            if path.name not in known:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        return removed
