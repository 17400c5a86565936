"""Who is looking: the verified session claims of a Panel session, and admin checks.

Bokeh's ``--auth-module`` already refuses pages to anyone without a valid session
cookie; views still read the claims themselves (to show the user and to decide what
they may change), and every admin action re-checks on the server, against the claim and
the database (an admin demoted since logging in loses the right at once, and a token
ended by a password change, a disable or a logout is refused: :func:`check_user`) and the
clock (a page keeps the claims it was opened with, so their ``exp`` is checked again here).
"""

from __future__ import annotations

from datetime import datetime, timezone

import panel as pn

from ..errors import AuthError
from ..web.auth import Claims, check_user
from ..web.auth_module import cookie_claims

__all__ = ["session_claims", "require_admin", "is_admin", "seconds_left", "expired"]


def session_claims(app) -> Claims | None:
    """The claims of the current Panel session's cookie (None outside a logged-in session,
    or once its token no longer holds)."""
    claims = cookie_claims(pn.state.cookies, app.settings)
    if claims is None:
        return None
    try:
        check_user(app.db, claims)
    except AuthError:
        return None
    return claims


def seconds_left(claims: Claims) -> float:
    """Seconds until the token expires (negative once it has)."""
    return (claims.expires_at - datetime.now(timezone.utc)).total_seconds()


def expired(claims: Claims) -> bool:
    """True once the token's ``exp`` has passed.

    Bokeh checks the cookie only when a page loads; a page left open holds the claims it
    was built with, so every later use of them must ask this.
    """
    return seconds_left(claims) <= 0


def is_admin(app, claims: Claims | None) -> bool:
    """True if the token says admin, has not expired or ended, AND the user is still an admin."""
    if claims is None or not claims.admin or expired(claims):
        return False
    try:
        return check_user(app.db, claims).is_admin
    except AuthError:
        return False


def require_admin(app, claims: Claims | None, action: str) -> None:
    """Raise :class:`AuthError` unless the session belongs to an admin and is still valid."""
    if claims is not None and expired(claims):
        at = claims.expires_at.strftime("%H:%M:%S UTC")
        raise AuthError(f"the session expired at {at}; log in again to {action}")
    if claims is None:
        raise AuthError(f"only admins may {action} (logged in as nobody)")
    try:
        user = check_user(app.db, claims)
    except AuthError as error:
        raise AuthError(f"cannot {action}: {error}") from None
    if not (claims.admin and user.is_admin):
        raise AuthError(f"only admins may {action} (logged in as {claims.username})")
