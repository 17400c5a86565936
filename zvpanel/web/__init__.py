"""The web API for other applications: JWT tokens, ``POST /api/token`` and the WebSocket feed.

Import the routes from :mod:`zvpanel.web.routes` (``panel serve --plugins zvpanel.web.routes``).
"""

from .auth import (
    SESSION_COOKIE,
    Claims,
    LoginThrottle,
    authenticate_request,
    issue_token,
    token_from_request,
    verify_token,
)

__all__ = [
    "SESSION_COOKIE",
    "Claims",
    "LoginThrottle",
    "authenticate_request",
    "issue_token",
    "token_from_request",
    "verify_token",
]
