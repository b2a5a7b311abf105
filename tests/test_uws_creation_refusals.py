"""Creating an async job: RUN at creation over the quota leaves no job behind, and a job
without an error has no error document (404)."""
from __future__ import annotations

import dataclasses

import requests

from tests._tap import create_job, dali_error

# ---- UWS -------------------------------------------------------------------------------------


def _job_rows(database) -> int:
    from sqlalchemy import text

    from vo_service.core.database import owner_engine

    with owner_engine(database).connect() as conn:
        return conn.execute(text("SELECT count(*) FROM uws.jobs")).scalar_one()


def test_run_at_creation_over_the_quota_leaves_no_job(tap_url: str, app, database) -> None:
    service = app.extensions["pzvo.uws"]
    original = service.settings
    before = _job_rows(database)
    service.settings = dataclasses.replace(original, uws_max_active_jobs=0,
                                           uws_anonymous_max_active_jobs=0)
    try:
        resp = create_job(tap_url, QUERY="SELECT TOP 1 id FROM pz.specz_demo", PHASE="RUN")
        dali_error(resp, 429, "limit", "create the job again")
        assert "Location" not in resp.headers
        assert _job_rows(database) == before
        pending = create_job(tap_url, QUERY="SELECT TOP 1 id FROM pz.specz_demo")
        assert pending.status_code == 303  # without RUN the quota does not apply
    finally:
        service.settings = original
    job_url = pending.headers["Location"]
    assert requests.get(job_url + "/phase", timeout=10).text == "PENDING"
    resp = create_job(tap_url, QUERY="SELECT TOP 1 id FROM pz.specz_demo", PHASE="RUN")
    assert resp.status_code == 303
    assert requests.get(resp.headers["Location"] + "/phase", timeout=10).text in (
        "QUEUED", "EXECUTING", "COMPLETED")
    for url in (job_url, resp.headers["Location"]):
        requests.delete(url, timeout=10)


def test_error_of_a_job_without_one_is_404(tap_url: str) -> None:
    resp = create_job(tap_url, QUERY="SELECT TOP 1 id FROM pz.specz_demo")
    job_url = resp.headers["Location"]
    dali_error(requests.get(job_url + "/error", timeout=10), 404, "has no error")
    requests.delete(job_url, timeout=10)
