"""A challenge's histogram grid: the bin edges (or points) every histogram PDF submitted to it
must use, so that a comparison never mixes grids.  NULL: histograms bring their own grid in
their file's metadata.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE coop.challenges ADD COLUMN histogram_grid double precision[] "
               "CHECK (histogram_grid IS NULL OR cardinality(histogram_grid) BETWEEN 2 AND 1001)")


def downgrade() -> None:
    op.execute("ALTER TABLE coop.challenges DROP COLUMN histogram_grid")
