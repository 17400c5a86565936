"""Issue #10 items 3, 5, 6, 7, 9 and 10: logins, tokens, start-up, redirects, logs, framing.

One real ``panel serve`` in production mode (the README's command, the real model, a
40-character secret, an admin from the settings and viewers made in the database) serves
the tests; real HTTP and WebSocket clients (from other loopback addresses where the login
throttle must tell addresses apart), the real CLI in another process, and Chromium
wherever a page is involved. The start-up refusals start their own servers, which stop
before the model loads.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
import pytest
from serving import (
    REPO_ROOT,
    START_ARGS,
    Server,
    login,
    panel_server,
    start_server,
    wait_for_login_page,
)
from tornado.httpclient import HTTPClientError
from tornado.websocket import WebSocketClientConnection, websocket_connect

from zvpanel.config import DEV_SECRET_FILE, load_settings
from zvpanel.errors import ConfigError
from zvpanel.storage import Database, bootstrap
from zvpanel.web.auth import (
    FREE_FAILURES,
    SESSION_COOKIE,
    LoginThrottle,
    attempt_login,
    issue_token,
    verify_token,
)
from zvpanel.web.headers import SECURITY_HEADERS
from zvpanel.web.log_redaction import RedactTokens
from zvpanel.web.revocation import SessionWatch

pytestmark = [pytest.mark.ui, pytest.mark.model]

SECRET = "s" * 40
#: Guard against a hang: a read that gets nothing for this long fails the test.
READ_TIMEOUT_S = 90.0
#: A CLI call (another process changing the database) never takes this long.
CLI_TIMEOUT_S = 120.0
PAGE_TIMEOUT_MS = 90_000
#: A start-up that must fail does so before the model loads; this only bounds a hang.
REFUSAL_TIMEOUT_S = 120
BOSS, BOSS_PASSWORD = "boss", "boss-password-1"
VERA, VERA_PASSWORD = "vera", "vera-password-1"  # a viewer who only logs in
CAROL, CAROL_PASSWORD = "carol", "carol-password-1"  # whose password is guessed
DAVE, DAVE_PASSWORD = "dave", "dave-password-1"  # whose password changes
ERIN, ERIN_PASSWORD = "erin", "erin-password-1"  # disabled, enabled again
FRANK, FRANK_PASSWORD = "frank", "frank-password-1"  # logs out
GINA, GINA_PASSWORD = "gina", "gina-password-1"  # follows a hostile login link
HANK, HANK_PASSWORD = "hank", "hank-password-1"  # disabled from the admin page
VIEWERS = {
    VERA: VERA_PASSWORD,
    CAROL: CAROL_PASSWORD,
    DAVE: DAVE_PASSWORD,
    ERIN: ERIN_PASSWORD,
    FRANK: FRANK_PASSWORD,
    GINA: GINA_PASSWORD,
    HANK: HANK_PASSWORD,
}


@dataclass
class Site:
    server: Server
    camera_id: int
    #: Every token this module got: none may ever appear in the server's log.
    tokens: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def ws(self, path: str, token: str) -> str:
        return f"ws://127.0.0.1:{self.server.port}{path}?{urlencode({'token': token})}"

    def token(self, username: str, password: str, source: str = "127.0.0.1") -> str:
        reply = post(self, "/api/token", source, username=username, password=password)
        assert reply.status_code == 200, reply.text
        token = reply.json()["access_token"]
        self.tokens.append(token)
        return token


def post(site: Site, path: str, source: str = "127.0.0.1", **fields: str) -> httpx.Response:
    """POST a form from the loopback address ``source`` (the throttle counts per address)."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, follow_redirects=False) as client:
        return client.post(f"{site.url}{path}", data=fields)


def get(site: Site, path: str, token: str | None = None) -> httpx.Response:
    cookies = {SESSION_COOKIE: token} if token else None
    return httpx.get(f"{site.url}{path}", cookies=cookies, follow_redirects=False)


