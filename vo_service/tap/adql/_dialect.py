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

The parser is recursive (about 20 Python frames per parenthesis), so :func:`parse_adql`
measures how deeply the tokens nest before parsing and refuses more than
:data:`MAX_NESTING` levels: a query must never reach Python's recursion limit.
"""
from __future__ import annotations

import re
from collections.abc import Collection
from typing import ClassVar, TypeGuard

from sqlglot import exp, parser, tokens
from sqlglot.dialects.dialect import Dialect, NormalizationStrategy
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import ParseError, TokenError
from sqlglot.generators.postgres import PostgresGenerator
from sqlglot.tokenizer_core import Token, TokenType

from vo_service.tap.adql._errors import AdqlSyntaxError

_REGULAR_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

#: Levels of nesting a query may have: parentheses (grouping, function calls, subqueries, IN
#: lists), CASE ... END, and each NOT or unary sign until its operand ends.  sqlglot needs up to
#: 23 Python frames per level, so 30 levels stay far inside the interpreter's 1000 frames even
#: below a deep web stack (tests/adql/test_limits.py measures it).
MAX_NESTING = 30
#: Tokens (words, numbers, strings, operators) a query may have: parsing and translating take
#: about 50 µs per token, so this bounds one query's cost to a few seconds of CPU while leaving
#: room for OR lists of 10 000 terms.  Longer lists belong in an uploaded table (TAP_UPLOAD).
MAX_TOKENS = 50_000
#: The largest TOP, OFFSET or integer literal: PostgreSQL's bigint.
MAX_INTEGER = 2**63 - 1

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
        NO_PAREN_FUNCTIONS: ClassVar[dict] = {}
        NO_PAREN_FUNCTION_PARSERS = {"CASE": parser.Parser.NO_PAREN_FUNCTION_PARSERS["CASE"]}
        LOG_DEFAULTS_TO_LN = True

        def _parse_join(self, skip_join_token: bool = False, parse_bracket: bool = False,
                        alias_tokens: Collection[TokenType] | None = None) -> exp.Join | None:
            comma = self._curr is not None and self._curr.token_type == TokenType.COMMA
            join = super()._parse_join(skip_join_token, parse_bracket, alias_tokens)
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


def _unsigned_integer(token: Token | None) -> TypeGuard[Token]:
    return token is not None and token.token_type == TokenType.NUMBER and token.text.isdigit()


def too_large(digits: str) -> bool:
    """Whether an unsigned integer literal exceeds bigint (checked on the text: Python refuses
    to convert more than 4300 digits, and such a value is no row count anyway)."""
    significant = digits.lstrip("0") or "0"
    return len(significant) > len(str(MAX_INTEGER)) or int(significant) > MAX_INTEGER


_OPERAND_END = frozenset({
    TokenType.VAR, TokenType.IDENTIFIER, TokenType.NUMBER, TokenType.STRING,
    TokenType.HEX_STRING, TokenType.NULL, TokenType.R_PAREN, TokenType.END,
})
_PREFIX = {TokenType.NOT: "not", TokenType.DASH: "sign", TokenType.PLUS: "sign",
           TokenType.TILDE: "sign"}
_OPERAND_TOKENS = frozenset({
    TokenType.VAR, TokenType.IDENTIFIER, TokenType.NUMBER, TokenType.STRING,
    TokenType.HEX_STRING, TokenType.NULL, TokenType.STAR, TokenType.DOT,
})
#: Binary operators end a unary sign's operand but not a NOT's (NOT a = b is NOT (a = b)).
_BINARY = frozenset({
    TokenType.DASH, TokenType.PLUS, TokenType.STAR, TokenType.SLASH, TokenType.DPIPE,
    TokenType.AMP, TokenType.PIPE, TokenType.CARET, TokenType.EQ, TokenType.NEQ, TokenType.LT,
    TokenType.LTE, TokenType.GT, TokenType.GTE, TokenType.LIKE, TokenType.ILIKE,
    TokenType.BETWEEN, TokenType.IN, TokenType.IS, TokenType.NOT,
})


def _check_nesting(query: str, toks: list[Token]) -> None:
    """Refuse a query nested deeper than :data:`MAX_NESTING` before the recursive parser sees it.

    A stack holds the open brackets (``(``, ``CASE``) and, above them, the unary operators whose
    operand has not ended yet.  A sign's operand ends at the next binary operator, a NOT's at
    the next AND (but not BETWEEN's), OR, comma or keyword, and both at a closing bracket: so
    ``NOT a OR NOT b OR ...`` and ``-a + -b + ...`` stay one level deep however long they are.
    """
    stack: list[str] = []
    betweens: list[int] = []  # stack heights of BETWEENs still waiting for their AND
    previous: Token | None = None
    operand_start = False

    def pop_markers(*kinds: str) -> None:
        while stack and stack[-1] in kinds:
            stack.pop()

    for tok in toks:
        kind = tok.token_type
        prefix = kind in _PREFIX and (previous is None or (
            previous.token_type not in _OPERAND_END and previous.token_type != TokenType.IS))
        if kind in (TokenType.L_PAREN, TokenType.CASE):
            stack.append("bracket")
        elif kind in (TokenType.R_PAREN, TokenType.END):
            pop_markers("not", "sign")
            if stack:
                stack.pop()
            while betweens and betweens[-1] > len(stack):
                betweens.pop()
        elif prefix:
            stack.append(_PREFIX[kind])
        elif kind in _BINARY:
            pop_markers("sign")
            if kind == TokenType.BETWEEN:
                betweens.append(len(stack))
        elif kind == TokenType.AND:
            pop_markers("sign")
            if betweens and betweens[-1] == len(stack):
                betweens.pop()
            else:
                pop_markers("not")
        elif kind not in _OPERAND_TOKENS and not operand_start:
            # A keyword right after a unary operator starts its operand (NOT EXISTS, -TRUNCATE).
            pop_markers("not", "sign")
        operand_start = prefix
        if len(stack) > MAX_NESTING:
            raise AdqlSyntaxError(
                f"The query is nested more than {MAX_NESTING} levels deep here (parentheses, "
                f"function calls, subqueries, CASE, NOT and unary signs each open a level); "
                f"this service accepts at most {MAX_NESTING}", *position(query, tok.start))
        previous = tok


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
            if too_large(nxt.text):
                raise AdqlSyntaxError(f"{word} must be at most {MAX_INTEGER}",
                                      *position(query, nxt.start))
            after = toks[i + 2] if i + 2 < count else None
            if kind == TokenType.OFFSET and after is not None \
                    and after.token_type not in _AFTER_OFFSET_ALLOWED:
                raise AdqlSyntaxError("OFFSET must be the last clause of a query (after ORDER BY)",
                                      *position(query, after.start))


def parse_adql(query: str) -> exp.Expr:
    """Parse one ADQL query into a sqlglot tree, refusing non-ADQL tokens and statements."""
    if not query or not query.strip():
        raise AdqlSyntaxError("The query is empty")
    nul = query.find("\x00")
    if nul >= 0:
        raise AdqlSyntaxError("The query contains a NUL character (U+0000), which ADQL text "
                              "cannot hold", *position(query, nul))
    try:
        toks = _ADQL.tokenize(query)
    except TokenError as error:
        raise _token_error(query, error) from None
    if not toks:
        raise AdqlSyntaxError("The query contains only comments")
    if len(toks) > MAX_TOKENS:
        raise AdqlSyntaxError(
            f"The query has {len(toks)} tokens (words, numbers, operators); this service "
            f"accepts at most {MAX_TOKENS}. For long lists of values, upload them as a table "
            f"(TAP_UPLOAD) and join it", *position(query, toks[MAX_TOKENS].start))
    for tok in toks:
        _check_token(query, tok)
    _check_sequence(query, toks)
    _check_nesting(query, toks)
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
