"""The ``provenance`` schema: IVOA ProvenanceDM 1.0 core classes and relations, published (ProvTAP).

Every table is append-only: a trigger rejects UPDATE, DELETE and TRUNCATE, so no code path can
rewrite history (removing a product adds a ``wasinvalidatedby`` record instead).  The tables'
TAP_SCHEMA rows come from ``tap_schema/tables/provenance.*.yaml``; the DDL is written out here so
that this revision keeps creating the same tables whatever later edits the YAML receives.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""
from alembic import op

from tap_schema.loader import publish_table
from tap_schema.model import load_tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

READER = "pzvo_reader"
S = "provenance"

#: (table, DDL body) in dependency order; relation tables carry a surrogate ``id`` key.
TABLES: list[tuple[str, str]] = [
    ("entitydescription", """
        id text PRIMARY KEY, name text NOT NULL, description text, doculink text, category text"""),
    ("activitydescription", """
        id text PRIMARY KEY, name text NOT NULL, version text, description text, type text,
        subtype text, doculink text"""),
    ("usagedescription", f"""
        id text PRIMARY KEY,
        activitydescription_id text NOT NULL REFERENCES {S}.activitydescription (id),
        role text NOT NULL, description text, type text, multiplicity text,
        entitydescription_id text REFERENCES {S}.entitydescription (id)"""),
    ("generationdescription", f"""
        id text PRIMARY KEY,
        activitydescription_id text NOT NULL REFERENCES {S}.activitydescription (id),
        role text NOT NULL, description text, type text, multiplicity text,
        entitydescription_id text REFERENCES {S}.entitydescription (id)"""),
    ("parameterdescription", f"""
        id text PRIMARY KEY,
        activitydescription_id text NOT NULL REFERENCES {S}.activitydescription (id),
        name text NOT NULL, value_type text, description text, unit text, ucd text, utype text,
        min_value text, max_value text, default_value text, options text"""),
    ("agent", """
        id text PRIMARY KEY, name text NOT NULL,
        type text NOT NULL CHECK (type IN ('Individual', 'Organization', 'Software')),
        email text, affiliation text, url text, comment text"""),
    ("entity", f"""
        id text PRIMARY KEY, name text NOT NULL, type text, location text, checksum text,
        content_type text, generated_at_time timestamptz, comment text,
        entitydescription_id text REFERENCES {S}.entitydescription (id),
        recorded_at timestamptz NOT NULL DEFAULT now()"""),
    ("activity", f"""
        id text PRIMARY KEY, name text NOT NULL, start_time timestamptz NOT NULL,
        end_time timestamptz NOT NULL,
        status text NOT NULL CHECK (status IN ('completed', 'failed')), comment text,
        activitydescription_id text REFERENCES {S}.activitydescription (id),
        software_name text, software_version text, host text"""),
    ("used", f"""
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        activity_id text NOT NULL REFERENCES {S}.activity (id),
        entity_id text NOT NULL REFERENCES {S}.entity (id),
        usage_time timestamptz, role text,
        usagedescription_id text REFERENCES {S}.usagedescription (id)"""),
    ("wasgeneratedby", f"""
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        entity_id text NOT NULL UNIQUE REFERENCES {S}.entity (id),
        activity_id text NOT NULL REFERENCES {S}.activity (id),
        generation_time timestamptz, role text,
        generationdescription_id text REFERENCES {S}.generationdescription (id)"""),
    ("wasderivedfrom", f"""
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        generated_entity_id text NOT NULL REFERENCES {S}.entity (id),
        used_entity_id text NOT NULL REFERENCES {S}.entity (id),
        activity_id text REFERENCES {S}.activity (id)"""),
    ("wasinformedby", f"""
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        informed_activity_id text NOT NULL REFERENCES {S}.activity (id),
        informant_activity_id text NOT NULL REFERENCES {S}.activity (id)"""),
    ("wasassociatedwith", f"""
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        activity_id text NOT NULL REFERENCES {S}.activity (id),
        agent_id text NOT NULL REFERENCES {S}.agent (id), role text"""),
    ("wasattributedto", f"""
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        entity_id text NOT NULL REFERENCES {S}.entity (id),
        agent_id text NOT NULL REFERENCES {S}.agent (id), role text"""),
    ("hadmember", f"""
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        collection_id text NOT NULL REFERENCES {S}.entity (id),
        entity_id text NOT NULL REFERENCES {S}.entity (id),
        UNIQUE (collection_id, entity_id)"""),
    ("wasinvalidatedby", f"""
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        entity_id text NOT NULL UNIQUE REFERENCES {S}.entity (id),
        activity_id text NOT NULL REFERENCES {S}.activity (id),
        invalidation_time timestamptz, role text"""),
    ("parameter", f"""
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        activity_id text NOT NULL REFERENCES {S}.activity (id),
        name text NOT NULL, param_value text,
        parameterdescription_id text REFERENCES {S}.parameterdescription (id)"""),
]

#: Secondary indexes: every column a traversal or a ProvTAP join follows.
INDEXES: list[tuple[str, str]] = [
    ("used", "activity_id"), ("used", "entity_id"),
    ("wasgeneratedby", "activity_id"),
    ("wasderivedfrom", "generated_entity_id"), ("wasderivedfrom", "used_entity_id"),
    ("wasinformedby", "informed_activity_id"), ("wasinformedby", "informant_activity_id"),
    ("wasassociatedwith", "activity_id"), ("wasassociatedwith", "agent_id"),
    ("wasattributedto", "entity_id"), ("wasattributedto", "agent_id"),
    ("hadmember", "entity_id"),
    ("wasinvalidatedby", "activity_id"),
    ("parameter", "activity_id"),
    ("entity", "location"),
    ("usagedescription", "activitydescription_id"),
    ("generationdescription", "activitydescription_id"),
    ("parameterdescription", "activitydescription_id"),
]


def upgrade() -> None:
    op.execute(f"CREATE SCHEMA {S}")
    op.execute(f"""CREATE FUNCTION {S}.reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'provenance records are append-only: % on %.% is not allowed',
                TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'record an invalidation (wasinvalidatedby) instead';
        END $$""")
    for table, body in TABLES:
        op.execute(f"CREATE TABLE {S}.{table} ({body})")
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {S}.{table} "
                   f"FOR EACH ROW EXECUTE FUNCTION {S}.reject_change()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {S}.{table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION {S}.reject_change()")
    for table, column in INDEXES:
        op.execute(f"CREATE INDEX {table}_{column}_idx ON {S}.{table} ({column})")
    op.execute(f"GRANT USAGE ON SCHEMA {S} TO {READER}")
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {S} TO {READER}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {S} GRANT SELECT ON TABLES TO {READER}")
    conn = op.get_bind()
    order = [name for name, _ in TABLES]
    for desc in sorted(load_tables(S), key=lambda d: order.index(d.name)):
        publish_table(conn, desc)


def downgrade() -> None:
    op.execute("DELETE FROM tap_schema.key_columns WHERE key_id IN (SELECT key_id FROM "
               f"tap_schema.keys WHERE from_table LIKE '{S}.%')")
    op.execute(f"DELETE FROM tap_schema.keys WHERE from_table LIKE '{S}.%'")
    op.execute(f"DELETE FROM tap_schema.columns WHERE table_name LIKE '{S}.%'")
    op.execute(f"DELETE FROM tap_schema.tables WHERE schema_name = '{S}'")
    op.execute(f"DELETE FROM tap_schema.schemas WHERE schema_name = '{S}'")
    op.execute(f"DROP SCHEMA {S} CASCADE")
