"""SQL of the registry's size accounting: stored bytes per owner and per table, the quota lock."""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

#: First key of the two-key advisory locks (a key space apart from the product-name locks).
QUOTA_LOCK = 7_401


def lock_owner_quota(conn: Connection, owner: str) -> None:
    """Serialize one owner's registrations until the transaction ends, so that two uploads
    cannot both fit in what is left of the quota."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:k, hashtext(:o))"), {"k": QUOTA_LOCK, "o": owner})


def stored_bytes(conn: Connection, owner: str) -> int:
    """Bytes an owner's live products take: their files plus their tables (with indexes and TOAST)."""
    return int(conn.execute(text(
        "SELECT coalesce((SELECT sum(f.size) FROM registry.product_files f "
        "  JOIN registry.products p ON p.id = f.product_id "
        "  WHERE p.owner = :o AND p.status <> 'deleted'), 0) "
        "+ coalesce((SELECT sum(pg_total_relation_size(to_regclass(p.table_name))) "
        "  FROM registry.products p WHERE p.owner = :o AND p.status <> 'deleted' "
        "  AND p.table_name IS NOT NULL), 0)"), {"o": owner}).scalar())


def relation_bytes(conn: Connection, table: str) -> int:
    """A table's size on disk as this transaction sees it: heap, indexes and TOAST."""
    return int(conn.execute(text("SELECT pg_total_relation_size(to_regclass(:t))"),
                            {"t": table}).scalar() or 0)
