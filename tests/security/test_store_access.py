"""Issue #10 items 11 and 12: viewers limited to their stores; the origin check.

One real ``panel serve`` (the README's command, the real model) with two stores, each
with a camera on data/vtest.avi: Northfield and Southgate. ``manager`` is a viewer
limited to Northfield (set with the CLI), ``boss`` an admin. Real WebSocket clients on
every feed route, a real HTTP client on the MJPEG stream, and Chromium on every page:
the viewer gets Northfield only, and a Southgate camera is answered like one that does
not exist. The origin check runs on the oldest Tornado pyproject allows.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import tomllib
from serving import REPO_ROOT, Server, login, panel_server
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from zvpanel.errors import ConflictError
from zvpanel.storage import DEMO_CALIBRATION, Database
from zvpanel.storage.database import EventRow, utc_text
from zvpanel.web.video import parse_video_message
from zvpanel.web.ws_handlers import CLOSE_POLICY_VIOLATION

pytestmark = [pytest.mark.ui, pytest.mark.model]

#: Guard against a hang: a read that gets nothing for this long fails the test.
READ_TIMEOUT_S = 90.0
PAGE_TIMEOUT_MS = 90_000
BOSS, BOSS_PASSWORD = "boss", "boss-password-1"
MANAGER, MANAGER_PASSWORD = "manager", "manager-password-1"
CLERK, CLERK_PASSWORD = "clerk", "clerk-password-1"  # limited from the admin page
AUDITOR, AUDITOR_PASSWORD = "auditor", "auditor-password-1"  # limited while connected
NORTH, SOUTH = "Northfield", "Southgate"
NORTH_CAMERA, SOUTH_CAMERA = "northfield-door", "southgate-door"
#: An id no camera has: what a hidden camera must be indistinguishable from.
UNKNOWN_ID = 987654
#: Events recorded per store before the server starts (for the analytics page and CSV).
EVENTS_PER_STORE = 3


@dataclass(frozen=True)
class Site:
    server: Server
    north: int  # store ids
    south: int
    north_camera: int
    south_camera: int

    def ws(self, path: str, token: str, **query) -> str:
        return f"ws://127.0.0.1:{self.server.port}{path}?{urlencode({'token': token, **query})}"


def _record_events(db: Database, store_id: int, camera_id: int) -> None:
    now = datetime.now(timezone.utc) - timedelta(minutes=5)
    db.insert_events(
        EventRow(store_id, camera_id, "door", k, "entry", utc_text(now), k, 0.9)
        for k in range(EVENTS_PER_STORE)
    )


def _zvpanel_cli(db_path: Path, *args: str, ok: bool = True) -> str:
    """Run ``zvpanel ARGS`` on ``db_path``; its output (stderr if ``ok`` is False)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZVPANEL_")}
    env["ZVPANEL_DB_PATH"] = str(db_path)
    done = subprocess.run(
        [sys.executable, "-m", "zvpanel", *args], env=env, capture_output=True, text=True
    )
    assert (done.returncode == 0) == ok, done.stderr
    return done.stdout if ok else done.stderr


def test_cli_limits_shows_and_lifts_a_viewers_stores(tmp_path):
    db_path = tmp_path / "zvpanel.db"
    with Database(db_path) as db:
        db.create_user("carol", "carol-password-1")
        one, two = (db.create_store(name).id for name in ("One", "Two"))
    stores = ("user", "stores", "carol")
    assert "'carol' may see every store" in _zvpanel_cli(db_path, *stores)
    said = _zvpanel_cli(db_path, *stores, "--store", str(two), "--store", str(one))
    assert f"'carol' may see only store(s) {one} 'One', {two} 'Two'" in said
    assert "no store with id 999" in _zvpanel_cli(db_path, *stores, "--store", "999", ok=False)
    _zvpanel_cli(db_path, *stores, "--store", str(one))
    with Database(db_path) as db:
        assert db.user_store_ids("carol") == [one]
        # Deleting her only store would let her see every store: refused, and named.
        with pytest.raises(ConflictError, match="only store 'carol' may see"):
            db.delete_store(one)
        db.delete_store(two)
    assert "'carol' may see every store" in _zvpanel_cli(db_path, *stores, "--all")


