"""The Flask application factory: one blueprint per protocol, one log line per request."""
from __future__ import annotations

import logging
import time

from flask import Flask, g, request
from werkzeug.exceptions import HTTPException

from vo_service import __version__
from vo_service.auth import AuthService
from vo_service.config import Settings, load_settings
from vo_service.database import owner_engine
from vo_service.logs import configure_logging
from vo_service.products import ProductRegistry
from vo_service.products.api import ProblemApi
from vo_service.products.api import blp as products_api
from vo_service.products.pages import pages as product_pages
from vo_service.provenance._handlers import provenance
from vo_service.tap import tap
from vo_service.tap._handlers import dali_error
from vo_service.tap._service import TapService
from vo_service.tap._storage import ConnectionPool
from vo_service.uws import JobStore, UwsService
from vo_service.uws._handlers import uws
from vo_service.vosi import vosi

log = logging.getLogger("vo_service.request")
#: Room for the form fields (QUERY, ...) of a TAP request beside its uploads.
TAP_FORM_MARGIN = 1024 * 1024


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app with its services; nothing global, so tests can build several."""
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    app = Flask(__name__)
    pool = ConnectionPool(settings.query_url(), size=settings.pool_size,
                          statement_timeout_ms=int(settings.query_timeout_s * 1000))
    app.extensions["pzvo.settings"] = settings
    app.extensions["pzvo.auth"] = AuthService(engine=owner_engine(settings),
                                              trust_proxy_header=settings.trust_proxy_header,
                                              public_read=settings.public_read)
    app.extensions["pzvo.tap"] = TapService(settings=settings, pool=pool)
    app.extensions["pzvo.products"] = ProductRegistry(engine=owner_engine(settings),
                                                      storage_dir=settings.products_dir)
    app.register_blueprint(tap)
    app.register_blueprint(vosi)
    app.extensions["pzvo.uws"] = UwsService(settings=settings, store=JobStore(owner_engine(settings)))
    app.register_blueprint(uws)
    app.register_blueprint(provenance)
    app.config.update(API_TITLE="pzvo PZ products", API_VERSION=__version__,
                      OPENAPI_VERSION="3.0.3", OPENAPI_URL_PREFIX="/api",
                      OPENAPI_JSON_PATH="openapi.json", MAX_CONTENT_LENGTH=max(settings.product_max_bytes,
                                                                          settings.upload_max_bytes))
    api = ProblemApi(app)
    api.register_blueprint(products_api)
    app.register_blueprint(product_pages)

    @app.errorhandler(HTTPException)
    def _protocol_error(exc: HTTPException):  # noqa: ANN202
        """Every error in its protocol's own form: DALI under /tap, problem details under /api."""
        if request.path.startswith("/tap"):
            return dali_error(f"{exc.name}: {exc.description}", exc.code or 500)
        if request.path.startswith("/api"):
            return api.handle_http_exception(exc)
        return exc

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()
        # Enforced while the body is read, so a chunked upload (no Content-Length) is stopped at
        # the limit too, not after it has been spooled to disk.
        if request.path.startswith("/api"):
            request.max_content_length = settings.product_max_bytes
        elif request.path.startswith("/tap"):
            request.max_content_length = settings.upload_max_bytes + TAP_FORM_MARGIN

    @app.after_request
    def _log_when_sent(response):  # noqa: ANN001, ANN202
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

    return app
