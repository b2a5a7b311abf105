"""The Flask application factory: one blueprint per protocol, one log line per request.

The rules every request and response share live here too (docs/security.md): request bodies
and form fields within limits, no NUL character in any name or value, every error in its
protocol's own form (DALI under ``/tap`` and ``/prov``, RFC 7807 under ``/api``, HTML
elsewhere) with ``Allow`` on a 405, CORS for TAP and ``/prov``, and Content-Security-Policy and
``X-Content-Type-Options`` headers.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import BadRequest, HTTPException, MethodNotAllowed, RequestEntityTooLarge
from werkzeug.wrappers import Response as BaseResponse
from werkzeug.wsgi import LimitedStream

from vo_service.coop_api import blp as coop_api
from vo_service.coop_api import pages as coop_pages
from vo_service.core import __version__
from vo_service.core.logs import configure_logging
from vo_service.core.settings import Settings
from vo_service.products import ProblemApi, problem, product_pages, products_api
from vo_service.provenance import provenance
from vo_service.services import Services
from vo_service.tap import dali_http_error, tap
from vo_service.tsm_api import blp as tsm_api
from vo_service.uws import uws
from vo_service.vosi import vosi

log = logging.getLogger("vo_service.request")
#: Room for the form fields (QUERY, ...) of a TAP request beside its uploads.
TAP_FORM_MARGIN = 1024 * 1024
#: Largest form field that is not a file (QUERY, UPLOAD, a product's metadata): such fields are
#: held in memory, files are spooled to disk.  Flask's default, stated so that a 413 can name it.
FORM_FIELD_MAX_BYTES = 500_000
#: Most parts of one multipart form (Flask's default).
FORM_MAX_PARTS = 1_000
#: Largest body that is read whole into memory (URL-encoded forms, JSON): room for one full
#: field percent-encoded, three bytes for each.  Only multipart uploads may be larger.
INLINE_BODY_MAX_BYTES = 3 * FORM_FIELD_MAX_BYTES
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

#: Cross-origin reads (Aladin Lite, ESASky, notebooks on other hosts) of TAP and ProvSAP.  No
#: cookie authenticates anyone here and Access-Control-Allow-Credentials is never sent, so ``*``
#: lets a page read only what it could fetch without the user's help.
CORS_PREFIXES = ("/tap", "/prov")
CORS_ALLOWED_HEADERS = "Authorization, Content-Type"
CORS_EXPOSED_HEADERS = "Content-Disposition, Location, WWW-Authenticate"
CORS_MAX_AGE_S = 7200
#: Pages run only scripts and styles served from here; a JSON data island is not a script.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
DOCUMENT_TYPES = ("text/html", "application/xhtml+xml", "image/svg+xml")


def create_app(services: Services) -> Flask:
    """Build the app on the process's services (:class:`vo_service.services.Services`);
    nothing global, so tests can build several."""
    settings = services.settings
    configure_logging(settings.log_level)
    app = Flask(__name__)
    app.extensions["pzvo.services"] = services
    app.extensions["pzvo.settings"] = settings
    app.extensions["pzvo.auth"] = services.auth
    app.extensions["pzvo.tap"] = services.tap
    app.extensions["pzvo.products"] = services.products
    app.extensions["pzvo.runs"] = services.runs
    app.extensions["pzvo.uws"] = services.uws
    app.extensions["pzvo.provenance"] = services.provenance
    app.register_blueprint(tap)
    app.register_blueprint(vosi)
    app.register_blueprint(uws)
    app.register_blueprint(provenance)
    app.config.update(API_TITLE="pzvo PZ products", API_VERSION=__version__,
                      OPENAPI_VERSION="3.0.3", OPENAPI_URL_PREFIX="/api",
                      OPENAPI_JSON_PATH="openapi.json", MAX_CONTENT_LENGTH=max(settings.product_max_bytes,
                                                                          settings.upload_max_bytes),
                      MAX_FORM_MEMORY_SIZE=FORM_FIELD_MAX_BYTES, MAX_FORM_PARTS=FORM_MAX_PARTS)
    app.extensions["pzvo.api"] = api = ProblemApi(app)
    api.register_blueprint(products_api)
    api.register_blueprint(tsm_api)
    api.register_blueprint(coop_api)
    app.register_blueprint(product_pages)
    app.register_blueprint(coop_pages)

    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.register_error_handler(MethodNotAllowed, error_response)
    app.register_error_handler(HTTPException, error_response)
    app.before_request(_check_request)
    app.after_request(_cors_headers)
    app.after_request(_security_headers)
    app.after_request(_log_when_sent)
    return app


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def error_response(exc: HTTPException) -> BaseResponse:
    """An HTTP error in its protocol's form: DALI under /tap and /prov, problem details under
    /api, an HTML page elsewhere; a 405 always says what is allowed."""
    path = request.path
    if any(_under(path, prefix) for prefix in CORS_PREFIXES):
        return dali_http_error(exc)
    if _under(path, "/api"):
        if isinstance(exc, RequestEntityTooLarge):  # the API's own 413 text names only uploads
            response = problem(413, exc.name, exc.description)
        else:
            response = current_app.extensions["pzvo.api"].handle_http_exception(exc)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response
    return exc.get_response()


def _body_limit(settings: Settings) -> tuple[int, str]:
    """The most bytes this request's body may have, and the sentence that says so."""
    path = request.path
    if request.mimetype == "multipart/form-data":
        if _under(path, "/api"):
            return settings.product_max_bytes, f"uploads are limited to {settings.product_max_bytes} bytes"
        if _under(path, "/tap"):
            limit = settings.upload_max_bytes + TAP_FORM_MARGIN
            return limit, (f"a TAP request may have at most {limit} bytes: table uploads "
                           f"{settings.upload_max_bytes} (PZVO_UPLOAD_MAX_BYTES) and 1 MiB for the "
                           f"other fields")
    return INLINE_BODY_MAX_BYTES, (
        f"a request body that is not a multipart/form-data upload is read whole and may have at "
        f"most {INLINE_BODY_MAX_BYTES} bytes, each form field at most {FORM_FIELD_MAX_BYTES}")


