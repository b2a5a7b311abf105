"""Database errors recognised by SQLSTATE, whichever driver raised them.

PostgreSQL's message texts change with the server's locale and version; its SQLSTATE codes do
not.  ADBC errors carry ``sqlstate``, psycopg2's carry ``pgcode``, and SQLAlchemy wraps either
in ``orig``; an error raised while Arrow reads a result stream reaches Python as an
``ArrowException`` whose text ends with ADBC's ``SQLSTATE: xxxxx`` trailer.  :func:`sqlstate`
reads all of these so callers compare codes, never messages.
"""
from __future__ import annotations

import re

_TRAILER = re.compile(r"SQLSTATE: ([0-9A-Z]{5})\b")

#: canceling statement: the statement timeout, or a cancel request (a client that hung up).
QUERY_CANCELED = "57014"
UNIQUE_VIOLATION = "23505"
FOREIGN_KEY_VIOLATION = "23503"
UNDEFINED_TABLE = "42P01"
INSUFFICIENT_PRIVILEGE = "42501"
READ_ONLY_SQL_TRANSACTION = "25006"
LOCK_NOT_AVAILABLE = "55P03"
DIVISION_BY_ZERO = "22012"
#: Class 08: the connection failed or could not be made.
CONNECTION_EXCEPTION_CLASS = "08"
#: Class 57P: operator intervention (server shutting down, cannot connect now).
ADMIN_SHUTDOWN = "57P01"
CANNOT_CONNECT_NOW = "57P03"


def sqlstate(exc: BaseException | None) -> str | None:
    """The five-character SQLSTATE of a database error, or None when it carries none."""
    seen = 0
    while exc is not None and seen < 5:
        code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        if isinstance(code, str) and len(code) == 5:
            return code
        trailer = _TRAILER.search(str(exc))
        if trailer:
            return trailer.group(1)
        exc = getattr(exc, "orig", None) or exc.__cause__
        seen += 1
    return None


def is_query_canceled(exc: BaseException) -> bool:
    """True for a statement stopped by its timeout or a cancel request (SQLSTATE 57014)."""
    return sqlstate(exc) == QUERY_CANCELED


def is_connection_failure(exc: BaseException) -> bool:
    """True when the database could not be reached or dropped the connection."""
    code = sqlstate(exc)
    return code is not None and (code.startswith(CONNECTION_EXCEPTION_CLASS)
                                 or code in (ADMIN_SHUTDOWN, CANNOT_CONNECT_NOW))
