"""ADQL as a sqlglot dialect, and the PostgreSQL + pg_sphere dialect the translation is written in.

sqlglot's tokenizer and parser are generic: they accept far more than ADQL (``::`` casts,
``LIMIT``, ``ARRAY[...]``, PostgreSQL operators, dozens of dialect functions).  This module
narrows them at three points, each of which knows the position of what it refuses:

* the tokenizer knows only ADQL's lexical forms (``'...'`` strings, ``"..."`` identifiers,
  ``--`` comments, ``0x`` hex literals), and :func:`parse_adql` then checks every token against
  ADQL's operator set and identifier syntax;
* the parser builds only the handful of typed function nodes ADQL needs (aggregates, CAST,
  COALESCE, CASE); every other call stays an anonymous function, which the translator looks up
  in its own function table;
* the translator (``_translate``) accepts only the AST node types it has a rule for.
"""
from __future__ import annotations

import re

from sqlglot import exp, parser, tokens
from sqlglot.dialects.dialect import Dialect, NormalizationStrategy
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import ParseError, TokenError
from sqlglot.generators.postgres import PostgresGenerator
from sqlglot.tokens import Token, TokenType

from vo_service.tap.adql._errors import AdqlSyntaxError

_REGULAR_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

# Every operator and punctuation token ADQL 2.1 has; anything else that is not a word, a number,
# a string or a delimited identifier is refused with its position.
_ADQL_SYMBOLS = frozenset({
    "(", ")", ",", ".", "-", "+", "*", "/", "<", "<=", ">", ">=", "=", "<>", "!=",
    "&", "|", "^", "~", "||",
})

_SYMBOL_HINTS = {
    "::": "'::' casts are PostgreSQL syntax; write CAST(x AS type)",
    ";": "ADQL is a single query without ';'",
    "==": "ADQL compares with '=', not '=='",
    "%": "'%' is not an ADQL operator; use MOD(x, y)",
    "[": "array syntax is not ADQL",
    "]": "array syntax is not ADQL",
    "$": "parameters and dollar quoting are not ADQL",
    "?": "parameters are not ADQL",
    "@": "'@' is not an ADQL operator; use CONTAINS() for geometry",
    "#": "'#' is not an ADQL operator",
    "~*": "regular expressions are not ADQL; use LIKE or ILIKE",
    "!~": "regular expressions are not ADQL; use LIKE or ILIKE",
}

_WORD_HINTS = {
    "LIMIT": "LIMIT is not ADQL; write SELECT TOP n ...",
    "TRUE": "ADQL has no boolean literals; compare with 1 or 0",
    "FALSE": "ADQL has no boolean literals; compare with 1 or 0",
    "RETURNING": "only queries are allowed",
}


class ADQL(Dialect):
    """ADQL 2.1 lexical and syntactic rules on top of sqlglot's generic SQL parser."""

    NORMALIZATION_STRATEGY = NormalizationStrategy.CASE_INSENSITIVE
    NULL_ORDERING = "nulls_are_large"  # as in PostgreSQL, so no NULLS FIRST/LAST gets added
    TYPED_DIVISION = True

    class Tokenizer(tokens.Tokenizer):
        QUOTES = ["'"]
        IDENTIFIERS = ['"']
        STRING_ESCAPES = ["'"]
        IDENTIFIER_ESCAPES = ['"']
        HEX_STRINGS = [("0x", ""), ("0X", "")]
        COMMENTS = ["--"]
        KEYWORDS = {k: v for k, v in tokens.Tokenizer.KEYWORDS.items() if k != "/*+"}
        KEYWORDS["TOP"] = TokenType.TOP
        # Not ADQL types: as plain words they fail CAST's type check with a clear message.
        for _word in ("FLOAT", "INT", "NUMERIC", "DECIMAL", "TEXT", "BOOLEAN", "DATE", "TIME"):
            KEYWORDS.pop(_word, None)

    class Parser(parser.Parser):
        FUNCTIONS = {
            name: builder for name, builder in parser.Parser.FUNCTIONS.items()
            if name in {"COUNT", "MIN", "MAX", "AVG", "SUM", "COALESCE"}
        }
        FUNCTION_PARSERS = {"CAST": parser.Parser.FUNCTION_PARSERS["CAST"]}
        NO_PAREN_FUNCTIONS: dict = {}
        NO_PAREN_FUNCTION_PARSERS = {"CASE": parser.Parser.NO_PAREN_FUNCTION_PARSERS["CASE"]}
        LOG_DEFAULTS_TO_LN = True

        def _parse_join(self, *args, **kwargs):  # type: ignore[override]
            comma = self._curr is not None and self._curr.token_type == TokenType.COMMA
            join = super()._parse_join(*args, **kwargs)
            if join is not None and comma:
                join.meta["comma"] = True
            return join


