"""Users, tokens and the access rules shared by every protocol."""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

TOKEN_PREFIX = "pzvo_"
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


@dataclass(frozen=True)
class User:
    name: str
    is_admin: bool = False
    anonymous: bool = False


ANONYMOUS = User(name="anonymous", anonymous=True)


class AuthError(Exception):
    """Base of authentication and authorization failures; ``http_status`` for the handlers."""

    http_status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAuthenticatedError(AuthError):
    """No credentials where they are needed, or credentials that match no user (401)."""


class ForbiddenError(AuthError):
    """A known user asking for something only an admin or the owner may do (403)."""

    http_status = 403


class UserExistsError(ValueError):
    """``pzvo user add`` for a name that is taken."""


def hash_token(token: str) -> str:
    """Tokens are 192-bit random strings, so a plain SHA-256 is a sufficient one-way hash."""
    return hashlib.sha256(token.encode()).hexdigest()


class AuthService:
    """Create users and tokens; turn request credentials into a :class:`User`."""

    def __init__(self, *, engine: Engine, trust_proxy_header: bool = False,
                 public_read: bool = False) -> None:
        self.engine = engine
        self.trust_proxy_header = trust_proxy_header
        self.public_read = public_read

    def add_user(self, name: str, *, admin: bool = False) -> str:
        """Create a user and return a new token for it (shown once, stored hashed)."""
        if not _NAME.match(name):
            raise ValueError("user names are 1-64 characters of letters, digits and _ . @ -")
        try:
            with self.engine.begin() as conn:
                conn.execute(text("INSERT INTO registry.users (name, is_admin) VALUES (:n, :a)"),
                             {"n": name, "a": admin})
                return self._new_token(conn, name)
        except IntegrityError as exc:
            raise UserExistsError(f"user {name!r} exists; use `pzvo user token {name}`") from exc

    def issue_token(self, name: str) -> str:
        """Another token for an existing user."""
        with self.engine.begin() as conn:
            if not conn.execute(text("SELECT 1 FROM registry.users WHERE name = :n"), {"n": name}).first():
                raise KeyError(name)
            return self._new_token(conn, name)

    @staticmethod
    def _new_token(conn, name: str) -> str:  # noqa: ANN001
        token = TOKEN_PREFIX + secrets.token_urlsafe(24)
        conn.execute(text("INSERT INTO registry.tokens (token_hash, user_name) VALUES (:h, :n)"),
                     {"h": hash_token(token), "n": name})
        return token

    def ensure_proxy_user(self, name: str) -> User:
        """A user named by the RSP auth proxy exists here from its first request on."""
        if not _NAME.match(name):
            raise NotAuthenticatedError("The X-Auth-Request-User header holds no valid user name.")
        with self.engine.begin() as conn:
            row = conn.execute(text(
                "INSERT INTO registry.users (name) VALUES (:n) ON CONFLICT (name) DO UPDATE "
                "SET name = EXCLUDED.name RETURNING is_admin"), {"n": name}).first()
        return User(name=name, is_admin=bool(row[0]))

    def authenticate(self, authorization: str | None, proxy_user: str | None = None) -> User:
        """The user behind a request's headers; ANONYMOUS when it carries no credentials.

        A token that is malformed or unknown is an error (401), never a silent anonymous.
        """
        if self.trust_proxy_header and proxy_user:
            return self.ensure_proxy_user(proxy_user)
        if not authorization:
            return ANONYMOUS
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticatedError("Use 'Authorization: Bearer <token>' (from `pzvo user add`).")
        with self.engine.begin() as conn:
            row = conn.execute(text(
                "UPDATE registry.tokens t SET last_used_at = now() FROM registry.users u "
                "WHERE t.token_hash = :h AND u.name = t.user_name RETURNING u.name, u.is_admin"),
                {"h": hash_token(token.strip())}).first()
        if row is None:
            raise NotAuthenticatedError("The bearer token is not valid (unknown or revoked).")
        return User(name=row[0], is_admin=bool(row[1]))

    # -- rules ---------------------------------------------------------------------------------
    def require_reader(self, user: User) -> User:
        """Reading products and running queries needs a user unless reads are public."""
        if user.anonymous and not self.public_read:
            raise NotAuthenticatedError("This service needs a user: send 'Authorization: Bearer <token>'.")
        return user

    @staticmethod
    def require_user(user: User) -> User:
        """Writing (uploads, jobs) always needs a known user."""
        if user.anonymous:
            raise NotAuthenticatedError("This needs a user: send 'Authorization: Bearer <token>'.")
        return user

    @staticmethod
    def require_admin(user: User, what: str) -> User:
        AuthService.require_user(user)
        if not user.is_admin:
            raise ForbiddenError(f"Only an administrator (PZ Coordination Group) may {what}.")
        return user

    @staticmethod
    def require_owner_or_admin(user: User, owner: str, what: str) -> User:
        AuthService.require_user(user)
        if user.name != owner and not user.is_admin:
            raise ForbiddenError(f"Only the owner ({owner}) or an administrator may {what}.")
        return user
