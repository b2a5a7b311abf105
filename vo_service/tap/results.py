"""Types shared by the ADQL translator, the query runner and the output encoders."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from vo_service.tap._exceptions import ExecutionError
from vo_service.tap.catalog import ColumnMeta


@dataclass(frozen=True)
class OutputColumn:
    """One item of a translated query's select list.

    ``name`` is the label a user sees (the ADQL alias, column name or a generated name);
    ``sql_alias`` the unique alias the generated SQL gives it, which is the Arrow field name of
    the result.  ``source`` is set when the item is a bare column reference, so the result FIELD
    inherits that column's unit, UCD and description.  ``datatype``/``arraysize``/``xtype`` are
    set when the translator knows the VOTable type (geometry, COUNT, casts); otherwise the type
    follows ``source`` or, failing that, the Arrow type of the result.
    """

    name: str
    sql_alias: str
    source: ColumnMeta | None = None
    datatype: str | None = None
    arraysize: str | None = None
    xtype: str | None = None
    unit: str | None = None
    ucd: str | None = None


@dataclass(frozen=True)
class ResultField:
    """Everything an encoder needs to describe one result column (a VOTable FIELD)."""

    name: str
    datatype: str
    arraysize: str | None = None
    xtype: str | None = None
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    description: str | None = None


@dataclass
class ResultStatus:
    """Filled in while the result streams; encoders read it after the last batch.

    ``overflow`` is true when the query produced more rows than MAXREC (or the TOP the user
    asked for was capped by it); ``rows`` counts the rows actually sent; ``error`` is set when
    the database failed after the response had started, so that a document with room for it
    (VOTable's QUERY_STATUS, a JSON member) can say so; ``failure`` is the same error as an
    exception, for :meth:`raise_failure`.
    """

    overflow: bool = False
    error: str | None = None
    rows: int = 0
    infos: dict[str, str] = field(default_factory=dict)
    failure: Exception | None = field(default=None, repr=False)

    def fail(self, exc: Exception) -> None:
        """Record that the stream ended early because of ``exc``."""
        self.failure = exc
        self.error = getattr(exc, "message", None) or str(exc)

    def raise_failure(self) -> None:
        """Raise the error that ended the stream early, if any.

        Encoders of formats that cannot carry an error (CSV, TSV, FITS, Parquet) call this
        before their last bytes: a sync response then breaks off without its final chunk, so
        the client sees a failed transfer instead of a clean, silently truncated file, and an
        async job goes to ERROR.
        """
        if self.error is not None:
            raise self.failure if self.failure is not None else ExecutionError(self.error)


def response_body(chunks: Iterator[bytes], batches: Iterator[object]) -> Iterator[bytes]:
    """An encoder's output as a streamed HTTP body, its first chunk taken now.

    Taking it before the response starts turns an error raised before any byte (FITS spools
    the whole result before its header) into an error document with an HTTP status; the
    batches are closed then, which returns the connection and drops uploads.  An error
    raised later propagates out of the WSGI iteration: the server ends the connection without
    the terminating chunk, so the client sees an incomplete transfer, never a clean short file.
    """
    try:
        first = next(chunks, b"")
    except BaseException:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
        raise

    def body() -> Iterator[bytes]:
        yield first
        yield from chunks

    return body()
