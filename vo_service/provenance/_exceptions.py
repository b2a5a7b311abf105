"""Domain errors of provenance capture and access; the HTTP layer maps them to DALI errors."""
from __future__ import annotations


class ProvenanceError(Exception):
    """Base class: a provenance request or record is not acceptable.

    ``http_status`` is what the HTTP layer answers with (400 unless a subclass says otherwise).
    """

    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidIdentifierError(ProvenanceError):
    """An identifier is not of the documented form (``pzvo:<local part>``)."""


class UnknownRecordError(ProvenanceError):
    """An identifier names no entity, activity or agent."""

    http_status = 404

    def __init__(self, message: str, missing: list[str] | None = None) -> None:
        super().__init__(message)
        self.missing = missing or []


class EntityExistsError(ProvenanceError):
    """An activity tried to generate an entity that already exists (ids are never reused)."""

    http_status = 409


class InvalidParameterError(ProvenanceError):
    """A ProvSAP parameter (DEPTH, DIRECTION, RESPONSEFORMAT, ...) has a bad value."""


class GraphTooLargeError(ProvenanceError):
    """The requested graph has more nodes than the chosen format allows."""