class SphereContainedBy(exp.Expression, exp.Binary, exp.Predicate):
    """pg_sphere ``a @ b``: a lies within b (the operator the GiST opclasses index)."""


class SphereOverlaps(exp.Expression, exp.Binary, exp.Predicate):
    """pg_sphere ``a && b``."""


class SphereDistance(exp.Expression, exp.Binary):
    """pg_sphere ``a <-> b``, in radians."""


class _PgSphereGenerator(PostgresGenerator):
    TRANSFORMS = {
        **PostgresGenerator.TRANSFORMS,
        SphereContainedBy: lambda self, e: self.binary(e, "@"),
        SphereOverlaps: lambda self, e: self.binary(e, "&&"),
        SphereDistance: lambda self, e: self.binary(e, "<->"),
    }


class PgSphere(Postgres):
    """PostgreSQL with pg_sphere's operators."""

    Generator = _PgSphereGenerator


_ADQL = ADQL()
_PG = PgSphere()


def position(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a character offset."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _token_error(query: str, error: TokenError) -> AdqlSyntaxError:
    cause = error.__cause__ if isinstance(error.__cause__, TokenError) else error
    text = str(cause)
    match = re.search(r"Missing (.) from \d+:(\d+)", text)
    if match:
        what = "identifier" if match.group(1) == '"' else "string"
        offset = int(match.group(2))
        # sqlglot reports where the scan stopped; point at the opening quote instead.
        opening = query.rfind(match.group(1), 0, min(offset, len(query)) + 1)
        line, col = position(query, opening if opening >= 0 else offset)
        return AdqlSyntaxError(f"Unterminated {what}: a {match.group(1)} is not closed", line, col)
    return AdqlSyntaxError(f"Cannot read the query: {text}")


def _check_token(query: str, token: Token) -> None:
    kind = token.token_type
    if kind == TokenType.IDENTIFIER and not token.text:
        raise AdqlSyntaxError('An empty delimited identifier "" is not ADQL: a name needs at least '
                              "one character", *position(query, token.start))
    if kind in (TokenType.STRING, TokenType.NUMBER, TokenType.HEX_STRING, TokenType.IDENTIFIER):
        return
    text = token.text
    first = text[:1]
    if first.isalpha() or first == "_":
        upper = text.upper()
        if upper in _WORD_HINTS:
            raise AdqlSyntaxError(_WORD_HINTS[upper], *position(query, token.start))
        if kind == TokenType.VAR and not _REGULAR_IDENTIFIER.match(text):
            raise AdqlSyntaxError(
                f"{text!r} is not an ADQL identifier: regular identifiers start with a letter and "
                f"contain only letters, digits and '_'; put other names in double quotes",
                *position(query, token.start))
        return
    if text in _ADQL_SYMBOLS:
        return
    hint = _SYMBOL_HINTS.get(text) or _SYMBOL_HINTS.get(first) or f"{text!r} is not ADQL syntax"
    raise AdqlSyntaxError(hint, *position(query, token.start))


_AFTER_COMMA_FORBIDDEN = frozenset({
    TokenType.FROM, TokenType.R_PAREN, TokenType.COMMA, TokenType.WHERE, TokenType.GROUP_BY,
    TokenType.ORDER_BY, TokenType.HAVING,
})
_AFTER_GROUP_BY_FORBIDDEN = frozenset({
    TokenType.HAVING, TokenType.ORDER_BY, TokenType.R_PAREN, TokenType.UNION, TokenType.EXCEPT,
    TokenType.INTERSECT, TokenType.OFFSET, TokenType.WHERE, TokenType.GROUP_BY,
})
_AFTER_OFFSET_ALLOWED = frozenset({
    TokenType.R_PAREN, TokenType.UNION, TokenType.EXCEPT, TokenType.INTERSECT,
})


def _unsigned_integer(token: Token | None) -> bool:
    return token is not None and token.token_type == TokenType.NUMBER and token.text.isdigit()


def _check_sequence(query: str, toks: list[Token]) -> None:
    """Token-order rules sqlglot's lenient parser would let through.

    sqlglot accepts a trailing comma in lists, an empty GROUP BY, any expression after TOP, and
    OFFSET anywhere in a query (moving it to the end); ADQL wants a non-empty GROUP BY list, an
    unsigned integer after TOP and OFFSET and OFFSET as the last clause.
    """
    count = len(toks)
    for i, tok in enumerate(toks):
        nxt = toks[i + 1] if i + 1 < count else None
        kind = tok.token_type
        if kind == TokenType.SLASH and nxt is not None and nxt.token_type == TokenType.STAR \
                and nxt.start == tok.end + 1:
            raise AdqlSyntaxError("Block comments /* */ are not ADQL; use -- comments",
                                  *position(query, tok.start))
        if kind == TokenType.COMMA and (nxt is None or nxt.token_type in _AFTER_COMMA_FORBIDDEN):
            raise AdqlSyntaxError("A ',' must be followed by another item of the list",
                                  *position(query, tok.start))
        if kind == TokenType.GROUP_BY and (nxt is None
                                           or nxt.token_type in _AFTER_GROUP_BY_FORBIDDEN):
            raise AdqlSyntaxError("GROUP BY must be followed by at least one column",
                                  *position(query, tok.start))
        if kind in (TokenType.TOP, TokenType.OFFSET):
            word = tok.text.upper()
            if not _unsigned_integer(nxt):
                raise AdqlSyntaxError(f"{word} must be followed by an unsigned integer literal",
                                      *position(query, (nxt or tok).start))
            after = toks[i + 2] if i + 2 < count else None
            if kind == TokenType.OFFSET and after is not None \
                    and after.token_type not in _AFTER_OFFSET_ALLOWED:
                raise AdqlSyntaxError("OFFSET must be the last clause of a query (after ORDER BY)",
                                      *position(query, after.start))


def parse_adql(query: str) -> exp.Expr:
    """Parse one ADQL query into a sqlglot tree, refusing non-ADQL tokens and statements."""
    if not query or not query.strip():
        raise AdqlSyntaxError("The query is empty")
    try:
        toks = _ADQL.tokenize(query)
    except TokenError as error:
        raise _token_error(query, error) from None
    if not toks:
        raise AdqlSyntaxError("The query contains only comments")
    for tok in toks:
        _check_token(query, tok)
    _check_sequence(query, toks)
    first = toks[0]
    if first.token_type not in (TokenType.SELECT, TokenType.WITH, TokenType.L_PAREN):
        raise AdqlSyntaxError(
            f"An ADQL query starts with SELECT or WITH, not {first.text!r}; "
            f"only queries are allowed", *position(query, first.start))
    try:
        trees = _ADQL.parser().parse(toks, query)
    except ParseError as error:
        info = error.errors[0] if error.errors else {}
        line, col = info.get("line"), info.get("col")
        near = info.get("highlight") or ""
        if line is not None and col is not None and near and "\n" not in near:
            col = max(1, col - len(near) + 1)
        description = info.get("description") or str(error)
        where = f" near {near!r}" if near else ""
        raise AdqlSyntaxError(f"Syntax error{where}: {description}", line, col) from None
    if len(trees) != 1 or trees[0] is None:
        raise AdqlSyntaxError("Exactly one query is allowed")
    return trees[0]


def generate_sql(tree: exp.Expr) -> str:
    """PostgreSQL text of a translated tree (function names lower-case, as in index definitions)."""
    return _PG.generate(tree, copy=False, normalize_functions="lower", comments=False)
