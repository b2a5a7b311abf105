"""HTTP layer of TAP: parse the request, call the service, stream the encoded result.

Every error leaving ``/tap`` is a DALI error document (VOTable, QUERY_STATUS=ERROR).
"""
from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, g, render_template, request

from vo_service.auth.web import current_reader
from vo_service.core.hangup import QueryGuard
from vo_service.tap._exceptions import TapError
from vo_service.tap._params import parse_query_params
from vo_service.tap._service import TapService
from vo_service.tap.dali import (
    install_dali_errors,
    request_files,
    request_params,
    stream_response,
)

log = logging.getLogger(__name__)

tap = Blueprint("tap", __name__, url_prefix="/tap")


def tap_service() -> TapService:
    return current_app.extensions["pzvo.tap"]


install_dali_errors(tap, TapError)


@tap.route("", strict_slashes=False)
def root() -> str:
    return render_template("tap_root.html", base=request.host_url.rstrip("/") + "/tap")


@tap.route("/sync", methods=["GET", "POST"])
def sync() -> Response:
    """TAP 1.1 synchronous query (DALI: parameter names case-insensitive, GET and POST)."""
    current_reader()
    service = tap_service()
    params = parse_query_params(request_params(), maxrec_default=service.settings.maxrec_default,
                                maxrec_limit=service.settings.maxrec_limit)
    uploads = service.read_uploads(params, request_files()) if params.uploads else []
    guard = QueryGuard(request.environ, describe=params.query)
    try:
        result = service.stream(params, uploads=uploads, on_connection=guard.attach,
                                on_release=guard.release)
    except TapError:
        if guard.hung_up:
            g.log_extra = {"query": params.query, "client": "hung up, query cancelled"}
        raise
    g.log_extra = {"query": params.query, "format": params.format.key, "maxrec": params.maxrec,
                   **{k: round(v, 2) for k, v in result.timings.items()}, "status": result.status}
    return stream_response(result)
