"""The TAP 1.1 protocol: sync queries, uploads, ADQL translation, output formats.

Async queries (UWS) are in :mod:`vo_service.uws`, which runs them through this package; so do
product downloads and pages (:mod:`vo_service.products`).  Other packages import from here (or
:mod:`vo_service.tap.dali`, :mod:`vo_service.tap.formats`, :mod:`vo_service.tap.results`), never
from the private ``_`` modules.  Every query runs through :meth:`TapService.stream`."""
from vo_service.tap._binary2 import DecodedTable
from vo_service.tap._binary2 import decode as decode_binary2
from vo_service.tap._binary2 import encode as encode_binary2
from vo_service.tap._exceptions import (
    ExecutionError,
    QueryError,
    QueryTimeoutError,
    ServiceUnavailableError,
    TapError,
    UsageError,
)
from vo_service.tap._handlers import tap
from vo_service.tap._params import QueryParams, parse_query_params
from vo_service.tap._service import BatchTransform, QueryResult, TapService, query_infos
from vo_service.tap._uploads import (
    UploadError,
    UploadLimits,
    UploadSpec,
    UploadStore,
    UploadTable,
    collect_uploads,
    parse_upload_param,
    read_votable,
)
from vo_service.tap.dali import (
    dali_error,
    dali_http_error,
    install_dali_errors,
    merge_params,
    request_files,
    request_params,
    stream_response,
)
from vo_service.tap.results import ResultStatus

__all__ = [
    # the query path: TapService.stream(QueryParams, ...) -> QueryResult
    "DecodedTable", "decode_binary2", "encode_binary2",
    "BatchTransform", "QueryParams", "QueryResult", "ResultStatus", "TapService",
    "parse_query_params", "query_infos",
    # errors (each has ``message`` and ``http_status``)
    "ExecutionError", "QueryError", "QueryTimeoutError", "ServiceUnavailableError", "TapError",
    "UsageError",
    # TAP_UPLOAD
    "UploadError", "UploadLimits", "UploadSpec", "UploadStore", "UploadTable", "collect_uploads",
    "parse_upload_param", "read_votable",
    # HTTP: the /tap blueprint and DALI plumbing for the other TAP-family blueprints
    "dali_error", "dali_http_error", "install_dali_errors", "merge_params", "request_files",
    "request_params", "stream_response", "tap",
]
