"""Async TAP on the open internet (issue 14): parameters in range, a reaper that survives any
row, anonymous jobs in their own small share, bounded WAITs, quotas of stored job bytes, and no
input that gives a 500.  Everything goes through HTTP against the live server and database.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import requests
from lxml import etree
from sqlalchemy import text

from tests._services import worker_for
from tests._waiting import wait_until
from vo_service.core.database import owner_engine
from vo_service.uws import ExecutionPhase, JobStore, UwsService, Worker
from vo_service.uws._service import job_dir

NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}
QUICK = "SELECT TOP 5 id, z FROM pz.specz_demo ORDER BY id"
#: Tens of seconds of work (a nested-loop count): it keeps a worker thread busy throughout.
SLOW = ("SELECT COUNT(*) AS n FROM bench.photoz AS a JOIN pz.photoz_demo AS b "
        "ON a.z_phot < b.z_phot")
FINAL = ("COMPLETED", "ERROR", "ABORTED")


# -- fixtures and helpers ----------------------------------------------------------------------
class Users:
    """Fresh users made on demand: ``header(who)`` for requests, ``name(who)`` for the store."""

    def __init__(self, database) -> None:
        from vo_service.auth import AuthService

        self.auth = AuthService(engine=owner_engine(database))
        self.suffix = uuid.uuid4().hex[:6]
        self.headers: dict[str, dict[str, str]] = {}

    def name(self, who: str) -> str:
        return f"{who}-{self.suffix}"

    def header(self, who: str) -> dict[str, str]:
        if who not in self.headers:
            self.headers[who] = {"Authorization": f"Bearer {self.auth.add_user(self.name(who))}"}
        return self.headers[who]


@pytest.fixture(scope="module")
def users(database) -> Users:
    return Users(database)


@pytest.fixture(scope="module")
def store(database) -> JobStore:
    return JobStore(owner_engine(database))


@pytest.fixture(scope="module")
def service(app) -> UwsService:
    return app.extensions["pzvo.uws"]


@pytest.fixture
def start_worker(database) -> Iterator[Callable[..., Worker]]:
    """Start in-process workers (with settings overrides); all are stopped after the test, so
    each test knows exactly which worker threads exist."""
    started: list[Worker] = []

    def start(threads: int = 2, **overrides: object) -> Worker:
        settings = dataclasses.replace(database, uws_heartbeat_s=0.3, **overrides)
        worker = worker_for(settings, threads=threads, name=f"hardening-{len(started)}")
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@contextmanager
def web_settings(service: UwsService, **overrides: object) -> Iterator[None]:
    original = service.settings
    service.settings = dataclasses.replace(original, **overrides)
    try:
        yield
    finally:
        service.settings = original


def post(url: str, headers: dict | None = None, **data: str) -> requests.Response:
    return requests.post(url, data=data, headers=headers, allow_redirects=False, timeout=30)


def create(tap_url: str, query: str = QUICK, headers: dict | None = None, **params: str) -> str:
    r = post(tap_url + "/async", headers, LANG="ADQL", QUERY=query, **params)
    assert r.status_code == 303, r.text
    return r.headers["Location"]


def job_doc(job_url: str, headers: dict | None = None) -> etree._Element:
    r = requests.get(job_url, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return etree.fromstring(r.content)


def phase_of(job_url: str, headers: dict | None = None) -> str:
    return requests.get(job_url + "/phase", headers=headers, timeout=30).text


def wait_final(job_url: str, headers: dict | None = None, timeout: float = 60) -> str:
    wait_until(lambda: phase_of(job_url, headers) in FINAL, timeout, f"{job_url} to finish")
    return phase_of(job_url, headers)


def dali_error(r: requests.Response, status: int, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/x-votable+xml")
    assert 'name="QUERY_STATUS" value="ERROR"' in r.text
    etree.fromstring(r.content)  # well-formed, whatever the input was
    for word in words:
        assert word in r.text, (word, r.text)


def naming(word: str, *values: object) -> tuple[str, ...]:
    """The word a refusal must name; none for a NUL, which the app refuses in any request,
    with its own message, before the UWS layer sees it."""
    return () if any("\x00" in str(v) for v in values) else (word,)


def job_id(job_url: str) -> str:
    return job_url.rsplit("/", 1)[1]


def parse_utc(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- 1. parameters in range ---------------------------------------------------------------------
def test_destruction_before_year_one_is_refused_and_nothing_breaks(tap_url, users,
                                                                   store) -> None:
    alice = users.header("alice")
    before = len(store.list(users.name("alice")))
    dali_error(post(tap_url + "/async", alice, LANG="ADQL", QUERY=QUICK,
                    DESTRUCTION="0001-01-01T00:00:00+14:00"), 400, "DESTRUCTION")
    listed = requests.get(tap_url + "/async", headers=alice, timeout=30)
    assert listed.status_code == 200
    assert len(etree.fromstring(listed.content).findall("uws:jobref", NS)) == before
    job_url = create(tap_url, headers=alice)
    for value, word in (("0001-01-01T00:00:00+14:00", "DESTRUCTION"),
                        ("9999-12-31T23:00:00-14:00", "DESTRUCTION"),
                        ("2000-01-01T00:00:00Z", "past"),
                        ("2030-01-01 12:00:00", "ISO 8601"),
                        ("tomorrow", "ISO 8601"), ("", "ISO 8601"),
                        ("2030-02-30T00:00:00Z", "DESTRUCTION")):
        dali_error(post(job_url + "/destruction", alice, DESTRUCTION=value), 400, word)
        dali_error(post(job_url, alice, DESTRUCTION=value), 400, word)
    assert requests.get(job_url, headers=alice, timeout=30).status_code == 200
    assert requests.get(tap_url + "/async", headers=alice, timeout=30).status_code == 200
    assert len(store.list(users.name("alice"))) == before + 1


def test_destruction_is_capped_at_the_retention_limit(tap_url, database, users) -> None:
    alice = users.header("alice")
    job_url = create(tap_url, headers=alice, DESTRUCTION="2999-01-01T00:00:00Z")
    doc = job_doc(job_url, alice)
    created = parse_utc(doc.findtext("uws:creationTime", namespaces=NS))
    destruction = parse_utc(doc.findtext("uws:destruction", namespaces=NS))
    retention = dt.timedelta(seconds=database.uws_max_retention_s)
    assert abs(destruction - created - retention) < dt.timedelta(milliseconds=2)
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).replace(microsecond=0)
    for value in (soon.strftime("%Y-%m-%dT%H:%M:%SZ"), soon.isoformat(),
                  soon.astimezone(dt.timezone(dt.timedelta(hours=-3))).isoformat()):
        assert post(job_url + "/destruction", alice, DESTRUCTION=value).status_code == 303
        shown = requests.get(job_url + "/destruction", headers=alice, timeout=30).text
        assert parse_utc(shown) == soon, value


def test_execution_duration_within_the_owners_limit(tap_url, database, users) -> None:
    alice = users.header("alice")
    anonymous_limit = database.uws_anonymous_max_execution_duration_s
    user_limit = database.uws_max_execution_duration_s
    assert anonymous_limit < user_limit

    def duration(url: str, headers: dict | None = None) -> int:
        return int(requests.get(url + "/executionduration", headers=headers, timeout=30).text)

    anonymous = create(tap_url)
    assert duration(anonymous) == min(database.uws_execution_duration_s, anonymous_limit)
    for value, expected in (("99999", anonymous_limit), ("0", anonymous_limit), ("7", 7),
                            ("99999999999999999999999999999", anonymous_limit),
                            ("1" * 5000, anonymous_limit), ("+8", 8)):
        assert post(anonymous + "/executionduration", EXECUTIONDURATION=value).status_code == 303
        assert duration(anonymous) == expected, value
    assert duration(create(tap_url, EXECUTIONDURATION="5000")) == anonymous_limit
    mine = create(tap_url, headers=alice, EXECUTIONDURATION="99999")
    assert duration(mine, alice) == user_limit
    assert post(mine + "/executionduration", alice, EXECUTIONDURATION="1200").status_code == 303
    assert duration(mine, alice) == 1200
    for value in ("-1", "nan", "inf", "-inf", "1e400", "1.5", "", " ", "0x10", "\u0663", "\x00"):
        dali_error(post(anonymous + "/executionduration", EXECUTIONDURATION=value), 400,
                   *naming("EXECUTIONDURATION", value))
        dali_error(post(tap_url + "/async", LANG="ADQL", QUERY=QUICK, EXECUTIONDURATION=value),
                   400, *naming("EXECUTIONDURATION", value))
    assert duration(anonymous) == 8


def test_worker_holds_old_jobs_to_the_owners_limit(tap_url, database, store) -> None:
    """A job stored before the limits (anonymous, 3600 s) runs with today's anonymous limit."""
    job_url = create(tap_url, SLOW)
    claimed = store.update(job_id(job_url), execution_duration=3600,
                           phase=ExecutionPhase.EXECUTING, worker="limit-test",
                           start_time="now()", heartbeat_at="now()", attempts=1)
    worker = worker_for(dataclasses.replace(database, uws_heartbeat_s=0.3,
                                              uws_anonymous_max_execution_duration_s=1),
                          threads=0, name="limit-test")
    t0 = time.monotonic()
    worker.execute(claimed, "limit-test")
    assert time.monotonic() - t0 < 15
    assert phase_of(job_url) == "ERROR"
    message = job_doc(job_url).findtext("uws:errorSummary/uws:message", namespaces=NS)
    assert "execution duration of 1 s" in message and "with a token" in message, message


