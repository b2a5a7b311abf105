"""Walk an ADQL tree, check it against the catalogue and build the PostgreSQL tree.

The walk is an allow-list: every node type has a rule here or the query is refused, so
whatever sqlglot's generic parser lets through (PostgreSQL operators, window functions,
``SELECT ... INTO``, ``FOR UPDATE``) stops at this layer.  Each rule returns the PostgreSQL
expression and a small static type (numeric, string, geometry kind, condition), which is what
lets the translator refuse ``POINT(...) = mag`` or ``WHERE mag`` and give result columns their
VOTable types.

The walk must not reach Python's recursion limit whatever the query: sqlglot parses a chain of
binary operators (``a OR b OR c ...``) as a tree as deep as the chain is long, so such chains are
walked in a loop (:meth:`_Translator.chain`), and :func:`_check_depth` refuses trees deeper than
:data:`MAX_TREE_DEPTH` before the walk (chains that alternate operators, long UNION chains).
"""
from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from astropy import units
from sqlglot import exp

from vo_service.core.columns import Column
from vo_service.core.identifiers import (
    RESERVED_WORDS,
    needs_quotes_in_pg,
    unquote_delimited,
)
from vo_service.tap.adql import _geometry as geo
from vo_service.tap.adql._dialect import (
    MAX_INTEGER,
    MAX_NESTING,
    SphereContainedBy,
    SphereDistance,
    SphereOverlaps,
    generate_sql,
    parse_adql,
    position,
    too_large,
)
from vo_service.tap.adql._errors import AdqlError, AdqlSemanticError, AdqlSyntaxError
from vo_service.tap.adql._features import (
    FEATURE_BITWISE,
    FEATURE_CONDITIONAL,
    FEATURE_CTE,
    FEATURE_OFFSET,
    FEATURE_SETS,
    FEATURE_STRING,
    FEATURE_TYPE,
    FEATURE_UNIT,
    FUNCTIONS,
    FunctionSpec,
)
from vo_service.tap.catalog import Catalog, TableMeta
from vo_service.tap.results import SelectItem

#: Levels of the parse tree the translator and sqlglot's SQL generator walk recursively (a few
#: frames each).  The left operand of the same operator adds no level: long one-operator chains
#: are walked in loops, here and in sqlglot's generator.
MAX_TREE_DEPTH = 200


@dataclass(frozen=True)
class TranslatedQuery:
    """PostgreSQL for one ADQL query.

    ``limit`` is the LIMIT the SQL ends with (the smaller of TOP and ``row_limit``), or None
    when the query has neither.
    """

    sql: str
    columns: tuple[SelectItem, ...]
    limit: int | None
    hints: tuple[str, ...] = ()
    """What would make a slow query use an index (added to a time-limit error)."""
    upload_indexes: tuple[tuple[str, str, str], ...] = ()
    """(ADQL table name, ra column, dec column) of uploaded tables to index before running."""


# --------------------------------------------------------------------------------------------
# Static types


@dataclass(frozen=True, slots=True)
class _T:
    """What the translator knows about a value: its kind and, for results, its VOTable type."""

    kind: str  # int float str ts null bool point circle polygon box any
    datatype: str | None = None
    arraysize: str | None = None
    xtype: str | None = None
    unit: str | None = None
    frame: str | None = None
    derived_unit: tuple | None = None  # unit of an arithmetic result, resolved only by IN_UNIT


_NUMERIC = frozenset({"int", "float"})
_GEOMETRY = frozenset({"point", "circle", "polygon", "box"})
_LOOSE = frozenset({"null", "any"})

INT = _T("int", "int")
LONG = _T("int", "long")
DOUBLE = _T("float", "double")
STRING = _T("str", "char", "*")
NULL = _T("null")
BOOL = _T("bool")
ANY = _T("any")
_GEOMETRY_TYPES = {
    "point": _T("point", "double", "2", "point", "deg"),
    "circle": _T("circle", "double", "3", "circle", "deg"),
    "polygon": _T("polygon", "double", "*", "polygon", "deg"),
    "box": _T("box", "double", "*", "polygon", "deg"),
}

_INT_DATATYPES = {"short", "int", "long", "unsignedByte", "smallint", "integer", "bigint"}
_FLOAT_DATATYPES = {"float", "double", "real"}
_CHAR_DATATYPES = {"char", "unicodeChar", "varchar", "string"}


def _geometry_type(kind: str, frame: str | None = None) -> _T:
    return replace(_GEOMETRY_TYPES[kind], frame=frame)


def _column_type(col: Column) -> _T:
    xtype = (col.xtype or "").lower()
    if xtype in ("point", "circle", "polygon"):
        kind = xtype
    elif xtype == "timestamp":
        kind = "ts"
    elif col.datatype in _INT_DATATYPES:
        kind = "int"
    elif col.datatype in _FLOAT_DATATYPES:
        kind = "float"
    elif col.datatype in _CHAR_DATATYPES:
        kind = "str"
    else:
        kind = "any"
    return _T(kind, col.datatype, col.arraysize, col.xtype, col.unit)


# --------------------------------------------------------------------------------------------
# Names

_REGULAR = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def _ident(name: str) -> exp.Identifier:
    """A PostgreSQL identifier for an exact name, quoted only when PostgreSQL needs it."""
    return exp.Identifier(this=name, quoted=needs_quotes_in_pg(name))


def _catalog_name(name: str) -> tuple[str, bool]:
    """(name, delimited) of a catalogue name, which TAP_SCHEMA may list as ``"plAin"``."""
    bare, delimited = unquote_delimited(name)
    return bare, delimited or not _REGULAR.match(name)


def _pg_name(name: str) -> str:
    """The PostgreSQL name of a catalogue identifier: regular ones fold to lower case."""
    bare, delimited = _catalog_name(name)
    return bare if delimited else bare.lower()


def _same(user: str, user_delimited: bool, other: str, other_delimited: bool) -> bool:
    """ADQL identifier equality: regular names compare case-insensitively, delimited exactly."""
    if user_delimited and other_delimited:
        return user == other
    if user_delimited:
        return user == other or user == other.lower()
    if other_delimited:
        return other == user.lower()
    return user.lower() == other.lower()


@dataclass
class _Col:
    name: str
    delimited: bool
    sql: str
    typ: _T
    source: Column | None = None


@dataclass
class _Rel:
    """A FROM item: a catalogue table, a CTE or a derived table, with its visible columns."""

    label: str
    label_delimited: bool
    qualifier: str
    columns: list[_Col]
    table: TableMeta | None = None
    aliased: bool = False

    def answers_to(self, parts: list[exp.Identifier]) -> bool:
        if not parts or len(parts) > 2:
            return False
        name = parts[-1]
        if not _same(name.this, name.quoted, self.label, self.label_delimited):
            return False
        if len(parts) == 2:
            if self.aliased or self.table is None:
                return False
            schema, schema_delimited = _catalog_name(self.table.schema_name)
            return _same(parts[0].this, parts[0].quoted, schema, schema_delimited)
        return True

    def find(self, name: str, delimited: bool) -> _Col | None:
        hits = [c for c in self.columns if _same(name, delimited, c.name, c.delimited)]
        if len(hits) > 1:
            exact = [c for c in hits if c.name == name]
            hits = exact or hits
        return hits[0] if hits else None


@dataclass
class _Out:
    """One item of a translated select list."""

    name: str
    delimited: bool
    typ: _T
    expr: exp.Expr
    source: Column | None = None
    sql_alias: str = ""


@dataclass
class _Scope:
    parent: _Scope | None
    ctes: dict[str, tuple[str, list[_Col]]]
    rels: list[_Rel] = field(default_factory=list)
    merged: dict[str, _Col] = field(default_factory=dict)
    star: list[tuple[_Rel | None, _Col]] = field(default_factory=list)


_MATH_DOUBLE = {
    "DEGREES": "degrees", "RADIANS": "radians", "EXP": "exp", "SQRT": "sqrt", "LOG": "ln",
    "LOG10": "log10", "ACOS": "acos", "ASIN": "asin", "ATAN": "atan", "ATAN2": "atan2",
    "COS": "cos", "COT": "cot", "SIN": "sin", "TAN": "tan", "POWER": "power",
}
_UNIT_KEEPING_AGGREGATES = (exp.Min, exp.Max, exp.Avg, exp.Sum)
_CAST_TYPES = {
    exp.DType.SMALLINT: _T("int", "short"),
    exp.DType.INT: INT,
    exp.DType.BIGINT: LONG,
    exp.DType.FLOAT: _T("float", "float"),
    exp.DType.DOUBLE: DOUBLE,
    exp.DType.CHAR: STRING,
    exp.DType.VARCHAR: STRING,
    exp.DType.TIMESTAMP: _T("ts", "char", "*", "timestamp"),
}
_ADQL21_ONLY = frozenset({FEATURE_STRING, FEATURE_CONDITIONAL, FEATURE_UNIT, FEATURE_TYPE})
_COMPARISONS = (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE)
_SET_OPERATIONS: dict[type, str] = {exp.Union: "UNION", exp.Except: "EXCEPT",
                                     exp.Intersect: "INTERSECT"}
_SELECT_ARGS = {"expressions", "distinct", "limit", "offset", "from_", "joins", "where", "group",
                "having", "order", "with_"}
_CLAUSE_NAMES = {"locks": "FOR UPDATE/SHARE", "into": "SELECT ... INTO", "windows": "WINDOW",
                 "qualify": "QUALIFY", "sample": "TABLESAMPLE", "laterals": "LATERAL"}
_SET_ARGS = {"this", "expression", "distinct", "order", "limit", "offset", "with_"}


@functools.lru_cache(maxsize=256)
def _unit_factor(source: str | tuple, target: str) -> float:
    """Multiplier from one VOUnit to another (for IN_UNIT).

    ``source`` is a unit string or, for arithmetic results, a tree ``(op, left, right)`` with
    op ``*``, ``/`` or ``**``, so that ``IN_UNIT(SQRT(POWER(pm_ra, 2) + ...), ...)`` works.
    """

    def parse(text: str) -> units.UnitBase:
        if not text:
            return units.dimensionless_unscaled
        try:
            return units.Unit(text, format="vounit")
        except ValueError:
            return units.Unit(text)

    def build(unit: str | tuple) -> units.UnitBase:
        if isinstance(unit, str):
            return parse(unit)
        op, left, right = unit
        if op == "**":
            return build(left) ** right
        return build(left) * build(right) if op == "*" else build(left) / build(right)

    shown = source if isinstance(source, str) else "the unit of that expression"
    try:
        return float(build(source).to(parse(target)))
    except (ValueError, units.UnitsError) as error:
        raise AdqlSemanticError(f"IN_UNIT cannot convert {shown!r} to {target!r}: {error}") from None


