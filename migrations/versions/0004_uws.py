"""Async TAP: the UWS job table and the schema that holds uploaded tables.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

READER = "pzvo_reader"
PHASES = ("PENDING", "QUEUED", "EXECUTING", "COMPLETED", "ERROR", "ABORTED", "UNKNOWN",
          "HELD", "SUSPENDED", "ARCHIVED")


def upgrade() -> None:
    # Jobs are written only by the owner role (web service and workers); the reader role that
    # runs user queries gets no access to this schema at all.
    op.execute("CREATE SCHEMA uws")
    phases = ", ".join(f"'{p}'" for p in PHASES)
    op.execute(f"""CREATE TABLE uws.jobs (
        job_id text PRIMARY KEY,
        owner text,
        run_id text,
        phase text NOT NULL DEFAULT 'PENDING' CHECK (phase IN ({phases})),
        parameters jsonb NOT NULL DEFAULT '[]',
        execution_duration integer NOT NULL CHECK (execution_duration >= 0),
        destruction timestamptz NOT NULL,
        creation_time timestamptz NOT NULL DEFAULT now(),
        queued_at timestamptz,
        start_time timestamptz,
        end_time timestamptz,
        worker text,
        heartbeat_at timestamptz,
        attempts integer NOT NULL DEFAULT 0,
        progress text,
        error_type text CHECK (error_type IN ('transient', 'fatal')),
        error_message text,
        result_path text,
        result_mime text,
        result_size bigint,
        result_rows bigint,
        overflow boolean)""")
    op.execute("CREATE INDEX jobs_queue_idx ON uws.jobs (queued_at) WHERE phase = 'QUEUED'")
    op.execute("CREATE INDEX jobs_owner_idx ON uws.jobs (owner, creation_time)")
    op.execute("CREATE INDEX jobs_destruction_idx ON uws.jobs (destruction)")
    op.execute("CREATE INDEX jobs_executing_idx ON uws.jobs (heartbeat_at) WHERE phase = 'EXECUTING'")
    # Uploaded tables: created, filled and dropped by the owner, read by the query role.
    op.execute("CREATE SCHEMA tap_upload")
    op.execute(f"GRANT USAGE ON SCHEMA tap_upload TO {READER}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA tap_upload GRANT SELECT ON TABLES TO {READER}")


def downgrade() -> None:
    op.execute("DROP SCHEMA tap_upload CASCADE")
    op.execute("DROP SCHEMA uws CASCADE")
