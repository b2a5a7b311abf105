"""The PZ Validation Cooperative: challenges, participants' submissions, and their metrics in TAP.

``coop.challenges`` and ``coop.submissions`` are written by the owner role only (the REST API
and the validation jobs); ``coop.metrics`` is a view of the validated submissions' headline
metrics, published in TAP_SCHEMA (``tap_schema/tables/coop.metrics.yaml``) so that the numbers
of a comparison page are also queryable by ADQL.  The reader role sees the view, never the
submissions' own rows (their errors and files).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""
from alembic import op

from tap_schema.loader import publish_table
from tap_schema.model import load_tables

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

READER = "pzvo_reader"
S = "coop"
#: The view's columns: name, SQL type, the metric's key in the submission's metrics document.
METRICS = (("n", "bigint", "n"), ("sigma_mad", "double precision", "sigma_mad"),
           ("bias", "double precision", "bias"), ("outlier_fraction", "double precision", "outlier_fraction"),
           ("pit_chi2", "double precision", "pit_chi2"), ("pit_chi2_p", "double precision", "pit_chi2_p"),
           ("cde_loss", "double precision", "cde_loss"), ("crps", "double precision", "crps"))


def upgrade() -> None:
    op.execute(f"CREATE SCHEMA {S}")
    op.execute(f"""CREATE TABLE {S}.challenges (
        name text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{{0,29}}$'),
        title text NOT NULL,
        description text NOT NULL DEFAULT '',
        training_product text NOT NULL,
        training_version integer NOT NULL CHECK (training_version >= 1),
        validation_product text NOT NULL,
        validation_version integer NOT NULL CHECK (validation_version >= 1),
        deadline timestamptz NOT NULL,
        pdf_forms text[] NOT NULL,
        metric_set jsonb NOT NULL,
        metric_set_version integer NOT NULL DEFAULT 1,
        created_by text NOT NULL REFERENCES registry.users (name),
        created_at timestamptz NOT NULL DEFAULT now())""")
    op.execute(f"""CREATE TABLE {S}.submissions (
        id bigserial PRIMARY KEY,
        challenge text NOT NULL REFERENCES {S}.challenges (name) ON DELETE CASCADE,
        participant text NOT NULL REFERENCES registry.users (name),
        algorithm text NOT NULL,
        description text,
        product_name text NOT NULL,
        product_version integer NOT NULL,
        status text NOT NULL CHECK (status IN ('accepted', 'validating', 'validated', 'failed')),
        job_id text,
        metrics jsonb,
        metrics_version text,
        error text,
        submitted_at timestamptz NOT NULL DEFAULT now(),
        validated_at timestamptz)""")
    op.execute(f"CREATE INDEX submissions_challenge_idx ON {S}.submissions (challenge, submitted_at)")
    columns = ",\n        ".join(f"(s.metrics ->> '{key}')::{sql} AS {name}" for name, sql, key in METRICS)
    op.execute(f"""CREATE VIEW {S}.metrics AS
        SELECT s.challenge, s.id AS submission_id, s.participant, s.algorithm,
        s.product_name AS product, s.product_version,
        {columns},
        s.metrics_version, s.validated_at
        FROM {S}.submissions AS s WHERE s.status = 'validated'""")
    op.execute(f"GRANT USAGE ON SCHEMA {S} TO {READER}")
    op.execute(f"GRANT SELECT ON {S}.metrics TO {READER}")
    conn = op.get_bind()
    for desc in load_tables(S):
        publish_table(conn, desc)


def downgrade() -> None:
    op.execute(f"DELETE FROM tap_schema.columns WHERE table_name LIKE '{S}.%'")
    op.execute(f"DELETE FROM tap_schema.tables WHERE schema_name = '{S}'")
    op.execute(f"DELETE FROM tap_schema.schemas WHERE schema_name = '{S}'")
    op.execute(f"DROP SCHEMA {S} CASCADE")
