"""Pipeline runs: the job record of each ``pzvo pipeline run`` in the registry.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PHASES = ("EXECUTING", "COMPLETED", "ERROR")


def upgrade() -> None:
    # Written by the pipeline (owner role) as partitions finish, read by the REST API (owner
    # role); like uws.jobs, not visible to the role that runs users' ADQL.
    phases = ", ".join(f"'{p}'" for p in PHASES)
    op.execute(f"""CREATE TABLE registry.pipeline_runs (
        run_id uuid PRIMARY KEY,
        release text NOT NULL,
        table_name text NOT NULL,
        estimator jsonb NOT NULL,
        fingerprint text NOT NULL,
        inputs jsonb NOT NULL,
        output_dir text NOT NULL,
        phase text NOT NULL CHECK (phase IN ({phases})),
        done integer NOT NULL DEFAULT 0 CHECK (done >= 0),
        total integer CHECK (total >= 0),
        rows bigint NOT NULL DEFAULT 0 CHECK (rows >= 0),
        started timestamptz NOT NULL DEFAULT now(),
        updated timestamptz NOT NULL DEFAULT now(),
        finished timestamptz,
        error text,
        summary jsonb)""")
    op.execute("CREATE INDEX pipeline_runs_started_idx ON registry.pipeline_runs (started DESC)")


def downgrade() -> None:
    op.execute("DROP TABLE registry.pipeline_runs")