def production_env(**extra: str) -> dict[str, str]:
    return {
        "ZVPANEL_DEV_MODE": "0",
        "ZVPANEL_JWT_SECRET": SECRET,
        "ZVPANEL_ADMIN_USERNAME": BOSS,
        "ZVPANEL_ADMIN_PASSWORD": BOSS_PASSWORD,
    } | extra


def zvpanel_cli(db_path: Path, *args: str, stdin: str = "") -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZVPANEL_")}
    env["ZVPANEL_DB_PATH"] = str(db_path)
    done = subprocess.run(
        [sys.executable, "-m", "zvpanel", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory, model_path: str) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("hardening")
    with Database(folder / "zvpanel.db") as db:
        for username, password in VIEWERS.items():
            db.create_user(username, password)
    with panel_server(folder, model_path, env=production_env()) as server:
        with Database(server.db) as db:
            camera_id = db.list_cameras()[0].id  # the demo camera
        yield Site(server, camera_id)


def new_page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    return context, page


def session_token(context) -> str:
    return next(c["value"] for c in context.cookies() if c["name"] == SESSION_COOKIE)


def run(coro):
    """Run ``coro`` on its own thread and loop (Playwright's sync API owns this thread's)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, asyncio.wait_for(coro, READ_TIMEOUT_S * 4)).result()


async def open_feed(site: Site, token: str) -> WebSocketClientConnection:
    """A ``/ws/events`` socket, after its hello."""
    conn = await websocket_connect(site.ws("/ws/events", token))
    hello = json.loads(await asyncio.wait_for(conn.read_message(), READ_TIMEOUT_S))
    assert hello["type"] == "hello", hello
    return conn


async def closed_by_server(conn: WebSocketClientConnection) -> tuple[int, str, dict]:
    """Read until the server closes: its close code, reason and last message."""
    last = {}
    while (message := await asyncio.wait_for(conn.read_message(), READ_TIMEOUT_S)) is not None:
        last = json.loads(message)
    return conn.close_code, conn.close_reason, last


class OpenFeed:
    """A ``/ws/events`` socket held open on its own thread until the server closes it."""

    def __init__(self, site: Site, token: str) -> None:
        self._opened = threading.Event()
        self._pool = ThreadPoolExecutor(1)
        self._closed = self._pool.submit(asyncio.run, self._hold(site, token))
        assert self._opened.wait(READ_TIMEOUT_S) and not self._closed.done(), self._closed

    async def _hold(self, site: Site, token: str) -> tuple[int, str, dict]:
        conn = await open_feed(site, token)
        self._opened.set()
        return await closed_by_server(conn)

    def closed(self) -> tuple[int, str, dict]:
        """The server's close code, close reason and last message."""
        try:
            return self._closed.result(READ_TIMEOUT_S * 2)
        finally:
            # Never wait for a reader the server did not end: its timeout is the failure.
            self._pool.shutdown(wait=False, cancel_futures=True)


class MjpegViewer:
    """A real MJPEG client on its own thread; :meth:`ended` once the server ends it."""

    def __init__(self, site: Site, token: str) -> None:
        self._started = threading.Event()
        self._pool = ThreadPoolExecutor(1)
        url = f"{site.url}/stream/{site.camera_id}.mjpg?{urlencode({'token': token})}"
        self._done = self._pool.submit(self._watch, url)
        assert self._started.wait(READ_TIMEOUT_S) and not self._done.done(), self._done

    def _watch(self, url: str) -> int:
        parts = 0
        with httpx.stream("GET", url, timeout=READ_TIMEOUT_S) as response:
            assert response.status_code == 200
            for _ in response.iter_bytes():
                parts += 1
                self._started.set()
        return parts

    def ended(self) -> int:
        """The number of chunks received, once the server ended the stream."""
        try:
            return self._done.result(READ_TIMEOUT_S * 2)
        finally:
            # Never wait for a reader the server did not end: its timeout is the failure.
            self._pool.shutdown(wait=False, cancel_futures=True)


def assert_refused(site: Site, token: str) -> None:
    """``token`` no longer opens a socket (401 before the upgrade) nor the MJPEG stream."""

    async def connect() -> None:
        await websocket_connect(site.ws("/ws/events", token))

    with pytest.raises(HTTPClientError) as refused:
        run(connect())
    assert refused.value.code == 401
    stream = get(site, f"/stream/{site.camera_id}.mjpg?{urlencode({'token': token})}")
    assert stream.status_code == 401


def assert_page_refused(site: Site, token: str) -> None:
    """``token`` no longer opens a page: Bokeh sends the browser to the login."""
    response = get(site, "/live", token)
    location = response.headers.get("location", "")
    assert response.status_code == 302 and location.split("?")[0].endswith("/login"), location


def assert_browser_sent_to_login(browser, site: Site, token: str) -> None:
    context, page = new_page(browser)
    context.add_cookies([{"name": SESSION_COOKIE, "value": token, "url": site.url}])
    page.goto(f"{site.url}/live")
    page.wait_for_url("**/login**")
    context.close()


# ---------------------------------------------------------------------- item 3: throttle
def test_login_throttle_counts_per_username_and_address_across_both_logins(site):
    """Guessing carol's password from .2 while logging in as vera in between, on both
    entry points: the budget is shared, and vera's success clears nothing of carol's."""
    attacker = "127.0.0.2"

    def guess(path: str) -> httpx.Response:
        return post(site, path, attacker, username=CAROL, password="wrong-guess")

    assert [guess("/api/token").status_code for _ in range(3)] == [401] * 3  # the free ones
    assert post(site, "/login", attacker, username=VERA, password=VERA_PASSWORD).is_redirect
    # The 4th, 5th and 6th failures, alternating entry points, each after the wait the
    # one before imposed (1, 2, 4 s: BASE_DELAY_S doubling), so that each one counts.
    for path, wait in (("/login", 1), ("/api/token", 2), ("/login", 4)):
        assert guess(path).status_code == 401
        time.sleep(wait + 0.3)
    response = guess("/api/token")  # the 7th failure: a wait of 8 s
    # 8 s: all seven failures counted, whichever entry point, whatever vera did between.
    assert response.status_code == 401 and response.headers["Retry-After"] == "8"
    # The address is throttled for every user, on both entry points...
    assert post(site, "/login", attacker, username=VERA, password=VERA_PASSWORD).status_code == 429
    assert (
        post(site, "/api/token", attacker, username=VERA, password=VERA_PASSWORD).status_code == 429
    )
    # ...and carol is throttled from every address.
    other = post(site, "/login", "127.0.0.3", username=CAROL, password=CAROL_PASSWORD)
    assert other.status_code == 429
    # Vera from elsewhere is not.
    assert post(site, "/login", "127.0.0.4", username=VERA, password=VERA_PASSWORD).is_redirect


def test_a_good_login_never_resets_its_addresss_failures(tmp_path):
    """Guesses spread over usernames from one address, a good login after each: the
    address's failures keep counting (a success clears its own username's only)."""
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    address = "10.0.0.9"

    async def spray(db: Database) -> list[float]:
        waits = []
        for guess in range(FREE_FAILURES + 2):
            wrong = await attempt_login(db, throttle, address, f"guess{guess}", "wrong-guess")
            assert wrong.problem == "wrong"
            waits.append(wrong.retry_after)
            now[0] += wrong.retry_after + 0.1  # waited out, so the good login goes through
            good = await attempt_login(db, throttle, address, VERA, VERA_PASSWORD)
            assert good.user is not None, good
            now[0] += wrong.retry_after + 0.1  # (counted in advance, its time restarts the wait)
        return waits

    with Database(tmp_path / "zvpanel.db") as db:
        db.create_user(VERA, VERA_PASSWORD)
        waits = asyncio.run(spray(db))
    assert waits == [0.0] * FREE_FAILURES + [1.0, 2.0]


# ---------------------------------------------------------------------- item 5: logins end
def test_password_change_ends_sockets_streams_and_pages(site, browser):
    token = site.token(DAVE, DAVE_PASSWORD)
    feed, stream = OpenFeed(site, token), MjpegViewer(site, token)
    context, page = new_page(browser)  # a page left open, on another login of dave's
    login(page, site.url, DAVE, DAVE_PASSWORD)
    page.wait_for_url("**/live")
    page.locator(".zv-nav").wait_for()
    site.tokens.append(session_token(context))
    # The CLI is another process: the server learns of it from the database.
    said = zvpanel_cli(
        site.server.db, "user", "passwd", DAVE, "--password-stdin", stdin="dave-new-password\n"
    )
    assert "no longer work" in said
    code, reason, last = feed.closed()
    assert code == 1008 and "revoked" in reason
    assert last["type"] == "error" and last["code"] == "token_revoked"
    assert stream.ended() > 0
    wait_for_login_page(page)  # the open page ended itself
    context.close()
    assert_refused(site, token)
    assert_page_refused(site, token)
    assert_browser_sent_to_login(browser, site, token)
    fresh = site.token(DAVE, "dave-new-password")
    assert get(site, "/live", fresh).status_code == 200


def test_disabled_user_cannot_log_in_and_its_tokens_end(site):
    token = site.token(ERIN, ERIN_PASSWORD)
    feed = OpenFeed(site, token)
    assert "disabled" in zvpanel_cli(site.server.db, "user", "disable", ERIN)
    code, reason, _ = feed.closed()
    assert code == 1008 and "disabled" in reason
    assert_refused(site, token)
    assert_page_refused(site, token)
    source = "127.0.0.5"  # refused logins count against the address
    assert (
        post(site, "/api/token", source, username=ERIN, password=ERIN_PASSWORD).status_code == 401
    )
    assert post(site, "/login", source, username=ERIN, password=ERIN_PASSWORD).status_code == 401
    listed = next(
        line
        for line in zvpanel_cli(site.server.db, "user", "list").splitlines()
        if f" {ERIN} " in line
    )
    assert listed.split()[3] == "yes"  # DISABLED
    zvpanel_cli(site.server.db, "user", "enable", ERIN)
    fresh = site.token(ERIN, ERIN_PASSWORD, source)
    assert get(site, "/live", fresh).status_code == 200
    assert_page_refused(site, token)  # enabling does not bring the old token back


def test_logout_ends_the_session_everywhere(site, browser):
    context, page = new_page(browser)
    login(page, site.url, FRANK, FRANK_PASSWORD)
    page.wait_for_url("**/live")
    token = session_token(context)
    site.tokens.append(token)

    feed = OpenFeed(site, token)
    page.click("#logout")
    code, reason, _ = feed.closed()
    assert code == 1008 and "revoked" in reason
    assert_refused(site, token)
    page.wait_for_url("**/login?logged_out=1")
    context.close()
    assert_page_refused(site, token)
    assert_browser_sent_to_login(browser, site, token)


def test_signed_token_of_a_user_that_does_not_exist_is_refused(site, browser):
    settings = load_settings(jwt_secret=SECRET, dev_mode=False)
    ghost = issue_token(settings, "ghost", admin=True)
    site.tokens.append(ghost)
    assert get(site, "/live", site.token(VERA, VERA_PASSWORD)).status_code == 200  # the control
    assert_page_refused(site, ghost)
    assert_browser_sent_to_login(browser, site, ghost)
    assert_refused(site, ghost)


def test_admin_page_disables_a_user_and_ends_its_socket(site, browser):
    token = site.token(HANK, HANK_PASSWORD)
    context, page = new_page(browser)
    login(page, site.url, BOSS, BOSS_PASSWORD)
    page.wait_for_url("**/live")
    site.tokens.append(session_token(context))
    page.goto(f"{site.url}/admin")
    page.locator(".bk-tab", has_text="Users").click()
    page.locator(".tabulator-cell", has_text=HANK).first.click()

    feed = OpenFeed(site, token)
    page.get_by_role("button", name="Disable / enable selected").click()
    code, reason, _ = feed.closed()
    assert code == 1008 and "disabled" in reason
    page.get_by_text(f"'{HANK}' disabled").wait_for()
    context.close()
    with Database(site.server.db) as db:
        assert db.get_user(HANK).disabled


def test_session_watch_ends_only_connections_whose_token_ended(tmp_path):
    """The watch itself on a real database: a change made before its first look counts
    too (between a socket's token check and its watch), and only the changed user ends."""
    settings = load_settings(jwt_secret=SECRET, dev_mode=False)
    ended: list[tuple[str, str]] = []
    watch = SessionWatch(poll_interval_s=3600)  # checked by hand below
    with Database(tmp_path / "zvpanel.db") as db:
        for username, password in VIEWERS.items():
            db.create_user(username, password)

        def follow(username: str) -> None:
            claims = verify_token(settings, issue_token(settings, username))
            watch.watch(db, claims, lambda why: ended.append((username, why)), on_loop=False)

        follow(DAVE)
        db.reset_password(DAVE, "dave-new-password")  # before the watch's first look
        follow(ERIN)
        follow(VERA)
        watch.check()
        assert ended == [(DAVE, "token revoked (password changed or logged out): log in again")]
        watch.check()  # nothing changed since: nobody else ends
        assert len(ended) == 1
        db.set_disabled(ERIN)
        watch.check()
        assert ended[1] == (ERIN, f"user {ERIN!r} is disabled")
        assert len(ended) == 2  # vera's token still holds


# ---------------------------------------------------------------------- item 7: redirect
@pytest.mark.parametrize(
    "target", ["/\\evil.example", "/\t/evil.example", "//evil.example", "https://evil.example/"]
)
def test_login_never_redirects_to_another_site(site, target):
    response = post(site, "/login", username=VERA, password=VERA_PASSWORD, next=target)
    assert response.is_redirect and response.headers["location"] == "/"


def test_login_link_with_a_backslash_stays_on_the_site(site, browser):
    context, page = new_page(browser)
    page.goto(f"{site.url}/login?next={quote('/%5Cevil.example', safe='/%')}")
    page.fill("#username", GINA)
    page.fill("#password", GINA_PASSWORD)
    page.click("#login")
    page.wait_for_url(lambda url: "/login" not in url)
    assert page.url.startswith(f"{site.url}/"), page.url
    context.close()


# ---------------------------------------------------------------------- item 10: framing
def test_pages_and_json_routes_carry_the_security_headers(site):
    token = site.token(VERA, VERA_PASSWORD)
    answers = {
        "login page": get(site, "/login"),
        "page": get(site, "/live", token),
        "token route": post(site, "/api/token", username=VERA, password=VERA_PASSWORD),
        "stream refused": get(site, f"/stream/{site.camera_id}.mjpg"),
        "socket refused": get(site, "/ws/events"),
        "feed example page": get(site, "/feed/"),
        "feed file missing": get(site, "/feed/nothing.js"),
        "token route, wrong method": get(site, "/api/token"),
    }
    site.tokens.append(answers["token route"].json()["access_token"])
    assert answers["page"].status_code == 200
    for name, response in answers.items():
        for header, value in SECURITY_HEADERS.items():
            assert response.headers.get(header) == value, (name, header, response.headers)


@contextmanager
def other_site(html: str) -> Iterator[str]:
    """A page of another site on this machine (``localhost`` is not ``127.0.0.1``)."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_another_site_cannot_frame_the_pages(site, browser):
    context, page = new_page(browser)
    token = site.token(VERA, VERA_PASSWORD)
    context.add_cookies([{"name": SESSION_COOKIE, "value": token, "url": site.url}])
    frames = "".join(f'<iframe src="{site.url}{path}"></iframe>' for path in ("/login", "/live"))
    with other_site(f"<html>{frames}</html>") as url:
        page.goto(url)  # returns after the frames' load events
    children = page.main_frame.child_frames
    assert len(children) == 2
    for frame in children:
        assert frame.query_selector("#username") is None and frame.query_selector(".zv-nav") is None
        assert "ERR_BLOCKED_BY_RESPONSE" in frame.content()  # refused by its headers
    context.close()


# ---------------------------------------------------------------------- item 9: logs
def test_no_token_reaches_the_log(site):
    """Last in the module: every token the tests used must be absent from the log."""
    token = site.token(VERA, VERA_PASSWORD)

    async def hello_and_bye() -> None:
        (await open_feed(site, token)).close()

    run(hello_and_bye())  # the socket's URL, with its token, reaches the access log
    assert_refused(site, token + "x")  # refused: logged as a warning with the URL
    site.tokens += [token, token + "x"]
    log = site.server.log_text()
    assert "token=[redacted]" in log  # URLs with tokens were logged, redacted
    leaked = [t for t in site.tokens if t in log or t.split(".")[2] in log]
    assert not leaked, f"{len(leaked)} of {len(site.tokens)} tokens in {site.server.log}"


def test_log_filter_redacts_messages_and_tracebacks():
    """The filter itself, on a real handler: a URL in the message, a JWT in a traceback."""
    settings = load_settings(jwt_secret=SECRET, dev_mode=False)
    jwt = issue_token(settings, VERA)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactTokens())
    logger = logging.getLogger("zvpanel.tests.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError(f"cannot serve {jwt}")
        except ValueError:
            logger.exception("401 GET %s (127.0.0.1)", f"/stream/1.mjpg?q=1&token={jwt[:20]}&x=2")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "/stream/1.mjpg?q=1&token=[redacted]&x=2" in text
    assert "cannot serve [redacted]" in text and "ValueError" in text
    assert jwt[:20] not in text and jwt.split(".")[2] not in text


# ---------------------------------------------------------------------- item 6: start-up
def refused_start(folder: Path, model_path: str, env: dict[str, str]) -> str:
    """Start the README's server; it must exit by itself. Returns its log."""
    process, *_, log, _ = start_server(folder, model_path, env)
    try:
        code = process.wait(timeout=REFUSAL_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text(errors="replace")
    assert code != 0, text[-2000:]
    assert "zvpanel ready" not in text
    return text


def test_start_without_secret_stops_naming_it(tmp_path, model_path):
    log = refused_start(tmp_path, model_path, {"ZVPANEL_DEV_MODE": "0"})
    assert "ZVPANEL_JWT_SECRET is not set" in log


def test_start_in_production_refuses_the_development_admin(tmp_path, model_path):
    dev = load_settings(dev_mode=True, db_path=tmp_path / "zvpanel.db", demo=False)
    with Database(dev.db_file) as db:
        assert bootstrap(db, dev).admin == "admin"  # admin/admin, made in development mode
    log = refused_start(
        tmp_path, model_path, {"ZVPANEL_DEV_MODE": "0", "ZVPANEL_JWT_SECRET": SECRET}
    )
    assert "zvpanel user passwd admin" in log


def test_development_secret_is_private_and_ignored_by_git(tmp_path):
    settings = load_settings(dev_mode=True, jwt_secret=None, db_path=tmp_path / "zvpanel.db")
    old = os.umask(0)  # a permissive umask must not widen the file
    try:
        secret = settings.secret()
    finally:
        os.umask(old)
    path = tmp_path / DEV_SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(secret) >= 32
    assert settings.secret() == secret  # kept, not made again
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", f"data/{DEV_SECRET_FILE}"], cwd=REPO_ROOT
    )
    assert ignored.returncode == 0, f"data/{DEV_SECRET_FILE} is not git-ignored"


def test_development_secret_file_without_a_secret_is_refused(tmp_path):
    """An empty file (a crash, or another process between creating and writing it) must
    never become an empty signing key: anyone could sign tokens with it."""
    settings = load_settings(dev_mode=True, jwt_secret=None, db_path=tmp_path / "zvpanel.db")
    (tmp_path / DEV_SECRET_FILE).write_text("\n")
    with pytest.raises(ConfigError) as refused:
        settings.secret()
    assert DEV_SECRET_FILE in str(refused.value) and "delete it" in str(refused.value)


def test_readme_development_command_listens_on_localhost_only(repo_root):
    readme = (repo_root / "README.md").read_text()
    command = next(line for line in readme.splitlines() if "panel serve apps/*.py" in line)
    assert "--address 127.0.0.1" in command
    assert START_ARGS[-2:] == ["--address", "127.0.0.1"]  # the browser tests run it so too
