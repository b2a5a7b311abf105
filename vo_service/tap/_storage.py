"""TAP_SCHEMA as the TAP layer reads it: the published-table catalogue."""
from __future__ import annotations

from vo_service.core.columns import Column
from vo_service.core.pool import Connection
from vo_service.tap.catalog import Catalog, ForeignKey, TableMeta


def load_catalog(conn: Connection) -> Catalog:
    """Read TAP_SCHEMA into a :class:`Catalog` (a handful of small queries)."""
    with conn.cursor() as cur:
        cur.execute("SELECT schema_name, description FROM tap_schema.schemas ORDER BY schema_index")
        schemas = {name: desc for name, desc in cur.fetchall()}
        cur.execute("SELECT table_name, column_name, datatype, arraysize, xtype, unit, ucd, utype, "
                    "description, principal, indexed, std, column_index FROM tap_schema.columns "
                    "ORDER BY table_name, column_index, column_name")
        columns: dict[str, list[Column]] = {}
        for (table, name, datatype, arraysize, xtype, unit, ucd, utype, desc, principal, indexed,
             std, index) in cur.fetchall():
            delimited = len(name) > 1 and name[0] == name[-1] == '"'
            columns.setdefault(table, []).append(Column(
                name=name, db_name=name[1:-1].replace('""', '"') if delimited else None,
                datatype=datatype, arraysize=arraysize, xtype=xtype, unit=unit,
                ucd=ucd, utype=utype, description=desc, principal=bool(principal),
                indexed=bool(indexed), std=bool(std), column_index=index))
        cur.execute("SELECT schema_name, table_name, table_type, description, utype, table_index "
                    "FROM tap_schema.tables ORDER BY table_index, table_name")
        tables = tuple(
            TableMeta(schema_name=schema, table_name=name, table_type=ttype, description=desc,
                      utype=utype, table_index=index, columns=tuple(columns.get(name, ())))
            for schema, name, ttype, desc, utype, index in cur.fetchall())
        cur.execute("SELECT k.key_id, k.from_table, k.target_table, k.description, "
                    "kc.from_column, kc.target_column FROM tap_schema.keys k "
                    "JOIN tap_schema.key_columns kc USING (key_id) ORDER BY k.key_id")
        keys: dict[str, ForeignKey] = {}
        for key_id, from_t, target_t, desc, from_c, target_c in cur.fetchall():
            prev = keys.get(key_id)
            pairs = (prev.columns if prev else ()) + ((from_c, target_c),)
            keys[key_id] = ForeignKey(key_id, from_t, target_t, pairs, desc)
    return Catalog(tables=tables, schemas=schemas, foreign_keys=tuple(keys.values()))
