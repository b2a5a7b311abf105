"""Tokens: an optional expiry, and a short public prefix so that one token can be revoked.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # token_prefix is the token's first characters (not enough to use it): it names one token in
    # `pzvo user tokens` and `pzvo user revoke --token-prefix`. Tokens issued before this
    # revision have none; they are revoked by the whole token or with all of their user's.
    op.execute("ALTER TABLE registry.tokens ADD COLUMN token_prefix text, "
               "ADD COLUMN expires_at timestamptz")
    op.execute("CREATE INDEX tokens_prefix_idx ON registry.tokens (token_prefix)")
    op.execute("CREATE INDEX tokens_user_name_idx ON registry.tokens (user_name)")


def downgrade() -> None:
    op.execute("DROP INDEX registry.tokens_user_name_idx")
    op.execute("DROP INDEX registry.tokens_prefix_idx")
    op.execute("ALTER TABLE registry.tokens DROP COLUMN expires_at, DROP COLUMN token_prefix")
