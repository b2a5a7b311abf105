"""The whole service stack for a test's own settings, built by the composition root."""
from __future__ import annotations

from flask import Flask

from vo_service.app import create_app
from vo_service.core.settings import Settings
from vo_service.services import Services
from vo_service.uws import Worker


def app_for(settings: Settings) -> Flask:
    """A Flask app on services built for ``settings`` (a test's variant of the session's)."""
    return create_app(Services.build(settings))


def worker_for(settings: Settings, *, threads: int | None = None, name: str | None = None) -> Worker:
    """An async worker with its own services, as ``pzvo worker`` builds it."""
    threads = settings.uws_worker_threads if threads is None else threads
    return Services.build(settings, pool_size=max(1, threads)).worker(threads=threads, name=name)
