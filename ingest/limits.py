"""Limits on what a file may declare or hold, checked before the bytes they announce exist.

A few hundred bytes can declare gigabytes (a VOTable FIELD of ``arraysize="100000000"``, an
HDF5 dataset of 50M rows that were never written, a Parquet page that inflates a thousandfold),
and the libraries allocate what is declared.  Readers therefore compare every declared size
with a :class:`ReadLimits` first and raise :class:`LimitExceeded`, which names the setting, so
the message tells the user which limit they hit and the operator which setting to change.
"""
from __future__ import annotations

from dataclasses import dataclass

from ingest.errors import LimitExceeded, LimitKind

__all__ = ["PG_MAX_COLUMNS", "Limit", "LimitExceeded", "ReadLimits", "check"]

#: A PostgreSQL table has at most 1600 columns, whatever a setting says.
PG_MAX_COLUMNS = 1600


@dataclass(frozen=True)
class Limit:
    """One configured maximum and the setting it comes from (shown in messages)."""

    setting: str
    maximum: int


@dataclass(frozen=True)
class ReadLimits:
    """What a reader accepts; ``None`` leaves that dimension unchecked (trusted callers).

    ``memory_bytes`` bounds what a reader that parses a whole file at once (VOTable, gzip FITS)
    may hold; streaming readers never hold more than a batch.
    """

    rows: Limit | None = None
    columns: Limit | None = None
    cell_bytes: Limit | None = None
    memory_bytes: Limit | None = None


def check(limit: Limit | None, value: int, what: str, *, kind: LimitKind, where: str = "") -> None:
    """Raise :class:`LimitExceeded` when ``value`` is over ``limit``.

    ``what`` says what was found with a ``{value}`` placeholder, e.g. ``"{value} columns"``.
    """
    if limit is not None and value > limit.maximum:
        prefix = f"{where}: " if where else ""
        found = what.replace("{value}", str(value))
        raise LimitExceeded(f"{prefix}{found}; the limit is {limit.maximum} ({limit.setting})",
                            limit=limit, value=value, kind=kind)
