"""Async TAP: UWS 1.1 jobs stored in PostgreSQL and run by ``pzvo worker`` processes.

``_models`` (phases, the job record, job kinds), ``_tasks`` (what a runner of pipeline jobs
gets), ``_storage`` (the ``uws.jobs`` table and the claim/lease
protocol), ``_service`` (life cycle and access rules, no Flask), ``_handlers`` (HTTP at
``/tap/async``), ``_worker`` (execution, heartbeats, the reaper).  See ``docs/async.md``.
"""
from vo_service.uws._exceptions import (
    InvalidPhaseError,
    JobNotFoundError,
    ParameterError,
    PermissionDeniedError,
    QuotaExceededError,
    StorageQuotaError,
    UwsError,
)
from vo_service.uws._handlers import uws
from vo_service.uws._models import TAP_KIND, ExecutionPhase, Job
from vo_service.uws._service import UwsService
from vo_service.uws._storage import JobStore
from vo_service.uws._tasks import JobRunner, TaskCancelled, TaskContext, TaskFailed
from vo_service.uws._worker import Worker

__all__ = ["TAP_KIND", "ExecutionPhase", "InvalidPhaseError", "Job", "JobNotFoundError", "JobRunner", "JobStore",
           "ParameterError", "PermissionDeniedError", "QuotaExceededError", "StorageQuotaError", "TaskCancelled",
           "TaskContext", "TaskFailed", "UwsError", "UwsService", "Worker", "uws"]