def test_job_list_filters_with_odd_values(tap_url, users) -> None:
    alice = users.header("alice")
    create(tap_url, headers=alice)

    def listing(headers: dict | None = alice, **params: str) -> requests.Response:
        return requests.get(tap_url + "/async", params=params, headers=headers, timeout=30)

    for params in ({"LAST": "99999999999999999999999"}, {"LAST": "0"}, {"LAST": "+3"},
                   {"AFTER": "1970-01-01T00:00:00Z"}, {"AFTER": "9999-12-31T00:00:00Z"},
                   {"PHASE": "pending"}):
        r = listing(**params)
        assert r.status_code == 200, (params, r.text)
        etree.fromstring(r.content)
    assert len(etree.fromstring(listing(LAST="99999999999999999999999").content)) >= 1
    for params, word in (({"LAST": "-1"}, "LAST"), ({"LAST": "1e3"}, "LAST"),
                         ({"LAST": ""}, "LAST"), ({"LAST": "x\x00"}, "LAST"),
                         ({"AFTER": "0001-01-01T00:00:00+14:00"}, "AFTER"),
                         ({"AFTER": "yesterday"}, "AFTER"), ({"AFTER": ""}, "AFTER"),
                         ({"PHASE": "NOPE"}, "PHASE"), ({"PHASE": "\x00"}, "PHASE"),
                         ({"PHASE": ""}, "PHASE")):
        dali_error(listing(**params), 400, *naming(word, *params.values()))
        dali_error(listing(None, **params), 400, *naming(word, *params.values()))