def _field_limits() -> str:
    return (f"a form field other than a file may hold at most {FORM_FIELD_MAX_BYTES} bytes, and a "
            f"form at most {FORM_MAX_PARTS} parts; send larger data as a file part (a TAP upload, "
            f"a product file)")


def _too_large(exc: RequestEntityTooLarge) -> BaseResponse:
    """Werkzeug raises the same bare 413 for a body over its limit and for a form field or part
    count over theirs; the stream tells which, so the message names the limit that was hit."""
    if exc.description == RequestEntityTooLarge.description:
        stream = request.stream
        # A known Content-Length within the limit was let through above; without one, the
        # stream is cut at the limit and is exhausted when that is what stopped it.
        if request.content_length is None and isinstance(stream, LimitedStream) \
                and stream.is_exhausted:
            exc = RequestEntityTooLarge(_body_limit(current_app.extensions["pzvo.settings"])[1])
        else:
            exc = RequestEntityTooLarge(_field_limits())
    return error_response(exc)


def _refuse_nul(where: str, texts: Iterable[str]) -> None:
    """NUL cannot be stored in PostgreSQL text, and no name or value here needs one."""
    if any("\x00" in text for text in texts):
        raise BadRequest(f"NUL characters (%00) are not allowed in {where}.")


def _check_request() -> None:
    """Limits and NUL checks that hold for every endpoint, before any handler reads the body."""
    g.started = time.perf_counter()
    settings: Settings = current_app.extensions["pzvo.settings"]
    limit, sentence = _body_limit(settings)
    # Enforced while the body is read too, so a chunked upload (no Content-Length) is stopped
    # at the limit, not after it has been spooled to disk.
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge(sentence)
    _refuse_nul("the URL path", [request.path])
    _refuse_nul("the query string", (text for key, values in request.args.lists()
                                     for text in (key, *values)))
    if request.mimetype not in FORM_TYPES:
        return
    form = request.form
    _refuse_nul("the form", (text for key, values in form.lists() for text in (key, *values)))
    _refuse_nul("the form's file parts", (text for key, part in request.files.items(multi=True)
                                          for text in (key, part.filename or "")))
    if request.mimetype != "multipart/form-data":
        # Werkzeug limits only multipart fields; a URL-encoded one gets the same limit here.
        for name, value in form.items(multi=True):
            if len(value.encode()) > FORM_FIELD_MAX_BYTES:
                raise RequestEntityTooLarge(f"The form field {name[:40]!r} is too large: "
                                            f"{_field_limits()}")


def _cors_headers(response: Response) -> Response:
    """TAP and /prov are read by browser clients on other sites: simple requests and preflights."""
    if not any(_under(request.path, prefix) for prefix in CORS_PREFIXES):
        return response
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED_HEADERS
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        methods = response.headers.get("Allow") or "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Methods"] = methods
        response.headers["Access-Control-Allow-Headers"] = CORS_ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE_S)
    return response


def _security_headers(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    if response.status_code == 401:  # RFC 9110: a 401 says how to authenticate, pages too
        response.headers.setdefault("WWW-Authenticate", 'Bearer realm="pzvo"')
    if response.mimetype in DOCUMENT_TYPES:
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
    return response


def _log_when_sent(response: Response) -> Response:
    started = getattr(g, "started", time.perf_counter())
    method, path, status = request.method, request.path, response.status_code
    extra = dict(getattr(g, "log_extra", {}))

    def emit() -> None:
        result_status = extra.pop("status", None)
        if result_status is not None:
            extra.update(rows=result_status.rows, overflow=result_status.overflow)
        log.info("request", extra={"method": method, "path": path, "http_status": status,
                                   "ms": round((time.perf_counter() - started) * 1e3, 2),
                                   **extra})

    response.call_on_close(emit)
    return response
