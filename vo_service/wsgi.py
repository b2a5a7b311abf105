"""WSGI entry point for gunicorn (``pzvo serve``).

Behind the nginx front (``vo_service/serving.py`` sets ``PZVO_BEHIND_FRONT``), gunicorn listens
on a unix socket that only nginx reaches, so the client's address, scheme and host come from
the one set of ``X-Forwarded-*`` headers nginx writes.
"""
import os

from werkzeug.middleware.proxy_fix import ProxyFix

from vo_service.app import create_app

app = create_app()
if os.environ.get("PZVO_BEHIND_FRONT") == "1":
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