def test_wait_with_odd_values(tap_url) -> None:
    job_url = create(tap_url)
    post(job_url + "/phase", PHASE="ABORT")
    for value in ("1e400", "-5", "-1", "0", "99999999999999999999", "2.5"):
        t0 = time.monotonic()
        r = requests.get(job_url, params={"WAIT": value}, timeout=30)
        assert r.status_code == 200 and time.monotonic() - t0 < 5, value  # final phase
    for value in ("nan", "inf", "x", "", "1e", "\x00"):
        dali_error(requests.get(job_url, params={"WAIT": value}, timeout=30), 400,
                   *naming("WAIT", value))
    for value in ("NOPE", "", "\x00"):
        dali_error(requests.get(job_url, params={"WAIT": "1", "PHASE": value}, timeout=30), 400,
                   *naming("PHASE", value))
    pending = create(tap_url)
    t0 = time.monotonic()
    assert requests.get(pending, params={"WAIT": "0"}, timeout=30).status_code == 200
    assert time.monotonic() - t0 < 5


# -- 6. no input gives a 500 -------------------------------------------------------------------
def test_odd_inputs_get_4xx_never_500(tap_url, users) -> None:
    alice = users.header("alice")
    for data, word in (({"QUERY": "SELECT\x00 1"}, "U+0000"), ({"QUERY": "a\x01b"}, "U+0001"),
                       ({"QUERY": "a\x1fb"}, "U+001F"), ({"RUNID": "\ufffe"}, "U+FFFE"),
                       ({"RUNID": "r\x00"}, "RUNID"), ({"RUNID": "r" * 5000}, "RUNID"),
                       ({"PHASE": "SUSPEND"}, "PHASE"), ({"PHASE": "\x00"}, "PHASE"),
                       ({"PHASE": "RUN", "QUERY": "\x00"}, "U+0000"),
                       ({"X" * 500: "1"}, "longer than"), ({"a\x00": "1"}, "U+0000"),
                       ({"DESTRUCTION": "\x00"}, "DESTRUCTION")):
        body = {"LANG": "ADQL", "QUERY": QUICK, **data}
        for headers in (None, alice):
            dali_error(requests.post(tap_url + "/async", data=body, headers=headers,
                                     allow_redirects=False, timeout=30), 400,
                       *naming(word, *data, *data.values()))
    job_url = create(tap_url, headers=alice, RUNID="r" * 1000)
    refused = {
        "GET id NUL": lambda: requests.get(f"{tap_url}/async/a%00b", timeout=30),
        "GET long id": lambda: requests.get(f"{tap_url}/async/{'a' * 5000}", timeout=30),
        "GET id with dots": lambda: requests.get(f"{tap_url}/async/..%2F..%2Fx", timeout=30),
        "DELETE id NUL": lambda: requests.delete(f"{tap_url}/async/a%00b", timeout=30),
        "POST phase NUL": lambda: post(job_url + "/phase", alice, PHASE="\x00"),
        "POST phase HELD": lambda: post(job_url + "/phase", alice, PHASE="HELD"),
        "POST phase none": lambda: requests.post(job_url + "/phase", headers=alice, timeout=30),
        "POST action": lambda: post(job_url, alice, ACTION="\x00DELETE"),
        "POST params NUL": lambda: post(job_url + "/parameters", alice, MAXREC="\x00"),
        "POST runid long": lambda: post(job_url + "/parameters", alice, RUNID="x" * 1001),
        "POST duration ctrl": lambda: post(job_url + "/executionduration", alice,
                                           EXECUTIONDURATION="\x01"),
        "GET result NUL": lambda: requests.get(job_url + "/results/%00", headers=alice,
                                               timeout=30),
        "GET result other": lambda: requests.get(job_url + "/results/other", headers=alice,
                                                 timeout=30),
        "GET error none": lambda: requests.get(job_url + "/error", headers=alice, timeout=30),
        "PUT job": lambda: requests.put(job_url, headers=alice, timeout=30),
    }
    statuses = {name: call().status_code for name, call in refused.items()}
    assert all(400 <= code < 500 for code in statuses.values()), statuses
    assert statuses["GET long id"] == statuses["GET result other"] == 404
    # Accepted as jobs (TAP checks LANG and QUERY when the job runs), but never a 500.
    odd = [requests.post(tap_url + "/async", json={"a": 1}, timeout=30, allow_redirects=False),
           requests.post(tap_url + "/async", data=b"\xff\xfe\x00\x01", timeout=30,
                         allow_redirects=False,
                         headers={"Content-Type": "application/x-www-form-urlencoded"}),
           requests.post(tap_url + "/async", data=b"--x\r\nbroken", timeout=30,
                         allow_redirects=False,
                         headers={"Content-Type": "multipart/form-data; boundary=x"})]
    assert all(r.status_code < 500 for r in odd), [(r.status_code, r.text) for r in odd]
    assert requests.get(job_url, headers=alice, timeout=30).status_code == 200


