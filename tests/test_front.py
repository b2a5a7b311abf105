"""The front of `pzvo serve` (nginx before gunicorn): slow and vanishing clients, body limits.

These run against the real processes (`front_service`), on 127.0.0.1 only, with a bounded
number of connections and a bounded time: each test's slow clients stop when it ends.
"""
from __future__ import annotations

import http.client
import io
import json
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import requests
import sqlalchemy as sa
from astropy.io.votable import parse_single_table

from vo_service.auth import AuthService
from vo_service.core.database import owner_engine

QUICK = {"LANG": "ADQL", "QUERY": "SELECT TOP 5 objectId, z_phot FROM pz.photoz_demo",
         "FORMAT": "votable"}


def _address(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 80


@contextmanager
def trickling_clients(url: str, headers: int, bodies: int, period_s: float = 0.5) -> Iterator[list]:
    """``headers`` sockets that send a request header one byte at a time and ``bodies`` that
    send a complete header and then a large body one byte at a time, until the block ends."""
    host, port = _address(url)
    socks: list[socket.socket] = []
    for i in range(headers + bodies):
        sock = socket.create_connection((host, port), timeout=5)
        if i < headers:
            sock.sendall(b"GET /tap/availability HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        else:
            sock.sendall(b"POST /tap/sync HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/x-www-form-urlencoded\r\n"
                         b"Content-Length: 100000\r\n\r\nLANG=ADQL&QUERY=")
        socks.append(sock)
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(period_s):
            for sock in socks:
                try:
                    sock.send(b"a")
                except OSError:
                    pass

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield socks
    finally:
        stop.set()
        thread.join()
        for sock in socks:
            sock.close()


def _quick_query(url: str) -> float:
    started = time.perf_counter()
    resp = requests.post(url + "/tap/sync", data=QUICK, timeout=30)
    elapsed = time.perf_counter() - started
    assert resp.status_code == 200, resp.text
    assert len(parse_single_table(io.BytesIO(resp.content)).array) == 5
    return elapsed


def test_slow_clients_and_blocking_waits_cost_no_request_thread(front_service, database) -> None:
    """200 trickling connections and 50 blocking WAITs of 25 users (two each, the per-client
    bound, so only the per-process share holds them back): a normal query answers in < 1 s."""
    url = front_service.url
    _quick_query(url)
    auth = AuthService(engine=owner_engine(database))
    stamp = uuid.uuid4().hex[:6]
    headers = [{"Authorization": f"Bearer {auth.add_user(f'waiter{stamp}{i:02d}')}"} for i in range(25)]
    jobs = []
    for header in headers:
        job = requests.post(url + "/tap/async", data=QUICK, headers=header, allow_redirects=False,
                            timeout=10)
        assert job.status_code == 303
        jobs.append((job.headers["Location"], header))
    try:
        with trickling_clients(url, headers=100, bodies=100), ThreadPoolExecutor(50) as pool:
            waits = [pool.submit(requests.get, job_url, headers=header, timeout=60,
                                 params={"WAIT": 8, "PHASE": "PENDING"})
                     for job_url, header in jobs for _ in range(2)]
            time.sleep(1.0)  # every WAIT has reached the service
            timings = [_quick_query(url) for _ in range(3)]
            assert max(timings) < 1.0, timings
            assert all(w.result().status_code == 200 for w in waits)
    finally:
        for job_url, header in jobs:
            requests.delete(job_url, headers=header, timeout=10)


def _active(engine: sa.Engine, marker: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
            "AND query LIKE :pattern AND pid <> pg_backend_pid()"), {"pattern": f"%{marker}%"}).scalar()


@pytest.mark.parametrize("through_front", [True, False], ids=["nginx", "direct"])
def test_query_of_a_client_that_hangs_up_is_cancelled(front_service, server, database,
                                                      through_front: bool) -> None:
    """A slow sync query stops in PostgreSQL within 2 s of its client closing the connection,
    behind the front and on a server the client reaches directly."""
    url = front_service.url if through_front else server.url
    marker = "1234.5678" if through_front else "8765.4321"
    query = ("SELECT COUNT(*) AS n FROM bench.photoz AS a CROSS JOIN bench.photoz AS b "
             f"WHERE a.ra + b.dec > {marker}")
    body = urllib.parse.urlencode({"LANG": "ADQL", "QUERY": query}).encode()
    engine = owner_engine(database)
    sock = socket.create_connection(_address(url), timeout=5)
    sock.sendall(b"POST /tap/sync HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/x-www-form-urlencoded\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
    deadline = time.monotonic() + 10
    while _active(engine, marker) == 0:
        assert time.monotonic() < deadline, "the query never started"
        time.sleep(0.05)
    time.sleep(0.5)
    assert _active(engine, marker) == 1, "the query ended by itself: make it slower"
    sock.close()
    closed = time.monotonic()
    while _active(engine, marker) and time.monotonic() - closed < 10:
        time.sleep(0.05)
    assert _active(engine, marker) == 0
    assert time.monotonic() - closed < 2.0


def test_a_client_gone_before_its_query_starts_leaves_nothing_running(front_service, database) -> None:
    """Clients that close right after sending: whether the hang-up is seen before, while or
    after the statement starts, no query of theirs is left running."""
    marker = "4321.1234"
    query = ("SELECT COUNT(*) AS n FROM bench.photoz AS a CROSS JOIN bench.photoz AS b "
             f"WHERE a.ra + b.dec > {marker}")
    body = urllib.parse.urlencode({"LANG": "ADQL", "QUERY": query}).encode()
    engine = owner_engine(database)
    for _ in range(5):
        with socket.create_connection(_address(front_service.url), timeout=5) as sock:
            sock.sendall(b"POST /tap/sync HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/x-www-form-urlencoded\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
    time.sleep(3.0)
    assert _active(engine, marker) == 0


def _announce_body(url: str, path: str, length: int) -> tuple[int, str, bytes]:
    """Send only the headers of a POST announcing ``length`` bytes; the front answers at once."""
    host, port = _address(url)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", "application/x-www-form-urlencoded")
        conn.putheader("Content-Length", str(length))
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read()
    finally:
        conn.close()


def test_tap_body_over_the_limit_is_a_dali_error(front_service, database) -> None:
    status, ctype, body = _announce_body(front_service.url, "/tap/sync",
                                         database.upload_max_bytes + 2 * 2**20)
    assert status == 413
    assert ctype.startswith("application/x-votable+xml")
    assert b'name="QUERY_STATUS" value="ERROR"' in body
    assert str(database.upload_max_bytes + 2**20).encode() in body


def test_api_body_over_the_limit_is_a_problem_document(front_service, database) -> None:
    status, ctype, body = _announce_body(front_service.url, "/api/products",
                                         database.product_max_bytes + 2 * 2**20)
    assert status == 413
    assert ctype == "application/problem+json"
    assert str(database.product_max_bytes).encode() in json.loads(body)["detail"].encode()


def test_uploads_without_a_user_are_refused_before_the_body(front_service) -> None:
    """nginx asks the app whether the credentials may upload before it takes a product body:
    an anonymous or bad-token client cannot make it spool 2 GiB to disk."""
    status, ctype, body = _announce_body(front_service.url, "/api/products", 2**30)
    assert status == 401
    assert ctype == "application/problem+json"
    assert "Bearer" in json.loads(body)["detail"]
    listing = requests.get(front_service.url + "/api/products", timeout=10)
    assert listing.status_code == 200  # reading stays open to anonymous users


def test_a_second_service_on_a_served_address_is_refused(front_service, database) -> None:
    from vo_service.serving import ServiceProcesses

    with pytest.raises(RuntimeError, match="in use"):
        ServiceProcesses(database, front_service.bind).start()
    assert requests.get(front_service.url + "/tap/availability", timeout=10).status_code == 200


def test_front_passes_the_public_host(front_service) -> None:
    """Behind nginx the app sees the host the client asked for (capabilities' URLs)."""
    caps = requests.get(front_service.url + "/tap/capabilities", timeout=10)
    assert caps.status_code == 200
    assert front_service.url.encode() in caps.content
