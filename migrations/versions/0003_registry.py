"""Users and tokens (auth), and the product registry.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""
from alembic import op

from tap_schema.loader import publish_table, unpublish_table
from tap_schema.model import load_table

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PRODUCT_TYPES = ("speczcat", "trainingset", "validationset", "trainingresults",
                 "validationresults", "pztable", "objectcatalog", "other")
READER = "pzvo_reader"
PUBLISHED = ("products", "product_files", "product_columns")
STATUSES = ("registering", "published", "processing", "failed", "deleted")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def upgrade() -> None:
    op.execute("CREATE SCHEMA registry")
    op.execute("""CREATE TABLE registry.users (
        name text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.@-]{1,64}$'),
        is_admin boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now())""")
    op.execute("""CREATE TABLE registry.tokens (
        token_hash text PRIMARY KEY,
        user_name text NOT NULL REFERENCES registry.users (name) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz)""")
    op.execute(f"""CREATE TABLE registry.products (
        id bigserial PRIMARY KEY,
        name text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{{0,47}}$'),
        version integer NOT NULL DEFAULT 1 CHECK (version >= 1),
        display_name text NOT NULL,
        product_type text NOT NULL CHECK (product_type IN ({_in(PRODUCT_TYPES)})),
        release text,
        official boolean NOT NULL DEFAULT false,
        status text NOT NULL DEFAULT 'registering' CHECK (status IN ({_in(STATUSES)})),
        description text,
        owner text NOT NULL REFERENCES registry.users (name),
        pz_code text,
        row_count bigint,
        table_name text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (name, version))""")
    op.execute("""CREATE TABLE registry.product_files (
        id bigserial PRIMARY KEY,
        product_id bigint NOT NULL REFERENCES registry.products (id),
        role text NOT NULL CHECK (role IN ('main', 'description', 'auxiliary')),
        file_name text NOT NULL,
        format text NOT NULL,
        size bigint NOT NULL,
        sha256 text NOT NULL,
        storage_path text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())""")
    op.execute("""CREATE TABLE registry.product_columns (
        product_id bigint NOT NULL REFERENCES registry.products (id),
        column_index integer NOT NULL,
        name text NOT NULL,
        original_name text,
        datatype text NOT NULL,
        arraysize text,
        unit text,
        ucd text,
        description text,
        role text,
        PRIMARY KEY (product_id, column_index),
        UNIQUE (product_id, name))""")
    op.execute("CREATE INDEX products_type_idx ON registry.products (product_type, release)")
    op.execute("CREATE UNIQUE INDEX products_live_table_idx ON registry.products (table_name) "
               "WHERE status <> 'deleted'")
    # Published read-only through TAP: products, files and columns; never users or tokens.
    op.execute(f"GRANT USAGE ON SCHEMA registry TO {READER}")
    conn = op.get_bind()
    for name in PUBLISHED:
        op.execute(f"GRANT SELECT ON registry.{name} TO {READER}")
        publish_table(conn, load_table(f"registry.{name}"))


def downgrade() -> None:
    for name in PUBLISHED:
        unpublish_table(op.get_bind(), f"registry.{name}")
    op.execute("DELETE FROM tap_schema.schemas WHERE schema_name = 'registry'")
    op.execute("DROP SCHEMA registry CASCADE")
