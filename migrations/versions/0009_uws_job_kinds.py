"""Async jobs of more than one kind: TAP queries and pipeline work (the Training Set Maker).

``kind`` says which runner executes a job (``tap`` for every job stored before); a worker
claims only the kinds it can run, so a web-only deployment never takes a pipeline job.
``outcome`` is what a non-TAP job reports when it ends (its counts, the products it
registered), read by its REST API; TAP jobs keep their result file as before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE uws.jobs ADD COLUMN kind text NOT NULL DEFAULT 'tap' "
               "CHECK (kind ~ '^[a-z][a-z0-9_]{0,29}$')")
    op.execute("ALTER TABLE uws.jobs ADD COLUMN outcome jsonb")
    op.execute("DROP INDEX uws.jobs_queue_idx")
    op.execute("CREATE INDEX jobs_queue_idx ON uws.jobs (kind, queued_at) WHERE phase = 'QUEUED'")
    op.execute("CREATE INDEX jobs_owner_kind_idx ON uws.jobs (owner, kind, creation_time)")


def downgrade() -> None:
    op.execute("DELETE FROM uws.jobs WHERE kind <> 'tap'")
    op.execute("DROP INDEX uws.jobs_owner_kind_idx")
    op.execute("DROP INDEX uws.jobs_queue_idx")
    op.execute("CREATE INDEX jobs_queue_idx ON uws.jobs (queued_at) WHERE phase = 'QUEUED'")
    op.execute("ALTER TABLE uws.jobs DROP COLUMN outcome")
    op.execute("ALTER TABLE uws.jobs DROP COLUMN kind")
