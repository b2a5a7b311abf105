"""Errors of the file readers (``ingest.readers``) and of loading (``ingest.load``)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ingest.limits import Limit

#: 413 for how much there is (rows, bytes), 422 for what it looks like (columns, cell sizes).
LimitKind = Literal["size", "shape"]


class ReadError(ValueError):
    """The file cannot be read as the format it claims (corrupt, truncated, ragged, ...)."""


class LimitExceeded(ReadError):
    """A declared or counted size is over a configured limit (``limit`` names the setting)."""

    def __init__(self, message: str, *, limit: Limit, value: int, kind: LimitKind) -> None:
        super().__init__(message)
        self.limit = limit
        self.value = value
        self.kind = kind


class UnsupportedData(ReadError):
    """A readable file holding something the service does not take (array columns, an encoding
    its pre-scan cannot follow); the message says what to change."""
