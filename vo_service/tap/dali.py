"""HTTP plumbing shared by the TAP-family blueprints (``/tap``, ``/tap/async``, ``/prov``) and
by whatever else streams a query result over HTTP (product downloads).

Error documents (VOTable, QUERY_STATUS=ERROR) for domain, authentication and HTTP errors, the
case-insensitive merge of query-string and form parameters, the multipart parts that
``UPLOAD=name,param:<field>`` refers to, and a :class:`QueryResult` as a streamed response.
"""
from __future__ import annotations

import io
import logging
from typing import IO

from flask import Blueprint, Response, g, request
from werkzeug.exceptions import HTTPException

from vo_service.auth import AuthError
from vo_service.tap._params import merge_params
from vo_service.tap._service import QueryResult
from vo_service.tap.formats import error_document

log = logging.getLogger(__name__)

VOTABLE_MIME = "application/x-votable+xml"

__all__ = ["VOTABLE_MIME", "dali_error", "dali_http_error", "install_dali_errors", "merge_params",
           "request_files", "request_params", "stream_response"]


def dali_error(message: str, status: int) -> Response:
    """A DALI error document (VOTable with QUERY_STATUS=ERROR) with an HTTP status."""
    return Response(error_document(message), status=status, mimetype=VOTABLE_MIME)


def _domain_error(exc: Exception) -> Response:
    message = getattr(exc, "message", None) or str(exc)
    g.log_extra = {**getattr(g, "log_extra", {}), "error": message}
    return dali_error(message, getattr(exc, "http_status", 400))


def _auth_error(exc: AuthError) -> Response:
    response = dali_error(exc.message, exc.http_status)
    if exc.http_status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="pzvo"'
    return response


def dali_http_error(exc: HTTPException) -> Response:
    """An HTTP error (404, 405, 413, ...) as a DALI document, keeping what its headers say:
    ``Allow`` on a 405 (RFC 9110), ``Retry-After`` where werkzeug sets it."""
    response = dali_error(f"{exc.name}: {exc.description}", exc.code or 500)
    for name, value in exc.get_headers():
        if name in ("Allow", "Retry-After"):
            response.headers[name] = value
    return response


def _unexpected(exc: Exception) -> Response:
    log.exception("unexpected error in a TAP request")
    return dali_error(f"Internal error ({type(exc).__name__}); the service log has details.", 500)


def install_dali_errors(blueprint: Blueprint, *domain_errors: type[Exception]) -> None:
    """Answer everything a TAP-family blueprint can raise with a DALI error document.

    ``domain_errors`` carry ``message`` and ``http_status``; authentication errors add the
    ``WWW-Authenticate`` challenge; anything unexpected is logged and becomes a 500.
    """
    for cls in domain_errors:
        blueprint.register_error_handler(cls, _domain_error)
    blueprint.register_error_handler(AuthError, _auth_error)
    blueprint.register_error_handler(HTTPException, dali_http_error)
    blueprint.register_error_handler(Exception, _unexpected)


def request_params() -> dict[str, list[str]]:
    """The request's query-string and form parameters, names folded to lower case (DALI 1.1)."""
    return merge_params(request.args.to_dict(flat=False), request.form.to_dict(flat=False))


def request_files() -> dict[str, IO[bytes]]:
    """Multipart file parts by field name (UPLOAD=name,param:<field>)."""
    parts: dict[str, IO[bytes]] = {name: io.BytesIO(value.encode())
                                  for name, value in request.form.items()}
    parts.update({name: storage.stream for name, storage in request.files.items()})
    return parts


def stream_response(result: QueryResult, *, attachment: bool = False) -> Response:
    """A query result as a streamed response with its media type and file name.

    The first chunk is taken now (:meth:`QueryResult.body`), so an error before any byte
    raises here, for the blueprint's error handler; a later one breaks the transfer off.
    """
    response = Response(result.body(), mimetype=result.media_type)
    disposition = "attachment" if attachment else "inline"
    response.headers["Content-Disposition"] = f'{disposition}; filename="{result.filename}"'
    return response
