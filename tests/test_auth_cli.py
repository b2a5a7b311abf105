"""Who the CLI acts as, and revoking and expiring tokens: through `pzvo` and HTTP."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from tests._cli import run_pzvo
from tests.test_tap_sync import assert_dali_error

PZVO = Path(sys.executable).parent / "pzvo"
QUERY = {"LANG": "ADQL", "QUERY": "SELECT TOP 1 id FROM pz.specz_demo"}


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def env(database) -> dict[str, str]:
    environ = dict(os.environ, PZVO_DB_NAME=database.db_name, PZVO_VAR_DIR=str(database.var_dir))
    environ.pop("PZVO_USER", None)
    return environ


@pytest.fixture(scope="module")
def engine(database):
    from vo_service.core.database import owner_engine

    return owner_engine(database)


@pytest.fixture
def other_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("not a table\n")
    return path


def pzvo(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    return run_pzvo(env, *argv)


def ingest(env: dict[str, str], path: Path, *extra: str, name: str | None = None) -> subprocess.CompletedProcess:
    return pzvo(env, "ingest", str(path), "--type", "other", "--name", name or unique("auth"), *extra)


def user_row(engine, name: str):
    with engine.connect() as conn:
        return conn.execute(text("SELECT name, is_admin FROM registry.users WHERE name = :n"),
                            {"n": name}).first()


def add_user(env: dict[str, str], name: str, *extra: str) -> str:
    out = pzvo(env, "user", "add", name, *extra)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem_401(resp: requests.Response, *fragments: str) -> None:
    assert resp.status_code == 401, resp.text[:500]
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    detail = resp.json()["detail"].lower()
    for fragment in fragments:
        assert fragment in detail, detail


# -- who the CLI acts as -------------------------------------------------------------------------
def test_unknown_user_flag_fails_and_creates_no_user(env, engine, other_file) -> None:
    dave = unique("dave")
    out = ingest(env, other_file, "--user", dave)
    assert out.returncode == 1
    assert f"no user '{dave}'" in out.stderr and "pzvo user add" in out.stderr
    assert user_row(engine, dave) is None


def test_unknown_pzvo_user_variable_fails_and_creates_no_user(env, engine, other_file) -> None:
    erin = unique("erin")
    out = ingest(dict(env, PZVO_USER=erin), other_file)
    assert out.returncode == 1 and f"no user '{erin}'" in out.stderr
    assert user_row(engine, erin) is None
    delete = pzvo(dict(env, PZVO_USER=erin), "products", "delete", "whatever")
    assert delete.returncode == 1
    assert user_row(engine, erin) is None


def test_named_user_acts_with_its_own_rights(env, engine, other_file, server) -> None:
    frank = unique("frank")
    token = add_user(env, frank)
    official = ingest(env, other_file, "--user", frank, "--official")
    assert official.returncode == 1 and "administrator" in official.stderr
    name = unique("franks")
    plain = ingest(env, other_file, "--user", frank, name=name)
    assert plain.returncode == 0, plain.stderr
    served = requests.get(f"{server.url}/api/products/{name}/file", headers=bearer(token), timeout=30)
    assert served.status_code == 200 and served.content == other_file.read_bytes()
    with engine.connect() as conn:
        owners = conn.execute(text("SELECT DISTINCT owner FROM registry.products WHERE owner = :n"),
                              {"n": frank}).scalars().all()
    assert owners == [frank]
    assert tuple(user_row(engine, frank)) == (frank, False)


def test_default_operator_is_created_as_administrator(env, engine, other_file) -> None:
    out = ingest(env, other_file, "--official")
    assert out.returncode == 0, out.stderr
    assert tuple(user_row(engine, "pzvo")) == ("pzvo", True)
    named = ingest(dict(env, PZVO_USER="pzvo"), other_file, "--official")
    assert named.returncode == 0, named.stderr


# -- revoking and expiring tokens ----------------------------------------------------------------
def test_revoked_user_tokens_get_401_on_rest_and_tap(env, server) -> None:
    name = unique("gina")
    first = add_user(env, name)
    second = pzvo(env, "user", "token", name).stdout.strip()
    for token in (first, second):
        assert requests.get(server.url + "/api/products", headers=bearer(token), timeout=30).status_code == 200
    out = pzvo(env, "user", "revoke", name)
    assert out.returncode == 0 and f"revoked 2 token(s) of {name}" in out.stdout
    for token in (first, second):
        assert_problem_401(requests.get(server.url + "/api/products", headers=bearer(token), timeout=30),
                           "revoked")
        resp = requests.post(server.url + "/tap/sync", data=QUERY, headers=bearer(token), timeout=30)
        assert_dali_error(resp, 401, "revoked")


def test_revoke_one_token_by_prefix_leaves_the_others(env, server) -> None:
    name = unique("hugo")
    kept = add_user(env, name)
    gone = pzvo(env, "user", "token", name).stdout.strip()
    listing = pzvo(env, "user", "tokens", name)
    assert kept[:13] in listing.stdout and gone[:13] in listing.stdout and kept not in listing.stdout
    out = pzvo(env, "user", "revoke", "--token-prefix", gone[:13])
    assert out.returncode == 0 and f"revoked token {gone[:13]} of {name}" in out.stdout
    assert_problem_401(requests.get(server.url + "/api/products", headers=bearer(gone), timeout=30))
    assert requests.get(server.url + "/api/products", headers=bearer(kept), timeout=30).status_code == 200
    again = pzvo(env, "user", "revoke", "--token-prefix", gone[:13])
    assert again.returncode == 1 and "no token" in again.stderr
    short = pzvo(env, "user", "revoke", "--token-prefix", "pzvo_")
    assert short.returncode == 2 and "13 characters" in short.stderr
    mistyped = pzvo(env, "user", "revoke", "--token-prefix", kept[:-1] + ("A" if kept[-1] != "A" else "B"))
    assert mistyped.returncode == 1 and "no such token" in mistyped.stderr
    assert requests.get(server.url + "/api/products", headers=bearer(kept), timeout=30).status_code == 200
    whole = pzvo(env, "user", "revoke", "--token-prefix", kept)
    assert whole.returncode == 0
    assert_problem_401(requests.get(server.url + "/api/products", headers=bearer(kept), timeout=30))


def test_expired_token_gets_401_and_a_live_one_works(env, engine, server) -> None:
    name = unique("iris")
    add_user(env, name)
    expiring = pzvo(env, "user", "token", name, "--expires-in", "30").stdout.strip()
    live = pzvo(env, "user", "token", name, "--expires-in", "0.5").stdout.strip()
    with engine.connect() as conn:
        lifetimes = dict(conn.execute(text(
            "SELECT token_prefix, expires_at - created_at FROM registry.tokens WHERE user_name = :n "
            "AND expires_at IS NOT NULL"), {"n": name}).all())
    assert lifetimes[expiring[:13]].days == 30 and lifetimes[live[:13]].total_seconds() == 12 * 3600
    assert requests.get(server.url + "/api/products", headers=bearer(expiring), timeout=30).status_code == 200
    with engine.begin() as conn:
        conn.execute(text("UPDATE registry.tokens SET expires_at = now() - interval '1 minute' "
                          "WHERE token_prefix = :p"), {"p": expiring[:13]})
    assert_problem_401(requests.get(server.url + "/api/products", headers=bearer(expiring), timeout=30),
                       "expired")
    resp = requests.post(server.url + "/tap/sync", data=QUERY, headers=bearer(expiring), timeout=30)
    assert_dali_error(resp, 401, "expired")
    page = requests.get(server.url + "/", headers=bearer(expiring), timeout=30)
    assert page.status_code == 401 and "expired" in page.text
    assert requests.get(server.url + "/api/products", headers=bearer(live), timeout=30).status_code == 200
    ok = requests.post(server.url + "/tap/sync", data=QUERY, headers=bearer(live), timeout=30)
    assert ok.status_code == 200
    tokens = pzvo(env, "user", "tokens", name)
    assert "(expired)" in tokens.stdout and "3 token(s)" in tokens.stdout


def test_user_list_counts_live_tokens(env, engine) -> None:
    name = unique("jack")
    add_user(env, name, "--admin")
    expired = pzvo(env, "user", "token", name, "--expires-in", "1").stdout.strip()
    with engine.begin() as conn:
        conn.execute(text("UPDATE registry.tokens SET expires_at = now() - interval '1 second' "
                          "WHERE token_prefix = :p"), {"p": expired[:13]})
    out = pzvo(env, "user", "list")
    assert out.returncode == 0
    line = next(row for row in out.stdout.splitlines() if row.startswith(name + " "))
    assert line.split()[1:3] == ["yes", "1"]


@pytest.mark.parametrize("days", ["0", "-1", "soon", "1e9", "inf", "36501"])
def test_expiry_must_be_a_positive_number_of_days_up_to_a_century(env, days: str) -> None:
    out = pzvo(env, "user", "token", "pzvo", "--expires-in", days)
    assert out.returncode == 2 and "not a number of days from 0 (excluded) to 36500" in out.stderr


def test_revoking_or_listing_an_unknown_user_fails(env) -> None:
    for action in ("revoke", "tokens"):
        out = pzvo(env, "user", action, unique("nobody"))
        assert out.returncode == 1 and "no user" in out.stderr
