"""Domain errors of the job service; the HTTP layer renders each as a DALI error document."""
from __future__ import annotations


class UwsError(Exception):
    """Base: ``message`` is shown to the user, ``http_status`` is what the handler sends."""

    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class JobNotFoundError(UwsError):
    """No such job (never created, deleted, or destroyed at its destruction time)."""

    http_status = 404


class PermissionDeniedError(UwsError):
    """The job belongs to another user."""

    http_status = 403


class InvalidPhaseError(UwsError):
    """The request needs a phase the job is not in (e.g. changing parameters after RUN)."""


class ParameterError(UwsError):
    """A UWS parameter (PHASE, DESTRUCTION, EXECUTIONDURATION, WAIT, AFTER, LAST) is invalid."""


class QuotaExceededError(UwsError):
    """The owner already has as many queued and running jobs as allowed (retrying later helps)."""

    http_status = 429


class StorageQuotaError(UwsError):
    """The owner's stored jobs (uploads and results) fill the quota; only deleting jobs, or
    their destruction, frees it, so this is 403 rather than a retry-later 429."""

    http_status = 403