def test_other_unicode_is_kept_and_documents_stay_well_formed(tap_url, users) -> None:
    alice = users.header("alice")
    job_url = create(tap_url, "SELECT 'é ✓ <&> \t' AS s FROM pz.specz_demo", alice,
                     RUNID="<r&>\u2603")
    assert job_doc(job_url, alice).findtext("uws:runId", namespaces=NS) == "<r&>\u2603"


# -- 2. the reaper survives any row -------------------------------------------------------------
@contextmanager
def without_destruction_check(database) -> Iterator[None]:
    """Rows as versions before migration 0008 could write them: the CHECK is lifted meanwhile."""
    engine = owner_engine(database)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE uws.jobs DROP CONSTRAINT jobs_destruction_range"))
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM uws.jobs WHERE destruction < '1970-01-01' "
                              "OR destruction >= '9999-01-01'"))
            conn.execute(text("ALTER TABLE uws.jobs ADD CONSTRAINT jobs_destruction_range CHECK "
                              "(destruction >= '1970-01-01 00:00:00+00' "
                              "AND destruction < '9999-01-01 00:00:00+00')"))


def raw_job(conn, owner: str | None, destruction: str, parameters: str = "[]") -> str:
    """A COMPLETED job row written directly, as any version could have."""
    new_id = uuid.uuid4().hex[:22]
    conn.execute(text("INSERT INTO uws.jobs (job_id, owner, phase, parameters, execution_duration, "
                      "destruction) VALUES (:id, :owner, 'COMPLETED', CAST(:p AS jsonb), 60, "
                      "CAST(:d AS timestamptz))"),
                 {"id": new_id, "owner": owner, "p": parameters, "d": destruction})
    return new_id