class _Translator:
    def __init__(self, text: str, catalog: Catalog, version: str) -> None:
        if version not in ("2.0", "2.1"):
            raise AdqlSyntaxError(f"Unsupported ADQL version {version!r}; use 2.0 or 2.1")
        self.text = text
        self.catalog = catalog
        self.version = version
        self.aggregates_allowed = False
        self.hints: list[str] = []
        self.upload_indexes: list[tuple[str, str, str]] = []

    # ---- errors -------------------------------------------------------------------------

    def _where(self, node: exp.Expr | None) -> tuple[int | None, int | None]:
        best: int | None = None
        if node is not None:
            for sub in node.walk():
                meta = sub._meta
                if meta and "start" in meta and (best is None or meta["start"] < best):
                    best = meta["start"]
        if best is None:
            return None, None
        return position(self.text, best)

    def fail(self, message: str, node: exp.Expr | None = None, *, syntax: bool = False) -> AdqlError:
        cls = AdqlSyntaxError if syntax else AdqlSemanticError
        return cls(message, *self._where(node))

    def need(self, feature: str, node: exp.Expr, what: str) -> None:
        if self.version == "2.0":
            raise self.fail(f"{what} is an ADQL 2.1 feature ({feature.rsplit('#', 1)[-1]}); "
                            f"it is not available in ADQL 2.0", node, syntax=True)

    def check_identifier(self, ident: exp.Identifier) -> None:
        if not ident.quoted and ident.this.upper() in RESERVED_WORDS:
            raise self.fail(f"{ident.this!r} is a reserved word in ADQL; write it as "
                            f'"{ident.this}" if it is a name', ident, syntax=True)

    # ---- queries ------------------------------------------------------------------------

    def translate(self, tree: exp.Expr, row_limit: int | None) -> TranslatedQuery:
        deepest = _check_depth(tree)
        if deepest is not None:
            raise self.fail(
                f"The query is too deeply nested: its expression tree has more than "
                f"{MAX_TREE_DEPTH} levels. A chain of one operator (a OR b OR c ..., a + b + c ...) "
                f"counts as one level, but a chain that changes operator (a + b - c + ...) and "
                f"each UNION, EXCEPT or INTERSECT count one level per operator; group such terms "
                f"in parentheses or split the query", deepest, syntax=True)
        sql_tree, outs = self.query(tree, None, {}, top=True)
        limit = None
        node = sql_tree.this if isinstance(sql_tree, exp.Subquery) else sql_tree
        if isinstance(node, exp.Select):
            top = node.args.get("limit")
            limit = _integer(top.expression.this) if top is not None else None
        if row_limit is not None:
            limit = row_limit if limit is None else min(limit, row_limit)
        if limit is not None:
            if isinstance(sql_tree, exp.Subquery):
                sql_tree = sql_tree.this
            sql_tree.set("limit", exp.Limit(expression=exp.Literal.number(limit)))
        columns = tuple(
            SelectItem(name=o.name, sql_alias=o.sql_alias, source=o.source,
                         datatype=o.typ.datatype, arraysize=o.typ.arraysize,
                         xtype=o.typ.xtype, unit=o.typ.unit)
            for o in outs)
        return TranslatedQuery(sql=generate_sql(sql_tree), columns=columns, limit=limit,
                               hints=tuple(dict.fromkeys(self.hints)),
                               upload_indexes=tuple(dict.fromkeys(self.upload_indexes)))

    def query(self, node: exp.Expr, parent: _Scope | None, ctes: dict, *, top: bool,
              operand: bool = False) -> tuple[exp.Expr, list[_Out]]:
        with_ = node.args.get("with_")
        if with_ is not None:
            if not top or parent is not None or operand:
                raise self.fail("WITH is only allowed at the start of the whole query", node,
                                syntax=True)
            self.need(FEATURE_CTE, node, "WITH")
            ctes, with_sql = self.with_clause(with_, ctes)
        else:
            with_sql = None
        if isinstance(node, exp.Select):
            sql, outs = self.select(node, parent, ctes, top=top)
        elif type(node) in _SET_OPERATIONS:
            sql, outs = self.set_operation(node, parent, ctes, top=top)
        elif isinstance(node, exp.Subquery) and not node.args.get("alias"):
            inner, outs = self.query(node.this, parent, ctes, top=top, operand=True)
            sql = exp.Subquery(this=inner)
            for key in ("order", "limit", "offset"):
                if node.args.get(key):
                    raise self.fail("ORDER BY/TOP/OFFSET after a parenthesised query is not ADQL",
                                    node, syntax=True)
        else:
            raise self.fail("Only SELECT queries are allowed", node, syntax=True)
        if with_sql is not None:
            sql.set("with_", with_sql)
        return sql, outs

    def with_clause(self, with_: exp.With, ctes: dict) -> tuple[dict, exp.With]:
        if with_.args.get("recursive"):
            raise self.fail("WITH RECURSIVE is not ADQL", with_, syntax=True)
        ctes = dict(ctes)
        items = []
        for cte in with_.expressions:
            alias = cte.args.get("alias")
            ident = alias.this if alias else None
            if ident is None or alias.args.get("columns"):
                raise self.fail("A common table expression needs a plain name", cte, syntax=True)
            self.check_identifier(ident)
            sql, outs = self.query(cte.this, None, ctes, top=False)
            cols = [_Col(o.name, o.delimited, o.sql_alias, o.typ, o.source) for o in outs]
            key = ident.this if ident.quoted else ident.this.lower()
            ctes[key] = (ident.this, ident.quoted, cols)
            items.append(exp.CTE(this=sql, alias=exp.TableAlias(this=_ident(key))))
        return ctes, exp.With(expressions=items)

    def set_operation(self, node: exp.Expr, parent: _Scope | None, ctes: dict, *,
                      top: bool) -> tuple[exp.Expr, list[_Out]]:
        self.need(FEATURE_SETS, node, _SET_OPERATIONS[type(node)])
        for key, value in node.args.items():
            if value and key not in _SET_ARGS:
                raise self.fail(f"{key.upper()} is not ADQL here", node, syntax=True)
        left, louts = self.query(node.this, parent, ctes, top=top, operand=True)
        right, routs = self.query(node.expression, parent, ctes, top=top, operand=True)
        if len(louts) != len(routs):
            raise self.fail(f"The queries combined by {_SET_OPERATIONS[type(node)]} have "
                            f"{len(louts)} and {len(routs)} columns", node)
        sql = type(node)(this=left, expression=right, distinct=node.args.get("distinct", True))
        order = node.args.get("order")
        if order is not None:
            items = []
            for ordered in order.expressions:
                target = self.output_reference(ordered.this, louts)
                if target is None:
                    raise self.fail("ORDER BY after a set operation may only name result "
                                    "columns or their positions", ordered)
                items.append(exp.Ordered(this=target, desc=ordered.args.get("desc", False),
                                         nulls_first=ordered.args.get("nulls_first")))
            sql.set("order", exp.Order(expressions=items))
        self.limit_offset(node, sql)
        return sql, louts

    def limit_offset(self, node: exp.Expr, sql: exp.Expr) -> None:
        limit = node.args.get("limit")
        if limit is not None:
            if not limit.meta.get("top"):
                raise self.fail("LIMIT is not ADQL; write SELECT TOP n", limit, syntax=True)
            sql.set("limit", exp.Limit(expression=exp.Literal.number(_integer(limit.expression.this))))
        offset = node.args.get("offset")
        if offset is not None:
            self.need(FEATURE_OFFSET, offset, "OFFSET")
            sql.set("offset", exp.Offset(expression=exp.Literal.number(_integer(offset.expression.this))))

    def output_reference(self, node: exp.Expr, outs: list[_Out]) -> exp.Expr | None:
        """A result column named or numbered in ORDER BY/GROUP BY, as its SQL alias or number."""
        if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
            if too_large(node.this) or not 1 <= _integer(node.this) <= len(outs):
                raise self.fail(f"There is no result column {_abridged(node.this)}", node)
            return exp.Literal.number(_integer(node.this))
        if isinstance(node, exp.Column) and not node.args.get("table") \
                and isinstance(node.this, exp.Identifier):
            hits = [o for o in outs if _same(node.this.this, node.this.quoted, o.name, o.delimited)]
            if len(hits) == 1:
                return exp.column(_ident(hits[0].sql_alias))
        return None

    def select(self, node: exp.Select, parent: _Scope | None, ctes: dict, *,
               top: bool) -> tuple[exp.Expr, list[_Out]]:
        for key, value in node.args.items():
            if value and key not in _SELECT_ARGS:
                what = _CLAUSE_NAMES.get(key, key.rstrip("_").upper())
                raise self.fail(f"{what} is not ADQL", node, syntax=True)
        distinct = node.args.get("distinct")
        if distinct is not None and distinct.args.get("on"):
            raise self.fail("DISTINCT ON is not ADQL", distinct, syntax=True)
        if not node.expressions:
            raise self.fail("The select list is empty", node, syntax=True)
        scope = _Scope(parent, ctes)
        from_ = node.args.get("from_")
        if from_ is None:
            raise self.fail("An ADQL query needs a FROM clause", node, syntax=True)
        saved = self.aggregates_allowed
        try:
            self.aggregates_allowed = False
            sql = exp.Select()
            sql.set("from_", exp.From(this=self.from_item(from_.this, scope)))
            joins = [self.join(j, scope) for j in node.args.get("joins") or ()]
            if joins:
                sql.set("joins", joins)
            self.aggregates_allowed = True
            outs = self.select_list(node.expressions, scope, top=top)
            sql.set("expressions", [self.aliased(o) for o in outs])
            self.aggregates_allowed = False
            where = node.args.get("where")
            if where is not None:
                sql.set("where", exp.Where(this=self.condition(where.this, scope, "WHERE")))
            group = node.args.get("group")
            if group is not None:
                extra = any(v for k, v in group.args.items() if k != "expressions")
                if not group.expressions or extra:
                    raise self.fail("GROUP BY takes a list of columns or expressions", group,
                                    syntax=True)
                sql.set("group", exp.Group(expressions=[self.group_item(g, scope, outs)
                                                        for g in group.expressions]))
            self.aggregates_allowed = True
            having = node.args.get("having")
            if having is not None:
                sql.set("having", exp.Having(this=self.condition(having.this, scope, "HAVING")))
            order = node.args.get("order")
            if order is not None:
                sql.set("order", exp.Order(expressions=[self.order_item(o, scope, outs)
                                                        for o in order.expressions]))
        finally:
            self.aggregates_allowed = saved
        if distinct is not None:
            sql.set("distinct", exp.Distinct())
        self.limit_offset(node, sql)
        return sql, outs

    # ---- FROM ---------------------------------------------------------------------------

    def from_item(self, node: exp.Expr, scope: _Scope) -> exp.Expr:
        if isinstance(node, exp.Table):
            return self.table(node, scope)
        if isinstance(node, exp.Subquery) and isinstance(node.this, exp.Table) \
                and node.this.args.get("joins") and not node.args.get("alias"):
            return self.joined_table(node.this, scope)
        if isinstance(node, exp.Subquery):
            alias = node.args.get("alias")
            if alias is None or alias.this is None:
                raise self.fail("A subquery in FROM needs a name: (SELECT ...) AS name", node,
                                syntax=True)
            if alias.args.get("columns"):
                raise self.fail("Column lists after a table alias are not ADQL", alias, syntax=True)
            self.check_identifier(alias.this)
            outer = scope.parent
            inner, outs = self.query(node.this, outer, scope.ctes, top=False, operand=True)
            if isinstance(inner, exp.Subquery):
                inner = inner.this
            ident = alias.this
            qualifier = ident.this if ident.quoted else ident.this.lower()
            cols = [_Col(o.name, o.delimited, o.sql_alias, o.typ, o.source) for o in outs]
            self.add_relation(scope, _Rel(ident.this, ident.quoted, qualifier, cols, aliased=True))
            return exp.Subquery(this=inner, alias=exp.TableAlias(this=_ident(qualifier)))
        raise self.fail("Only tables and named subqueries may appear in FROM", node, syntax=True)

    def joined_table(self, node: exp.Table, scope: _Scope) -> exp.Expr:
        """A parenthesised join in FROM, ``(a JOIN b USING (x))``; its joins see only its tables."""
        joins = node.args.get("joins") or []
        node.set("joins", None)
        outer_star = scope.star
        scope.star = []
        first = self.from_item(node, scope)
        first.set("joins", [self.join(j, scope) for j in joins])
        scope.star = outer_star + scope.star
        return exp.Subquery(this=first)

    def table(self, node: exp.Table, scope: _Scope) -> exp.Expr:
        for key, value in node.args.items():
            if value and key not in ("this", "db", "alias"):
                raise self.fail("This table reference is not ADQL", node, syntax=True)
        name = node.this
        if not isinstance(name, exp.Identifier):
            raise self.fail("This table reference is not ADQL", node, syntax=True)
        schema = node.args.get("db")
        for ident in (name, schema):
            if ident is not None:
                self.check_identifier(ident)
        alias = node.args.get("alias")
        alias_ident = None
        if alias is not None:
            if alias.args.get("columns"):
                raise self.fail("Column lists after a table alias are not ADQL", alias, syntax=True)
            alias_ident = alias.this
            self.check_identifier(alias_ident)

        cte = None if schema is not None else self.find_cte(name, scope.ctes)
        if cte is not None:
            key, (label, delimited, cols) = cte
            sql: exp.Expr = exp.Table(this=_ident(key))
            rel = _Rel(label, delimited, key, [replace(c) for c in cols])
        else:
            meta = self.catalog.find_table(
                name.this, schema.this if schema is not None else None, delimited=name.quoted,
                schema_delimited=schema is not None and schema.quoted)
            if meta is None:
                shown = f"{schema.this}.{name.this}" if schema is not None else name.this
                known = [t.table_name for t in self.catalog.tables]
                hint = difflib.get_close_matches(shown, known, n=3)
                extra = f"; did you mean {', '.join(hint)}?" if hint else ""
                raise self.fail(f"Unknown table {shown!r}{extra}", node)
            pg_table = meta.db_table or _pg_name(meta.name)
            pg_schema = meta.db_schema or _pg_name(meta.schema_name)
            sql = exp.Table(this=_ident(pg_table), db=_ident(pg_schema))
            label, delimited = _catalog_name(meta.name)
            cols = []
            ordered = sorted(meta.columns, key=lambda c: (c.column_index is None, c.column_index or 0))
            for col in ordered:
                cname, cdelim = _catalog_name(col.name)
                cols.append(_Col(cname, cdelim, col.db_name or _pg_name(col.name),
                                 _column_type(col), col))
            rel = _Rel(label, delimited, pg_table, cols, table=meta)
        if alias_ident is not None:
            rel.label, rel.label_delimited = alias_ident.this, alias_ident.quoted
            rel.qualifier = alias_ident.this if alias_ident.quoted else alias_ident.this.lower()
            rel.aliased = True
            sql.set("alias", exp.TableAlias(this=_ident(rel.qualifier)))
        self.add_relation(scope, rel)
        return sql

    @staticmethod
    def find_cte(name: exp.Identifier, ctes: dict) -> tuple[str, tuple] | None:
        for key, value in ctes.items():
            if _same(name.this, name.quoted, value[0], value[1]):
                return key, value
        return None

    def add_relation(self, scope: _Scope, rel: _Rel) -> None:
        for other in scope.rels:
            if _same(rel.label, rel.label_delimited, other.label, other.label_delimited) \
                    and rel.qualifier == other.qualifier:
                raise AdqlSemanticError(f"The name {rel.label!r} is used for two tables in FROM; "
                                        f"give one of them an alias")
        scope.rels.append(rel)
        scope.star.extend((rel, c) for c in rel.columns)

    def join(self, node: exp.Join, scope: _Scope) -> exp.Expr:
        for key, value in node.args.items():
            if value and key not in ("this", "on", "using", "side", "kind", "method"):
                raise self.fail("This kind of join is not ADQL", node, syntax=True)
        kind = (node.args.get("kind") or "").upper()
        side = (node.args.get("side") or "").upper()
        method = (node.args.get("method") or "").upper()
        if kind not in ("", "INNER", "OUTER", "CROSS") or method not in ("", "NATURAL"):
            raise self.fail(f"{kind or method} JOIN is not ADQL", node, syntax=True)
        on, using = node.args.get("on"), node.args.get("using")
        comma = bool(node.meta.get("comma"))
        if not (on or using or method or kind == "CROSS" or comma):
            raise self.fail("A JOIN needs ON or USING (or write NATURAL JOIN or CROSS JOIN)",
                            node, syntax=True)
        if (kind == "CROSS" or comma) and (on or using):
            raise self.fail("CROSS JOIN takes no ON or USING", node, syntax=True)
        left_star = list(scope.star)
        rels_before = len(scope.rels)
        right = self.from_item(node.this, scope)
        new_rels = scope.rels[rels_before:]
        right_cols = [(r, c) for r in new_rels for c in r.columns]
        sql = exp.Join(this=right)
        if side:
            sql.set("side", side)
        if kind and kind != "OUTER":
            sql.set("kind", kind)
        elif kind == "OUTER":
            sql.set("kind", "OUTER")
        if method:
            sql.set("method", "NATURAL")
            common = [name for name in self.visible_names(left_star)
                      if any(_same(name[0], name[1], c.name, c.delimited) for _, c in right_cols)]
            self.merge(scope, left_star, right_cols, common)
        elif using:
            names = []
            for ident in using:
                if not isinstance(ident, exp.Identifier):
                    ident = ident.this if isinstance(ident, exp.Column) else ident
                self.check_identifier(ident)
                names.append((ident.this, ident.quoted))
                if not any(_same(ident.this, ident.quoted, c.name, c.delimited) for _, c in left_star) \
                        or not any(_same(ident.this, ident.quoted, c.name, c.delimited)
                                   for _, c in right_cols):
                    raise self.fail(f"USING column {ident.this!r} is not in both joined tables", ident)
            merged = self.merge(scope, left_star, right_cols, names)
            sql.set("using", [_ident(c.sql) for c in merged])
        elif on is not None:
            sql.set("on", self.condition(on, scope, "ON"))
        return sql

    @staticmethod
    def visible_names(star: list[tuple[_Rel | None, _Col]]) -> list[tuple[str, bool]]:
        seen: list[tuple[str, bool]] = []
        for _, col in star:
            if not any(_same(col.name, col.delimited, n, d) for n, d in seen):
                seen.append((col.name, col.delimited))
        return seen

    def merge(self, scope: _Scope, left: list, right: list, names: list[tuple[str, bool]]) -> list[_Col]:
        merged_cols: list[_Col] = []
        merged_entries: list[tuple[_Rel | None, _Col]] = []

        def matches(col: _Col) -> bool:
            return any(_same(n, d, col.name, col.delimited) for n, d in names)

        for name, delimited in names:
            col = next(c for _, c in left if _same(name, delimited, c.name, c.delimited))
            merged_cols.append(col)
            merged_entries.append((None, col))
            scope.merged[col.name.lower()] = col
        scope.star = merged_entries + [e for e in left if not matches(e[1])] \
            + [e for e in right if not matches(e[1])]
        return merged_cols

    # ---- select list --------------------------------------------------------------------

    def select_list(self, items: list[exp.Expr], scope: _Scope, *, top: bool) -> list[_Out]:
        outs: list[_Out] = []
        for index, item in enumerate(items, 1):
            if isinstance(item, exp.Star):
                outs.extend(self.star_outs(scope.star, scope))
                continue
            if isinstance(item, exp.Column) and isinstance(item.this, exp.Star):
                rel = self.qualified_relation(item, scope, local_only=True)
                outs.extend(self.star_outs([(rel, c) for c in rel.columns], scope))
                continue
            alias = None
            expr_node = item
            if isinstance(item, exp.Alias):
                alias = item.args.get("alias")
                expr_node = item.this
                if alias is not None:
                    self.check_identifier(alias)
            sql, typ = self.expr(expr_node, scope)
            if typ.kind == "bool":
                raise self.fail("A condition cannot be a result column (ADQL has no booleans)",
                                expr_node)
            source = None
            if isinstance(expr_node, exp.Column):
                col = self.resolve(expr_node, scope)[1]
                source = col.source
                name, delimited = col.name, col.delimited
            elif isinstance(expr_node, exp.Anonymous):
                name, delimited = str(expr_node.this).lower(), False
            elif isinstance(expr_node, exp.Func) and not isinstance(expr_node, exp.Case):
                name, delimited = expr_node.key.lower(), False
            else:
                name, delimited = f"col{index}", False
            if alias is not None:
                name, delimited = alias.this, alias.quoted
            outs.append(_Out(name, delimited, typ, sql, source))
        if top:
            for out in outs:
                out.expr, out.typ = self.result_value(out.expr, out.typ)
        self.assign_aliases(outs)
        return outs

    def star_outs(self, entries: list[tuple[_Rel | None, _Col]], scope: _Scope) -> list[_Out]:
        single = len(scope.rels) == 1
        outs = []
        for rel, col in entries:
            table = None if rel is None or single else _ident(rel.qualifier)
            outs.append(_Out(col.name, col.delimited, col.typ,
                             exp.Column(this=_ident(col.sql), table=table), col.source))
        return outs

    def result_value(self, sql: exp.Expr, typ: _T) -> tuple[exp.Expr, _T]:
        """What the outermost select list returns: geometries as DALI arrays, floats as double."""
        if typ.kind in _GEOMETRY:
            return geo.as_array(sql, typ.kind), typ
        if typ.datatype == "double" and not isinstance(sql, (exp.Column, exp.Cast)):
            return geo.as_double(sql), typ
        if isinstance(sql, exp.Sum) and typ.datatype == "long":
            return exp.Cast(this=sql, to=exp.DataType.build("BIGINT")), typ
        return sql, typ

    @staticmethod
    def assign_aliases(outs: list[_Out]) -> None:
        used: set[str] = set()
        for out in outs:
            base = re.sub(r"[^a-z0-9_]", "_", out.name.lower())[:50] or "col"
            if not base[0].isalpha() and base[0] != "_":
                base = "c_" + base
            alias, n = base, 1
            while alias in used:
                n += 1
                alias = f"{base}_{n}"
            used.add(alias)
            out.sql_alias = alias

    @staticmethod
    def aliased(out: _Out) -> exp.Expr:
        expr = out.expr
        if isinstance(expr, exp.Column) and expr.name == out.sql_alias:
            return expr
        return exp.Alias(this=expr, alias=_ident(out.sql_alias))

    def group_item(self, node: exp.Expr, scope: _Scope, outs: list[_Out]) -> exp.Expr:
        if isinstance(node, exp.Column) and not node.args.get("table"):
            try:
                return self.resolve_sql(node, scope)[0]
            except AdqlSemanticError:
                ref = self.output_reference(node, outs)
                if ref is None:
                    raise
                return ref
        if isinstance(node, exp.Literal) and not node.is_string:
            ref = self.output_reference(node, outs)
            if ref is not None:
                return ref
        return self.expr(node, scope)[0]

    def order_item(self, node: exp.Ordered, scope: _Scope, outs: list[_Out]) -> exp.Expr:
        target = node.this
        ref = self.output_reference(target, outs)
        sql = ref if ref is not None else self.expr(target, scope)[0]
        return exp.Ordered(this=sql, desc=node.args.get("desc", False),
                           nulls_first=node.args.get("nulls_first"))

    # ---- column references --------------------------------------------------------------

    def qualified_relation(self, node: exp.Column, scope: _Scope, *, local_only: bool = False
                           ) -> _Rel:
        parts = [p for p in (node.args.get("catalog"), node.args.get("db"), node.args.get("table"))
                 if p is not None]
        for part in parts:
            self.check_identifier(part)
        current: _Scope | None = scope
        while current is not None:
            hits = [r for r in current.rels if r.answers_to(parts)]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise self.fail(f"{'.'.join(p.this for p in parts)!r} is ambiguous", node)
            if local_only:
                break
            current = current.parent
        raise self.fail(f"Unknown table {'.'.join(p.this for p in parts)!r} (not in FROM)", node)

    def resolve(self, node: exp.Column, scope: _Scope) -> tuple[_Scope, _Col, _Rel | None]:
        ident = node.this
        if not isinstance(ident, exp.Identifier):
            raise self.fail("'*' is only allowed in the select list and COUNT(*)", node,
                            syntax=True)
        self.check_identifier(ident)
        if node.args.get("table") is not None:
            rel = self.qualified_relation(node, scope)
            col = rel.find(ident.this, ident.quoted)
            if col is None:
                raise self.fail(f"Table {rel.label!r} has no column {ident.this!r}"
                                f"{self.suggest(ident.this, rel.columns)}", ident)
            owner: _Scope | None = scope
            while owner is not None and not any(r is rel for r in owner.rels):
                owner = owner.parent
            return owner or scope, col, rel
        current: _Scope | None = scope
        while current is not None:
            merged = current.merged.get(ident.this.lower())
            if merged is not None and _same(ident.this, ident.quoted, merged.name, merged.delimited):
                return current, merged, None
            hits = [(r, c) for r in current.rels
                    for c in [r.find(ident.this, ident.quoted)] if c is not None]
            if len(hits) > 1:
                raise self.fail(f"Column {ident.this!r} is ambiguous: it is in "
                                f"{', '.join(r.label for r, _ in hits)}; qualify it", ident)
            if hits:
                return current, hits[0][1], hits[0][0]
            current = current.parent
        candidates = [c for r in scope.rels for c in r.columns]
        raise self.fail(f"Unknown column {ident.this!r}{self.suggest(ident.this, candidates)}",
                        ident)

    @staticmethod
    def suggest(name: str, columns: list[_Col]) -> str:
        names = {c.name.lower(): c.name for c in columns}
        hint = difflib.get_close_matches(name.lower(), list(names), n=3)
        return f"; did you mean {', '.join(names[h] for h in hint)}?" if hint else ""

    def resolve_sql(self, node: exp.Column, scope: _Scope) -> tuple[exp.Expr, _T]:
        owner, col, rel = self.resolve(node, scope)
        table = None
        if rel is not None and not (owner is scope and len(scope.rels) == 1):
            table = _ident(rel.qualifier)
        sql = exp.Column(this=_ident(col.sql), table=table)
        sql.meta[TABLE_META] = rel.table if rel is not None else None
        return sql, col.typ

    # ---- expressions --------------------------------------------------------------------

    def expr(self, node: exp.Expr, scope: _Scope) -> tuple[exp.Expr, _T]:
        if type(node) in _CHAIN_RULES:
            return self.chain(node, scope)
        handler = _HANDLERS.get(type(node))
        if handler is None:
            raise self.fail(f"{_describe(node)} is not ADQL", node, syntax=True)
        return handler(self, node, scope)

    def chain(self, node: exp.Expr, scope: _Scope) -> tuple[exp.Expr, _T]:
        """A left-deep chain of binary operators, walked in a loop rather than recursively.

        sqlglot parses ``a OR b OR c ...`` as ``((a OR b) OR c) ...``, one level per operator;
        users paste OR lists of hundreds of terms.  Each link checks its left operand, already
        translated, and translates its right one, in the same order recursion would.
        """
        links = []
        while type(node) in _CHAIN_RULES:
            links.append(node)
            node = node.this
        result = self.expr(node, scope)
        for link in reversed(links):
            result = _CHAIN_RULES[type(link)](self, link, result, scope)
        return result

    def condition(self, node: exp.Expr, scope: _Scope, clause: str) -> exp.Expr:
        sql, typ = self.expr(node, scope)
        self.check_condition(typ, node, clause)
        return sql

    def check_condition(self, typ: _T, node: exp.Expr, clause: str) -> None:
        if typ.kind != "bool":
            raise self.fail(f"{clause} needs a condition (a comparison, LIKE, IN, BETWEEN, "
                            f"IS NULL, EXISTS, or 1=CONTAINS(...)), not a value", node)

    def numeric(self, node: exp.Expr, scope: _Scope, what: str) -> tuple[exp.Expr, _T]:
        sql, typ = self.expr(node, scope)
        self.check_numeric(typ, node, what)
        return sql, typ

    def check_numeric(self, typ: _T, node: exp.Expr, what: str) -> None:
        if typ.kind not in _NUMERIC and typ.kind not in _LOOSE:
            raise self.fail(f"{what} needs a number, not a {_kind_name(typ)}", node)

    def string(self, node: exp.Expr, scope: _Scope, what: str) -> tuple[exp.Expr, _T]:
        sql, typ = self.expr(node, scope)
        if typ.kind not in ("str", "ts") and typ.kind not in _LOOSE:
            raise self.fail(f"{what} needs a string, not a {_kind_name(typ)}", node)
        return sql, typ

    def geometry(self, node: exp.Expr, scope: _Scope, what: str,
                 kinds: frozenset[str] = _GEOMETRY) -> tuple[exp.Expr, _T]:
        sql, typ = self.expr(node, scope)
        if typ.kind not in kinds:
            wanted = " or ".join(sorted(kinds)) if kinds != _GEOMETRY else "geometry"
            raise self.fail(f"{what} needs a {wanted}, not a {_kind_name(typ)}", node)
        return sql, typ

    def value(self, node: exp.Expr, scope: _Scope, what: str) -> tuple[exp.Expr, _T]:
        sql, typ = self.expr(node, scope)
        if typ.kind == "bool":
            raise self.fail(f"{what} needs a value, not a condition", node)
        return sql, typ

    def comparable(self, a: _T, b: _T, node: exp.Expr, what: str) -> None:
        if a.kind in _GEOMETRY or b.kind in _GEOMETRY:
            raise self.fail(f"{what} cannot compare geometries; use CONTAINS or INTERSECTS", node)
        if a.kind in _LOOSE or b.kind in _LOOSE or a.kind == b.kind:
            return
        if a.kind in _NUMERIC and b.kind in _NUMERIC:
            return
        if {a.kind, b.kind} == {"str", "ts"}:
            return
        raise self.fail(f"{what} compares a {_kind_name(a)} with a {_kind_name(b)}", node)

    # ---- node rules ---------------------------------------------------------------------

    def column(self, node: exp.Column, scope: _Scope) -> tuple[exp.Expr, _T]:
        return self.resolve_sql(node, scope)

    def literal(self, node: exp.Literal, scope: _Scope) -> tuple[exp.Expr, _T]:
        if node.is_string:
            return exp.Literal.string(node.this), STRING
        text = node.this
        if text.isdigit():
            if too_large(text):
                raise self.fail(f"The integer {_abridged(text)} is larger than {MAX_INTEGER}, "
                                f"the largest this service computes with; write it as a "
                                f"floating-point number (e.g. 1E20) if that is meant", node)
            value = _integer(text)
            return exp.Literal.number(value), INT if value < 2 ** 31 else LONG
        return exp.Literal.number(text), DOUBLE

    def hex_literal(self, node: exp.HexString, scope: _Scope) -> tuple[exp.Expr, _T]:
        self.need(FEATURE_BITWISE, node, "Hexadecimal literals")
        digits = node.this.lstrip("0")
        if len(digits) > 16 or int(digits or "0", 16) > MAX_INTEGER:
            raise self.fail(f"The hexadecimal literal 0x{_abridged(node.this)} is larger than "
                            f"0x{MAX_INTEGER:X}, the largest bigint", node)
        value = int(digits or "0", 16)
        return exp.Literal.number(value), INT if value < 2 ** 31 else LONG

    def null(self, node: exp.Null, scope: _Scope) -> tuple[exp.Expr, _T]:
        return exp.Null(), NULL

    def paren(self, node: exp.Paren, scope: _Scope) -> tuple[exp.Expr, _T]:
        sql, typ = self.expr(node.this, scope)
        return exp.Paren(this=sql), typ

    def negation(self, node: exp.Neg, scope: _Scope) -> tuple[exp.Expr, _T]:
        sql, typ = self.numeric(node.this, scope, "Unary minus")
        return exp.Neg(this=sql), typ

    def arithmetic(self, node: exp.Binary, left_value: tuple[exp.Expr, _T],
                   scope: _Scope) -> tuple[exp.Expr, _T]:
        symbol = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/"}[type(node)]
        left, lt = left_value
        self.check_numeric(lt, node.this, f"'{symbol}'")
        right, rt = self.numeric(node.expression, scope, f"'{symbol}'")
        integral = lt.kind == "int" and rt.kind == "int"
        if isinstance(node, exp.Div):
            if integral:
                left = geo.as_double(left)
            return exp.Div(this=left, expression=right, typed=True), replace(
                DOUBLE, derived_unit=_unit_product(lt, rt, "/"))
        typ = (LONG if "long" in (lt.datatype, rt.datatype) else INT) if integral else DOUBLE
        if isinstance(node, (exp.Add, exp.Sub)):
            same = _unit_of(lt) == _unit_of(rt)
            typ = replace(typ, unit=lt.unit if same else None,
                          derived_unit=lt.derived_unit if same else None)
        else:
            typ = replace(typ, derived_unit=_unit_product(lt, rt, "*"))
        return type(node)(this=left, expression=right), typ

    def concatenation(self, node: exp.DPipe, left_value: tuple[exp.Expr, _T],
                      scope: _Scope) -> tuple[exp.Expr, _T]:
        parts = []
        for side in (node.this, node.expression):
            sql, typ = left_value if side is node.this else self.expr(side, scope)
            if typ.kind == "bool":
                raise self.fail("'||' needs a value, not a condition", side)
            if typ.kind in _GEOMETRY:
                raise self.fail("'||' cannot concatenate a geometry", side)
            if typ.kind not in ("str", "null", "ts"):
                sql = exp.Cast(this=sql, to=exp.DataType.build("TEXT"))
            parts.append(sql)
        return exp.DPipe(this=parts[0], expression=parts[1], safe=True), STRING

    def bitwise_not(self, node: exp.BitwiseNot, scope: _Scope) -> tuple[exp.Expr, _T]:
        return self.bitwise(node, None, scope)

    def bitwise(self, node: exp.Expr, left_value: tuple[exp.Expr, _T] | None,
                scope: _Scope) -> tuple[exp.Expr, _T]:
        self.need(FEATURE_BITWISE, node, "Bitwise operators")
        args = [node.this] if isinstance(node, exp.BitwiseNot) else [node.this, node.expression]
        sqls, types = [], []
        for arg in args:
            sql, typ = left_value if left_value is not None and arg is node.this \
                else self.expr(arg, scope)
            if typ.kind not in ("int", "null", "any"):
                raise self.fail(f"Bitwise operators need integers, not a {_kind_name(typ)}", arg)
            sqls.append(sql)
            types.append(typ)
        typ = LONG if any(t.datatype == "long" for t in types) else INT
        if isinstance(node, exp.BitwiseNot):
            return exp.BitwiseNot(this=sqls[0]), typ
        return type(node)(this=sqls[0], expression=sqls[1]), typ

    def comparison(self, node: exp.Binary, scope: _Scope) -> tuple[exp.Expr, _T]:
        shortcut = self.geometry_comparison(node, scope)
        if shortcut is not None:
            return shortcut, BOOL
        bounded = self.distance_bound(node, scope)
        if bounded is not None:
            return bounded, BOOL
        left, lt = self.value(node.this, scope, "A comparison")
        right, rt = self.value(node.expression, scope, "A comparison")
        self.comparable(lt, rt, node, "This comparison")
        return type(node)(this=left, expression=right), BOOL

    def geometry_comparison(self, node: exp.Binary, scope: _Scope) -> exp.Expr | None:
        """``1=CONTAINS(a, b)`` and friends as a bare pg_sphere operator, so indexes apply."""
        if not isinstance(node, (exp.EQ, exp.NEQ)):
            return None
        for call, other in ((node.this, node.expression), (node.expression, node.this)):
            if isinstance(call, exp.Anonymous) and str(call.this).upper() in ("CONTAINS", "INTERSECTS") \
                    and isinstance(other, exp.Literal) and not other.is_string \
                    and other.this in ("0", "1"):
                predicate = self.geometry_predicate(call, scope)
                if (other.this == "1") == isinstance(node, exp.EQ):
                    return predicate
                return exp.Not(this=exp.Paren(this=predicate))
        return None

    def geometry_predicate(self, call: exp.Anonymous, scope: _Scope) -> exp.Expr:
        name = str(call.this).upper()
        self.check_arity(call, FUNCTIONS[name])
        a, at = self.geometry(call.expressions[0], scope, f"{name}'s first argument")
        b, bt = self.geometry(call.expressions[1], scope, f"{name}'s second argument")
        if at.kind == "point" and bt.kind == "point":
            return exp.EQ(this=a, expression=b)
        if name == "CONTAINS":
            if bt.kind == "point":
                raise self.fail("CONTAINS' second argument must be a region (CIRCLE, BOX, "
                                "POLYGON), not a point", call.expressions[1])
            return self.point_in_region(a, b, call)
        if at.kind == "point":
            return self.point_in_region(a, b, call)
        if bt.kind == "point":
            return self.point_in_region(b, a, call)
        return SphereOverlaps(this=a, expression=b)

    def point_in_region(self, point: exp.Expr, region: exp.Expr, node: exp.Expr) -> exp.Expr:
        """``point @ region``; for a point in a circle around another table's point (a
        crossmatch), also the same condition seen from the other side (the circle's centre in a
        circle around the point), so that either table's spatial index can answer the join."""
        contained = SphereContainedBy(this=point, expression=region)
        parts = region.meta.get(geo.CIRCLE_META)
        if not parts or not geo.has_columns(point) or not geo.has_columns(parts[0]):
            return contained
        center, radius = parts
        if not self.indexable_radius(radius, node, "CONTAINS"):
            return contained
        self.index_uploads(point, center)
        mirrored = SphereContainedBy(this=center.copy(), expression=geo.circle(point.copy(), radius.copy()))
        return exp.Paren(this=exp.And(this=contained, expression=mirrored))

    def index_uploads(self, p: exp.Expr, q: exp.Expr) -> None:
        """Ask for a spatial index on an uploaded table whose point is crossmatched with a
        point that no published table's index holds (another upload, a subquery): uploads
        have no index, and such a join would otherwise compare every pair."""
        for point, other in ((p, q), (q, p)):
            upload = _upload_point(point)
            if upload is not None and not _published_point(other):
                self.upload_indexes.append(upload)

    def indexable_radius(self, radius: exp.Expr, node: exp.Expr, what: str) -> bool:
        """Whether a crossmatch radius is a constant of 0 to 90 degrees (pg_sphere's circles);
        when it is not a constant, the time-limit error will say how to write it."""
        value = geo.constant_value(radius)
        if value is None:
            line, col = self._where(node)
            at = f" at line {line}, column {col}" if line is not None else ""
            self.hints.append(
                f"The {what} condition{at} compares positions of two tables with a radius that is not a "
                "constant, so no spatial index can answer it; write the radius as a number of degrees, "
                "e.g. DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) < 2.0/3600 or "
                "1 = CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, 2.0/3600)).")
            return False
        return 0 <= value <= 90

    def distance_bound(self, node: exp.Binary, scope: _Scope) -> exp.Expr | None:
        """``DISTANCE(p, q) < r`` (``<=``, or ``r > DISTANCE(p, q)``, ``>=``) with the conditions
        that the spatial index answers added: ``p @ scircle(q, r)`` when p is a column's point
        and ``q @ scircle(p, r)`` when q is, supersets of the exact comparison, which is kept as
        written (pg_sphere's containment allows 1e-9 rad more than the radius)."""
        if isinstance(node, (exp.LT, exp.LTE)):
            call = node.this
        elif isinstance(node, (exp.GT, exp.GTE)):
            call = node.expression
        else:
            return None
        if not (isinstance(call, exp.Anonymous) and str(call.this).upper() == "DISTANCE"):
            return None
        left, lt = self.value(node.this, scope, "A comparison")
        right, rt = self.value(node.expression, scope, "A comparison")
        self.comparable(lt, rt, node, "This comparison")
        exact: exp.Expr = type(node)(this=left, expression=right)
        p1, p2 = self.distance_points(call, scope)
        radius = right if call is node.this else left
        inside = [(a, b) for a, b in ((p1, p2), (p2, p1)) if geo.has_columns(a)]
        if not inside:
            return exact
        if geo.constant_value(radius) is None and len(inside) == 1:
            return exact  # a cone of computed radius: nothing to hint
        if not self.indexable_radius(radius, node, "DISTANCE"):
            return exact
        for point, center in inside:
            exact = exp.And(this=exact, expression=SphereContainedBy(
                this=point.copy(), expression=geo.circle(center.copy(), radius.copy())))
        if len(inside) == 2:
            self.index_uploads(p1, p2)
        return exp.Paren(this=exact)

    def connective(self, node: exp.Expr, left_value: tuple[exp.Expr, _T],
                   scope: _Scope) -> tuple[exp.Expr, _T]:
        word = "AND" if isinstance(node, exp.And) else "OR"
        left, lt = left_value
        self.check_condition(lt, node.this, word)
        right = self.condition(node.expression, scope, word)
        return type(node)(this=left, expression=right), BOOL

    def negated(self, node: exp.Not, scope: _Scope) -> tuple[exp.Expr, _T]:
        return exp.Not(this=self.condition(node.this, scope, "NOT")), BOOL

    def between(self, node: exp.Between, scope: _Scope) -> tuple[exp.Expr, _T]:
        if node.args.get("symmetric"):
            raise self.fail("BETWEEN SYMMETRIC is not ADQL", node, syntax=True)
        this, t = self.value(node.this, scope, "BETWEEN")
        low, lt = self.value(node.args["low"], scope, "BETWEEN")
        high, ht = self.value(node.args["high"], scope, "BETWEEN")
        self.comparable(t, lt, node, "BETWEEN")
        self.comparable(t, ht, node, "BETWEEN")
        return exp.Between(this=this, low=low, high=high), BOOL

    def in_predicate(self, node: exp.In, scope: _Scope) -> tuple[exp.Expr, _T]:
        for key, value in node.args.items():
            if value and key not in ("this", "expressions", "query"):
                raise self.fail("This form of IN is not ADQL", node, syntax=True)
        this, t = self.value(node.this, scope, "IN")
        query = node.args.get("query")
        if query is not None:
            sql, outs = self.subquery(query, scope)
            if len(outs) != 1:
                raise self.fail("The subquery of IN must return one column", query)
            self.comparable(t, outs[0].typ, node, "IN")
            return exp.In(this=this, query=sql), BOOL
        items = []
        for item in node.expressions:
            sql, typ = self.value(item, scope, "IN")
            self.comparable(t, typ, item, "IN")
            items.append(sql)
        if not items:
            raise self.fail("IN needs at least one value", node, syntax=True)
        return exp.In(this=this, expressions=items), BOOL

    def subquery(self, node: exp.Expr, scope: _Scope) -> tuple[exp.Expr, list[_Out]]:
        inner = node.this if isinstance(node, exp.Subquery) else node
        if isinstance(node, exp.Subquery) and node.args.get("alias"):
            raise self.fail("A subquery in an expression takes no alias", node, syntax=True)
        saved = self.aggregates_allowed
        try:
            sql, outs = self.query(inner, scope, scope.ctes, top=False, operand=True)
        finally:
            self.aggregates_allowed = saved
        if isinstance(sql, exp.Subquery):
            sql = sql.this
        return exp.Subquery(this=sql), outs

    def scalar_subquery(self, node: exp.Subquery, scope: _Scope) -> tuple[exp.Expr, _T]:
        sql, outs = self.subquery(node, scope)
        if len(outs) != 1:
            raise self.fail("A subquery used as a value must return one column", node)
        return sql, outs[0].typ

    def exists(self, node: exp.Exists, scope: _Scope) -> tuple[exp.Expr, _T]:
        sql, _ = self.subquery(node.this, scope)
        return exp.Exists(this=sql.this), BOOL

    def like(self, node: exp.Expr, scope: _Scope) -> tuple[exp.Expr, _T]:
        """LIKE/ILIKE with ``ESCAPE ''``: ADQL patterns have no escape character, PostgreSQL's
        default is ``\\``.  ``NOT LIKE`` arrives as a ``negate`` flag (sqlglot 30) or, in other
        sqlglot versions, as ``Not(Like)``, which :meth:`negated` handles; both end as
        ``NOT (... LIKE ...)``."""
        word = "ILIKE" if isinstance(node, exp.ILike) else "LIKE"
        if word == "ILIKE":
            self.need(FEATURE_STRING, node, "ILIKE")
        this, _ = self.string(node.this, scope, word)
        pattern, _ = self.string(node.expression, scope, word)
        match = exp.Escape(this=type(node)(this=this, expression=pattern),
                           expression=exp.Literal.string(""))
        if node.args.get("negate"):
            return exp.Not(this=exp.Paren(this=match)), BOOL
        return match, BOOL

    def is_null(self, node: exp.Is, scope: _Scope) -> tuple[exp.Expr, _T]:
        if not isinstance(node.expression, exp.Null):
            raise self.fail("IS must be followed by NULL or NOT NULL", node.expression, syntax=True)
        this, _ = self.value(node.this, scope, "IS NULL")
        return exp.Is(this=this, expression=exp.Null()), BOOL

    def case(self, node: exp.Case, scope: _Scope) -> tuple[exp.Expr, _T]:
        self.need(FEATURE_CONDITIONAL, node, "CASE")
        operand = node.args.get("this")
        op_sql: exp.Expr | None = None
        op_t: _T | None = None
        if operand is not None:
            op_sql, op_t = self.value(operand, scope, "CASE")
        ifs, result = [], NULL
        for branch in node.args.get("ifs") or ():
            if op_t is not None:
                cond, ct = self.value(branch.this, scope, "CASE WHEN")
                self.comparable(op_t, ct, branch, "CASE")
            else:
                cond = self.condition(branch.this, scope, "CASE WHEN")
            val, vt = self.value(branch.args["true"], scope, "CASE THEN")
            result = self.merge_types(result, vt, branch)
            ifs.append(exp.If(this=cond, true=val))
        default = node.args.get("default")
        default_sql = None
        if default is not None:
            default_sql, dt = self.value(default, scope, "CASE ELSE")
            result = self.merge_types(result, dt, default)
        return exp.Case(this=op_sql, ifs=ifs, default=default_sql), replace(result, unit=None)

    def merge_types(self, a: _T, b: _T, node: exp.Expr) -> _T:
        if a.kind == "null":
            return b
        if b.kind == "null":
            return a
        if a.kind in _NUMERIC and b.kind in _NUMERIC:
            return a if a.kind == "float" else b
        if a.kind != b.kind and "any" not in (a.kind, b.kind):
            raise self.fail(f"Mixes a {_kind_name(a)} and a {_kind_name(b)}", node)
        return a

    def coalesce(self, node: exp.Coalesce, scope: _Scope) -> tuple[exp.Expr, _T]:
        self.need(FEATURE_CONDITIONAL, node, "COALESCE")
        args = [a for a in [node.this, *node.expressions] if a is not None]
        if not args:
            raise self.fail("COALESCE needs at least one argument", node, syntax=True)
        sqls, result = [], NULL
        for arg in args:
            sql, typ = self.value(arg, scope, "COALESCE")
            if typ.kind in _GEOMETRY:
                raise self.fail("COALESCE of geometries is not supported", arg)
            result = self.merge_types(result, typ, arg)
            sqls.append(sql)
        return exp.Coalesce(this=sqls[0], expressions=sqls[1:]), result

    def cast(self, node: exp.Cast, scope: _Scope) -> tuple[exp.Expr, _T]:
        self.need(FEATURE_TYPE, node, "CAST")
        target = node.args["to"]
        if target.this == exp.DType.USERDEFINED:
            word = str(target.args.get("kind") or "").upper()
            if word in ("POINT", "CIRCLE", "POLYGON"):
                return self.geometry_cast(node.this, word.lower(), scope)
        typ = _CAST_TYPES.get(target.this)
        if typ is None:
            raise self.fail(f"CAST to {target.sql()} is not ADQL; use SMALLINT, INTEGER, BIGINT, "
                            f"REAL, DOUBLE PRECISION, CHAR(n), VARCHAR(n), TIMESTAMP, POINT, CIRCLE "
                            f"or POLYGON", node)
        sql, source = self.value(node.this, scope, "CAST")
        if source.kind in _GEOMETRY:
            raise self.fail("A geometry cannot be cast", node.this)
        params = target.expressions
        if params:
            size = str(params[0].this.this) if isinstance(params[0].this, exp.Literal) else ""
            variable = target.this == exp.DType.VARCHAR or not size
            typ = replace(typ, arraysize=f"{size}*" if variable else size)
        elif target.this == exp.DType.CHAR:
            typ = replace(typ, arraysize="1")
        return exp.Cast(this=sql, to=target.copy()), typ

    def geometry_cast(self, node: exp.Expr, kind: str, scope: _Scope) -> tuple[exp.Expr, _T]:
        if not (isinstance(node, exp.Literal) and node.is_string):
            raise self.fail(f"CAST to {kind.upper()} is supported for string literals only", node)
        numbers = geo.parse_numbers(node.this, f"CAST to {kind.upper()}")
        wanted = {"point": 2, "circle": 3}
        if (kind in wanted and len(numbers) != wanted[kind]) or (
                kind == "polygon" and (len(numbers) < 6 or len(numbers) % 2)):
            raise self.fail(f"Wrong number of values for a {kind}", node)
        try:
            return geo.from_numbers(kind, numbers), _geometry_type(kind)
        except AdqlError as error:
            raise self.fail(error.message, node) from None

    def aggregate(self, node: exp.Expr, scope: _Scope) -> tuple[exp.Expr, _T]:
        if not self.aggregates_allowed:
            raise self.fail(f"{node.key.upper()} is an aggregate and not allowed here", node)
        arg = node.this
        distinct = isinstance(arg, exp.Distinct)
        if distinct:
            if len(arg.expressions) != 1:
                raise self.fail("DISTINCT in an aggregate takes one expression", arg, syntax=True)
            arg = arg.expressions[0]
        for key, value in node.args.items():
            if value and key not in ("this", "big_int"):
                raise self.fail(f"This form of {node.key.upper()} is not ADQL", node, syntax=True)
        saved = self.aggregates_allowed
        self.aggregates_allowed = False
        try:
            if isinstance(node, exp.Count):
                if isinstance(arg, exp.Star):
                    if distinct:
                        raise self.fail("COUNT(DISTINCT *) is not ADQL", node, syntax=True)
                    return exp.Count(this=exp.Star()), LONG
                sql, typ = self.value(arg, scope, "COUNT")
                inner = exp.Distinct(expressions=[sql]) if distinct else sql
                return exp.Count(this=inner), LONG
            what = node.key.upper()
            if isinstance(node, (exp.Avg, exp.Sum)):
                sql, typ = self.numeric(arg, scope, what)
            else:
                sql, typ = self.value(arg, scope, what)
                if typ.kind in _GEOMETRY:
                    raise self.fail(f"{what} of a geometry is not possible", arg)
        finally:
            self.aggregates_allowed = saved
        inner = exp.Distinct(expressions=[sql]) if distinct else sql
        if isinstance(node, exp.Avg):
            return exp.Avg(this=inner), replace(DOUBLE, unit=typ.unit)
        if isinstance(node, exp.Sum):
            result = replace(LONG if typ.kind == "int" else DOUBLE, unit=typ.unit)
            if typ.kind == "float" and typ.datatype != "double":
                # PostgreSQL's sum(real) adds in single precision: over 1,000,000 magnitudes it
                # was 6,000 off (corpus-diff against DaCHS).  The result is declared double.
                sql = geo.as_double(sql)
                inner = exp.Distinct(expressions=[sql]) if distinct else sql
            return exp.Sum(this=inner), result
        return type(node)(this=inner), replace(typ, xtype=typ.xtype)

    def function(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        name = str(node.this).upper()
        spec = FUNCTIONS.get(name)
        rule = _FUNCTION_RULES.get(name)
        if spec is None or rule is None:
            raise self.fail(f"Unknown function {node.this!r}; see the service's capabilities "
                            f"for the functions it supports", node)
        self.check_arity(node, spec)
        if spec.feature in _ADQL21_ONLY:
            self.need(spec.feature, node, name)
        return rule(self, node, scope)

    def check_arity(self, node: exp.Anonymous, spec: FunctionSpec) -> None:
        count = len(node.expressions)
        if count < spec.min_args or (spec.max_args is not None and count > spec.max_args):
            raise self.fail(f"Wrong number of arguments for {spec.form}", node)

    # ---- functions ----------------------------------------------------------------------

    def math(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        name = str(node.this).upper()
        typed = [self.numeric(a, scope, name) for a in node.expressions]
        derived = None
        base = _unit_of(typed[0][1])
        if name == "SQRT" and base:
            derived = ("**", base, 0.5)
        elif name == "POWER" and base:
            exponent = node.expressions[1]
            if isinstance(exponent, exp.Literal) and not exponent.is_string:
                derived = ("**", base, float(exponent.this))
        result = replace(DOUBLE, derived_unit=derived)
        return geo.func(_MATH_DOUBLE[name], *(sql for sql, _ in typed)), result

    def abs_(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        # ADQL 2.1 section 2.3 (mathematical functions): abs returns double, as DaCHS's does.
        sql, typ = self.numeric(node.expressions[0], scope, "ABS")
        if typ.datatype != "double":
            sql = geo.as_double(sql)
        return geo.func("abs", sql), replace(DOUBLE, unit=typ.unit)

    def ceiling_floor(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        name = str(node.this).upper()
        sql, typ = self.numeric(node.expressions[0], scope, name)
        return geo.func(name.lower(), sql), replace(DOUBLE, unit=typ.unit)

    def mod(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        (a, at), (b, bt) = [self.numeric(arg, scope, "MOD") for arg in node.expressions]
        if at.kind == "int" and bt.kind == "int":
            return geo.func("mod", a, b), LONG if "long" in (at.datatype, bt.datatype) else INT
        numeric = exp.DataType.build("NUMERIC")
        return geo.as_double(geo.func("mod", exp.Cast(this=a, to=numeric),
                                      exp.Cast(this=b, to=numeric.copy()))), DOUBLE

    def pi(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        return geo.func("pi"), DOUBLE

    def rand(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        for arg in node.expressions:
            self.numeric(arg, scope, "RAND")
        return geo.func("random"), DOUBLE

    def round_truncate(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        name = str(node.this).upper()
        pg = "round" if name == "ROUND" else "trunc"
        sql, typ = self.numeric(node.expressions[0], scope, name)
        if len(node.expressions) == 1:
            return geo.func(pg, sql), replace(DOUBLE, unit=typ.unit)
        digits, dt = self.numeric(node.expressions[1], scope, name)
        if dt.kind == "float":
            raise self.fail(f"{name}'s second argument must be an integer", node.expressions[1])
        value = geo.func(pg, exp.Cast(this=sql, to=exp.DataType.build("NUMERIC")),
                         exp.Cast(this=digits, to=exp.DataType.build("INT")))
        return geo.as_double(value), replace(DOUBLE, unit=typ.unit)

    def lower_upper(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        name = str(node.this).upper()
        sql, _ = self.string(node.expressions[0], scope, name)
        return geo.func(name.lower(), sql), STRING

    def in_unit(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        value, typ = self.numeric(node.expressions[0], scope, "IN_UNIT")
        target = node.expressions[1]
        if not (isinstance(target, exp.Literal) and target.is_string):
            raise self.fail("IN_UNIT's second argument must be a unit string literal", target)
        source = _unit_of(typ)
        if not source:
            raise self.fail("IN_UNIT needs a value with a known unit (a column with a unit in "
                            "TAP_SCHEMA)", node.expressions[0])
        try:
            factor = _unit_factor(source, target.this)
        except AdqlError as error:
            raise self.fail(error.message, node) from None
        scaled = exp.Mul(this=geo.as_double(value), expression=exp.Literal.number(repr(factor)))
        return exp.Paren(this=scaled), replace(DOUBLE, unit=target.this)

    # geometry

    def frame(self, node: exp.Expr) -> str:
        if isinstance(node, exp.Null):
            return ""
        if isinstance(node, exp.Literal) and node.is_string:
            try:
                return geo.frame_label(node.this)
            except AdqlError as error:
                raise self.fail(error.message, node) from None
        raise self.fail("The coordinate system must be a string literal such as 'ICRS'", node)

    @staticmethod
    def has_frame(args: list[exp.Expr], counts: tuple[int, ...]) -> bool:
        first = args[0]
        return isinstance(first, exp.Null) or (isinstance(first, exp.Literal) and first.is_string) \
            or len(args) in counts

    def split_frame(self, args: list[exp.Expr]) -> tuple[str | None, list[exp.Expr]]:
        first = args[0]
        if isinstance(first, exp.Null) or (isinstance(first, exp.Literal) and first.is_string):
            return self.frame(first), args[1:]
        return None, args

    def coords(self, args: list[exp.Expr], scope: _Scope, what: str) -> list[exp.Expr]:
        return [self.numeric(a, scope, what)[0] for a in args]

    def point_fn(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        frame, args = self.split_frame(node.expressions)
        if len(args) != 2:
            raise self.fail("POINT takes (coordsys, ra, dec) or (ra, dec)", node)
        ra, dec = self.coords(args, scope, "POINT")
        return geo.point(ra, dec), _geometry_type("point", frame)

    def center_and_rest(self, args: list[exp.Expr], scope: _Scope, rest: int, name: str
                        ) -> tuple[exp.Expr, list[exp.Expr]]:
        if len(args) == rest + 1:
            center, _ = self.geometry(args[0], scope, f"{name}'s centre", frozenset({"point"}))
            return center, self.coords(args[1:], scope, name)
        if len(args) == rest + 2:
            ra, dec, *others = self.coords(args, scope, name)
            return geo.point(ra, dec), others
        raise self.fail(f"Wrong number of arguments for {FUNCTIONS[name].form}", None)

    def circle_fn(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        frame, args = self.split_frame(node.expressions)
        try:
            center, (radius,) = self.center_and_rest(args, scope, 1, "CIRCLE")
            return geo.circle(center, radius), _geometry_type("circle", frame)
        except AdqlError as error:
            raise self.fail(error.message, node) from None

    def box_fn(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        frame, args = self.split_frame(node.expressions)
        if len(args) == 4:
            ra, dec, width, height = self.coords(args, scope, "BOX")
        elif len(args) == 3:
            center, _ = self.geometry(args[0], scope, "BOX's centre", frozenset({"point"}))
            coords = center.meta.get(geo.COORDS_META)
            if not coords:
                raise self.fail("BOX's centre must be a POINT(...) here", args[0])
            ra, dec = coords
            width, height = self.coords(args[1:], scope, "BOX")
        else:
            raise self.fail(f"Wrong number of arguments for {FUNCTIONS['BOX'].form}", node)
        return geo.box(ra, dec, width, height), _geometry_type("box", frame)

    def polygon_fn(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        frame, args = self.split_frame(node.expressions)
        coords: list[exp.Expr] = []
        first_sql, first_t = self.expr(args[0], scope) if args else (None, NULL)
        if first_t.kind == "point":
            for arg in args:
                point, _ = self.geometry(arg, scope, "POLYGON's vertex", frozenset({"point"}))
                known = point.meta.get(geo.COORDS_META)
                if known:
                    coords += known
                else:
                    coords += [geo.degrees(geo.func("long", point)),
                               geo.degrees(geo.func("lat", point.copy()))]
        else:
            coords = self.coords(args, scope, "POLYGON")
        if len(coords) < 6 or len(coords) % 2:
            raise self.fail("POLYGON needs at least three vertices (ra, dec pairs)", node)
        return geo.polygon(coords), _geometry_type("polygon", frame)

    def region_fn(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        arg = node.expressions[0]
        if not (isinstance(arg, exp.Literal) and arg.is_string):
            raise self.fail("REGION is supported for string literals only", arg)
        try:
            kind, frame, numbers = geo.stcs_region(arg.this)
            return geo.from_numbers(kind, numbers), _geometry_type(kind, frame)
        except AdqlError as error:
            raise self.fail(error.message, arg) from None

    def predicate_fn(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        predicate = self.geometry_predicate(node, scope)
        return exp.Cast(this=exp.Paren(this=predicate), to=exp.DataType.build("INT")), INT

    def distance_points(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, exp.Expr]:
        args = node.expressions
        if len(args) == 4:
            ra1, dec1, ra2, dec2 = self.coords(args, scope, "DISTANCE")
            return geo.point(ra1, dec1), geo.point(ra2, dec2)
        if len(args) == 2:
            p1, _ = self.geometry(args[0], scope, "DISTANCE", frozenset({"point"}))
            p2, _ = self.geometry(args[1], scope, "DISTANCE", frozenset({"point"}))
            return p1, p2
        raise self.fail(f"Wrong number of arguments for {FUNCTIONS['DISTANCE'].form}", node)

    def distance_fn(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        p1, p2 = self.distance_points(node, scope)
        return geo.degrees(SphereDistance(this=p1, expression=p2)), replace(DOUBLE, unit="deg")

    def area_fn(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        sql, typ = self.geometry(node.expressions[0], scope, "AREA")
        unit = replace(DOUBLE, unit="deg**2")
        if typ.kind == "point":
            return exp.Literal.number("0.0"), unit
        return geo.degrees(geo.degrees(geo.func("area", sql))), unit

    def centroid_fn(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        sql, typ = self.geometry(node.expressions[0], scope, "CENTROID")
        if typ.kind == "point":
            return sql, typ
        if typ.kind != "circle":
            raise self.fail("CENTROID is supported for circles (pg_sphere has no polygon "
                            "centroid)", node)
        return geo.func("center", sql), _geometry_type("point", typ.frame)

    def coord_fn(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        name = str(node.this).upper()
        sql, typ = self.geometry(node.expressions[0], scope, name, frozenset({"point"}))
        part = "long" if name == "COORD1" else "lat"
        return geo.degrees(geo.func(part, sql)), replace(DOUBLE, unit="deg")

    def coordsys_fn(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        _, typ = self.geometry(node.expressions[0], scope, "COORDSYS")
        label = typ.frame if typ.frame is not None else "ICRS"
        return exp.Literal.string(label), STRING

    def healpix_index_fn(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        args = node.expressions
        order, ot = self.numeric(args[0], scope, "ivo_healpix_index")
        if len(args) == 3:
            ra, dec = self.coords(args[1:], scope, "ivo_healpix_index")
            point = geo.point(ra, dec)
        else:
            point, _ = self.geometry(args[1], scope, "ivo_healpix_index", frozenset({"point"}))
        order_int = exp.Cast(this=order, to=exp.DataType.build("INT"))
        return geo.func("healpix_nest", order_int, point), LONG

    def healpix_center_fn(self, node: exp.Anonymous, scope: _Scope) -> tuple[exp.Expr, _T]:
        order, _ = self.numeric(node.expressions[0], scope, "ivo_healpix_center")
        index, _ = self.numeric(node.expressions[1], scope, "ivo_healpix_center")
        sql = geo.func("center_of_healpix_nest", exp.Cast(this=order, to=exp.DataType.build("INT")),
                       exp.Cast(this=index, to=exp.DataType.build("BIGINT")))
        return sql, _geometry_type("point")


#: Meta key of a translated column: the catalogue table it comes from (None: a subquery or CTE).
TABLE_META = "pzvo_table"
_UPLOAD_SCHEMA = "tap_upload"


def _point_columns(point: exp.Expr) -> tuple[exp.Column, exp.Column] | None:
    """The two columns of ``spoint(radians(a), radians(b))``, the form an index is built on."""
    if not (isinstance(point, exp.Anonymous) and str(point.this).lower() == "spoint" and len(point.expressions) == 2):
        return None
    found = []
    for arg in point.expressions:
        if not (isinstance(arg, exp.Anonymous) and str(arg.this).lower() == "radians" and len(arg.expressions) == 1
                and isinstance(arg.expressions[0], exp.Column)):
            return None
        found.append(arg.expressions[0])
    return found[0], found[1]


def _upload_point(point: exp.Expr) -> tuple[str, str, str] | None:
    columns = _point_columns(point)
    if columns is None:
        return None
    tables = {id(c.meta.get(TABLE_META)): c.meta.get(TABLE_META) for c in columns}
    if len(tables) != 1:
        return None
    table = next(iter(tables.values()))
    if table is None or table.schema_name.lower() != _UPLOAD_SCHEMA:
        return None
    return table.table_name, columns[0].name, columns[1].name


def _published_point(point: exp.Expr) -> bool:
    """Whether a point is made of the columns of one published (not uploaded) table."""
    columns = _point_columns(point)
    if columns is None:
        return False
    tables = [c.meta.get(TABLE_META) for c in columns]
    return all(t is not None and t.schema_name.lower() != _UPLOAD_SCHEMA for t in tables)


def _unit_of(typ: _T) -> str | tuple | None:
    return typ.derived_unit or typ.unit


def _unit_product(a: _T, b: _T, op: str) -> tuple | None:
    """Unit of a product or quotient as a small tree; a unit-less factor counts as 1."""
    ua, ub = _unit_of(a), _unit_of(b)
    if ua is None and ub is None:
        return None
    return (op, ua or "", ub or "")


def _kind_name(typ: _T) -> str:
    return {"int": "number", "float": "number", "str": "string", "ts": "timestamp",
            "bool": "condition", "null": "NULL", "any": "value"}.get(typ.kind, typ.kind)


def _describe(node: exp.Expr) -> str:
    names: dict[type, str] = {exp.Boolean: "TRUE/FALSE (ADQL has no boolean literals)", exp.Array: "ARRAY",
             exp.Window: "A window function (OVER)", exp.Mod: "'%'",
             exp.Escape: "LIKE ... ESCAPE", exp.Star: "'*' here"}
    return names.get(type(node), f"{node.key.upper()}")


#: Node class -> its translation.  A handler takes a node of its key's class (the dispatch is on
#: ``type(node)``, which mypy cannot follow), hence ``Any`` for the node.
_HANDLERS: dict[type, Callable[[_Translator, Any, _Scope], tuple[exp.Expr, _T]]] = {
    exp.Column: _Translator.column,
    exp.Literal: _Translator.literal,
    exp.HexString: _Translator.hex_literal,
    exp.Null: _Translator.null,
    exp.Paren: _Translator.paren,
    exp.Neg: _Translator.negation,
    exp.BitwiseNot: _Translator.bitwise_not,
    **{cls: _Translator.comparison for cls in _COMPARISONS},
    exp.Not: _Translator.negated,
    exp.Between: _Translator.between,
    exp.In: _Translator.in_predicate,
    exp.Exists: _Translator.exists,
    exp.Subquery: _Translator.scalar_subquery,
    exp.Like: _Translator.like,
    exp.ILike: _Translator.like,
    exp.Is: _Translator.is_null,
    exp.Case: _Translator.case,
    exp.Coalesce: _Translator.coalesce,
    exp.Cast: _Translator.cast,
    exp.Count: _Translator.aggregate,
    exp.Min: _Translator.aggregate,
    exp.Max: _Translator.aggregate,
    exp.Avg: _Translator.aggregate,
    exp.Sum: _Translator.aggregate,
    exp.Anonymous: _Translator.function,
}

#: Binary operators whose left-deep chains :meth:`_Translator.chain` walks in a loop; each rule
#: gets its left operand already translated.
_CHAIN_RULES: dict[type, Callable[[_Translator, Any, tuple[exp.Expr, _T], _Scope],
                                  tuple[exp.Expr, _T]]] = {
    exp.Add: _Translator.arithmetic,
    exp.Sub: _Translator.arithmetic,
    exp.Mul: _Translator.arithmetic,
    exp.Div: _Translator.arithmetic,
    exp.DPipe: _Translator.concatenation,
    exp.BitwiseAnd: _Translator.bitwise,
    exp.BitwiseOr: _Translator.bitwise,
    exp.BitwiseXor: _Translator.bitwise,
    exp.And: _Translator.connective,
    exp.Or: _Translator.connective,
}


def _chain_class(node: exp.Expr) -> type:
    """What the SQL generator writes in one loop: AND and OR mix, other operators do not."""
    return exp.Connector if isinstance(node, exp.Connector) else type(node)


def _check_depth(tree: exp.Expr) -> exp.Expr | None:
    """The first node deeper than :data:`MAX_TREE_DEPTH`, or None; walked with a stack.

    The left operand of a chain link of the same kind adds no level: the translator and the
    generator both loop over such chains.
    """
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            return node
        for child in node.iter_expressions():
            free = child is node.args.get("this") and type(node) in _CHAIN_RULES \
                and _chain_class(child) is _chain_class(node)
            stack.append((child, depth if free else depth + 1))
    return None


def _integer(digits: str) -> int:
    """An unsigned integer literal already known to fit bigint (leading zeros do not count
    towards Python's 4300-digit conversion limit this way)."""
    return int(digits.lstrip("0") or "0")


def _abridged(text: str, keep: int = 24) -> str:
    return text if len(text) <= keep else f"{text[:keep]}... ({len(text)} digits)"


_FUNCTION_RULES: dict[str, Callable[[_Translator, exp.Anonymous, _Scope], tuple[exp.Expr, _T]]] = {
    **{name: _Translator.math for name in _MATH_DOUBLE},
    "ABS": _Translator.abs_,
    "CEILING": _Translator.ceiling_floor,
    "FLOOR": _Translator.ceiling_floor,
    "MOD": _Translator.mod,
    "PI": _Translator.pi,
    "RAND": _Translator.rand,
    "ROUND": _Translator.round_truncate,
    "TRUNCATE": _Translator.round_truncate,
    "LOWER": _Translator.lower_upper,
    "UPPER": _Translator.lower_upper,
    "IN_UNIT": _Translator.in_unit,
    "POINT": _Translator.point_fn,
    "CIRCLE": _Translator.circle_fn,
    "BOX": _Translator.box_fn,
    "POLYGON": _Translator.polygon_fn,
    "REGION": _Translator.region_fn,
    "CONTAINS": _Translator.predicate_fn,
    "INTERSECTS": _Translator.predicate_fn,
    "DISTANCE": _Translator.distance_fn,
    "AREA": _Translator.area_fn,
    "CENTROID": _Translator.centroid_fn,
    "COORD1": _Translator.coord_fn,
    "COORD2": _Translator.coord_fn,
    "COORDSYS": _Translator.coordsys_fn,
    "IVO_HEALPIX_INDEX": _Translator.healpix_index_fn,
    "IVO_HEALPIX_CENTER": _Translator.healpix_center_fn,
}

_TYPED_FUNCTIONS = {"COUNT", "MIN", "MAX", "AVG", "SUM", "COALESCE"}
assert set(FUNCTIONS) == set(_FUNCTION_RULES) | _TYPED_FUNCTIONS, "function table out of sync"


def translate_adql(query: str, catalog: Catalog, *, row_limit: int | None = None,
                   version: str = "2.1") -> TranslatedQuery:
    """Translate one ADQL query into PostgreSQL + pg_sphere SQL for ``catalog``'s tables.

    Parameters
    ----------
    query
        The ADQL text as the user sent it.
    catalog
        The published tables; every table and column reference is checked against it.
    row_limit
        The most rows the caller wants (the service passes MAXREC+1 to detect overflow); the SQL
        ends with ``LIMIT min(TOP, row_limit)``.
    version
        "2.1" (default) or "2.0"; 2.0 refuses the 2.1 optional features.

    Raises
    ------
    AdqlSyntaxError
        The text is not ADQL (or not a single query).
    AdqlSemanticError
        Unknown or ambiguous names, unsupported functions, type errors.
    """
    if row_limit is not None and row_limit < 0:
        raise ValueError("row_limit must not be negative")
    try:
        tree = parse_adql(query)
        return _Translator(query, catalog, version).translate(tree, row_limit)
    except RecursionError:
        # Not expected within the limits above; a last guard so no query can become a 500.
        raise AdqlSyntaxError(
            f"The query is too deeply nested for this service to translate (at most "
            f"{MAX_NESTING} levels of parentheses, function calls, subqueries and CASE, and "
            f"{MAX_TREE_DEPTH} levels of operators)") from None
