"""Set-up pieces a newcomer relies on: the pgsphere fix, the CLI, configuration, migrations."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from vo_service.core.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
PZVO = Path(sys.executable).parent / "pzvo"
PATCH_SCRIPT = ROOT / "scripts" / "patch_pgsphere.py"

BROKEN_SQL = """
CREATE OPERATOR <@ (LEFTARG = spoint, RIGHTARG = smoc, PROCEDURE = spoint_subset_smoc);
CREATE OPERATOR @ (
   LEFTARG    = bigint,
   RIGHTARG   = smoc,
   PROCEDURE  = healpix_subset_smoc,
   COMMUTATOR = '@>',
   NEGATOR    = '!<@',
   RESTRICT   = contsel,
   JOIN       = contjoinsel
);
CREATE OPERATOR @ (
   LEFTARG    = spoint,
   RIGHTARG   = scircle,
   PROCEDURE  = spoint_in_circle,
   COMMUTATOR = '~',
   NEGATOR    = '!@'
);
"""


def test_pgsphere_patch_removes_only_the_smoc_clauses_and_is_idempotent(tmp_path: Path) -> None:
    sql = tmp_path / "pg_sphere--1.2.0.sql"
    sql.write_text(BROKEN_SQL)
    first = subprocess.run([sys.executable, str(PATCH_SCRIPT), str(sql)], capture_output=True, text=True)
    assert first.returncode == 0 and "removed" in first.stdout
    patched = sql.read_text()
    smoc_block = patched.split("CREATE OPERATOR @ (")[1]
    circle_block = patched.split("CREATE OPERATOR @ (")[2]
    assert "COMMUTATOR" not in smoc_block and "NEGATOR" not in smoc_block
    assert "COMMUTATOR = '~'" in circle_block and "NEGATOR    = '!@'" in circle_block
    assert (tmp_path / "pg_sphere--1.2.0.sql.orig").read_text() == BROKEN_SQL
    second = subprocess.run([sys.executable, str(PATCH_SCRIPT), str(sql)], capture_output=True, text=True)
    assert second.returncode == 0 and "needs no change" in second.stdout
    assert sql.read_text() == patched


def test_pg_sphere_is_installed_in_the_database(database) -> None:
    from vo_service.core.database import owner_engine

    with owner_engine(database).connect() as conn:
        version = conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'pg_sphere'")).scalar()
        inside = conn.execute(text("SELECT spoint(radians(10), radians(20)) @ "
                                   "scircle(spoint(radians(10), radians(20.5)), radians(1))")).scalar()
    assert version and inside is True


def test_private_cluster_listens_on_loopback_only_as_unprivileged_user(database) -> None:
    if database.database_url:
        pytest.skip("external PostgreSQL")
    from vo_service.core.database import owner_engine

    with owner_engine(database).connect() as conn:
        listen = conn.execute(text("SHOW listen_addresses")).scalar()
    assert listen == "127.0.0.1"
    pid_file = database.pg_dir / "data" / "postmaster.pid"
    pid = int(pid_file.read_text().split()[0])
    uid = os.stat(f"/proc/{pid}").st_uid
    assert uid != 0


def test_cli_db_status_and_url(database) -> None:
    env = dict(os.environ, PZVO_DB_NAME=database.db_name)
    url = subprocess.run([str(PZVO), "db", "url"], capture_output=True, text=True, env=env, check=True)
    assert url.stdout.strip().endswith(f"/{database.db_name}")
    status = subprocess.run([str(PZVO), "db", "status"], capture_output=True, text=True, env=env)
    assert status.returncode == 0 and "running" in status.stdout


def test_database_url_environment_variable_wins(monkeypatch) -> None:
    monkeypatch.setenv("PZVO_DATABASE_URL", "postgresql://u:p@db.example:5432/x")
    settings = load_settings()
    assert settings.owner_url() == "postgresql://u:p@db.example:5432/x"
    assert "pzvo_reader" in settings.query_url() and "db.example:5432/x" in settings.query_url()


def test_toml_file_is_the_fallback_for_settings(tmp_path: Path, monkeypatch) -> None:
    cfg = tmp_path / "pzvo.toml"
    cfg.write_text('maxrec_default = 1234\n')
    monkeypatch.setenv("PZVO_CONFIG", str(cfg))
    monkeypatch.delenv("PZVO_MAXREC_DEFAULT", raising=False)
    assert load_settings().maxrec_default == 1234
    monkeypatch.setenv("PZVO_MAXREC_DEFAULT", "99")
    assert load_settings().maxrec_default == 99


def test_migrations_are_idempotent_and_reader_is_read_only(database) -> None:
    import psycopg2

    from vo_service.core.database import migrate

    migrate(database)
    conn = psycopg2.connect(database.query_url())
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pz.specz_demo")
            assert cur.fetchone()[0] == 10_000
            with pytest.raises(psycopg2.Error):
                cur.execute("CREATE TABLE pz.evil (a int)")
    finally:
        conn.close()


def test_tap_schema_describes_itself_with_all_standard_columns(database) -> None:
    from vo_service.core.database import owner_engine

    with owner_engine(database).connect() as conn:
        cols = {r[0] for r in conn.execute(text(
            "SELECT column_name FROM tap_schema.columns WHERE table_name = 'tap_schema.columns'"))}
        tables = {r[0] for r in conn.execute(text(
            "SELECT table_name FROM tap_schema.tables WHERE schema_name = 'tap_schema'"))}
    assert {"column_index", "arraysize", "xtype", "principal", "indexed", "std", "\"size\"", "datatype",
            "unit", "ucd", "utype", "description", "table_name", "column_name"} <= cols
    assert tables == {f"tap_schema.{t}" for t in ("schemas", "tables", "columns", "keys", "key_columns")}
