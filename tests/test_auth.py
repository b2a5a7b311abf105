"""Bearer tokens, the proxy header and the read rule, through the CLI and HTTP."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from tests.conftest import LiveServer
from tests.test_tap_sync import assert_dali_error

PZVO = Path(sys.executable).parent / "pzvo"
QUERY = {"LANG": "ADQL", "QUERY": "SELECT TOP 1 id FROM pz.specz_demo"}


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def closed_server(database):
    from tests._services import app_for

    with LiveServer(app_for(dataclasses.replace(database, public_read=False))) as live:
        yield live.url


@pytest.fixture(scope="module")
def proxy_server(database):
    from tests._services import app_for

    settings = dataclasses.replace(database, public_read=False, trust_proxy_header=True)
    with LiveServer(app_for(settings)) as live:
        yield live.url


def add_user(database, name: str, *, admin: bool = False) -> str:
    env = dict(os.environ, PZVO_DB_NAME=database.db_name)
    argv = [str(PZVO), "user", "add", name] + (["--admin"] if admin else [])
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    return out.stdout.strip()


def test_user_add_prints_a_token_once_and_stores_only_its_hash(database) -> None:
    from sqlalchemy import text

    from vo_service.core.database import owner_engine

    name = unique("alice")
    token = add_user(database, name)
    assert token.startswith("pzvo_") and len(token) > 30
    with owner_engine(database).connect() as conn:
        stored = conn.execute(text("SELECT token_hash FROM registry.tokens WHERE user_name = :n"),
                              {"n": name}).scalar()
    assert stored and token not in stored and len(stored) == 64


def test_adding_an_existing_user_fails_cleanly(database) -> None:
    name = unique("bob")
    add_user(database, name)
    env = dict(os.environ, PZVO_DB_NAME=database.db_name)
    again = subprocess.run([str(PZVO), "user", "add", name], capture_output=True, text=True, env=env)
    assert again.returncode == 1 and "exists" in again.stderr


def test_closed_service_needs_a_token_for_tap(closed_server: str, database) -> None:
    resp = requests.post(closed_server + "/tap/sync", data=QUERY, timeout=30)
    assert_dali_error(resp, 401, "Bearer")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    token = add_user(database, unique("carol"))
    ok = requests.post(closed_server + "/tap/sync", data=QUERY, timeout=30,
                       headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200


def test_bad_token_is_refused_even_when_reads_are_public(tap_url: str) -> None:
    resp = requests.post(tap_url + "/sync", data=QUERY, timeout=30,
                         headers={"Authorization": "Bearer pzvo_not_a_real_token"})
    assert_dali_error(resp, 401, "not valid")


def test_malformed_authorization_header_is_refused(tap_url: str) -> None:
    resp = requests.post(tap_url + "/sync", data=QUERY, timeout=30,
                         headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_dali_error(resp, 401, "Bearer")


def test_public_read_lets_anonymous_users_query(tap_url: str) -> None:
    assert requests.post(tap_url + "/sync", data=QUERY, timeout=30).status_code == 200


def _user_exists(database, name: str) -> bool:
    from sqlalchemy import text

    from vo_service.core.database import owner_engine

    with owner_engine(database).connect() as conn:
        return conn.execute(text("SELECT 1 FROM registry.users WHERE name = :n"), {"n": name}).first() is not None


def test_proxy_header_is_trusted_only_when_configured(proxy_server: str, tap_url: str, database) -> None:
    rsp_user = unique("rsp_user")
    ok = requests.post(proxy_server + "/tap/sync", data=QUERY, timeout=30,
                       headers={"X-Auth-Request-User": rsp_user})
    assert ok.status_code == 200 and _user_exists(database, rsp_user)
    refused = requests.post(proxy_server + "/tap/sync", data=QUERY, timeout=30)
    assert refused.status_code == 401
    mallory = unique("mallory")
    ignored = requests.post(tap_url + "/sync", data=QUERY, timeout=30,
                            headers={"X-Auth-Request-User": mallory})
    assert ignored.status_code == 200 and not _user_exists(database, mallory)
