"""TAP_SCHEMA (TAP 1.1), the pz schema, pg_sphere and the read-only query role.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""
from alembic import op

from tap_schema.loader import publish_table
from tap_schema.model import load_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

READER = "pzvo_reader"


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_sphere")
    op.execute(f"""DO $$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{READER}') THEN
            CREATE ROLE {READER} NOLOGIN;
        END IF; END $$""")
    op.execute("CREATE SCHEMA tap_schema")
    op.execute("""CREATE TABLE tap_schema.schemas (
        schema_name text PRIMARY KEY, utype text, description text, schema_index integer)""")
    op.execute("""CREATE TABLE tap_schema.tables (
        schema_name text NOT NULL REFERENCES tap_schema.schemas (schema_name),
        table_name text PRIMARY KEY, table_type text NOT NULL DEFAULT 'table'
            CHECK (table_type IN ('table', 'view', 'output')),
        utype text, description text, table_index integer)""")
    op.execute("""CREATE TABLE tap_schema.columns (
        table_name text NOT NULL REFERENCES tap_schema.tables (table_name) ON DELETE CASCADE,
        column_name text NOT NULL, utype text, ucd text, unit text, description text,
        datatype text NOT NULL, arraysize text, xtype text, size integer,
        principal integer NOT NULL DEFAULT 0, indexed integer NOT NULL DEFAULT 0,
        std integer NOT NULL DEFAULT 0, column_index integer,
        PRIMARY KEY (table_name, column_name))""")
    op.execute("""CREATE TABLE tap_schema.keys (
        key_id text PRIMARY KEY,
        from_table text NOT NULL REFERENCES tap_schema.tables (table_name) ON DELETE CASCADE,
        target_table text NOT NULL, utype text, description text)""")
    op.execute("""CREATE TABLE tap_schema.key_columns (
        key_id text NOT NULL REFERENCES tap_schema.keys (key_id) ON DELETE CASCADE,
        from_column text NOT NULL, target_column text NOT NULL)""")
    op.execute("CREATE SCHEMA IF NOT EXISTS pz")
    for schema in ("tap_schema", "pz"):
        op.execute(f"GRANT USAGE ON SCHEMA {schema} TO {READER}")
        op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {READER}")
        op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO {READER}")
    conn = op.get_bind()
    order = ["schemas", "tables", "columns", "keys", "key_columns"]
    for desc in sorted(load_tables("tap_schema"), key=lambda d: order.index(d.name)):
        publish_table(conn, desc, table_index=order.index(desc.name) + 1)


def downgrade() -> None:
    op.execute("DROP SCHEMA tap_schema CASCADE")
    op.execute("DROP SCHEMA IF EXISTS pz CASCADE")
