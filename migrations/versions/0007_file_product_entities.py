"""Provenance: every live file product (no table) gets its own entity, as registrations now make.

Until now a file product's entity was its main file's (``pzvo:file/<sha256>``), which two
products with the same bytes share: deleting one invalidated the other's. New registrations
generate ``pzvo:product/<name>@<version>``, derived from the file; this backfills that entity,
its generation by the registration activity and its derivation, for products registered before.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""
from alembic import op
from sqlalchemy import text
from sqlalchemy.engine import Connection

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: Product names are ``[a-z][a-z0-9_]*``, so they are their own identifier slug.
_PRODUCTS = """
    SELECT p.name, p.version, p.product_type, 'pzvo:product/' || p.name || '@' || p.version AS entity_id,
           'pzvo:file/' || f.sha256 AS file_id,
           (SELECT a.id FROM provenance.activity a
             WHERE a.name = 'register ' || p.name || ' v' || p.version AND a.status = 'completed'
             ORDER BY a.start_time DESC LIMIT 1) AS activity_id
      FROM registry.products p
      JOIN registry.product_files f ON f.product_id = p.id AND f.role = 'main'
     WHERE p.table_name IS NULL AND p.status <> 'deleted'"""


def backfill(conn: Connection) -> None:
    """Create the missing product entities and their links (idempotent)."""
    conn.execute(text(f"""
        INSERT INTO provenance.entity (id, name, type, location, comment)
        SELECT entity_id, name || ' v' || version, 'pzvo:Product', 'products/' || name || '/v' || version,
               product_type || ' ' || name || ' v' || version
          FROM ({_PRODUCTS}) AS p
        ON CONFLICT (id) DO NOTHING"""))
    conn.execute(text(f"""
        INSERT INTO provenance.wasgeneratedby (entity_id, activity_id, role)
        SELECT p.entity_id, p.activity_id, 'product' FROM ({_PRODUCTS}) AS p
         WHERE p.activity_id IS NOT NULL
        ON CONFLICT (entity_id) DO NOTHING"""))
    conn.execute(text(f"""
        INSERT INTO provenance.wasderivedfrom (generated_entity_id, used_entity_id, activity_id)
        SELECT p.entity_id, p.file_id, p.activity_id FROM ({_PRODUCTS}) AS p
         WHERE EXISTS (SELECT 1 FROM provenance.entity e WHERE e.id = p.file_id)
           AND NOT EXISTS (SELECT 1 FROM provenance.wasderivedfrom d
                            WHERE d.generated_entity_id = p.entity_id AND d.used_entity_id = p.file_id)"""))


def upgrade() -> None:
    backfill(op.get_bind())


def downgrade() -> None:
    """The entities stay: provenance records are never deleted."""
