"""Async jobs: destruction times within range, and the bytes each job's inputs hold.

Older versions stored any DESTRUCTION a client sent, including times before year 1 that
psycopg cannot read back ("year -1 is out of range"): every read of such a row failed, and with
it the reaper's whole round.  This repairs them (a destruction in the past means "destroy at
once", so such rows get now(); one beyond year 9999, the default retention limit) and adds a
CHECK so no such row is stored again.  ``input_bytes`` is what a job's parameters, uploads and
record cost, counted with its result in its owner's quota of stored job bytes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""
from alembic import op
from sqlalchemy import text
from sqlalchemy.engine import Connection

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: Destruction times a job may have; the service keeps far inside (now .. creation + 30 days).
EARLIEST = "1970-01-01 00:00:00+00"
LATEST = "9999-01-01 00:00:00+00"
#: The default ``uws_max_retention_s`` (the migration cannot know a deployment's setting).
DEFAULT_MAX_RETENTION = "30 days"


def repair(conn: Connection) -> int:
    """Bring every destruction time into range; returns the number of rows changed."""
    early = conn.execute(text(
        "UPDATE uws.jobs SET destruction = now() "
        "WHERE destruction < CAST(:earliest AS timestamptz)"), {"earliest": EARLIEST}).rowcount
    late = conn.execute(text(
        "UPDATE uws.jobs SET destruction = least(creation_time + CAST(:keep AS interval), "
        "CAST(:latest AS timestamptz) - interval '1 day') "
        "WHERE destruction >= CAST(:latest AS timestamptz)"),
        {"keep": DEFAULT_MAX_RETENTION, "latest": LATEST}).rowcount
    return early + late


def upgrade() -> None:
    repair(op.get_bind())
    op.execute(f"ALTER TABLE uws.jobs ADD CONSTRAINT jobs_destruction_range CHECK "
               f"(destruction >= '{EARLIEST}' AND destruction < '{LATEST}')")
    op.execute("ALTER TABLE uws.jobs ADD COLUMN input_bytes bigint NOT NULL DEFAULT 0 "
               "CHECK (input_bytes >= 0)")


def downgrade() -> None:
    op.execute("ALTER TABLE uws.jobs DROP COLUMN input_bytes")
    op.execute("ALTER TABLE uws.jobs DROP CONSTRAINT jobs_destruction_range")
