"""Who is looking: the verified session claims of a Panel session, and admin checks.

Bokeh's ``--auth-module`` already refuses pages to anyone without a valid session
cookie; views still read the claims themselves (to show the user and to decide what
they may change), and every admin action re-checks on the server, against the claim and
the database (an admin demoted since logging in loses the right at once).
"""

from __future__ import annotations

import panel as pn

from ..errors import AuthError
from ..web.auth import Claims
from ..web.auth_module import cookie_claims

__all__ = ["session_claims", "require_admin", "is_admin"]


def session_claims(app) -> Claims | None:
    """The claims of the current Panel session's cookie (None outside a logged-in session)."""
    return cookie_claims(pn.state.cookies, app.settings)


def is_admin(app, claims: Claims | None) -> bool:
    """True if the token says admin AND the user is still an admin in the database."""
    if claims is None or not claims.admin:
        return False
    try:
        return app.db.get_user(claims.username).is_admin
    except LookupError:
        return False


def require_admin(app, claims: Claims | None, action: str) -> None:
    """Raise :class:`AuthError` unless the session belongs to an admin."""
    if not is_admin(app, claims):
        who = claims.username if claims else "nobody"
        raise AuthError(f"only admins may {action} (logged in as {who})")