def test_reaper_and_reads_survive_rows_older_versions_wrote(tap_url, database, store, users,
                                                            monkeypatch, caplog) -> None:
    alice, owner = users.header("alice"), users.name("alice")
    normal = create(tap_url, headers=alice)
    folder = job_dir(database, job_id(normal))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.vot").write_bytes(b"x")
    with without_destruction_check(database):
        with owner_engine(database).begin() as conn:
            year_minus_one = raw_job(conn, owner, "0001-01-01T00:00:00+14:00")
            infinite = raw_job(conn, owner, "infinity")
            odd_params = raw_job(conn, owner, "2000-01-01", '{"not": "pairs"}')
            stuck = raw_job(conn, owner, "2000-01-01")
            conn.execute(text("UPDATE uws.jobs SET destruction = '2000-01-01' WHERE job_id = :id"),
                         {"id": job_id(normal)})
        for bad in (year_minus_one, infinite, odd_params):
            r = requests.get(f"{tap_url}/async/{bad}", headers=alice, timeout=30)
            assert r.status_code == 200, r.text
            etree.fromstring(r.content)
            assert requests.get(f"{tap_url}/async/{bad}/destruction", headers=alice,
                                timeout=30).status_code == 200
        assert requests.get(tap_url + "/async", headers=alice, timeout=30).status_code == 200

        real_destroy = store.destroy

        def destroy(one: str):  # a row this reaper cannot handle
            if one == stuck:
                raise ValueError("year -1 is out of range")
            return real_destroy(one)

        reaper = worker_for(database, threads=0, name="reaper")
        monkeypatch.setattr(reaper, "store", store)
        monkeypatch.setattr(store, "destroy", destroy)
        assert reaper.reap()["destroyed"] >= 3
        assert store.get(stuck) is not None  # logged and skipped ...
        for gone in (year_minus_one, odd_params, job_id(normal)):  # ... the others went
            assert store.get(gone) is None, gone
        assert not folder.exists()
        assert any(r.getMessage() == "could not destroy a job" and r.job_id == stuck
                   for r in caplog.records)
        assert requests.delete(f"{tap_url}/async/{infinite}", headers=alice,
                               allow_redirects=False, timeout=30).status_code == 303
        monkeypatch.undo()
        assert reaper.reap()["destroyed"] >= 1 and store.get(stuck) is None


def test_migration_0008_repairs_out_of_range_destructions(database) -> None:
    from alembic import command

    from vo_service.core.database import alembic_config

    def alembic(action: str, revision: str) -> None:
        cfg = alembic_config(database)
        with owner_engine(database).begin() as conn:
            cfg.attributes["connection"] = conn
            getattr(command, action)(cfg, revision)

    alembic("downgrade", "0007")
    try:
        with owner_engine(database).begin() as conn:
            early = raw_job(conn, "old-version", "0001-01-01T00:00:00+14:00")
            late = raw_job(conn, "old-version", "infinity")
            fine = raw_job(conn, "old-version", "2999-01-01")
    finally:
        alembic("upgrade", "head")
    with owner_engine(database).connect() as conn:
        rows = {r.job_id: r for r in conn.execute(text(
            "SELECT job_id, destruction, creation_time, input_bytes FROM uws.jobs "
            "WHERE owner = 'old-version'"))}
    assert rows[early].destruction <= dt.datetime.now(dt.UTC)
    assert rows[late].destruction == rows[late].creation_time + dt.timedelta(days=30)
    assert rows[fine].destruction.year == 2999
    assert all(r.input_bytes == 0 for r in rows.values())
    with pytest.raises(Exception, match="jobs_destruction_range"):
        with owner_engine(database).begin() as conn:
            raw_job(conn, "old-version", "0001-01-01T00:00:00+14:00")
    with owner_engine(database).begin() as conn:
        conn.execute(text("DELETE FROM uws.jobs WHERE owner = 'old-version'"))


