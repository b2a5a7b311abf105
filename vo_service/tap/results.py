"""Types shared by the ADQL translator, the query runner and the output encoders (the result
columns themselves are :class:`vo_service.core.columns.Column`)."""
from __future__ import annotations

from dataclasses import dataclass, field

from vo_service.core.columns import Column
from vo_service.tap._exceptions import ExecutionError


@dataclass(frozen=True)
class SelectItem:
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
    source: Column | None = None
    datatype: str | None = None
    arraysize: str | None = None
    xtype: str | None = None
    unit: str | None = None
    ucd: str | None = None


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