@pytest.fixture(scope="module")
def site(tmp_path_factory, model_path: str, video_path: Path) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("stores")
    db_path = folder / "zvpanel.db"
    with Database(db_path) as db:
        db.create_user(BOSS, BOSS_PASSWORD, is_admin=True)
        db.create_user(MANAGER, MANAGER_PASSWORD)
        db.create_user(CLERK, CLERK_PASSWORD)
        db.create_user(AUDITOR, AUDITOR_PASSWORD)
        ids = []
        for store, camera in ((NORTH, NORTH_CAMERA), (SOUTH, SOUTH_CAMERA)):
            store_id = db.create_store(store).id
            camera_id = db.create_camera(store_id, camera, str(video_path)).id
            db.set_calibration(camera_id, DEMO_CALIBRATION)
            _record_events(db, store_id, camera_id)
            ids += [store_id, camera_id]
    north, north_camera, south, south_camera = ids
    said = _zvpanel_cli(db_path, "user", "stores", MANAGER, "--store", str(north))
    assert f"{MANAGER!r} may see only store(s) {north} {NORTH!r}" in said
    with panel_server(folder, model_path, env={"ZVPANEL_DEMO": "0"}) as server:
        yield Site(server, north, south, north_camera, south_camera)


def token(site: Site, username: str, password: str) -> str:
    reply = httpx.post(
        f"{site.server.url}/api/token", data={"username": username, "password": password}
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["access_token"]


def run(coro):
    """Run ``coro`` on a fresh event loop in its own thread (Playwright's sync API keeps
    a loop running on this one while its browser is open)."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, asyncio.wait_for(coro, READ_TIMEOUT_S * 4)).result()


async def read_json(conn: WebSocketClientConnection) -> dict:
    message = await asyncio.wait_for(conn.read_message(), READ_TIMEOUT_S)
    assert message is not None, f"socket closed: {conn.close_code} {conn.close_reason}"
    return json.loads(message)


async def refusal(url: str) -> tuple[dict, int, str]:
    """The error message, close code and reason a refused feed socket gives."""
    conn = await websocket_connect(url)
    error = await read_json(conn)
    assert await conn.read_message() is None
    return error, conn.close_code, conn.close_reason


def _without_id(text: str, camera_id: int) -> str:
    return re.sub(rf"\b{camera_id}\b", "ID", text)


async def assert_like_unknown(
    site: Site, path: str, viewer: str, hidden: int | None = None, **query
) -> None:
    """``path`` (``{id}`` stands for the camera) for a camera hidden from ``viewer``
    (Southgate's unless given) answers exactly as for a camera that does not exist."""
    hidden = hidden or site.south_camera

    def url(camera_id: int) -> str:
        filled = {k: str(v).format(id=camera_id) for k, v in query.items()}
        return site.ws(path.format(id=camera_id), viewer, **filled)

    refused, unknown = await refusal(url(hidden)), await refusal(url(UNKNOWN_ID))
    assert refused[0]["type"] == "error" and refused[0]["code"] == "unknown_camera", refused
    assert _without_id(json.dumps(refused), hidden) == _without_id(json.dumps(unknown), UNKNOWN_ID)


# ---------------------------------------------------------------------- item 12: feeds
async def cameras_seen(url: str, kind: str, wanted: int) -> tuple[dict, set[int]]:
    """The hello of a feed, and the cameras named by any of its messages until ``wanted``
    messages of type ``kind`` arrived (status messages name cameras too)."""
    conn = await websocket_connect(url)
    hello, seen = await read_json(conn), set()
    while wanted:
        message = await read_json(conn)
        if "camera_id" in message:
            seen.add(message["camera_id"])
        wanted -= message["type"] == kind
    conn.close()
    return hello, seen


def test_detection_feeds_show_only_the_viewers_store(site):
    viewer = token(site, MANAGER, MANAGER_PASSWORD)
    admin = token(site, BOSS, BOSS_PASSWORD)

    async def scenario():
        # The admin's feed carries both cameras: Southgate's camera runs and publishes.
        _, both = await cameras_seen(site.ws("/ws/detections", admin), "detections", 20)
        assert both == {site.north_camera, site.south_camera}
        hello, seen = await cameras_seen(site.ws("/ws/detections", viewer), "detections", 20)
        assert hello["camera_ids"] == [site.north_camera]
        assert seen == {site.north_camera}
        live = site.ws(f"/ws/live/{site.north_camera}", viewer)
        assert (await cameras_seen(live, "detections", 1))[1] == {site.north_camera}
        for path, query in (
            ("/ws/detections/{id}", {}),
            ("/ws/live/{id}", {}),
            ("/ws/detections", {"camera_ids": "{id}"}),
            ("/ws/detections", {"camera_ids": f"{site.north_camera},{{id}}"}),
            ("/ws/video/{id}", {}),
        ):
            await assert_like_unknown(site, path, viewer, **query)

    run(scenario())


def test_events_feed_shows_only_the_viewers_store(site):
    viewer = token(site, MANAGER, MANAGER_PASSWORD)
    admin = token(site, BOSS, BOSS_PASSWORD)

    async def scenario():
        # Opened together: whatever the admin's feed gets, the viewer's could have got.
        mine, everyone = await asyncio.gather(
            cameras_seen(site.ws("/ws/events", viewer), "event", 6),
            cameras_seen(site.ws("/ws/events", admin), "event", 6),
        )
        assert everyone[1] == {site.north_camera, site.south_camera}
        assert mine[0]["camera_ids"] == [site.north_camera]
        assert mine[1] == {site.north_camera}

    run(scenario())


def test_video_socket_and_mjpeg_stream_only_for_the_viewers_store(site):
    viewer = token(site, MANAGER, MANAGER_PASSWORD)

    async def scenario():
        conn = await websocket_connect(site.ws(f"/ws/video/{site.north_camera}", viewer))
        message = await asyncio.wait_for(conn.read_message(), READ_TIMEOUT_S)
        header, jpeg = parse_video_message(message)
        assert header["camera_id"] == site.north_camera and jpeg[:2] == b"\xff\xd8"
        conn.close()

    run(scenario())

    bearer = {"Authorization": f"Bearer {viewer}"}
    url = f"{site.server.url}/stream/{{}}.mjpg"
    with httpx.stream("GET", url.format(site.north_camera), headers=bearer) as stream:
        assert stream.status_code == 200
        assert next(stream.iter_bytes()).startswith(b"--zvpanelframe")
    hidden = _answer(url.format(site.south_camera), bearer)
    unknown = _answer(url.format(UNKNOWN_ID), bearer)
    assert hidden[0] == unknown[0] == 404
    assert _without_id(hidden[1], site.south_camera) == _without_id(unknown[1], UNKNOWN_ID)


def _answer(url: str, headers: dict[str, str]) -> tuple[int, str]:
    """Status and body of a GET; a stream that starts (200) is not read to its end."""
    with httpx.stream("GET", url, headers=headers) as response:
        body = "" if response.status_code == 200 else response.read().decode()
        return response.status_code, body


def test_changing_a_users_stores_ends_their_open_sockets(site):
    before = token(site, AUDITOR, AUDITOR_PASSWORD)  # not limited yet: every store

    async def scenario():
        conn = await websocket_connect(site.ws(f"/ws/video/{site.north_camera}", before))
        assert await asyncio.wait_for(conn.read_message(), READ_TIMEOUT_S) is not None
        with Database(site.server.db) as db:
            db.set_user_stores(AUDITOR, [site.south])
        while await asyncio.wait_for(conn.read_message(), READ_TIMEOUT_S) is not None:
            pass  # frames, until the server ends the socket
        assert conn.close_code == CLOSE_POLICY_VIOLATION
        # The next login sees the new stores: Northfield's camera is unknown to it.
        after = token(site, AUDITOR, AUDITOR_PASSWORD)
        await assert_like_unknown(site, "/ws/video/{id}", after, hidden=site.north_camera)

    run(scenario())


# ---------------------------------------------------------------------- item 12: pages
#: Everything the browser holds: the page's text, that of every shadow root (Panel draws
#: its widgets there), and every string in the state of every Bokeh model of the page
#: (options not on screen, table rows, chart labels, ...).
_PAGE_STATE_JS = r"""() => {
  const strings = [document.documentElement.textContent];
  const seen = new Set();
  const collect = (value, depth) => {
    if (depth > 8 || value == null) return;
    if (typeof value === 'string') { strings.push(value); return; }
    if (typeof value !== 'object' || seen.has(value) || ArrayBuffer.isView(value)) return;
    seen.add(value);
    if (value instanceof Map) {
      for (const [key, item] of value) { collect(key, depth + 1); collect(item, depth + 1); }
    } else if (Array.isArray(value)) {
      for (const item of value) collect(item, depth + 1);
    } else if (value.properties === undefined) {  // a model is collected on its own
      for (const item of Object.values(value)) collect(item, depth + 1);
    }
  };
  for (const el of document.querySelectorAll('*')) {
    if (el.shadowRoot) strings.push(el.shadowRoot.textContent);
  }
  for (const doc of window.Bokeh.documents) {
    for (const model of doc.all_models) collect(model.attributes, 0);
  }
  return strings.join('\n');
}"""


def _logged_in(browser, site: Site, username: str, password: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    login(page, site.server.url, username, password)
    page.wait_for_url("**/live")
    return context, page


def _page_state(page, site: Site, path: str, shown: str) -> str:
    """Open ``path``, wait until it shows ``shown``, and return all the browser holds."""
    page.goto(site.server.url + path)
    page.get_by_text(shown).first.wait_for(state="attached")
    return page.evaluate(_PAGE_STATE_JS)


def test_pages_show_a_limited_viewer_only_their_store(browser, site):
    context, page = _logged_in(browser, site, MANAGER, MANAGER_PASSWORD)
    try:
        for path in ("/live", "/calibrate", "/analytics", "/admin"):
            shown = NORTH if path == "/analytics" else NORTH_CAMERA
            state = _page_state(page, site, path, shown)
            assert SOUTH.lower() not in state.lower(), f"{path} shows the other store"

        # The analytics page's CSV: Northfield's events only.
        _page_state(page, site, "/analytics", NORTH)
        with page.expect_download() as download:
            page.get_by_role("button", name="Download raw events (CSV)").click()
        rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
        assert len(rows) >= EVENTS_PER_STORE
        assert {(r["store_id"], r["camera_name"]) for r in rows} == {
            (str(site.north), NORTH_CAMERA)
        }
    finally:
        context.close()


def test_admin_limits_a_viewer_from_the_users_tab(browser, site):
    context, page = _logged_in(browser, site, BOSS, BOSS_PASSWORD)
    try:
        state = _page_state(page, site, "/admin", SOUTH_CAMERA)
        assert SOUTH in state and NORTH in state  # the admin sees every store
        page.get_by_text("Users", exact=True).click()
        page.get_by_role("gridcell", name=CLERK, exact=True).click()
        # The server has the selection (and has shown clerk's stores) before we pick.
        page.get_by_text(f"Stores {CLERK} may see").wait_for()
        page.locator(".choices").last.click()
        page.get_by_role("option", name=SOUTH).click()
        page.get_by_role("button", name="Set stores of selected").click()
        page.get_by_text(f"'{CLERK}' may see only: '{SOUTH}'").wait_for()
    finally:
        context.close()
    with Database(site.server.db) as db:
        assert db.user_store_ids(CLERK) == [site.south]


# ---------------------------------------------------------------------- item 11: origin
#: Run with the oldest Tornado first on PYTHONPATH: zvpanel's routes on a real server,
#: a real App (database, demo camera, hub; no engine). Prints what the test needs.
_OLD_TORNADO_SERVER = """
import json, sys, tornado
from zvpanel.app import App
from zvpanel.config import load_settings
from zvpanel.web.routes import build_routes
from zvpanel.web.server import FeedServer

app = App(load_settings())
app.start_database()
app.start_bootstrap()
app.start_hub()
with FeedServer(build_routes(lambda: app)) as server:
    camera = app.db.list_cameras()[0].id
    print(json.dumps({"tornado": tornado.version, "port": server.port, "camera": camera}))
    sys.stdout.flush()
    sys.stdin.read()  # until the test closes it
"""


def _oldest_allowed_tornado() -> str:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    for requirement in project["project"]["dependencies"]:
        found = re.fullmatch(r"tornado\s*>=\s*([\d.]+)\s*(,.*)?", requirement.strip())
        if found:
            return found.group(1)
    raise AssertionError("pyproject.toml has no tornado>=X requirement")


@pytest.fixture(scope="module")
def old_tornado(tmp_path_factory) -> tuple[str, Path]:
    """The oldest Tornado pyproject allows, installed from the registry into a folder."""
    version = _oldest_allowed_tornado()
    folder = tmp_path_factory.mktemp(f"tornado-{version}")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
        + ["--target", str(folder), f"tornado=={version}"],
        check=True,
    )
    return version, folder


def test_origin_check_on_the_oldest_allowed_tornado(old_tornado, tmp_path, video_path):
    version, folder = old_tornado
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZVPANEL_")}
    env |= {
        "PYTHONPATH": str(folder),
        "ZVPANEL_DB_PATH": str(tmp_path / "zvpanel.db"),
        "ZVPANEL_DEV_MODE": "1",
        "ZVPANEL_SAMPLE_VIDEO": str(video_path),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", _OLD_TORNADO_SERVER],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready = json.loads(process.stdout.readline() or "{}")
        assert ready.get("tornado", "").startswith(version), ready
        base = f"127.0.0.1:{ready['port']}"
        reply = httpx.post(
            f"http://{base}/api/token", data={"username": "admin", "password": "admin"}
        )
        query = urlencode({"token": reply.json()["access_token"]})

        async def scenario():
            for path in (f"/ws/video/{ready['camera']}", "/ws/events"):
                url = f"ws://{base}{path}?{query}"
                # The dashboards' own pages: same origin.
                conn = await websocket_connect(
                    HTTPRequest(url, headers={"Origin": f"http://{base}"})
                )
                conn.close()
                with pytest.raises(HTTPClientError) as refused:
                    await websocket_connect(
                        HTTPRequest(url, headers={"Origin": "http://evil.example"})
                    )
                assert refused.value.code == 403

        run(scenario())
    finally:
        process.stdin.close()
        process.wait(timeout=30)
