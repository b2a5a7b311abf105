"""Domain errors of the TAP layer; the HTTP layer turns each into a DALI error document."""
from __future__ import annotations


class TapError(Exception):
    """Base: ``message`` is shown to the user; ``http_status`` is what the handler sends."""

    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(TapError):
    """A missing or invalid request parameter (LANG, REQUEST, MAXREC, RESPONSEFORMAT, ...)."""


class QueryError(TapError):
    """The query is not valid ADQL or names something that is not published."""


class QueryTimeoutError(TapError):
    """The query ran longer than the statement timeout."""


class ExecutionError(TapError):
    """PostgreSQL refused or failed the translated query (e.g. a division by zero)."""


class ServiceUnavailableError(TapError):
    """The database cannot be reached."""

    http_status = 503
