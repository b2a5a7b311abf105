"""Alembic environment and revisions for every schema pzvo owns (run with ``pzvo db migrate``)."""
