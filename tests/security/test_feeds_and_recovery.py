"""Issue #10 items 13 and 14: feeds that tell the truth, recovery and responsiveness.

Real parts throughout: the real App (SQLite in tmp, the real model, the real engine) behind
the real feed routes on a Tornado server on 127.0.0.1, real WebSocket clients; a real
HTTP MJPEG stream (vtest.avi's frames) that the test stops and restarts; a TCP server
that accepts and never answers, for a stream that blocks; the README's ``panel serve``
and Chromium for the live page.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import jsonschema
import pytest
from serving import login, panel_server
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from zvpanel.app import App
from zvpanel.config import Settings
from zvpanel.engine.engine import DISABLED
from zvpanel.storage import DEMO_CALIBRATION, Database, bootstrap
from zvpanel.web.auth import issue_token
from zvpanel.web.feed import load_schema
from zvpanel.web.routes import build_routes
from zvpanel.web.server import FeedServer

pytestmark = pytest.mark.model

#: Guard against a hang: a read that gets nothing for this long fails the test.
READ_TIMEOUT_S = 60.0
#: Issue #10 item 14: a stream that comes back is counted again within this long.
RECOVERY_S = 10.0
#: How long the test stream stays down: long enough for a back-off without a low cap
#: (0.5, 1, 2, 4, 8, 16 s ...) to be waiting far beyond RECOVERY_S when it returns.
OUTAGE_S = 16.0
#: Frames of vtest.avi the MJPEG server loops over, and its frame rate.
STREAM_FRAMES = 40
STREAM_FPS = 10.0
PAGE_TIMEOUT_MS = 90_000


# ---------------------------------------------------------------------- servers
class MjpegServer:
    """A real HTTP MJPEG stream of vtest.avi's first frames on 127.0.0.1, which the test
    can stop (closing every connection) and start again on the same port."""

    def __init__(self, video_path: Path) -> None:
        capture = cv2.VideoCapture(str(video_path))
        self.jpegs = []
        for _ in range(STREAM_FRAMES):
            ok, image = capture.read()
            assert ok, f"cannot read {video_path}"
            self.jpegs.append(cv2.imencode(".jpg", image)[1].tobytes())
        capture.release()
        self.port = 0
        self._server: http.server.ThreadingHTTPServer | None = None
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> None:
        stop = self._stop = threading.Event()
        jpegs = self.jpegs

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace;boundary=frame")
                self.end_headers()
                k = 0
                while not stop.wait(1 / STREAM_FPS):
                    jpeg = jpegs[k % len(jpegs)]
                    k += 1
                    head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}"
                    try:
                        self.wfile.write(f"{head}\r\n\r\n".encode() + jpeg + b"\r\n")
                    except OSError:
                        return

            def log_message(self, *args) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()  # every open response ends: the camera's stream breaks
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def silent_tcp_server() -> Iterator[tuple[str, threading.Event]]:
    """A TCP server that accepts and never sends: an HTTP camera that hangs. Yields its
    URL and an event set each time it accepts a connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)
            accepted.set()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/stream", accepted
    finally:
        listener.close()
        for conn in held:
            conn.close()


# ---------------------------------------------------------------------- helpers
def prepare_database(settings: Settings, demo_enabled: bool = True) -> Database:
    """The database the App will open: bootstrapped (admin, demo camera on vtest.avi)."""
    db = Database(settings.db_file)
    bootstrap(db, settings)
    if not demo_enabled:
        demo = db.list_cameras()[0]
        db.update_camera(demo.id, enabled=False)
    return db


def add_camera(db: Database, name: str, source: str) -> int:
    store = db.list_stores()[0]
    camera = db.create_camera(store.id, name, source)
    db.set_calibration(camera.id, DEMO_CALIBRATION)
    return camera.id


@contextmanager
def running(settings: Settings) -> Iterator[tuple[App, FeedServer]]:
    app = App(settings).start()
    try:
        with FeedServer(build_routes(lambda: app)) as server:
            yield app, server
    finally:
        app.stop()


def run(coro):
    return asyncio.run(coro)


async def connect(server: FeedServer, settings: Settings, path: str) -> WebSocketClientConnection:
    token = issue_token(settings, "admin", admin=True)
    conn = await websocket_connect(HTTPRequest(f"{server.ws_url}{path}?token={token}"))
    hello = await read_json(conn)
    assert hello["type"] == "hello", hello
    return conn


async def read_json(conn: WebSocketClientConnection, timeout: float = READ_TIMEOUT_S) -> dict:
    """The next text message, validated against its schema (binary frames are skipped)."""
    while True:
        message = await asyncio.wait_for(conn.read_message(), timeout)
        assert message is not None, f"socket closed: {conn.close_code} {conn.close_reason}"
        if isinstance(message, bytes):
            continue
        data = json.loads(message)
        jsonschema.validate(data, load_schema(data["type"]))
        return data


