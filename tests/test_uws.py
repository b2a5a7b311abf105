"""Async TAP (UWS 1.1 at /tap/async): documents, sub-resources, phases, WAIT, access, limits.

An in-process worker (two job threads) runs the jobs; documents are validated against the
UWS 1.1 schema.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from astropy.io.votable import parse_single_table
from lxml import etree

from tests._services import worker_for

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "vo_service" / "uws" / "schema"
NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0", "xlink": "http://www.w3.org/1999/xlink"}
QUICK = "SELECT TOP 50 id, ra, dec, z FROM pz.specz_demo ORDER BY id"
#: About 20 s of work: long enough to abort, time out or kill mid-way.
SLOW = ("SELECT COUNT(*) AS n FROM bench.photoz AS a JOIN pz.photoz_demo AS b "
        "ON a.z_phot < b.z_phot")


@pytest.fixture(scope="module")
def uws_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "UWS-v1.1.xsd")))


@pytest.fixture(scope="module")
def worker(database, app) -> Iterator[object]:
    import shutil

    from vo_service.uws._service import jobs_root

    # The session database is new, so any job folder left for it by an earlier run is stale.
    shutil.rmtree(jobs_root(database), ignore_errors=True)
    settings = dataclasses.replace(database, uws_heartbeat_s=0.3)
    w = worker_for(settings, threads=2, name="test-worker")
    w.start()
    yield w
    w.stop()


@pytest.fixture(scope="module")
def users(database) -> dict[str, dict[str, str]]:
    from vo_service.auth import AuthService
    from vo_service.core.database import owner_engine

    auth = AuthService(engine=owner_engine(database))
    suffix = uuid.uuid4().hex[:6]
    return {who: {"Authorization": f"Bearer {auth.add_user(f'{who}-{suffix}')}"}
            for who in ("alice", "bob")}


def valid(schema: etree.XMLSchema, body: bytes) -> etree._Element:
    doc = etree.fromstring(body)
    assert schema.validate(doc), schema.error_log
    return doc


def create(tap_url: str, query: str = QUICK, headers: dict | None = None, **params: str) -> str:
    r = requests.post(tap_url + "/async", data={"LANG": "ADQL", "QUERY": query, **params},
                      headers=headers, allow_redirects=False, timeout=30)
    assert r.status_code == 303, r.text
    return r.headers["Location"]


def wait_final(job_url: str, headers: dict | None = None, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = requests.get(job_url, params={"WAIT": "10"}, headers=headers, timeout=30)
        phase = etree.fromstring(r.content).findtext("uws:phase", namespaces=NS)
        if phase in ("COMPLETED", "ERROR", "ABORTED"):
            return phase
    raise AssertionError(f"{job_url} did not finish")


def wait_phase(job_url: str, wanted: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if requests.get(job_url + "/phase", timeout=10).text == wanted:
            return
        time.sleep(0.05)
    raise AssertionError(f"{job_url} never reached {wanted}")


def test_create_gives_303_and_a_valid_pending_job(tap_url: str, uws_schema) -> None:
    job_url = create(tap_url, RUNID="my-run")
    assert job_url.startswith(tap_url + "/async/")
    r = requests.get(job_url, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/xml")
    doc = valid(uws_schema, r.content)
    assert doc.get("version") == "1.1"
    assert doc.findtext("uws:phase", namespaces=NS) == "PENDING"
    assert doc.findtext("uws:runId", namespaces=NS) == "my-run"
    assert job_url.endswith("/" + doc.findtext("uws:jobId", namespaces=NS))
    params = {p.get("id"): p.text for p in doc.iterfind("uws:parameters/uws:parameter", NS)}
    assert params["query"] == QUICK and params["lang"] == "ADQL"
    phase = requests.get(job_url + "/phase", timeout=10)
    assert phase.text == "PENDING" and phase.headers["Content-Type"].startswith("text/plain")


def test_subresources(tap_url: str, database) -> None:
    job_url = create(tap_url, RUNID="r1")
    get = lambda sub: requests.get(job_url + sub, timeout=10)  # noqa: E731
    anonymous_limit = database.uws_anonymous_max_execution_duration_s  # no token: the short one
    assert get("/executionduration").text == str(min(database.uws_execution_duration_s,
                                                     anonymous_limit))
    assert get("/quote").text == ""
    assert get("/owner").text == ""  # anonymous job: no owner
    assert get("/runId").text == "r1"
    destruction = get("/destruction").text
    assert destruction.endswith("Z") and "T" in destruction
    doc = etree.fromstring(get("").content)
    assert doc.findtext("uws:destruction", namespaces=NS) == destruction

    r = requests.post(job_url + "/executionduration", data={"EXECUTIONDURATION": "30"},
                      allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"] == job_url
    assert get("/executionduration").text == "30"
    requests.post(job_url + "/executionduration", data={"EXECUTIONDURATION": "99999999"}, timeout=10)
    assert get("/executionduration").text == str(anonymous_limit)
    requests.post(job_url + "/destruction", data={"DESTRUCTION": "2031-01-02T03:04:05Z"}, timeout=10)
    later = get("/destruction").text
    assert later < "2031-01-02T03:04:05Z"  # capped at the retention limit
    requests.post(job_url + "/destruction", data={"DESTRUCTION": destruction}, timeout=10)
    assert get("/destruction").text == destruction

    r = requests.post(job_url + "/parameters", data={"MAXREC": "7", "runId": "r2"},
                      allow_redirects=False, timeout=10)
    assert r.status_code == 303
    assert get("/runId").text == "r2"
    params = etree.fromstring(get("/parameters").content)
    assert {p.get("id"): p.text for p in params}["maxrec"] == "7"
    assert etree.fromstring(get("/results").content).tag == f"{{{NS['uws']}}}results"


def test_bad_subresource_values_are_dali_errors(tap_url: str) -> None:
    job_url = create(tap_url)
    for sub, data in (("/executionduration", {"EXECUTIONDURATION": "soon"}),
                      ("/destruction", {"DESTRUCTION": "tomorrow"}),
                      ("/phase", {"PHASE": "SUSPEND"})):
        r = requests.post(job_url + sub, data=data, timeout=10)
        assert r.status_code == 400, sub
        assert 'value="ERROR"' in r.text
    assert requests.get(job_url, params={"WAIT": "x"}, timeout=10).status_code == 400


def test_bad_tap_parameters_send_the_job_to_error(tap_url: str, worker) -> None:
    """TAP 1.1 (and taplint's QAS stage) want a job for any query; it ends in ERROR."""
    for data, word in (({"LANG": "SQL", "QUERY": QUICK}, "LANG=SQL"),
                       ({"LANG": "ADQL", "QUERY": QUICK, "MAXREC": "-3"}, "MAXREC")):
        r = requests.post(tap_url + "/async", data={**data, "PHASE": "RUN"},
                          allow_redirects=False, timeout=10)
        assert r.status_code == 303
        job_url = r.headers["Location"]
        assert wait_final(job_url) == "ERROR"
        assert word in requests.get(job_url + "/error", timeout=10).text


def test_run_gives_the_same_result_as_sync(tap_url: str, worker, uws_schema) -> None:
    job_url = create(tap_url, PHASE="RUN")
    assert wait_final(job_url) == "COMPLETED"
    doc = valid(uws_schema, requests.get(job_url, timeout=10).content)
    result = doc.find("uws:results/uws:result", NS)
    assert result.get("id") == "result"
    href = result.get(f"{{{NS['xlink']}}}href")
    assert href == job_url + "/results/result"
    assert doc.findtext("uws:startTime", namespaces=NS) <= doc.findtext("uws:endTime", namespaces=NS)
    async_body = requests.get(href, timeout=30)
    assert async_body.status_code == 200
    assert async_body.headers["Content-Type"].startswith("application/x-votable+xml")
    assert int(result.get("size")) == len(async_body.content)
    sync_body = requests.get(tap_url + "/sync", params={"LANG": "ADQL", "QUERY": QUICK}, timeout=30)
    a = parse_single_table(io.BytesIO(async_body.content)).to_table()
    s = parse_single_table(io.BytesIO(sync_body.content)).to_table()
    assert a.colnames == s.colnames and len(a) == len(s) == 50
    for name in a.colnames:
        assert np.array_equal(a[name], s[name])


def test_result_formats_and_overflow(tap_url: str, worker) -> None:
    job_url = create(tap_url, "SELECT id FROM pz.specz_demo", PHASE="RUN", MAXREC="5",
                     RESPONSEFORMAT="csv")
    assert wait_final(job_url) == "COMPLETED"
    r = requests.get(job_url + "/results/result", timeout=10)
    assert r.headers["Content-Type"].startswith("text/csv")
    assert len(r.text.strip().splitlines()) == 6


def test_adql_error_sends_the_job_to_error(tap_url: str, worker, uws_schema) -> None:
    job_url = create(tap_url, "SELECT nope FROM pz.specz_demo", PHASE="RUN")
    assert wait_final(job_url) == "ERROR"
    doc = valid(uws_schema, requests.get(job_url, timeout=10).content)
    assert "nope" in doc.findtext("uws:errorSummary/uws:message", namespaces=NS)
    error = requests.get(job_url + "/error", timeout=10)
    assert error.headers["Content-Type"].startswith("application/x-votable+xml")
    assert 'value="ERROR"' in error.text and "nope" in error.text
    assert requests.get(job_url + "/results/result", timeout=10).status_code == 404


def test_wait_blocks_until_the_timeout_or_a_change(tap_url: str, worker) -> None:
    job_url = create(tap_url)
    t0 = time.monotonic()
    r = requests.get(job_url, params={"WAIT": "1"}, timeout=10)
    assert 0.9 < time.monotonic() - t0 < 3
    assert etree.fromstring(r.content).findtext("uws:phase", namespaces=NS) == "PENDING"
    t0 = time.monotonic()
    r = requests.get(job_url, params={"WAIT": "5", "PHASE": "EXECUTING"}, timeout=10)
    assert time.monotonic() - t0 < 0.5  # not in that phase: answers at once
    requests.post(job_url + "/phase", data={"PHASE": "RUN"}, timeout=10)
    assert wait_final(job_url) == "COMPLETED"
    t0 = time.monotonic()
    requests.get(job_url, params={"WAIT": "30"}, timeout=40)
    assert time.monotonic() - t0 < 0.5  # final phase: no blocking


def test_abort_pending_then_delete(tap_url: str) -> None:
    job_url = create(tap_url)
    r = requests.post(job_url + "/phase", data={"PHASE": "ABORT"}, allow_redirects=False, timeout=10)
    assert r.status_code == 303
    assert requests.get(job_url + "/phase", timeout=10).text == "ABORTED"
    r = requests.post(job_url, data={"ACTION": "DELETE"}, allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"] == tap_url + "/async"
    gone = requests.get(job_url, timeout=10)
    assert gone.status_code == 404 and 'value="ERROR"' in gone.text


def test_http_delete(tap_url: str) -> None:
    job_url = create(tap_url)
    r = requests.delete(job_url, allow_redirects=False, timeout=10)
    assert r.status_code == 303
    assert requests.get(job_url + "/phase", timeout=10).status_code == 404


def test_abort_cancels_an_executing_query(tap_url: str, worker, database) -> None:
    job_url = create(tap_url, SLOW, PHASE="RUN")
    wait_phase(job_url, "EXECUTING")
    time.sleep(0.5)
    requests.post(job_url + "/phase", data={"PHASE": "ABORT"}, timeout=10)
    assert requests.get(job_url + "/phase", timeout=10).text == "ABORTED"
    assert _reader_query_gone(database, "z_phot", timeout=5)
    assert requests.get(job_url + "/phase", timeout=10).text == "ABORTED"


def test_delete_cancels_an_executing_query(tap_url: str, worker, database) -> None:
    job_url = create(tap_url, SLOW, PHASE="RUN")
    wait_phase(job_url, "EXECUTING")
    time.sleep(0.5)
    assert requests.delete(job_url, allow_redirects=False, timeout=10).status_code == 303
    assert _reader_query_gone(database, "z_phot", timeout=5)


def _reader_query_gone(database, marker: str, timeout: float) -> bool:
    from sqlalchemy import text

    from vo_service.core.database import owner_engine

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with owner_engine(database).connect() as conn:
            running = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = 'pzvo_reader' "
                "AND state = 'active' AND query LIKE :m AND datname = current_database()"),
                {"m": f"%{marker}%"}).scalar()
        if running == 0:
            return True
        time.sleep(0.1)
    return False


