"""Users, tokens and the access rules shared by every protocol."""
from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from vo_service.core.errors import UNIQUE_VIOLATION, sqlstate

TOKEN_PREFIX = "pzvo_"
# Stored in clear to name a token: "pzvo_" and 8 random characters, 48 of its 192 bits.
SHOWN_PREFIX_LEN = len(TOKEN_PREFIX) + 8
OPERATOR = "pzvo"
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class User:
    name: str
    is_admin: bool = False
    anonymous: bool = False


ANONYMOUS = User(name="anonymous", anonymous=True)


@dataclass(frozen=True)
class UserSummary:
    name: str
    is_admin: bool
    created_at: datetime
    live_tokens: int
    last_used_at: datetime | None


@dataclass(frozen=True)
class TokenInfo:
    prefix: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    expired: bool


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


class UnknownUserError(KeyError):
    """A name that is no user (a KeyError, as ``issue_token`` always raised)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"no user {self.name!r}"


@dataclass(frozen=True)
class DeletedUser:
    """What ``pzvo user delete`` did: tokens deleted, jobs aborted and expired, product
    versions handed over (``products_to``; ``live_products`` of them not deleted ones)."""

    name: str
    tokens: int
    jobs: int
    products: int
    live_products: int
    products_to: str


class UserOwnsProductsError(ValueError):
    """``pzvo user delete`` of a user who still owns live products, with nobody to take them."""

    def __init__(self, name: str, products: list[str]) -> None:
        shown = ", ".join(products[:10]) + (f" and {len(products) - 10} more" if len(products) > 10 else "")
        super().__init__(f"{name} owns {len(products)} live product version(s): {shown}")
        self.products = products


class UnknownTokenError(LookupError):
    """``pzvo user revoke --token-prefix`` for a token that does not exist (or is gone)."""


def hash_token(token: str) -> str:
    """Tokens are 192-bit random strings, so a plain SHA-256 is a sufficient one-way hash."""
    return hashlib.sha256(token.encode()).hexdigest()


class AuthService:
    """Create users and tokens; turn request credentials into a :class:`User`."""

    def __init__(self, *, engine: Engine, trust_proxy_header: bool = False,
                 public_read: bool = False,
                 retire_jobs: Callable[[Connection, str], int] | None = None) -> None:
        """``retire_jobs(conn, user)`` aborts a deleted user's async jobs inside the deletion's
        transaction and returns how many (the job queue lives above this package, so the
        composition root hands its ``JobStore.retire_owner`` in)."""
        self.engine = engine
        self._retire_jobs = retire_jobs
        self.trust_proxy_header = trust_proxy_header
        self.public_read = public_read

    def add_user(self, name: str, *, admin: bool = False, expires_in: timedelta | None = None) -> str:
        """Create a user and return a new token for it (shown once, stored hashed)."""
        if not _NAME.match(name):
            raise ValueError("user names are 1-64 characters of letters, digits and _ . @ -")
        try:
            with self.engine.begin() as conn:
                conn.execute(text("INSERT INTO registry.users (name, is_admin) VALUES (:n, :a)"),
                             {"n": name, "a": admin})
                return self._new_token(conn, name, expires_in)
        except IntegrityError as exc:
            if sqlstate(exc) != UNIQUE_VIOLATION:
                raise
            raise UserExistsError(f"user {name!r} exists; use `pzvo user token {name}`") from exc

    def issue_token(self, name: str, *, expires_in: timedelta | None = None) -> str:
        """Another token for an existing user; ``expires_in`` bounds how long a leaked one is good for."""
        with self.engine.begin() as conn:
            if not conn.execute(text("SELECT 1 FROM registry.users WHERE name = :n"), {"n": name}).first():
                raise UnknownUserError(name)
            return self._new_token(conn, name, expires_in)

    @staticmethod
    def _new_token(conn: Connection, name: str, expires_in: timedelta | None) -> str:
        if expires_in is not None and expires_in <= timedelta(0):
            raise ValueError("a token's lifetime must be positive")
        token = TOKEN_PREFIX + secrets.token_urlsafe(24)
        expires_at = conn.execute(text(
            "INSERT INTO registry.tokens (token_hash, user_name, token_prefix, expires_at) "
            "VALUES (:h, :n, :p, now() + make_interval(secs => CAST(:s AS double precision))) RETURNING expires_at"),
            {"h": hash_token(token), "n": name, "p": token[:SHOWN_PREFIX_LEN],
             "s": expires_in.total_seconds() if expires_in is not None else None}).scalar()
        log.info("token issued", extra={"user": name, "token_prefix": token[:SHOWN_PREFIX_LEN],
                                        "expires_at": expires_at})
        return token

    def revoke_user_tokens(self, name: str) -> int:
        """Revoke every token of a user (a departed member, a leak of unknown extent)."""
        with self.engine.begin() as conn:
            if not conn.execute(text("SELECT 1 FROM registry.users WHERE name = :n"), {"n": name}).first():
                raise UnknownUserError(name)
            count = conn.execute(text("DELETE FROM registry.tokens WHERE user_name = :n"), {"n": name}).rowcount
        log.info("tokens revoked", extra={"user": name, "tokens": count})
        return count

    def revoke_token(self, token_or_prefix: str) -> tuple[str, str | None]:
        """Revoke one token, named by its shown prefix or given whole; returns (user, prefix).

        Only the hash of a token is stored, so a token issued before prefixes were kept can be
        named only whole (or revoked with all of its user's).
        """
        value = token_or_prefix.strip()
        with self.engine.begin() as conn:
            rows = conn.execute(text(
                "DELETE FROM registry.tokens WHERE token_hash = :h RETURNING user_name, token_prefix"),
                {"h": hash_token(value)}).all()
            if not rows:
                # A longer value is a whole token that matched none: it must not revoke another
                # token that merely shares its first characters.
                if len(value) < SHOWN_PREFIX_LEN:
                    raise ValueError(f"a token prefix has {SHOWN_PREFIX_LEN} characters "
                                     f"({TOKEN_PREFIX}... as `pzvo user tokens NAME` shows)")
                if len(value) > SHOWN_PREFIX_LEN:
                    raise UnknownTokenError("no such token (a whole token must match exactly; "
                                            f"or give its {SHOWN_PREFIX_LEN}-character prefix)")
                rows = conn.execute(text(
                    "DELETE FROM registry.tokens WHERE token_prefix = :p RETURNING user_name, token_prefix"),
                    {"p": value[:SHOWN_PREFIX_LEN]}).all()
            if len(rows) > 1:
                raise ValueError(f"{len(rows)} tokens start with {value[:SHOWN_PREFIX_LEN]!r}; "
                                 "give the whole token, or revoke the user's tokens")
        if not rows:
            raise UnknownTokenError(f"no token {value[:SHOWN_PREFIX_LEN]!r} (revoked already, or mistyped)")
        user, prefix = rows[0]
        log.info("token revoked", extra={"user": user, "token_prefix": prefix})
        return user, prefix

    def delete_user(self, name: str, *, reassign_to: str | None = None) -> DeletedUser:
        """Delete a user in one transaction, leaving nothing that refers to the name.

        Tokens are deleted (they stop working at once).  Async jobs are aborted and given a
        destruction time of now, so the reaper removes their results and uploads as it does for
        any expired job.  Live products are never orphaned or deleted silently: without
        ``reassign_to`` the deletion is refused while the user owns one; the registry rows of
        deleted versions (kept so that their provenance resolves) go to ``reassign_to`` or the
        operator account.  Provenance records naming the user as agent stay: they are history.
        """
        if name == OPERATOR:
            raise ValueError(f"the operator account {OPERATOR!r} cannot be deleted: the command "
                             "line acts as it, and it keeps the records of deleted users' products")
        if reassign_to == name:
            raise ValueError("--reassign-to must name another user")
        target = reassign_to or OPERATOR
        with self.engine.begin() as conn:
            if not conn.execute(text("SELECT 1 FROM registry.users WHERE name = :n FOR UPDATE"),
                                {"n": name}).first():
                raise UnknownUserError(name)
            if target == OPERATOR:
                conn.execute(text("INSERT INTO registry.users (name, is_admin) VALUES (:n, true) "
                                  "ON CONFLICT (name) DO NOTHING"), {"n": OPERATOR})
            elif not conn.execute(text("SELECT 1 FROM registry.users WHERE name = :n FOR SHARE"),
                                  {"n": target}).first():
                raise UnknownUserError(target)
            live = [f"{row[0]} v{row[1]}" for row in conn.execute(text(
                "SELECT name, version FROM registry.products WHERE owner = :n "
                "AND status <> 'deleted' ORDER BY name, version"), {"n": name})]
            if live and reassign_to is None:
                raise UserOwnsProductsError(name, live)
            products = conn.execute(text("UPDATE registry.products SET owner = :t WHERE owner = :n"),
                                    {"t": target, "n": name}).rowcount
            jobs = self._retire_jobs(conn, name) if self._retire_jobs else 0
            tokens = conn.execute(text("DELETE FROM registry.tokens WHERE user_name = :n"),
                                  {"n": name}).rowcount
            conn.execute(text("DELETE FROM registry.users WHERE name = :n"), {"n": name})
        log.info("user deleted", extra={"user": name, "tokens": tokens, "jobs": jobs,
                                        "products": products, "products_to": target})
        return DeletedUser(name, tokens, jobs, products, len(live), target)

    def list_users(self) -> list[UserSummary]:
        """Every user with its number of live (unexpired) tokens."""
        with self.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT u.name, u.is_admin, u.created_at, "
                "count(t.token_hash) FILTER (WHERE t.expires_at IS NULL OR t.expires_at > now()), "
                "max(t.last_used_at) "
                "FROM registry.users u LEFT JOIN registry.tokens t ON t.user_name = u.name "
                "GROUP BY u.name ORDER BY u.name")).all()
        return [UserSummary(*row) for row in rows]

    def list_tokens(self, name: str) -> list[TokenInfo]:
        """A user's tokens, by prefix (never the token), oldest first."""
        with self.engine.connect() as conn:
            if not conn.execute(text("SELECT 1 FROM registry.users WHERE name = :n"), {"n": name}).first():
                raise UnknownUserError(name)
            rows = conn.execute(text(
                "SELECT token_prefix, created_at, expires_at, last_used_at, "
                "coalesce(expires_at <= now(), false) FROM registry.tokens "
                "WHERE user_name = :n ORDER BY created_at"), {"n": name}).all()
        return [TokenInfo(*row) for row in rows]

    def operator(self, name: str | None = None) -> User:
        """Who a command line acts as: it has database rights, yet naming a user must never make
        one, let alone an administrator. Only the local operator account (``pzvo``) is created on
        demand, as an administrator; any other name must be an existing user, with its own rights.
        """
        name = name or OPERATOR
        with self.engine.begin() as conn:
            if name == OPERATOR:
                conn.execute(text("INSERT INTO registry.users (name, is_admin) VALUES (:n, true) "
                                  "ON CONFLICT (name) DO NOTHING"), {"n": name})
            admin = conn.execute(text("SELECT is_admin FROM registry.users WHERE name = :n"),
                                 {"n": name}).first()
        if admin is None:
            raise UnknownUserError(name)
        return User(name=name, is_admin=bool(admin[0]))

    def ensure_proxy_user(self, name: str) -> User:
        """A user named by the RSP auth proxy exists here from its first request on."""
        if not _NAME.match(name):
            raise NotAuthenticatedError("The X-Auth-Request-User header holds no valid user name.")
        with self.engine.begin() as conn:
            is_admin = conn.execute(text(
                "INSERT INTO registry.users (name) VALUES (:n) ON CONFLICT (name) DO UPDATE "
                "SET name = EXCLUDED.name RETURNING is_admin"), {"n": name}).scalar_one()
        return User(name=name, is_admin=bool(is_admin))

    def authenticate(self, authorization: str | None, proxy_user: str | None = None) -> User:
        """The user behind a request's headers; ANONYMOUS when it carries no credentials.

        A token that is malformed, unknown, revoked or expired is an error (401), never a silent
        anonymous.
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
                "UPDATE registry.tokens t SET last_used_at = CASE WHEN t.expires_at <= now() "
                "THEN t.last_used_at ELSE now() END FROM registry.users u "
                "WHERE t.token_hash = :h AND u.name = t.user_name "
                "RETURNING u.name, u.is_admin, coalesce(t.expires_at <= now(), false)"),
                {"h": hash_token(token.strip())}).first()
        if row is None:
            raise NotAuthenticatedError("The bearer token is not valid (unknown or revoked).")
        if row[2]:
            raise NotAuthenticatedError("The bearer token is not valid (expired); ask for a new one.")
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
