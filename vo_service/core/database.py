"""Database access shared by every command: engines, migrations, roles and published schemas."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import Connection, Engine

from vo_service.core.identifiers import quote_ident
from vo_service.core.settings import Settings

if TYPE_CHECKING:
    import psycopg2.extensions

#: The role user queries run as (read-only, published schemas only); created by the migrations.
READER_ROLE = "pzvo_reader"

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def owner_engine(settings: Settings) -> Engine:
    """Engine for the owner role (migrations, ingest, registry writes), always on psycopg2.

    Bulk loading uses psycopg2's ``copy_expert``, so whatever driver the configured URL names,
    the owner engine uses psycopg2.
    """
    url = make_url(settings.owner_url()).set(drivername="postgresql+psycopg2")
    return _engine(url.render_as_string(hide_password=False))


def copy_cursor(conn: Connection) -> psycopg2.extensions.cursor:
    """A psycopg2 cursor on the DB-API connection under ``conn``, an owner-engine connection
    (always psycopg2, see :func:`owner_engine`), for ``copy_expert``; a context manager."""
    return cast("psycopg2.extensions.connection", conn.connection.dbapi_connection).cursor()


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", settings.owner_url().replace("%", "%%"))
    return cfg


def migrate(settings: Settings, revision: str = "head") -> None:
    """Apply Alembic migrations, then give the reader role its login and safety settings."""
    engine = owner_engine(settings)
    cfg = alembic_config(settings)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    ensure_reader_login(settings)


#: The reader role's parallel_setup_cost (PostgreSQL's default 1000; see ensure_reader_login).
READER_PARALLEL_SETUP_COST = 20_000


def ensure_reader_login(settings: Settings) -> None:
    """Let ``pzvo_reader`` log in, read-only by default and with a statement timeout.

    The role itself and its grants come from the migrations; the password is deployment data,
    so it is set here rather than in a revision.  Skipped when ``reader_url`` names another role.
    """
    if settings.reader_url:
        return
    timeout_ms = int(settings.query_timeout_s * 1000)
    with owner_engine(settings).begin() as conn:
        password = settings.reader_role_password().replace("'", "''")
        conn.execute(text(f"ALTER ROLE {READER_ROLE} LOGIN PASSWORD '{password}'"))
        conn.execute(text(f"ALTER ROLE {READER_ROLE} SET default_transaction_read_only = on"))
        conn.execute(text(f"ALTER ROLE {READER_ROLE} SET statement_timeout = {timeout_ms}"))
        conn.execute(text(f"ALTER ROLE {READER_ROLE} SET idle_in_transaction_session_timeout = 60000"))
        # Starting a parallel worker takes 11-12 ms here (a forced one-worker plan of a 10-row
        # query: 12 ms against 0.2 ms), about 30,000 of the planner's cost units at this
        # machine's rate (a 140,000-unit crossmatch runs in about 50 ms); PostgreSQL's default
        # 1000 made 2,000-row subqueries run in parallel and crossmatches slower by 10-15 ms.
        # Large work keeps its workers (docs/adql.md, "Crossmatch joins").
        conn.execute(text(f"ALTER ROLE {READER_ROLE} SET parallel_setup_cost = {READER_PARALLEL_SETUP_COST}"))
        conn.execute(text(f"ALTER ROLE {READER_ROLE} RESET parallel_tuple_cost"))


def grant_published_schema(conn: Connection, schema: str) -> None:
    """Make a schema readable by user queries (its present and future tables)."""
    q = quote_ident(schema)
    conn.execute(text(f"GRANT USAGE ON SCHEMA {q} TO {READER_ROLE}"))
    conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA {q} TO {READER_ROLE}"))
    conn.execute(text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {q} GRANT SELECT ON TABLES TO {READER_ROLE}"))