def test_execution_duration_is_enforced(tap_url: str, worker) -> None:
    job_url = create(tap_url, SLOW, EXECUTIONDURATION="1")
    requests.post(job_url + "/phase", data={"PHASE": "RUN"}, timeout=10)
    t0 = time.monotonic()
    assert wait_final(job_url) == "ERROR"
    assert time.monotonic() - t0 < 8
    message = etree.fromstring(requests.get(job_url, timeout=10).content).findtext(
        "uws:errorSummary/uws:message", namespaces=NS)
    assert "execution duration of 1 s" in message
    # the worker is free again
    quick = create(tap_url, PHASE="RUN")
    assert wait_final(quick) == "COMPLETED"


def test_jobs_belong_to_their_owner(tap_url: str, users, uws_schema) -> None:
    alice, bob = users["alice"], users["bob"]
    job_url = create(tap_url, headers=alice)
    assert requests.get(job_url + "/owner", headers=alice, timeout=10).text.startswith("alice-")
    for sub in ("", "/phase", "/parameters", "/results", "/error", "/owner"):
        r = requests.get(job_url + sub, headers=bob, timeout=10)
        assert r.status_code == 403, sub
        assert 'value="ERROR"' in r.text
    assert requests.get(job_url, timeout=10).status_code == 403  # anonymous
    assert requests.post(job_url + "/phase", data={"PHASE": "RUN"}, headers=bob,
                         timeout=10).status_code == 403
    assert requests.delete(job_url, headers=bob, timeout=10).status_code == 403
    listed = valid(uws_schema, requests.get(tap_url + "/async", headers=bob, timeout=10).content)
    assert job_url.rsplit("/", 1)[1] not in [j.get("id") for j in listed]


