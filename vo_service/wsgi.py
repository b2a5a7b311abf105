"""WSGI entry point for gunicorn (``pzvo serve``).

Behind the nginx front (``vo_service/serving.py`` sets ``PZVO_BEHIND_FRONT``), gunicorn listens
on a unix socket that only nginx reaches, so the client's address, scheme and host come from
the one set of ``X-Forwarded-*`` headers nginx writes.

An invalid configuration stops the server with one line naming what to fix. Under gunicorn
that line is an ``AppImportError``, which halts it ("App failed to load") without a traceback;
a ``SystemExit`` there would only make it start the failing worker again and again.
"""
import os
import sys

from werkzeug.middleware.proxy_fix import ProxyFix

from vo_service.app import create_app
from vo_service.core.settings import SettingsError, load_settings
from vo_service.services import Services

try:
    app = create_app(Services.build(load_settings()))
except SettingsError as exc:
    message = f"pzvo: configuration error: {exc}"
    if "gunicorn" in sys.modules:
        from gunicorn.errors import AppImportError

        raise AppImportError(message) from None
    sys.exit(message)
if os.environ.get("PZVO_BEHIND_FRONT") == "1":
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
