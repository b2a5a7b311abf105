"""Who is asking: bearer tokens (hashed in ``registry.tokens``) or the RSP auth proxy's header.

The domain part (:class:`AuthService`) knows nothing of Flask; ``vo_service.auth.web`` resolves
the current user of a request, and each protocol renders :class:`AuthError` in its own form
(a DALI error for TAP, problem details for the REST API).
"""
from vo_service.auth._service import (
    ANONYMOUS,
    OPERATOR,
    AuthError,
    AuthService,
    DeletedUser,
    ForbiddenError,
    NotAuthenticatedError,
    TokenInfo,
    UnknownTokenError,
    UnknownUserError,
    User,
    UserExistsError,
    UserOwnsProductsError,
    UserSummary,
)

__all__ = ["ANONYMOUS", "OPERATOR", "AuthError", "AuthService", "DeletedUser", "ForbiddenError",
           "NotAuthenticatedError", "TokenInfo", "UnknownTokenError", "UnknownUserError", "User",
           "UserExistsError", "UserOwnsProductsError", "UserSummary"]
