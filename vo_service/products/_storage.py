"""The registry's SQL: every statement ProductRegistry runs against ``registry.products``,
``registry.product_files`` and ``registry.product_columns`` (and the size accounting and locks).

:class:`ProductStore` holds no state and opens no transactions: each method takes the caller's
SQLAlchemy ``Connection``, so the service decides what commits together.  Rows come back as
the domain types of ``_models`` (:class:`Product`, :class:`ProductFile`, :class:`~vo_service.core.columns.Column`).
"""
from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, RowMapping

from vo_service.core.columns import STRING_DATATYPES, Column
from vo_service.products._models import Product, ProductFile

#: First key of the two-key advisory locks (a key space apart from the product-name locks).
QUOTA_LOCK = 7_401

#: Columns of ``registry.products`` that :meth:`ProductStore.update_product` may set.
PRODUCT_FIELDS = frozenset({"display_name", "description", "release", "official", "pz_code"})
#: Columns of ``registry.product_columns`` that :meth:`ProductStore.update_column` may set.
COLUMN_FIELDS = frozenset({"description", "unit", "ucd"})

_LATEST_LIVE = ("(SELECT max(version) FROM registry.products q WHERE q.name = p.name "
                "AND q.status <> 'deleted')")


class ProductStore:
    """SQL of the product registry, one method per statement (or per short read)."""

    # -- locks and versions ------------------------------------------------------------------
    def lock_name(self, conn: Connection, name: str) -> None:
        """Serialize everything done to a product name (its versions, its folder) until the
        transaction ends.  Taking it again in the same transaction is free."""
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": name})

    def next_version(self, conn: Connection, name: str) -> int:
        """The next version number of ``name``: deleted versions keep theirs."""
        return int(conn.execute(text(
            "SELECT coalesce(max(version), 0) + 1 FROM registry.products WHERE name = :n"),
            {"n": name}).scalar_one())

    def insert_product(self, conn: Connection, *, name: str, version: int, display_name: str,
                       product_type: str, release: str | None, official: bool, status: str,
                       description: str | None, owner: str, pz_code: str | None,
                       row_count: int | None = None, table_name: str | None = None) -> int:
        """A ``registry.products`` row; returns its id."""
        return int(conn.execute(text(
            "INSERT INTO registry.products (name, version, display_name, product_type, release, "
            "official, status, description, owner, pz_code, row_count, table_name) VALUES (:name, "
            ":v, :dn, :t, :r, :o, :status, :d, :owner, :pz, :rows, :tn) RETURNING id"),
            {"name": name, "v": version, "dn": display_name, "t": product_type, "r": release,
             "o": official, "status": status, "d": description, "owner": owner, "pz": pz_code,
             "rows": row_count, "tn": table_name}).scalar_one())

    def create_version(self, conn: Connection, *, name: str, **row: Any) -> tuple[int, int]:
        """The one way a product version comes to be: lock the name, take the next version
        number, insert the row (``row``: the keywords of :meth:`insert_product` but ``version``).
        Returns ``(product_id, version)``; both stay reserved until the transaction ends."""
        self.lock_name(conn, name)
        version = self.next_version(conn, name)
        return self.insert_product(conn, name=name, version=version, **row), version

    def mark_published(self, conn: Connection, product_id: int, *, row_count: int | None,
                       table_name: str | None) -> None:
        conn.execute(text("UPDATE registry.products SET status = 'published', row_count = :rows, "
                          "table_name = :t, updated_at = now() WHERE id = :id"),
                     {"rows": row_count, "t": table_name, "id": product_id})

    def mark_deleted(self, conn: Connection, product_id: int) -> None:
        conn.execute(text("UPDATE registry.products SET status = 'deleted', updated_at = now() "
                          "WHERE id = :id"), {"id": product_id})

    def retire_table(self, conn: Connection, table_name: str) -> None:
        """Mark deleted the live product of a table about to be replaced (one live row a table)."""
        conn.execute(text("UPDATE registry.products SET status = 'deleted', updated_at = now() "
                          "WHERE table_name = :t AND status <> 'deleted'"), {"t": table_name})

    def insert_columns(self, conn: Connection, product_id: int, specs: Sequence[Any]) -> None:
        """Column metadata (``vo_service.core.columns.Column``), numbered from 1 in the given order."""
        if not specs:
            return
        conn.execute(text(
            "INSERT INTO registry.product_columns (product_id, column_index, name, original_name, "
            "datatype, arraysize, unit, ucd, description, role) VALUES (:p, :i, :n, :o, :dt, :a, :u, "
            ":ucd, :d, :r)"),
            [{"p": product_id, "i": i, "n": s.name, "o": s.original_name, "dt": s.datatype,
              "a": s.arraysize, "u": s.unit, "ucd": s.ucd, "d": s.description, "r": s.role}
             for i, s in enumerate(specs, start=1)])

    def insert_files(self, conn: Connection, product_id: int, files: Iterable[ProductFile]) -> None:
        """File rows; each ``storage_path`` is relative to the registry's storage folder."""
        rows = [{"p": product_id, "r": f.role, "n": f.file_name, "f": f.format, "s": f.size,
                 "h": f.sha256, "path": f.storage_path} for f in files]
        if not rows:
            return
        conn.execute(text(
            "INSERT INTO registry.product_files (product_id, role, file_name, format, size, sha256, "
            "storage_path) VALUES (:p, :r, :n, :f, :s, :h, :path)"), rows)

    def update_product(self, conn: Connection, product_id: int, fields: Mapping[str, Any]) -> None:
        """Set metadata columns (only those of :data:`PRODUCT_FIELDS`) and ``updated_at``."""
        _check_fields(fields, PRODUCT_FIELDS)
        if not fields:
            return
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        conn.execute(text(f"UPDATE registry.products SET {sets}, updated_at = now() WHERE id = :id"),
                     {**fields, "id": product_id})

    def update_column(self, conn: Connection, product_id: int, column: str,
                      fields: Mapping[str, Any]) -> None:
        """Set a column's description, unit or UCD (:data:`COLUMN_FIELDS`)."""
        _check_fields(fields, COLUMN_FIELDS)
        if not fields:
            return
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        conn.execute(text(f"UPDATE registry.product_columns SET {sets} WHERE product_id = :id "
                          "AND name = :n"), {**fields, "id": product_id, "n": column})

    # -- reads --------------------------------------------------------------------------------
    def latest_live(self, conn: Connection, name: str) -> tuple[str, bool] | None:
        """``(owner, official)`` of the newest live version of ``name``, if there is one."""
        row = conn.execute(text(
            "SELECT owner, official FROM registry.products WHERE name = :n AND status <> 'deleted' "
            "ORDER BY version DESC LIMIT 1"), {"n": name}).first()
        return (row.owner, bool(row.official)) if row is not None else None

    def get(self, conn: Connection, name: str, version: int | None = None, *,
            include_deleted: bool = False) -> Product | None:
        """A version (the newest when ``version`` is None) with its files and columns."""
        row = conn.execute(text(
            f"SELECT p.*, {_LATEST_LIVE} AS latest_version FROM registry.products p "
            "WHERE p.name = :n AND (CAST(:v AS integer) IS NULL OR p.version = :v) "
            "AND (:all OR p.status <> 'deleted') ORDER BY p.version DESC LIMIT 1"),
            {"n": name, "v": version, "all": include_deleted}).mappings().first()
        if row is None:
            return None
        return _product(row, self.files(conn, row["id"]), self.columns(conn, row["id"]))

    def get_by_id(self, conn: Connection, product_id: int) -> Product | None:
        """A version by id with its columns (not its files), as this transaction sees it."""
        row = conn.execute(text("SELECT *, NULL AS latest_version FROM registry.products WHERE id = :id"),
                           {"id": product_id}).mappings().first()
        return _product(row, (), self.columns(conn, product_id)) if row is not None else None

    def files(self, conn: Connection, product_id: int) -> tuple[ProductFile, ...]:
        return tuple(ProductFile(r.role, r.file_name, r.format, r.size, r.sha256, r.storage_path)
                     for r in conn.execute(text(
                         "SELECT * FROM registry.product_files WHERE product_id = :id ORDER BY id"),
                         {"id": product_id}))

    def columns(self, conn: Connection, product_id: int) -> tuple[Column, ...]:
        return tuple(Column(name=r.name, original_name=r.original_name, datatype=r.datatype,
                            arraysize="*" if r.datatype in STRING_DATATYPES else None, unit=r.unit,
                            ucd=r.ucd, description=r.description, role=r.role)
                     for r in conn.execute(text(
                         "SELECT * FROM registry.product_columns WHERE product_id = :id "
                         "ORDER BY column_index"), {"id": product_id}))

    def list(self, conn: Connection, *, product_type: str | None = None, release: str | None = None,
             official: bool | None = None, owner: str | None = None, search: str | None = None,
             all_versions: bool = False, page: int = 1,
             page_size: int = 25) -> tuple[list[Product], int]:
        """Live products matching every given filter, newest first (without files or columns),
        and how many match."""
        where = ["p.status <> 'deleted'"]
        params: dict[str, object] = {"limit": page_size, "offset": (page - 1) * page_size}
        for column, value in (("product_type", product_type), ("release", release),
                              ("official", official), ("owner", owner)):
            if value is not None:
                where.append(f"p.{column} = :{column}")
                params[column] = value
        if search:
            where.append("(p.name ILIKE :q OR p.display_name ILIKE :q OR p.description ILIKE :q)")
            params["q"] = f"%{search}%"
        if not all_versions:
            where.append(f"p.version = {_LATEST_LIVE}")
        clause = " AND ".join(where)
        total = conn.execute(text(f"SELECT count(*) FROM registry.products p WHERE {clause}"),
                             params).scalar_one()
        rows = conn.execute(text(
            f"SELECT p.*, NULL AS latest_version FROM registry.products p WHERE {clause} "
            "ORDER BY p.updated_at DESC, p.id DESC LIMIT :limit OFFSET :offset"), params).mappings().all()
        return [_product(r) for r in rows], int(total)

    def find_by_table(self, conn: Connection, table_name: str) -> tuple[str, int] | None:
        """``(name, version)`` of the live product whose table this is."""
        row = conn.execute(text("SELECT name, version FROM registry.products WHERE table_name = :t "
                                "AND status <> 'deleted'"), {"t": table_name}).first()
        return (row[0], int(row[1])) if row is not None else None

    def versions(self, conn: Connection, name: str) -> builtins.list[int]:
        """The live versions of a product, newest first."""
        return [r[0] for r in conn.execute(text(
            "SELECT version FROM registry.products WHERE name = :n AND status <> 'deleted' "
            "ORDER BY version DESC"), {"n": name})]

    # -- product tables -----------------------------------------------------------------------
    def values_outside(self, conn: Connection, table: str, column: str, low: float,
                       high: float) -> tuple[int, Any, Any]:
        """How many values of ``column`` lie outside [low, high], and their min and max.
        ``table`` is a qualified, quoted-as-needed name; ``column`` a planned column name."""
        row = conn.execute(text(f'SELECT count(*), min("{column}"), max("{column}") FROM {table} '
                                f'WHERE NOT "{column}" BETWEEN {float(low)!r} AND {float(high)!r}')).one()
        return int(row[0]), row[1], row[2]

    def drop_table(self, conn: Connection, qualified_name: str) -> None:
        schema, table = qualified_name.split(".", 1)
        conn.execute(text(f'DROP TABLE IF EXISTS "{schema}"."{table}"'))

    def entity_exists(self, conn: Connection, entity_id: str) -> bool:
        """Whether provenance knows the entity (a product registered before provenance did not)."""
        return conn.execute(text("SELECT 1 FROM provenance.entity WHERE id = :id"),
                            {"id": entity_id}).first() is not None

    # -- size accounting ----------------------------------------------------------------------
    def lock_owner_quota(self, conn: Connection, owner: str) -> None:
        """Serialize one owner's registrations until the transaction ends, so that two uploads
        cannot both fit in what is left of the quota."""
        conn.execute(text("SELECT pg_advisory_xact_lock(:k, hashtext(:o))"), {"k": QUOTA_LOCK, "o": owner})

    def stored_bytes(self, conn: Connection, owner: str) -> int:
        """Bytes an owner's live products take: their files plus their tables (with indexes and TOAST)."""
        return int(conn.execute(text(
            "SELECT coalesce((SELECT sum(f.size) FROM registry.product_files f "
            "  JOIN registry.products p ON p.id = f.product_id "
            "  WHERE p.owner = :o AND p.status <> 'deleted'), 0) "
            "+ coalesce((SELECT sum(pg_total_relation_size(to_regclass(p.table_name))) "
            "  FROM registry.products p WHERE p.owner = :o AND p.status <> 'deleted' "
            "  AND p.table_name IS NOT NULL), 0)"), {"o": owner}).scalar_one())

    def relation_bytes(self, conn: Connection, table: str) -> int:
        """A table's size on disk as this transaction sees it: heap, indexes and TOAST."""
        return int(conn.execute(text("SELECT pg_total_relation_size(to_regclass(:t))"),
                                {"t": table}).scalar() or 0)


def _check_fields(fields: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"not an editable column: {', '.join(sorted(unknown))}")


def _product(row: RowMapping, files: Iterable[ProductFile] = (),
             columns: Iterable[Column] = ()) -> Product:
    return Product(id=row["id"], name=row["name"], version=row["version"],
                   display_name=row["display_name"], product_type=row["product_type"],
                   release=row["release"], official=row["official"], status=row["status"],
                   description=row["description"], owner=row["owner"], pz_code=row["pz_code"],
                   row_count=row["row_count"], table_name=row["table_name"],
                   created_at=row["created_at"], updated_at=row["updated_at"],
                   files=tuple(files), columns=tuple(columns), latest_version=row["latest_version"])
