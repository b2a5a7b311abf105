"""Jobs survive workers: a killed worker's job is taken back, several workers never run a job
twice, a job that keeps killing workers ends in ERROR with the reason."""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from tests._services import worker_for
from tests._waiting import wait_until
from vo_service.auth import User
from vo_service.core.database import owner_engine
from vo_service.uws import ExecutionPhase, Job, JobStore, UwsService

#: A few seconds of work, so a worker can be killed in the middle of it.
MEDIUM = ("SELECT COUNT(*) AS n FROM bench.photoz AS a JOIN "
          "(SELECT TOP 4000 z FROM pz.specz_demo) AS b ON a.z_phot < b.z")
QUICK = "SELECT TOP 10 id FROM pz.specz_demo"


@pytest.fixture(scope="module")
def store(database) -> JobStore:
    return JobStore(owner_engine(database))


@pytest.fixture(scope="module")
def service(database, store) -> UwsService:
    return UwsService(settings=dataclasses.replace(database, uws_max_active_jobs=1000), store=store)


def submit(service: UwsService, query: str, user: str = "recovery") -> Job:
    return service.create_job(User(name=user), {"lang": ["ADQL"], "query": [query],
                                                "phase": ["RUN"]}, {})


def worker_env(database) -> dict[str, str]:
    env = dict(os.environ, PZVO_DB_NAME=database.db_name, PZVO_UWS_HEARTBEAT_S="0.3",
               PZVO_LOG_LEVEL="WARNING")
    if database.database_url:
        env["PZVO_DATABASE_URL"] = database.database_url
    return env


def test_killed_worker_job_is_requeued_and_completed(database, service, store) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "vo_service.cli", "worker", "--threads", "1"],
                            env=worker_env(database))
    try:
        job = submit(service, MEDIUM)
        wait_until(lambda: store.get(job.job_id).phase == ExecutionPhase.EXECUTING, 30, "EXECUTING")
        running = store.get(job.job_id)
        assert running.worker.split(":")[1].startswith(str(proc.pid))
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Nobody renews the lease now: the job stays EXECUTING until a reaper takes it back.
    assert store.get(job.job_id).phase == ExecutionPhase.EXECUTING
    rescuer = worker_for(dataclasses.replace(database, uws_lease_s=1.0, uws_heartbeat_s=0.3),
                           threads=1, name="rescuer")
    time.sleep(1.5)
    assert rescuer.reap()["reclaimed"] == 1
    requeued = store.get(job.job_id)
    assert requeued.phase == ExecutionPhase.QUEUED and "stopped" in requeued.progress
    rescuer.start()
    try:
        wait_until(lambda: store.get(job.job_id).phase == ExecutionPhase.COMPLETED, 60, "COMPLETED")
    finally:
        rescuer.stop()
    done = store.get(job.job_id)
    assert done.attempts == 2 and done.worker == "rescuer/0" and done.result_rows == 1


def test_job_that_keeps_losing_workers_ends_in_error(database, service, store) -> None:
    job = service.create_job(User(name="recovery"), {"lang": ["ADQL"], "query": [QUICK]}, {})
    with owner_engine(database).begin() as conn:
        conn.execute(text("UPDATE uws.jobs SET phase = 'EXECUTING', worker = 'ghost:1/0', "
                          "attempts = :n, heartbeat_at = now() - interval '1 hour', "
                          "start_time = now() - interval '1 hour' WHERE job_id = :id"),
                     {"id": job.job_id, "n": database.uws_max_attempts})
    reaper = worker_for(database, threads=0, name="reaper")
    assert reaper.reap()["reclaimed"] >= 1
    failed = store.get(job.job_id)
    assert failed.phase == ExecutionPhase.ERROR and failed.end_time is not None
    assert "worker running this job stopped" in failed.error_message


def test_several_workers_never_run_a_job_twice(database, service, store) -> None:
    jobs = [submit(service, QUICK, user="many") for _ in range(24)]
    workers = [worker_for(database, threads=3, name=f"w{i}") for i in range(3)]
    for w in workers:
        w.start()
    try:
        wait_until(lambda: all(store.get(j.job_id).phase == ExecutionPhase.COMPLETED for j in jobs),
                 60, "all jobs COMPLETED")
    finally:
        for w in workers:
            w.stop()
    finished = [store.get(j.job_id) for j in jobs]
    assert all(j.attempts == 1 for j in finished)
    assert len({j.result_path for j in finished}) == len(jobs)


def test_destroyed_jobs_leave_nothing(database, service, store) -> None:
    from vo_service.uws._service import job_dir

    job = submit(service, QUICK)
    worker = worker_for(database, threads=1, name="once")
    assert worker.run_one()
    assert store.get(job.job_id).phase == ExecutionPhase.COMPLETED
    assert job_dir(database, job.job_id).exists()
    store.update(job.job_id, destruction=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    assert worker.reap()["destroyed"] >= 1
    assert store.get(job.job_id) is None and not job_dir(database, job.job_id).exists()
