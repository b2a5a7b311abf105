"""Errors the ADQL layer raises; the TAP layer turns them into DALI error documents."""
from __future__ import annotations


class AdqlError(Exception):
    """A query that cannot be run, with a message meant for the person who wrote it.

    ``line`` and ``col`` are 1-based and point at the offending token when it is known, so
    that the message can say where to look.
    """

    def __init__(self, message: str, line: int | None = None, col: int | None = None) -> None:
        self.message = message
        self.line = line
        self.col = col
        where = f" (line {line}, column {col})" if line is not None and col is not None else ""
        super().__init__(message + where)


class AdqlSyntaxError(AdqlError):
    """The text is not ADQL: unparseable, PostgreSQL-only syntax, several statements, not a query."""


class AdqlSemanticError(AdqlError):
    """Well-formed ADQL that does not fit the catalogue or the type rules."""
