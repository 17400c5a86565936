"""Tokens (JWT), the login throttle and POST /api/token on a real server."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from urllib.parse import urlencode

import jsonschema
import jwt
import pytest
from pydantic import SecretStr
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPResponse
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from zvpanel.app import App
from zvpanel.errors import AuthError
from zvpanel.web.auth import (
    SESSION_COOKIE,
    LoginThrottle,
    issue_token,
    token_from_request,
    verify_token,
)
from zvpanel.web.feed import load_schema
from zvpanel.web.routes import build_routes
from zvpanel.web.server import FeedServer

#: A throttle delay long enough that the test can never outlast it by accident.
TEST_BASE_DELAY_S = 600.0


# ---------------------------------------------------------------------- tokens
def test_token_round_trip(settings):
    claims = verify_token(settings, issue_token(settings, "maria", admin=True))
    assert claims.username == "maria" and claims.admin is True
    lifetime = claims.expires_at - claims.issued_at
    assert lifetime == timedelta(minutes=settings.jwt_expiry_minutes)


def test_token_claims_are_standard(settings):
    payload = jwt.decode(issue_token(settings, "olaf"), settings.secret(), algorithms=["HS256"])
    assert payload["sub"] == "olaf" and payload["admin"] is False
    assert payload["exp"] > payload["iat"]


def test_expired_token_refused(settings):
    token = issue_token(settings, "maria", lifetime=timedelta(minutes=-5))
    with pytest.raises(AuthError, match="expired"):
        verify_token(settings, token)


@pytest.mark.parametrize("token", [None, "", "abc", "a.b.c"])
def test_missing_or_garbage_token_refused(settings, token):
    with pytest.raises(AuthError):
        verify_token(settings, token)


def test_token_of_another_secret_refused(settings):
    other = settings.model_copy(update={"jwt_secret": SecretStr("y" * 40)})
    with pytest.raises(AuthError, match="invalid token"):
        verify_token(settings, issue_token(other, "maria"))


def test_unsigned_token_refused(settings):
    token = jwt.encode({"sub": "maria", "iat": 0, "exp": 4_000_000_000}, None, algorithm="none")
    with pytest.raises(AuthError):
        verify_token(settings, token)


def test_token_without_expiry_refused(settings):
    token = jwt.encode({"sub": "maria", "iat": 0}, settings.secret(), algorithm="HS256")
    with pytest.raises(AuthError, match="exp"):
        verify_token(settings, token)


def _request(uri: str, **headers: str) -> HTTPServerRequest:
    start_line = RequestStartLine("GET", uri, "HTTP/1.1")
    return HTTPServerRequest(start_line=start_line, headers=HTTPHeaders({"Host": "zv"} | headers))


def test_token_from_query_header_or_cookie():
    assert token_from_request(_request("/ws/events?token=q1")) == "q1"
    assert token_from_request(_request("/ws/events", Authorization="Bearer h1")) == "h1"
    assert token_from_request(_request("/ws/events", Cookie=f"{SESSION_COOKIE}=c1")) == "c1"
    assert token_from_request(_request("/ws/events", Authorization="Basic eHg6eXk=")) is None
    assert token_from_request(_request("/ws/events")) is None


# ---------------------------------------------------------------------- throttle
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_doubles_the_wait_after_the_free_failures():
    clock = Clock()
    throttle = LoginThrottle(free_failures=2, base_delay_s=1.0, max_delay_s=8.0, clock=clock)
    waits = [throttle.failure("10.0.0.1") for _ in range(7)]
    assert waits == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert throttle.retry_after("10.0.0.1") == 8.0
    assert throttle.retry_after("10.0.0.2") == 0.0  # other clients are not affected
    clock.now += 5
    assert throttle.retry_after("10.0.0.1") == 3.0
    clock.now += 3
    assert throttle.retry_after("10.0.0.1") == 0.0


def test_throttle_success_clears_and_old_failures_are_forgotten():
    clock = Clock()
    throttle = LoginThrottle(free_failures=0, base_delay_s=1.0, forget_after_s=60, clock=clock)
    throttle.failure("a")
    throttle.success("a")
    assert throttle.retry_after("a") == 0.0
    throttle.failure("b")
    throttle.failure("b")
    clock.now += 61
    assert throttle.retry_after("b") == 0.0
    assert throttle.failure("b") == 1.0  # counting starts again


def test_throttle_memory_is_bounded():
    throttle = LoginThrottle(free_failures=0, max_clients=3, clock=Clock())
    for client in ["a", "b", "c", "d"]:
        throttle.failure(client)
    assert throttle.retry_after("a") == 0.0  # the oldest was forgotten
    assert throttle.retry_after("d") > 0


# ---------------------------------------------------------------------- POST /api/token
@pytest.fixture
def token_server(settings):
    app = App(settings)
    app.start_database()
    app.start_bootstrap()  # development mode: admin/admin
    app.start_hub()
    app.db.create_user("viewer", "viewer-password")
    throttle = LoginThrottle(base_delay_s=TEST_BASE_DELAY_S)
    with FeedServer(build_routes(lambda: app, throttle=throttle)) as server:
        yield server, app
    app.stop_database()


async def post_token(server: FeedServer, **fields: str) -> HTTPResponse:
    return await AsyncHTTPClient().fetch(
        f"{server.url}/api/token", method="POST", body=urlencode(fields), raise_error=False
    )


def error_body(response: HTTPResponse) -> dict:
    body = json.loads(response.body)
    jsonschema.validate(body, load_schema("http_error"))
    return body


def test_token_endpoint_issues_a_working_token(token_server):
    server, app = token_server

    async def scenario():
        response = await post_token(server, username="viewer", password="viewer-password")
        assert response.code == 200
        body = json.loads(response.body)
        jsonschema.validate(body, load_schema("token"))
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == app.settings.jwt_expiry_minutes * 60
        claims = verify_token(app.settings, body["access_token"])
        assert claims.username == "viewer" and claims.admin is False
        admin = await post_token(server, username="admin", password="admin")
        assert verify_token(app.settings, json.loads(admin.body)["access_token"]).admin is True

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "fields",
    [
        {"username": "viewer", "password": "wrong"},
        {"username": "nobody", "password": "viewer-password"},
    ],
)
def test_wrong_credentials_get_401_json(token_server, fields):
    server, _ = token_server

    async def scenario():
        response = await post_token(server, **fields)
        assert response.code == 401
        body = error_body(response)
        assert body["error"] == "invalid_credentials"
        assert "password" in body["message"]

    asyncio.run(scenario())


@pytest.mark.parametrize("fields", [{}, {"username": "viewer"}, {"password": "x"}])
def test_missing_fields_get_400_naming_them(token_server, fields):
    server, _ = token_server

    async def scenario():
        response = await post_token(server, **fields)
        assert response.code == 400
        assert "username" in error_body(response)["message"]

    asyncio.run(scenario())


def test_repeated_failures_are_throttled(token_server):
    server, _ = token_server

    async def scenario():
        codes = []
        for _ in range(4):  # 3 free failures, the 4th starts the wait
            codes.append((await post_token(server, username="viewer", password="nope")).code)
        assert codes == [401, 401, 401, 401]
        # Even the right password is refused until the wait is over.
        response = await post_token(server, username="viewer", password="viewer-password")
        assert response.code == 429
        retry_after = int(response.headers["Retry-After"])
        assert 0 < retry_after <= TEST_BASE_DELAY_S
        body = error_body(response)
        assert body["error"] == "too_many_attempts" and body["retry_after"] == retry_after

    asyncio.run(scenario())


def test_get_is_not_allowed(token_server):
    server, _ = token_server

    async def scenario():
        with pytest.raises(HTTPClientError) as refused:
            await AsyncHTTPClient().fetch(f"{server.url}/api/token")
        assert refused.value.code == 405
        error_body(refused.value.response)

    asyncio.run(scenario())
