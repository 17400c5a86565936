"""Bokeh/Panel ``--auth-module``: every dashboard page needs a login.

The session is the JWT of :mod:`zvpanel.web.auth` (signed with the configured secret,
expiring after ``jwt_expiry_minutes``) kept in the ``zvpanel_session`` cookie: HttpOnly,
SameSite=Lax. The same token is accepted by the WebSocket feed, so one login serves both.

Bokeh loads this file by path (``panel serve --auth-module zvpanel/web/auth_module.py``)
and reads ``get_user``, ``login_url``, ``LoginHandler``, ``logout_url`` and
``LogoutHandler`` from it. Dashboards import it as ``zvpanel.web.auth_module`` for
:func:`cookie_claims`.

Bokeh calls :func:`get_user` on every page load (and on the page's own WebSocket), so the
pages' security headers are set there too.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlparse

from tornado.web import RequestHandler

from zvpanel.config import Settings
from zvpanel.display import html_text
from zvpanel.errors import AuthError
from zvpanel.web.auth import (
    LOGIN_THROTTLE,
    SESSION_COOKIE,
    Claims,
    attempt_login,
    authenticate_request,
    issue_token,
    retry_after_seconds,
    verify_token,
)
from zvpanel.web.headers import add_security_headers

__all__ = [
    "get_user",
    "login_url",
    "logout_url",
    "LoginHandler",
    "LogoutHandler",
    "request_claims",
    "cookie_claims",
    "SESSION_COOKIE",
]

log = logging.getLogger(__name__)

login_url = "/login"
logout_url = "/logout"
#: Where a successful login goes when the login page was opened directly.
DEFAULT_NEXT = "/"

#: Characters a browser reads as a path separator (``\``) or drops (tabs, newlines), which
#: would turn a path such as ``/\evil.example`` into another site's address.
_UNSAFE_IN_NEXT = re.compile(r"[\\\x00-\x1f\x7f]")


def _app():
    from zvpanel.app import get_app

    return get_app()


def request_claims(handler: RequestHandler, app) -> Claims | None:
    """The claims of a Tornado request (cookie, bearer or ``?token=``) while its token
    holds (see :func:`~zvpanel.web.auth.check_user`), or None."""
    try:
        return authenticate_request(handler, app.db, app.settings)
    except AuthError:
        return None


def cookie_claims(cookies: dict, settings: Settings) -> Claims | None:
    """The signed claims in a Panel session's cookies (``pn.state.cookies``), or None.

    Signature and expiry only: :func:`zvpanel.ui.session.session_claims` also asks the
    database whether the token still holds.
    """
    token = cookies.get(SESSION_COOKIE) if cookies else None
    if token is not None and not isinstance(token, str):  # a tornado Morsel
        token = token.value
    try:
        return verify_token(settings, token)
    except AuthError:
        return None


def get_user(request_handler: RequestHandler) -> str | None:
    """Bokeh's hook: the logged-in username, or None (Bokeh then redirects to the login)."""
    add_security_headers(request_handler)
    claims = request_claims(request_handler, _app())
    return None if claims is None else claims.username


def _safe_next(target: str | None) -> str:
    """Only same-site paths: a login link must not redirect to another site."""
    if not target or _UNSAFE_IN_NEXT.search(target):
        return DEFAULT_NEXT
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return DEFAULT_NEXT
    return target


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zvpanel - log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body {{ font-family: system-ui, sans-serif; background: #f3f5f8; margin: 0; }}
 form {{ max-width: 340px; margin: 12vh auto; background: #fff; padding: 28px 32px;
        border-radius: 8px; box-shadow: 0 2px 12px rgba(0,0,0,.08); }}
 h1 {{ font-size: 1.4em; margin: 0 0 4px; }} p.sub {{ color: #666; margin: 0 0 18px; }}
 label {{ display: block; margin: 12px 0 4px; font-weight: 600; }}
 input {{ width: 100%; box-sizing: border-box; padding: 8px; font-size: 1em;
         border: 1px solid #bbb; border-radius: 4px; }}
 button {{ margin-top: 20px; width: 100%; padding: 10px; font-size: 1em; border: 0;
          border-radius: 4px; background: #0b6bcb; color: #fff; cursor: pointer; }}
 .error {{ background: #fdecea; color: #a61b1b; padding: 8px 10px; border-radius: 4px; }}
 .info {{ background: #e8f3fc; color: #134a7c; padding: 8px 10px; border-radius: 4px; }}
</style></head>
<body><form method="post" action="{action}">
<h1>zvpanel</h1><p class="sub">People counting - log in</p>
{message}
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" value="{username}" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<input type="hidden" name="next" value="{next}">
<button type="submit" id="login">Log in</button>
</form></body></html>"""


class LoginHandler(RequestHandler):
    """``GET /login`` shows the form; ``POST /login`` checks it and sets the session cookie."""

    def set_default_headers(self) -> None:
        add_security_headers(self)

    def get(self) -> None:
        message = ""
        if self.get_argument("logged_out", None):
            message = '<p class="info">You are logged out.</p>'
        elif self.get_argument("expired", None):  # sent here by a page whose login ran out
            message = '<p class="info" id="login-expired">Your session expired: log in again.</p>'
        self._render(message, "", self.get_argument("next", DEFAULT_NEXT))

    async def post(self) -> None:
        app = _app()
        username = self.get_body_argument("username", "").strip()
        target = self.get_body_argument("next", DEFAULT_NEXT)
        attempt = await attempt_login(
            app.db,
            LOGIN_THROTTLE,
            self.request.remote_ip or "?",
            username,
            self.get_body_argument("password", ""),
        )
        if attempt.problem == "throttled":
            seconds = retry_after_seconds(attempt.retry_after)
            self.set_status(429)
            self.set_header("Retry-After", str(seconds))
            self._render(
                f'<p class="error">Too many failed logins. Try again in {seconds} s.</p>',
                username,
                target,
            )
            return
        user = attempt.user
        if user is None:
            self.set_status(401)
            self._render(
                '<p class="error" id="login-error">Wrong username or password.</p>',
                username,
                target,
            )
            return
        token = issue_token(
            app.settings, user.username, admin=user.is_admin, version=user.token_version
        )
        self.set_cookie(
            SESSION_COOKIE,
            token,
            httponly=True,
            samesite="Lax",
            secure=self.request.protocol == "https",
            expires_days=app.settings.jwt_expiry_minutes / (60 * 24),
            path="/",
        )
        log.info("login: %s (admin=%s)", user.username, user.is_admin)
        self.redirect(_safe_next(target))

    def _render(self, message: str, username: str, target: str) -> None:
        self.set_header("Cache-Control", "no-store")
        self.write(
            _PAGE.format(
                action=html_text(login_url),
                message=message,
                username=html_text(username),
                next=html_text(_safe_next(target)),
            )
        )


class LogoutHandler(RequestHandler):
    """``GET /logout``: end the user's tokens, drop the session cookie, go to the login page.

    Every token of the user stops working, on every device: a copied session cookie or
    ``?token=`` link is as dead as the cookie this browser drops.
    """

    def set_default_headers(self) -> None:
        add_security_headers(self)

    def get(self) -> None:
        app = _app()
        claims = request_claims(self, app)
        if claims is not None:
            app.db.end_sessions(claims.username)
            log.info("logout: %s", claims.username)
        self.clear_cookie(SESSION_COOKIE, path="/")
        self.redirect(f"{login_url}?logged_out=1")
