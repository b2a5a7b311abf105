"""WSGI entry point for gunicorn (``pzvo serve``)."""
from vo_service.app import create_app

app = create_app()
