"""HTTP layer of TAP: parse the request, call the service, stream the encoded result.

Every error leaving ``/tap`` is a DALI error document (VOTable, QUERY_STATUS=ERROR).
"""
from __future__ import annotations

import datetime as dt
import io
import logging
from typing import BinaryIO

from flask import Blueprint, Response, current_app, g, render_template, request
from werkzeug.exceptions import HTTPException

from vo_service.core import __version__
from vo_service.auth import AuthError
from vo_service.auth.web import current_reader
from vo_service.core.hangup import QueryGuard
from vo_service.tap._exceptions import TapError
from vo_service.tap._params import merge_params, parse_query_params
from vo_service.tap._service import TapService
from vo_service.tap.formats import error_document
from vo_service.tap.results import response_body

log = logging.getLogger(__name__)

tap = Blueprint("tap", __name__, url_prefix="/tap")
VOTABLE_MIME = "application/x-votable+xml"


def tap_service() -> TapService:
    return current_app.extensions["pzvo.tap"]


def dali_error(message: str, status: int) -> Response:
    return Response(error_document(message), status=status, mimetype=VOTABLE_MIME)


def _domain_error(exc: TapError) -> Response:
    g.log_extra = {**getattr(g, "log_extra", {}), "error": exc.message}
    return dali_error(exc.message, exc.http_status)


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


install_dali_errors(tap, TapError)


def request_files() -> dict[str, BinaryIO]:
    """Multipart file parts by field name (UPLOAD=name,param:<field>)."""
    parts: dict[str, BinaryIO] = {name: io.BytesIO(value.encode())
                                  for name, value in request.form.items()}
    parts.update({name: storage.stream for name, storage in request.files.items()})
    return parts


@tap.route("", strict_slashes=False)
def root() -> str:
    return render_template("tap_root.html", base=request.host_url.rstrip("/") + "/tap")


@tap.route("/sync", methods=["GET", "POST"])
def sync() -> Response:
    """TAP 1.1 synchronous query (DALI: parameter names case-insensitive, GET and POST)."""
    current_reader()
    settings = tap_service().settings
    params = parse_query_params(
        merge_params(request.args.to_dict(flat=False), request.form.to_dict(flat=False)),
        maxrec_default=settings.maxrec_default, maxrec_limit=settings.maxrec_limit)
    uploads = tap_service().read_uploads(params, request_files()) if params.uploads else []
    guard = QueryGuard(request.environ, describe=params.query)
    try:
        result = tap_service().run(params, uploads=uploads, on_connection=guard.attach,
                                   on_release=guard.release)
    except TapError:
        if guard.hung_up:
            g.log_extra = {"query": params.query, "client": "hung up, query cancelled"}
        raise
    g.log_extra = {"query": params.query, "format": params.format.key, "maxrec": params.maxrec,
                   **{k: round(v, 2) for k, v in result.timings.items()}, "status": result.status}
    infos = {
        "QUERY": params.query,
        "LANG": params.lang,
        "REQUEST_DATE": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "SERVER_SOFTWARE": f"pzvo {__version__}",
    }
    chunks = params.format.encode(result.fields, result.batches, result.status, infos=infos)
    response = Response(response_body(chunks, result.batches), mimetype=params.format.mime_type)
    response.headers["Content-Disposition"] = f'inline; filename="result.{params.format.extension}"'
    return response