def test_job_list_filters(tap_url: str, users, uws_schema) -> None:
    alice = users["alice"]
    first = create(tap_url, headers=alice).rsplit("/", 1)[1]
    time.sleep(0.01)
    second = create(tap_url, headers=alice).rsplit("/", 1)[1]
    requests.post(f"{tap_url}/async/{second}/phase", data={"PHASE": "ABORT"}, headers=alice, timeout=10)

    def ids(**params: str) -> list[str]:
        r = requests.get(tap_url + "/async", params=params, headers=alice, timeout=10)
        doc = valid(uws_schema, r.content)
        return [j.get("id") for j in doc.iterfind("uws:jobref", NS)]

    everything = ids()
    assert first in everything and second in everything
    assert second in ids(PHASE="ABORTED") and first not in ids(PHASE="ABORTED")
    assert ids(LAST="1") == [second]
    created = etree.fromstring(requests.get(f"{tap_url}/async/{first}", headers=alice,
                                            timeout=10).content).findtext("uws:creationTime",
                                                                          namespaces=NS)
    assert ids(AFTER=created) == [second]
    assert requests.get(tap_url + "/async", params={"PHASE": "NOPE"}, headers=alice,
                        timeout=10).status_code == 400
    # anonymous jobs are never listed
    create(tap_url)
    anonymous_list = valid(uws_schema, requests.get(tap_url + "/async", timeout=10).content)
    assert anonymous_list.find("uws:jobref", NS) is None


