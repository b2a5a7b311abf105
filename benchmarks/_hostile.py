"""Hostile clients for the front benchmark and the soak test: slow headers, slow bodies, WAITs.

Loopback only: every socket goes to the service under test on 127.0.0.1.
"""
from __future__ import annotations

import socket
import threading
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import requests

SLOW_HEADER = b"GET /tap/availability HTTP/1.1\r\nHost: pzvo\r\nX-Slow: "
SLOW_BODY = (b"POST /tap/sync HTTP/1.1\r\nHost: pzvo\r\n"
             b"Content-Type: application/x-www-form-urlencoded\r\n"
             b"Content-Length: 1000000\r\n\r\nLANG=ADQL&QUERY=")


def address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


class Tricklers:
    """Sockets that send a request one byte per ``period_s``; reopened when the server drops
    them (nginx times a slow header out), so their number stays constant."""

    def __init__(self, url: str, headers: int, bodies: int, period_s: float = 0.5) -> None:
        self._address = address(url)
        self._kinds = [SLOW_HEADER] * headers + [SLOW_BODY] * bodies
        self._period = period_s
        self._socks: list[socket.socket | None] = [None] * len(self._kinds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.reopened = 0

    def _open(self, index: int) -> None:
        try:
            sock = socket.create_connection(self._address, timeout=5)
            sock.sendall(self._kinds[index])
            self._socks[index] = sock
        except OSError:
            self._socks[index] = None

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            for index, sock in enumerate(self._socks):
                try:
                    if sock is None:
                        raise OSError
                    sock.send(b"a")
                except OSError:
                    if sock is not None:
                        sock.close()
                    self.reopened += 1
                    self._open(index)

    def __enter__(self) -> Tricklers:
        for index in range(len(self._kinds)):
            self._open(index)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self._socks:
            if sock is not None:
                sock.close()


@contextmanager
def blocking_waits(url: str, count: int, wait_s: int = 20) -> Iterator[list[Future]]:
    """``count`` concurrent ``WAIT`` requests on one PENDING anonymous job (deleted after)."""
    job = requests.post(url + "/tap/async", timeout=10, allow_redirects=False,
                        data={"LANG": "ADQL", "QUERY": "SELECT TOP 1 objectId FROM pz.photoz_demo"})
    job.raise_for_status()
    job_url = job.headers["Location"]
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(requests.get, job_url, timeout=wait_s + 30,
                               params={"WAIT": wait_s, "PHASE": "PENDING"}) for _ in range(count)]
        try:
            yield futures
        finally:
            for future in futures:
                try:
                    future.result()
                except requests.RequestException:
                    pass
            requests.delete(job_url, timeout=30)