# -- 3. anonymous jobs: short limit, own small share -------------------------------------------
def test_anonymous_jobs_cannot_keep_a_users_job_queued(tap_url, database, store, users,
                                                       start_worker) -> None:
    """As many worker threads as anonymous users may queue jobs: without their own slot share
    the four slow jobs would take every thread and the user's job would wait tens of seconds."""
    assert database.uws_anonymous_slots == 1 and database.uws_anonymous_max_active_jobs == 4
    assert store.count_active(None) == 0
    alice = users.header("alice")
    start_worker(threads=4)
    slow = [create(tap_url, SLOW, PHASE="RUN") for _ in range(4)]
    try:
        dali_error(post(tap_url + "/async", LANG="ADQL", QUERY=QUICK, PHASE="RUN"), 429, "limit")
        wait_until(lambda: any(phase_of(u) == "EXECUTING" for u in slow), 30, "an EXECUTING job")
        time.sleep(1.5)  # idle job threads poll every 0.25 s: they would have claimed by now
        phases = [phase_of(u) for u in slow]
        assert phases.count("EXECUTING") == 1 and phases.count("QUEUED") == 3, phases
        running = slow[phases.index("EXECUTING")]
        mine = create(tap_url, headers=alice, PHASE="RUN")
        assert wait_final(mine, alice, timeout=30) == "COMPLETED"
        assert phase_of(running) == "EXECUTING"  # the user's job did not wait for it
    finally:
        for url in slow:
            requests.delete(url, timeout=30)
    assert store.count_active(None) == 0


def test_claims_never_run_more_anonymous_jobs_than_the_slots(database, store) -> None:
    """Eight claimers at once on twelve anonymous jobs with two slots: the claim statement
    alone (no worker threads) never lets a third one start."""
    from vo_service.auth import ANONYMOUS

    service = UwsService(settings=dataclasses.replace(database, uws_anonymous_max_active_jobs=50),
                         store=store)
    jobs = [service.create_job(ANONYMOUS, {"lang": ["ADQL"], "query": [QUICK],
                                           "phase": ["RUN"]}, {}) for _ in range(12)]
    claimed: list[object] = []
    barrier = threading.Barrier(8)

    def claimer(index: int) -> None:
        barrier.wait()
        for _ in range(5):
            job = store.claim_next(f"race/{index}", anonymous_slots=2)
            if job is not None:
                claimed.append(job)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert len(claimed) == 2 and all(job.owner is None for job in claimed)
        assert store.count_active(None) == 12
    finally:
        for job in jobs:
            store.delete(job.job_id)


# -- 4. bounded WAIT -----------------------------------------------------------------------------
def test_wait_is_bounded_per_client_and_per_process(tap_url, service, users, caplog) -> None:
    job_url = create(tap_url)
    answers: list[int] = []
    threads: list[threading.Thread] = []

    def block(headers: dict | None = None) -> None:
        thread = threading.Thread(target=lambda: answers.append(requests.get(
            job_url, params={"WAIT": "50"}, headers=headers, timeout=80).status_code))
        thread.start()
        threads.append(thread)

    def answered_at_once(headers: dict | None = None) -> bool:
        """Blocking would take 50 s, beyond this request's timeout: the test would fail."""
        r = requests.get(job_url, params={"WAIT": "50"}, headers=headers, timeout=20)
        assert r.status_code == 200
        return etree.fromstring(r.content).findtext("uws:phase", namespaces=NS) == "PENDING"

    with web_settings(service, web_threads=8, uws_wait_thread_share=0.5, uws_wait_per_client=2,
                      uws_wait_max_s=60):
        try:
            block()
            block()
            wait_until(lambda: service.wait_slots.held() == 2, 20, "two blocking WAITs")
            assert answered_at_once()  # a third from the same (anonymous) address
            block(users.header("carol"))
            block(users.header("dave"))
            wait_until(lambda: service.wait_slots.held() == 4, 20, "four blocking WAITs")
            assert answered_at_once(users.header("erin"))  # a new client; the share is full
            assert service.wait_slots.held() == 4 and phase_of(job_url) == "PENDING"
        finally:
            post(job_url + "/phase", PHASE="ABORT")
            for thread in threads:
                thread.join(30)
    assert answers == [200] * 4
    assert service.wait_slots.held() == 0
    assert sum(r.getMessage().startswith("WAIT answered at once") for r in caplog.records) == 2


