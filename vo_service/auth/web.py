"""Flask glue: the current request's user, resolved once and kept on ``flask.g``."""
from __future__ import annotations

from flask import current_app, g, request

from vo_service.auth._service import AuthService, User


def auth_service() -> AuthService:
    return current_app.extensions["pzvo.auth"]


def current_user() -> User:
    """The request's user (ANONYMOUS without credentials); raises AuthError for bad ones."""
    if "pzvo_user" not in g:
        g.pzvo_user = auth_service().authenticate(request.headers.get("Authorization"),
                                                  request.headers.get("X-Auth-Request-User"))
    return g.pzvo_user


def current_reader() -> User:
    return auth_service().require_reader(current_user())