async def read_until(conn, kind: str, timeout: float = READ_TIMEOUT_S, **match) -> dict:
    async def scan() -> dict:
        while True:
            data = await read_json(conn)
            if data["type"] == kind and all(data.get(k) == v for k, v in match.items()):
                return data

    return await asyncio.wait_for(scan(), timeout)


# ---------------------------------------------------------------------- item 13
def test_camera_added_after_the_socket_opened_reaches_detections_and_events(settings):
    """/ws/detections without camera_ids and /ws/events follow cameras added later."""
    prepare_database(settings).close()
    with running(settings) as (app, server):

        async def scenario():
            detections = await connect(server, settings, "/ws/detections")
            events = await connect(server, settings, "/ws/events")
            added = add_camera(app.db, "Added later", str(settings.sample_video))
            message = await read_until(detections, "detections", camera_id=added)
            assert message["status"] == "online"
            # vtest.avi has a crossing of the demo line in its first seconds.
            event = await read_until(events, "event", camera_id=added)
            assert event["line_id"] == "door"
            detections.close()
            events.close()

        run(scenario())


def test_outage_is_told_on_every_feed_and_the_stream_is_back_within_10_s(settings, video_path):
    """A real MJPEG camera stops: /ws/detections, /ws/events and /ws/video say it is
    reconnecting and why; it comes back after OUTAGE_S and is counted again in 10 s."""
    stream = MjpegServer(video_path)
    stream.start()
    db = prepare_database(settings, demo_enabled=False)
    camera_id = add_camera(db, "Stream door", stream.url)
    db.close()
    try:
        with running(settings) as (app, server):

            async def scenario():
                detections = await connect(server, settings, f"/ws/detections/{camera_id}")
                events = await connect(server, settings, "/ws/events")
                token = issue_token(settings, "admin", admin=True)
                video = await websocket_connect(
                    HTTPRequest(f"{server.ws_url}/ws/video/{camera_id}?token={token}")
                )
                await read_until(detections, "detections", status="online")
                stream.stop()
                for conn in (detections, events, video):
                    status = await read_until(
                        conn, "status", camera_id=camera_id, state="reconnecting"
                    )
                    assert f"'{stream.url}'" in status["reason"], status  # names the stream
                await asyncio.sleep(OUTAGE_S)
                stream.start()  # the same URL answers again
                try:
                    back = await read_until(
                        detections, "status", RECOVERY_S, camera_id=camera_id, state="online"
                    )
                except TimeoutError:
                    pytest.fail(f"the stream was not picked up within {RECOVERY_S:g} s")
                assert back["reason"] is None
                message = await read_until(detections, "detections")
                assert message["status"] == "online" and message["detections"]
                for conn in (detections, events, video):
                    conn.close()

            run(scenario())
    finally:
        stream.stop()


@pytest.mark.ui
def test_disabled_camera_tile_says_disabled(tmp_path, model_path, video_path, launch_chromium):
    """/live: the video pane of a disabled camera says so (it said "connecting" forever)."""
    from playwright.sync_api import sync_playwright

    folder = tmp_path / "server"
    folder.mkdir()
    with panel_server(folder, model_path) as server:
        db = Database(server.db)
        store = db.list_stores()[0]
        db.create_camera(store.id, "Switched off", str(video_path), enabled=False)
        db.close()
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            login(page, server.url, "admin", "admin")
            page.goto(f"{server.url}/live")
            note = page.locator(".zv-stream-note", has_text=DISABLED)
            note.wait_for()
            assert note.get_attribute("data-state") == "stopped"
            assert "connecting" not in note.text_content()
            browser.close()


# ---------------------------------------------------------------------- item 14
def test_a_stuck_stream_being_stopped_does_not_hold_up_another_camera(settings):
    """While the engine waits for a hanging stream to close (camera disabled), another
    camera's reload and status queries go through: the engine's lock is not held."""
    with silent_tcp_server() as (url, accepted):
        db = prepare_database(settings)
        demo = db.list_cameras()[0].id
        stuck = add_camera(db, "Hanging camera", url)
        db.close()
        with running(settings) as (app, _):
            engine = app.engine
            assert engine.worker(stuck) is not None and engine.worker(demo) is not None
            accepted.clear()
            # Just connected, the source is inside FFmpeg's open, waiting on the silent
            # server: stopping it now waits until FFmpeg gives up.
            assert accepted.wait(READ_TIMEOUT_S), "the camera never connected"
            app.db.update_camera(stuck, enabled=False)
            stopping = threading.Thread(target=engine.reload_camera, args=(stuck,))
            stopping.start()
            while engine.worker(stuck) is not None:  # swapped out, now being joined
                time.sleep(0.01)
            app.db.update_camera(demo, enabled=False)
            engine.reload_camera(demo)  # another camera: done while the stuck one joins
            assert engine.worker(demo) is None
            assert engine.status(demo).reason == DISABLED
            assert stopping.is_alive(), "the hanging stream closed before the test could tell"
            stopping.join()
            assert engine.status(stuck).reason == DISABLED