def test_wait_share_of_the_default_threads(database) -> None:
    from vo_service.uws._service import wait_threads

    assert database.web_threads == 4 and database.uws_wait_thread_share == 0.25
    assert wait_threads(database) == 1
    assert wait_threads(dataclasses.replace(database, web_threads=16)) == 4
    assert wait_threads(dataclasses.replace(database, uws_wait_thread_share=0.0)) == 1


# -- 5. quotas of stored job bytes --------------------------------------------------------------
def test_result_over_the_quota_ends_in_error_and_keeps_nothing(tap_url, database, service, store,
                                                               users, start_worker) -> None:
    frank, owner = users.header("frank"), users.name("frank")
    quota = 40_000
    start_worker(threads=1, quota_job_result_bytes=quota)
    with web_settings(service, quota_job_result_bytes=quota):
        big = create(tap_url, "SELECT TOP 5000 object_id, z_phot FROM bench.photoz", frank,
                     PHASE="RUN")
        assert wait_final(big, frank) == "ERROR"
        message = job_doc(big, frank).findtext("uws:errorSummary/uws:message", namespaces=NS)
        assert "quota" in message and "Delete jobs" in message, message
        assert not any(job_dir(database, job_id(big)).glob("result*"))
        assert store.get(job_id(big)).result_size is None

        small = create(tap_url, QUICK, frank, PHASE="RUN")
        assert wait_final(small, frank) == "COMPLETED"
        assert store.stored_bytes(owner) > store.get(job_id(small)).result_size > 0
        pending = create(tap_url, QUICK, frank)
    with web_settings(service, quota_job_result_bytes=store.stored_bytes(owner)):
        dali_error(post(tap_url + "/async", frank, LANG="ADQL", QUERY=QUICK), 403,
                   "quota", "Delete jobs")
        dali_error(post(pending + "/phase", frank, PHASE="RUN"), 403, "quota")
        dali_error(post(pending + "/parameters", frank, QUERY=QUICK + " " * 100), 403, "quota")
        assert phase_of(pending, frank) == "PENDING"
        requests.delete(small, headers=frank, timeout=30)
        assert post(pending + "/phase", frank, PHASE="RUN").status_code == 303
        assert wait_final(pending, frank) == "COMPLETED"
        create(tap_url, QUICK, frank)


def test_anonymous_users_share_one_small_quota(tap_url, service, store, users) -> None:
    import numpy as np

    from tests.test_upload import votable_bytes

    upload = votable_bytes({"oid": ("long", np.arange(200, dtype=np.int64))}, 200)
    data = {"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t", "UPLOAD": "t,param:f"}

    def send() -> requests.Response:
        return requests.post(tap_url + "/async", data=data, files={"f": ("f.vot", upload)},
                             allow_redirects=False, timeout=30)

    room = len(upload) + 2000  # one such job, not two
    with web_settings(service, quota_anonymous_job_result_bytes=store.stored_bytes(None) + room):
        first = send()
        assert first.status_code == 303, first.text
        dali_error(send(), 403, "anonymous", "quota", "token")
        assert post(tap_url + "/async", users.header("alice"), LANG="ADQL",
                    QUERY=QUICK).status_code == 303  # each user has a quota of their own
        requests.delete(first.headers["Location"], timeout=30)
        assert send().status_code == 303  # deleting freed the room


