"""``POST /api/token``: username + password (form fields) -> a bearer token for the feed."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tornado.web import RequestHandler

from ..config import Settings
from .auth import MAX_FIELD_LENGTH, LoginThrottle, attempt_login, issue_token, retry_after_seconds
from .headers import add_security_headers

__all__ = ["TokenHandler", "JsonErrorMixin", "MAX_FIELD_LENGTH"]


class JsonErrorMixin:
    """Every error answer is JSON: ``{"error": code, "message": text}`` (schemas/http_error.json).

    Every answer also carries the security headers (no framing, no sniffing, no referrer).
    """

    def set_default_headers(self: Any) -> None:
        add_security_headers(self)

    def send_json_error(self: Any, status: int, code: str, message: str, **extra: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps({"error": code, "message": message} | extra))

    def write_error(self: Any, status_code: int, **kwargs: Any) -> None:
        # Tornado's own errors (405, 500, ...) in the same JSON shape; never a traceback.
        code = {400: "invalid_request", 403: "forbidden", 404: "not_found"}.get(
            status_code, "server_error" if status_code >= 500 else "invalid_request"
        )
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"error": code, "message": self._reason or str(status_code)}))


class TokenHandler(JsonErrorMixin, RequestHandler):
    """Answers ``{"access_token", "token_type": "bearer", "expires_in"}`` or a JSON error.

    401 for wrong credentials; 429 with ``Retry-After`` while the username or the address
    is throttled (the login page shares the budget: :data:`~.auth.LOGIN_THROTTLE`).
    """

    def initialize(self, app_provider: Callable[[], Any], throttle: LoginThrottle) -> None:
        self.app_provider = app_provider
        self.throttle = throttle

    def check_xsrf_cookie(self) -> None:
        # An API for other applications: credentials are in the request body, never taken
        # from a cookie, so a forged cross-site request gains nothing.
        return None

    async def post(self) -> None:
        app = self.app_provider()
        attempt = await attempt_login(
            app.db,
            self.throttle,
            self.request.remote_ip or "unknown",
            self.get_body_argument("username", "").strip(),
            self.get_body_argument("password", ""),
        )
        if attempt.problem == "throttled":
            self._too_many(attempt.retry_after)
            return
        if attempt.problem == "missing":
            self.send_json_error(
                400, "invalid_request", "form fields 'username' and 'password' are required"
            )
            return
        if attempt.problem == "too_long":
            self.send_json_error(
                400,
                "invalid_request",
                f"username and password are limited to {MAX_FIELD_LENGTH} characters",
            )
            return
        if attempt.user is None:
            if attempt.retry_after > 0:
                self.set_header("Retry-After", str(retry_after_seconds(attempt.retry_after)))
            self.set_header("WWW-Authenticate", 'Bearer realm="zvpanel"')
            self.send_json_error(401, "invalid_credentials", "wrong username or password")
            return
        user = attempt.user
        settings: Settings = app.settings
        token = issue_token(
            settings, user.username, admin=user.is_admin, version=user.token_version
        )
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(
            json.dumps(
                {
                    "access_token": token,
                    "token_type": "bearer",
                    "expires_in": settings.jwt_expiry_minutes * 60,
                }
            )
        )

    def _too_many(self, wait: float) -> None:
        seconds = retry_after_seconds(wait)
        self.set_header("Retry-After", str(seconds))
        self.send_json_error(
            429,
            "too_many_attempts",
            f"too many failed logins for this user or from this address; try again in {seconds} s",
            retry_after=seconds,
        )
