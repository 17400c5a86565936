"""Signed, expiring tokens (JWT, HS256) that can end early, and a throttle for failed logins.

The same token serves three ways of arriving, so other applications and the dashboards
share one login:

- ``?token=<jwt>`` in the URL (browsers cannot set headers on a WebSocket),
- ``Authorization: Bearer <jwt>``,
- the ``zvpanel_session`` cookie, whose value is the JWT itself (the JWT is already
  signed, so the cookie needs no second signature).

The dashboards' login imports :func:`issue_token` and sets :data:`SESSION_COOKIE` to the
token it returns.

A token carries its user's token version (``ver``). Changing the password, disabling the
user or logging out raises the version in the database, so every older token stops
working. :func:`authenticate_token` is the one check of "is this token still good" that
every page, socket, stream and admin action uses.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import jwt
from tornado.httputil import HTTPServerRequest
from tornado.ioloop import IOLoop

from ..config import Settings
from ..errors import AuthError, NotFoundError

__all__ = [
    "ALGORITHM",
    "SESSION_COOKIE",
    "Claims",
    "issue_token",
    "verify_token",
    "check_user",
    "authenticate_token",
    "token_from_request",
    "authenticate_request",
    "LoginThrottle",
    "LOGIN_THROTTLE",
    "LoginAttempt",
    "attempt_login",
    "retry_after_seconds",
    "MAX_FIELD_LENGTH",
]

#: Longer usernames/passwords are refused before hashing (Argon2 on megabytes is a DoS).
MAX_FIELD_LENGTH = 1024

ALGORITHM = "HS256"
#: Cookie the dashboards set after a login; its value is a token from :func:`issue_token`.
SESSION_COOKIE = "zvpanel_session"
#: Clock difference between servers tolerated when checking ``exp``/``iat`` (seconds).
CLOCK_LEEWAY_S = 10
#: Failed logins for one username, or from one address, that cost nothing; after that each
#: failure doubles the wait.
FREE_FAILURES = 3
#: Wait after the first failure beyond the free ones (seconds); doubles per further failure.
BASE_DELAY_S = 1.0
#: The wait never grows beyond this (seconds).
MAX_DELAY_S = 300.0
#: A username's or address's failures are forgotten after this long without a new one (s).
FORGET_AFTER_S = 900.0
#: Usernames and addresses remembered at most (oldest forgotten first), so a flood cannot
#: grow memory.
MAX_TRACKED_CLIENTS = 10_000


@dataclass(frozen=True)
class Claims:
    """Who a verified token speaks for."""

    username: str
    admin: bool
    issued_at: datetime
    expires_at: datetime
    #: The user's token version when the token was issued (see :func:`check_user`).
    version: int = 0


def issue_token(
    settings: Settings,
    username: str,
    admin: bool = False,
    lifetime: timedelta | None = None,
    version: int = 0,
) -> str:
    """A signed token for ``username`` valid for ``lifetime`` (default: the configured expiry).

    Claims: ``sub`` (username), ``admin`` (bool), ``iat`` and ``exp`` (Unix seconds),
    ``ver`` (the user's token version, ``User.token_version``).
    """
    if not username:
        raise AuthError("cannot issue a token for an empty username")
    now = datetime.now(timezone.utc)
    lifetime = lifetime or timedelta(minutes=settings.jwt_expiry_minutes)
    payload = {
        "sub": username,
        "admin": bool(admin),
        "iat": now,
        "exp": now + lifetime,
        "ver": int(version),
    }
    return jwt.encode(payload, settings.secret(), algorithm=ALGORITHM)


def verify_token(settings: Settings, token: str | None) -> Claims:
    """Check a token's signature and expiry; raise :class:`AuthError` saying what is wrong."""
    if not token:
        raise AuthError("no token: log in via POST /api/token and pass the access_token")
    try:
        payload = jwt.decode(
            token,
            settings.secret(),
            algorithms=[ALGORITHM],
            leeway=CLOCK_LEEWAY_S,
            options={"require": ["sub", "exp", "iat", "ver"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired: log in again") from None
    except jwt.InvalidTokenError as error:
        raise AuthError(f"invalid token: {error}") from None
    if not isinstance(payload["sub"], str) or not payload["sub"]:
        raise AuthError("invalid token: 'sub' is not a username")
    if type(payload["ver"]) is not int:
        raise AuthError("invalid token: 'ver' is not a token version")
    return Claims(
        username=payload["sub"],
        admin=payload.get("admin") is True,
        issued_at=datetime.fromtimestamp(payload["iat"], timezone.utc),
        expires_at=datetime.fromtimestamp(payload["exp"], timezone.utc),
        version=payload["ver"],
    )


def check_user(db: Any, claims: Claims) -> Any:
    """The user ``claims`` speak for, while their token still holds; else :class:`AuthError`.

    A correctly signed, unexpired token stops working when its user no longer exists, is
    disabled, or has a newer token version (password changed, disabled, logged out).
    """
    try:
        user = db.get_user(claims.username)
    except NotFoundError:
        raise AuthError("the token's user no longer exists") from None
    if user.disabled:
        raise AuthError(f"user {claims.username!r} is disabled")
    if user.token_version != claims.version:
        raise AuthError("token revoked (password changed or logged out): log in again")
    return user


def authenticate_token(db: Any, settings: Settings, token: str | None) -> Claims:
    """The claims of ``token`` if it is signed, unexpired and its user's tokens still hold."""
    claims = verify_token(settings, token)
    check_user(db, claims)
    return claims


def token_from_request(request: HTTPServerRequest) -> str | None:
    """The token of a request: ``?token=``, else ``Authorization: Bearer``, else the cookie."""
    values = request.query_arguments.get("token")
    if values:
        return values[-1].decode("utf-8", "replace")
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    cookie = request.cookies.get(SESSION_COOKIE)
    return cookie.value if cookie is not None and cookie.value else None


def authenticate_request(handler, db: Any, settings: Settings) -> Claims:
    """Claims of a Tornado ``RequestHandler``'s request; :class:`AuthError` if it has none valid.

    ``settings`` is passed explicitly because ``handler.settings`` is Tornado's own dict.
    """
    return authenticate_token(db, settings, token_from_request(handler.request))


@dataclass
class _Failures:
    count: int
    last: float


class LoginThrottle:
    """Slows down password guessing, counting failures per key (a username or an address).

    After :data:`FREE_FAILURES` failures, a key must wait ``BASE_DELAY_S * 2**k`` seconds
    (k = extra failures so far, capped at :data:`MAX_DELAY_S`) after its last failure before
    it may try again; the login answers 429 with ``Retry-After`` until then.
    :func:`attempt_login` decides which keys an attempt counts against. Thread-safe.
    """

    def __init__(
        self,
        free_failures: int = FREE_FAILURES,
        base_delay_s: float = BASE_DELAY_S,
        max_delay_s: float = MAX_DELAY_S,
        forget_after_s: float = FORGET_AFTER_S,
        max_clients: int = MAX_TRACKED_CLIENTS,
        clock=time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.forget_after_s = forget_after_s
        self.max_clients = max_clients
        self._clock = clock
        self._lock = threading.Lock()
        self._clients: OrderedDict[str, _Failures] = OrderedDict()

    def retry_after(self, client: str) -> float:
        """Seconds ``client`` must still wait before its next attempt (0: it may try now)."""
        with self._lock:
            record = self._clients.get(client)
            if record is None:
                return 0.0
            now = self._clock()
            if now - record.last > self.forget_after_s:
                del self._clients[client]
                return 0.0
            return max(0.0, record.last + self._delay(record.count) - now)

    def failure(self, client: str) -> float:
        """Record a failed attempt; return the wait it imposes (seconds)."""
        with self._lock:
            now = self._clock()
            record = self._clients.pop(client, None)
            if record is None or now - record.last > self.forget_after_s:
                record = _Failures(0, now)
            record.count += 1
            record.last = now
            self._clients[client] = record  # most recent last, for the size bound below
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
            return self._delay(record.count)

    def success(self, client: str) -> None:
        """Forget ``client``'s failures."""
        with self._lock:
            self._clients.pop(client, None)

    def forgive(self, client: str) -> None:
        """Take back one failure of ``client`` (an attempt counted in advance that succeeded)."""
        with self._lock:
            record = self._clients.get(client)
            if record is not None:
                record.count -= 1
                if record.count <= 0:
                    del self._clients[client]

    def _delay(self, failures: int) -> float:
        extra = failures - self.free_failures
        if extra <= 0:
            return 0.0
        return min(self.max_delay_s, self.base_delay_s * 2 ** (extra - 1))


#: The one throttle of a server process: the login page and ``POST /api/token`` share it,
#: so guesses cannot be spread over the two for twice the budget.
LOGIN_THROTTLE = LoginThrottle()


@dataclass(frozen=True)
class LoginAttempt:
    """What :func:`attempt_login` found: the user, or why not (and how long to wait)."""

    user: Any | None = None
    problem: Literal["throttled", "missing", "too_long", "wrong"] | None = None
    retry_after: float = 0.0  # seconds before the next attempt for this user or address


def _throttle_keys(client: str, username: str) -> tuple[str, str]:
    """The budgets an attempt counts against: its username's and its address's."""
    return f"user:{username}", f"address:{client}"


async def attempt_login(
    db: Any, throttle: LoginThrottle, client: str, username: str, password: str
) -> LoginAttempt:
    """One login, as both the dashboard login page and ``POST /api/token`` check it.

    A failure counts against the username and against the address ``client``; a success
    clears only the username's count, so logging in as another user in between never
    buys more guesses.
    """
    user_key, address_key = keys = _throttle_keys(client, username)
    wait = max(throttle.retry_after(key) for key in keys)
    if wait > 0:
        return LoginAttempt(problem="throttled", retry_after=wait)
    if not username or not password:
        return LoginAttempt(problem="missing")
    if len(username) > MAX_FIELD_LENGTH or len(password) > MAX_FIELD_LENGTH:
        return LoginAttempt(problem="too_long")
    # Counted as a failure before checking, so parallel guesses are throttled too;
    # a success clears the username's record and takes back this one from the address.
    wait = max(throttle.failure(key) for key in keys)
    # Argon2 takes tens of milliseconds: keep it off the IOLoop.
    user = await IOLoop.current().run_in_executor(None, db.authenticate, username, password)
    if user is None:
        return LoginAttempt(problem="wrong", retry_after=wait)
    throttle.success(user_key)
    throttle.forgive(address_key)
    return LoginAttempt(user=user)


def retry_after_seconds(wait: float) -> int:
    """A ``Retry-After`` value: whole seconds, at least 1."""
    return max(1, math.ceil(wait))