def test_concurrent_creations_never_pass_the_quota_of_stored_bytes(tap_url, service,
                                                                   store) -> None:
    """Sixteen anonymous creations at once (half with PHASE=RUN), each with an upload, against
    room for three: the owner's total is summed and the job stored in one transaction under the
    owner's lock, so however the requests interleave, exactly three get in.  (A sum read in one
    transaction and an insert in another let every one of them pass.)"""
    import numpy as np

    from tests.test_upload import votable_bytes

    upload = votable_bytes({"oid": ("long", np.arange(2000, dtype=np.int64))}, 2000)
    data = {"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t", "UPLOAD": "t,param:f"}

    def send(**extra: str) -> requests.Response:
        return requests.post(tap_url + "/async", data={**data, **extra},
                             files={"f": ("f.vot", upload)}, allow_redirects=False, timeout=60)

    probe = send()
    assert probe.status_code == 303, probe.text
    one = store.get(job_id(probe.headers["Location"])).input_bytes  # what each job holds
    requests.delete(probe.headers["Location"], timeout=30)
    quota = store.stored_bytes(None) + 3 * one + one // 2
    folders = job_dir(service.settings, "x").parent
    before = {p.name for p in folders.glob("*")}
    clients = 16
    barrier = threading.Barrier(clients)
    answers: list[requests.Response] = []

    def client(index: int) -> None:
        barrier.wait()
        answers.append(send(**({"PHASE": "RUN"} if index % 2 else {})))

    with web_settings(service, quota_anonymous_job_result_bytes=quota,
                      uws_anonymous_max_active_jobs=clients):
        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        created = [r.headers["Location"] for r in answers if r.status_code == 303]
        try:
            held = store.stored_bytes(None)
            assert len(answers) == clients
            assert held <= quota, f"{len(created)} jobs stored: {held} bytes > quota {quota}"
            assert len(created) == 3
            for refused in (r for r in answers if r.status_code != 303):
                dali_error(refused, 403, "anonymous", "quota", "token")
            left = {p.name for p in folders.glob("*")} - before  # refused: no files kept
            assert left <= {job_id(u) for u in created}, left
        finally:
            for url in created:
                requests.delete(url, timeout=30)


def test_active_job_quota_of_users_still_holds(tap_url, service, users) -> None:
    grace = users.header("grace")
    with web_settings(service, uws_max_active_jobs=1):
        first = create(tap_url, SLOW, grace, PHASE="RUN")
        try:
            dali_error(post(tap_url + "/async", grace, LANG="ADQL", QUERY=QUICK, PHASE="RUN"),
                       429, "limit")
        finally:
            requests.delete(first, headers=grace, timeout=30)


def test_job_inputs_count_in_the_stored_bytes(tap_url, store, users) -> None:
    heidi, owner = users.header("heidi"), users.name("heidi")
    before = store.stored_bytes(owner)
    job_url = create(tap_url, QUICK + " " * 5000, heidi, RUNID="r")
    grown = store.stored_bytes(owner) - before
    assert grown >= 5000 + 1024
    assert post(job_url + "/parameters", heidi, QUERY=QUICK).status_code == 303
    assert store.stored_bytes(owner) - before == grown - 5000


def test_anonymous_jobs_are_destroyed_within_a_day(server) -> None:
    """Anonymous users share one quota of stored bytes: their jobs drain within a day, whatever
    DESTRUCTION they ask for."""
    url = server.url + "/tap/async"
    far = (dt.datetime.now(dt.UTC) + dt.timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    resp = requests.post(url, data={"LANG": "ADQL", "QUERY": "SELECT TOP 1 objectId FROM pz.photoz_demo",
                                    "DESTRUCTION": far}, allow_redirects=False, timeout=30)
    assert resp.status_code == 303
    job_url = resp.headers["Location"]
    try:
        doc = requests.get(job_url, timeout=30).text
        when = re.search(r"<uws:destruction>([^<]+)</uws:destruction>", doc).group(1)
        created = re.search(r"<uws:creationTime>([^<]+)</uws:creationTime>", doc).group(1)
        parse = lambda text: dt.datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
        assert parse(when) - parse(created) <= dt.timedelta(days=1, seconds=1)
    finally:
        requests.delete(job_url, timeout=30)
