"""The hang-up watcher (vo_service/hangup.py) on real socket pairs: it calls back on a peer's
close, never on live sockets, unwatched ones, or a reused descriptor's new connection."""
from __future__ import annotations

import os
import socket
import threading
import time

from vo_service.core.hangup import HangupWatcher


def _pair() -> tuple[socket.socket, socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    server.close()
    return accepted, client


def assert_fires_on_peer_close(watcher: HangupWatcher) -> None:
    ours, peer = _pair()
    fired = threading.Event()
    watcher.watch(ours, fired.set)
    peer.close()
    assert fired.wait(5)
    ours.close()


def test_a_peer_close_calls_back_once() -> None:
    watcher = HangupWatcher()
    assert_fires_on_peer_close(watcher)


def test_live_sockets_with_unread_bytes_and_unwatched_ones_are_left_alone() -> None:
    watcher = HangupWatcher()
    live, live_peer = _pair()
    gone, gone_peer = _pair()
    calls: list[str] = []
    watcher.watch(live, lambda: calls.append("live"))
    unwatch = watcher.watch(gone, lambda: calls.append("gone"))
    live_peer.sendall(b"GET / HTTP/1.1\r\n\r\n")
    unwatch()
    gone_peer.close()
    canary = threading.Event()
    third, third_peer = _pair()
    watcher.watch(third, canary.set)
    third_peer.close()
    assert canary.wait(5)  # the watcher ran rounds after the close it must ignore
    assert calls == []
    for sock in (live, live_peer, gone, third):
        sock.close()


def test_a_reused_descriptor_belongs_to_its_new_connection() -> None:
    """Unwatch, close, and a new connection takes the same number: the old one's hang-up must
    not cancel the new one's query."""
    watcher = HangupWatcher()
    old, old_peer = _pair()
    number = old.fileno()
    calls: list[str] = []
    unwatch = watcher.watch(old, lambda: calls.append("old"))
    unwatch()  # the request ended; then its client leaves and the server closes the socket
    old_peer.close()
    old.close()
    new, new_peer = _pair()
    if new.fileno() != number:  # the kernel gives the lowest free number: normally the same
        new_fd = socket.socket(fileno=os.dup2(new.fileno(), number))
        new.close()
        new = new_fd
    watcher.watch(new, lambda: calls.append("new"))
    threading.Event().wait(1.0)
    assert calls == []
    new_peer.close()
    deadline = time.monotonic() + 5
    while calls != ["new"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert calls == ["new"]
    new.close()


def test_a_socket_closed_while_watched_does_not_stop_the_watcher() -> None:
    watcher = HangupWatcher()
    careless, careless_peer = _pair()
    watcher.watch(careless, lambda: None)
    careless.close()
    careless_peer.close()
    assert_fires_on_peer_close(watcher)
