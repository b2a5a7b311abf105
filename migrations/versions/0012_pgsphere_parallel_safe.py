"""pg_sphere's functions declared PARALLEL SAFE, as pg_sphere itself declares them from 1.2.2 on.

Debian 12 ships pg_sphere 1.1.1+2021-11-10 (extension version 1.2.0), whose functions carry
PostgreSQL's default PARALLEL UNSAFE, so any query with a position in it ran in one process: a
100,000-row upload crossmatched with a 1,000,000-row table took 1.98 s serially and 1.18 s as a
parallel nested loop (docs/adql.md, "Crossmatch joins").  They compute on their arguments only
and touch no database state, which is what PARALLEL SAFE means; upstream marked every one of
them so (postgrespro/pgsphere pull request 25, "Added PARALLEL SAFE mark to pgSphere
functions", released in 1.2.2).  Aggregates are left as they are.  A deployment whose migration
role does not own the extension keeps them unsafe (a notice, not a failure).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_FUNCTIONS = """
    SELECT p.oid::regprocedure AS f FROM pg_proc AS p
    JOIN pg_depend AS d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
    JOIN pg_extension AS e ON e.oid = d.refobjid
    WHERE e.extname = 'pg_sphere' AND p.prokind = 'f' AND p.proparallel <> '{to}'"""


def _mark(to: str, word: str) -> None:
    op.execute(f"""DO $$ DECLARE item record; BEGIN
        FOR item IN {_FUNCTIONS.format(to='s' if to == 's' else 'u')} LOOP
            EXECUTE format('ALTER FUNCTION %s PARALLEL {word}', item.f);
        END LOOP;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'pg_sphere functions left as they are: the migration role does not own them';
    END $$""")


def upgrade() -> None:
    _mark("s", "SAFE")


def downgrade() -> None:
    _mark("u", "UNSAFE")
