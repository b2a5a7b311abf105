"""Fixtures: a fresh database in the private cluster, migrated and loaded; a live HTTP server.

The session database (``pzvo_test``, or ``PZVO_TEST_DB`` so that two runs can share the
cluster) is dropped and recreated, migrated with Alembic and loaded
with the demo tables and a small ``bench.photoz``, exactly as ``make run``/``make bench`` do.
Set ``PZVO_TEST_DATABASE_URL`` to run against another (disposable) PostgreSQL instead.
"""
from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from vo_service.app import create_app
from vo_service.auth import User
from vo_service.cluster import PrivateCluster
from vo_service.core.database import migrate
from vo_service.core.settings import Settings, load_settings
from vo_service.demo import load_bench_table, load_demo
from vo_service.products import ProductRegistry
from vo_service.services import Services
from vo_service.serving import running_service

BENCH_TEST_ROWS = 20_000


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    external = os.environ.get("PZVO_TEST_DATABASE_URL")
    if external:
        return load_settings(database_url=external, maxrec_default=100_000, public_read=True)
    base = load_settings()
    name = os.environ.get("PZVO_TEST_DB", "pzvo_test")
    cluster = PrivateCluster(settings=base)
    cluster.start()
    cluster.drop_database(name)
    cluster.create_database(name)
    settings = load_settings(db_name=name, database_url=None, public_read=True)
    shutil.rmtree(settings.products_dir, ignore_errors=True)  # the dropped database's files
    return settings


@pytest.fixture(scope="session")
def database(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The migrated test database with demo and benchmark tables."""
    migrate(settings)
    services = Services.build(settings)
    load_demo(services)
    load_bench_table(services.owner_engine, BENCH_TEST_ROWS, settings.var_dir / "bench")
    services.close()
    return settings


@pytest.fixture(scope="session")
def services(database: Settings) -> Iterator[Services]:
    """The session's services on the test database, as the composition root builds them."""
    built = Services.build(database)
    yield built
    built.close()


@pytest.fixture(scope="session")
def registry(services: Services) -> ProductRegistry:
    """The session's product registry, as the composition root hands it to the pipeline and the TSM."""
    return services.products


@pytest.fixture(scope="session")
def operator(services: Services) -> User:
    """Who the pipeline and the TSM register official products as (the operator account)."""
    return services.operator()


class LiveServer:
    def __init__(self, app, host: str = "127.0.0.1") -> None:
        self.server = make_server(host, 0, app, threaded=True)
        self.url = f"http://{host}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()


@pytest.fixture(scope="session")
def app(services: Services) -> Flask:
    return create_app(services)


@pytest.fixture(scope="session")
def server(app) -> Iterator[LiveServer]:
    with LiveServer(app) as live:
        yield live


@pytest.fixture(scope="session")
def tap_url(server: LiveServer) -> str:
    return server.url + "/tap"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def front_service(database: Settings):
    """The service as `make run` serves it (nginx in front of 2 gunicorn processes x 4 threads)
    on a free loopback port, for tests of what only the real front shows: slow clients,
    hang-ups, streaming, request limits.  No async worker: the UWS tests start their own on the
    same database, and one living here for the whole session would take their jobs."""
    env = {"PZVO_DB_NAME": database.db_name, "PZVO_PUBLIC_READ": "true",
           "PZVO_MAXREC_LIMIT": "2000000", "PZVO_LOG_LEVEL": "WARNING"}
    if database.database_url:
        env["PZVO_DATABASE_URL"] = database.database_url
    with running_service(database, f"127.0.0.1:{free_port()}", front="nginx", web_workers=2,
                         web_threads=4, async_workers=0, env=env, quiet=True) as service:
        yield service


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "artifacts"
    path.mkdir(exist_ok=True)
    return path
