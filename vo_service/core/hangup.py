"""Cancel a running query when the client that asked for it hangs up.

A WSGI application learns that its client is gone only when a write fails, so a sync query
that produces no row for a while (an aggregate, a big join) kept running in PostgreSQL until its
statement timeout after the client had left.  One thread per process watches the sockets of
requests whose query runs, with ``poll(POLLRDHUP)``, which reports the peer's FIN without
reading the socket; on a hang-up it sends PostgreSQL a cancel request for that query, again
every half second until the connection is released (a cancel that arrives before the statement
starts is ignored).  Behind
the nginx front, the watched socket is nginx's connection to gunicorn, which nginx closes as
soon as its client goes away (``proxy_ignore_client_abort off``, its default).

The guard is detached before the connection goes back to the pool, under the same lock the
cancel takes, so a late hang-up can never cancel the next user's query on that connection.
"""
from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger("vo_service.core.hangup")

#: Peer closed (FIN), connection reset or failed.
_HANGUP = select.POLLRDHUP | select.POLLHUP | select.POLLERR
#: Longest delay between a hang-up and its cancel request, besides the cancel's own round trip.
POLL_INTERVAL_S = 0.2
#: Cancel requests of one hung-up query: every 0.5 s for 30 s at most.
CANCEL_INTERVAL_S = 0.5
CANCEL_REPEATS = 60


class HangupWatcher:
    """A daemon thread that calls back when a watched socket's peer closes it.

    A ``poll()`` in progress keeps the descriptors it started with, so an event may arrive for a
    number that has since been unwatched, closed and reused by the next connection.  An event is
    therefore confirmed on the socket registered now, by a fresh zero-timeout poll, before its
    callback runs; an unconfirmed one is dropped and the watch stays.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: dict[int, tuple[socket.socket, Callable[[], None]]] = {}
        self._poll = select.poll()
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, on_hangup: Callable[[], None]) -> Callable[[], None]:
        """Watch ``sock``; returns the function that stops watching it (call it before the
        socket is closed, as its number is reused by the next connection)."""
        fd = sock.fileno()
        entry = (sock, on_hangup)
        with self._lock:
            self._watched[fd] = entry
            self._poll.register(fd, _HANGUP)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="hangup-watcher", daemon=True)
                self._thread.start()

        def unwatch() -> None:
            with self._lock:
                if self._watched.get(fd) is entry:
                    del self._watched[fd]
                    self._poll.unregister(fd)

        return unwatch

    def _run(self) -> None:
        while True:
            for fd, _events in self._poll.poll(POLL_INTERVAL_S * 1000):
                with self._lock:
                    entry = self._watched.get(fd)
                    if entry is None:
                        continue
                    if entry[0].fileno() < 0:  # closed while watched: nobody left to cancel for
                        del self._watched[fd]
                        self._poll.unregister(fd)
                        continue
                    if not _hung_up(entry[0]):
                        continue
                    del self._watched[fd]
                    self._poll.unregister(fd)
                try:
                    entry[1]()
                except Exception:  # one failed cancel must not stop the watcher
                    log.warning("hang-up callback failed", exc_info=True)


def _hung_up(sock: socket.socket) -> bool:
    """The socket registered now reports a hang-up now (a fresh, zero-timeout poll)."""
    probe = select.poll()
    probe.register(sock.fileno(), _HANGUP)
    return bool(probe.poll(0))


_watcher = HangupWatcher()


def request_socket(environ: Mapping[str, object]) -> socket.socket | None:
    """The client connection of a WSGI request, where the server exposes it."""
    sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    return sock if isinstance(sock, socket.socket) else None


class QueryGuard:
    """Ties a database connection's running query to a request's client connection.

    Pass :meth:`attach` and :meth:`release` to the query runner as its ``on_connection`` and
    ``on_release`` hooks; ``cancel`` is the driver's cancel request for that connection.
    """

    def __init__(self, environ: Mapping[str, object], describe: str = "") -> None:
        self._sock = request_socket(environ)
        self._describe = describe
        self._lock = threading.Lock()
        self._conn: object | None = None
        self._unwatch: Callable[[], None] | None = None
        self.hung_up = False

    def attach(self, conn: object) -> None:
        if self._sock is None:
            return
        with self._lock:
            self._conn = conn
        self._unwatch = _watcher.watch(self._sock, self._hangup)

    def _hangup(self) -> None:
        with self._lock:
            if self._conn is None:
                return
            self.hung_up = True
        log.info("client hung up; cancelling its query", extra={"query": self._describe})
        threading.Thread(target=self._cancel_until_released, name="hangup-cancel", daemon=True).start()

    def _cancel_until_released(self) -> None:
        """A cancel request that arrives before the statement starts (the client left while
        it was being translated) is ignored by PostgreSQL, so it is repeated until the
        connection is released, for at most the longest a query could still need to start."""
        for _ in range(CANCEL_REPEATS):
            with self._lock:
                if self._conn is None:
                    return
                try:
                    self._conn.adbc_cancel()  # type: ignore[attr-defined]
                except Exception:  # noqa: BLE001 - a closed connection has nothing left to cancel
                    return
            time.sleep(CANCEL_INTERVAL_S)

    def release(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        with self._lock:
            self._conn = None
