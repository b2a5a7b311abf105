"""Fixtures of the provenance tests: the owner engine (capture) and a service with public reads.

The provenance tests start their own live server, on the session database, with anonymous
reads allowed (as ``make run`` serves the demo), so they exercise /prov, the page and /tap/sync
without depending on how other tests authenticate.
"""
from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from tests._services import app_for
from tests.conftest import LiveServer
from vo_service.core.settings import Settings


@pytest.fixture(scope="session")
def owner(database: Settings) -> Engine:
    from vo_service.core.database import owner_engine

    return owner_engine(database)


@pytest.fixture(scope="session")
def prov_server(database: Settings) -> Iterator[LiveServer]:
    settings = dataclasses.replace(database, public_read=True)
    with LiveServer(app_for(settings)) as live:
        yield live


@pytest.fixture(scope="session")
def prov_url(prov_server: LiveServer) -> str:
    return prov_server.url


@pytest.fixture
def uid() -> str:
    """A fresh suffix for ids, so tests never collide with each other or with reruns."""
    return uuid.uuid4().hex[:12]