def test_anonymous_jobs_need_public_read(tap_url: str, app) -> None:
    auth = app.extensions["pzvo.auth"]
    auth.public_read = False
    try:
        r = requests.post(tap_url + "/async", data={"LANG": "ADQL", "QUERY": QUICK}, timeout=10)
        assert r.status_code == 401 and 'value="ERROR"' in r.text
    finally:
        auth.public_read = True


def test_queue_limit_per_owner(tap_url: str, app, users) -> None:
    service = app.extensions["pzvo.uws"]
    original = service.settings
    alice = users["alice"]
    job_url = create(tap_url, headers=alice)
    service.settings = dataclasses.replace(original, uws_max_active_jobs=0)
    try:
        r = requests.post(job_url + "/phase", data={"PHASE": "RUN"}, headers=alice, timeout=10)
        assert r.status_code == 429 and "limit" in r.text and 'value="ERROR"' in r.text
        assert requests.get(job_url + "/phase", headers=alice, timeout=10).text == "PENDING"
    finally:
        service.settings = original
    r = requests.post(job_url + "/phase", data={"PHASE": "RUN"}, headers=alice, timeout=10)
    assert r.status_code == 200  # followed the 303 to the job


def test_async_upload_join(tap_url: str, worker, database) -> None:
    from tests.test_upload import votable_bytes

    ids = np.arange(1, 1001, dtype=np.int64)
    body = votable_bytes({"oid": ("long", ids)}, len(ids))
    r = requests.post(tap_url + "/async", data={
        "LANG": "ADQL", "PHASE": "RUN", "UPLOAD": "mine,param:f",
        "QUERY": "SELECT COUNT(*) AS n FROM TAP_UPLOAD.mine AS m JOIN TAP_UPLOAD.mine AS k "
                 "ON m.oid = k.oid"}, files={"f": ("f.vot", body)}, allow_redirects=False, timeout=30)
    assert r.status_code == 303, r.text
    job_url = r.headers["Location"]
    assert wait_final(job_url) == "COMPLETED"
    table = parse_single_table(io.BytesIO(requests.get(job_url + "/results/result",
                                                       timeout=10).content)).to_table()
    assert table["n"][0] == 1000


def test_async_upload_refused_at_creation(tap_url: str) -> None:
    r = requests.post(tap_url + "/async", data={"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t",
                                                "UPLOAD": "t,param:missing"}, timeout=10)
    assert r.status_code == 400 and "missing" in r.text


def test_destruction_destroys_job_and_files(tap_url: str, worker, database) -> None:
    from vo_service.uws._service import job_dir

    job_url = create(tap_url, PHASE="RUN")
    assert wait_final(job_url) == "COMPLETED"
    job_id = job_url.rsplit("/", 1)[1]
    assert job_dir(database, job_id).exists()
    r = requests.post(job_url + "/destruction", data={"DESTRUCTION": "2000-01-01T00:00:00Z"},
                      timeout=10)
    assert r.status_code == 400 and "past" in r.text  # a client cannot ask for that (issue 14)
    worker.store.update(job_id, destruction=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    worker.reap()
    assert requests.get(job_url, timeout=10).status_code == 404
    assert not job_dir(database, job_id).exists()


def test_job_document_reports_progress_and_attempts_in_job_info(tap_url, worker, uws_schema) -> None:
    job_url = create(tap_url, "SELECT TOP 5000 object_id FROM bench.photoz", PHASE="RUN")
    assert wait_final(job_url) == "COMPLETED"
    doc = valid(uws_schema, requests.get(job_url, timeout=30).content)
    info = doc.find("{http://www.ivoa.net/xml/UWS/v1.0}jobInfo")
    assert info is not None
    assert info.findtext("progress") == "5000 rows"
    assert info.findtext("attempts") == "1"
    requests.delete(job_url, timeout=30)
