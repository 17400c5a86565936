"""The MQTT bus on real parts: Debian's Mosquitto and PostgreSQL on 127.0.0.1, a publisher
App running the real model on data/vtest.avi, and a dashboard App without an engine whose
hub is fed from the bus (zvpanel/bus)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import replace

import orjson
import paho.mqtt.client as mqtt
import pytest
from serving import panel_server
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from zvpanel.app import App
from zvpanel.bus import (
    BUS_UNAVAILABLE,
    Bus,
    camera_topic,
    parse_mqtt_url,
    parse_topic,
    validate_payload,
)
from zvpanel.bus.messages import placeholder_image
from zvpanel.config import load_settings
from zvpanel.engine import ResultHub
from zvpanel.engine.result import CameraStatus, FrameResult
from zvpanel.storage import Database, bootstrap
from zvpanel.web.auth import issue_token
from zvpanel.web.jpeg import FrameEncoder
from zvpanel.web.routes import build_routes
from zvpanel.web.server import FeedServer
from zvpanel.web.ws_handlers import FeedRegistry

pytestmark = [pytest.mark.model]

#: The demo camera's detection rate here: low, the machine is shared.
DETECTION_FPS = 3.0
#: How long the real model may take to produce what a test waits for (seconds, 2 busy cores).
WAIT_S = 120
#: Detections messages seen after a watch ended before the frames are checked to have stopped.
AFTER_UNWATCH = 8


def wait_until(condition: Callable[[], object], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.1)


class Recorder:
    """A plain MQTT subscriber, as Home Assistant or Node-RED would be: every camera topic."""

    def __init__(self, url: str) -> None:
        self.lock = threading.Lock()
        self.messages: dict[str, list[bytes]] = defaultdict(list)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe("zvpanel/v1/cameras/#", qos=1)
        self.client.on_message = self._on_message
        broker = parse_mqtt_url(url)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        parsed = parse_topic(message.topic)
        assert parsed is not None, message.topic
        with self.lock:
            self.messages[parsed[1]].append(message.payload)

    def count(self, kind: str) -> int:
        with self.lock:
            return len(self.messages[kind])

    def json(self, kind: str) -> list[dict]:
        with self.lock:
            return [orjson.loads(p) for p in self.messages[kind]]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class HubWatcher:
    """Results and statuses of one camera as the dashboard's hub hands them out."""

    def __init__(self, app: App, camera_id: int, wants_frames: bool = False) -> None:
        self.results: list[FrameResult] = []
        self.statuses: list[CameraStatus] = []
        self.events: list[dict] = []  # what /ws/events sends of a camera fed from the bus
        self.sub = app.hub.subscribe(
            self.results.append, [camera_id], wants_frames=wants_frames,
            on_status=self.statuses.append, on_events=lambda _, m: self.events.extend(m),
        )  # fmt: skip

    def close(self) -> None:
        self.sub.close()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, model_path, video_path, postgres, mosquitto):
    """One PostgreSQL database and one broker; a publisher App (engine) and a dashboard
    App (no engine) on them."""
    url = postgres.new_database()
    env = dict(
        database_url=url, mqtt_url=mosquitto.url, model=model_path, sample_video=video_path,
        dev_mode=True, db_path=tmp_path_factory.mktemp("bus") / "unused.db",
    )  # fmt: skip
    with Database(url) as db:
        bootstrap(db, load_settings(**env))
        camera = db.list_cameras()[0]
        slow = db.get_calibration(camera.id).model_copy(update={"detection_fps": DETECTION_FPS})
        db.set_calibration(camera.id, slow)
    recorder = Recorder(mosquitto.url)
    with App(load_settings(**env)) as engine, App(load_settings(**env, engine=False)) as dashboard:
        yield dict(
            engine=engine, dashboard=dashboard, camera_id=camera.id, recorder=recorder,
            url=url, env=env, mosquitto=mosquitto,
        )  # fmt: skip
    recorder.close()


def test_topics_and_payload_errors_name_the_bad_member():
    assert camera_topic(7, "detections") == "zvpanel/v1/cameras/7/detections"
    assert parse_topic("zvpanel/v1/cameras/7/events") == (7, "events")
    assert parse_topic("zvpanel/v1/cameras/x/events") is None
    assert parse_topic("zvpanel/v1/cameras/7/other") is None
    with pytest.raises(ValueError, match="expires_in"):
        validate_payload("watch", {"viewer": "v", "expires_in": -1})
    with pytest.raises(ValueError, match="scheme 'http'"):
        parse_mqtt_url("http://127.0.0.1:1883")


def test_the_engine_publishes_schema_valid_status_counts_detections_and_events(fleet):
    recorder = fleet["recorder"]
    for kind in ("status", "counts", "detections", "events"):
        wait_until(lambda kind=kind: recorder.count(kind), f"a {kind} message")
    for kind in ("status", "counts", "detections", "events"):
        for payload in recorder.json(kind):
            validate_payload(kind, payload)
            assert payload["camera_id"] == fleet["camera_id"]
            assert payload["origin"] == fleet["engine"].bus.origin
    assert any(p["detections"] for p in recorder.json("detections"))
    event = recorder.json("events")[0]
    assert event["direction"] in ("entry", "exit") and event["counts"]


def test_the_dashboard_hub_serves_the_engines_camera(fleet):
    camera_id = fleet["camera_id"]
    watcher = HubWatcher(fleet["dashboard"], camera_id)
    try:
        wait_until(lambda: any(len(r.detections) for r in watcher.results), "a result with boxes")
        wait_until(lambda: watcher.events, "an event")
    finally:
        watcher.close()
    assert watcher.events[0]["camera_id"] == camera_id and "origin" not in watcher.events[0]
    assert not any(r.events for r in watcher.results)  # events come once, not with frames
    result = next(r for r in watcher.results if len(r.detections))
    assert result.camera_id == camera_id and result.status.state == "online"
    assert result.frame.width == 768 and result.frame.height == 576
    assert result.calibration.lines and result.counts
    assert fleet["dashboard"].hub.status(camera_id).state == "online"
    assert fleet["dashboard"].engine is None  # every result came over the bus


def test_frames_flow_only_while_a_dashboard_watches(fleet):
    recorder, camera_id = fleet["recorder"], fleet["camera_id"]
    publisher = fleet["engine"].bus.publisher
    start = recorder.count("detections")
    wait_until(lambda: recorder.count("detections") >= start + 3, "detections while unwatched")
    assert recorder.count("frame") == 0
    watcher = HubWatcher(fleet["dashboard"], camera_id, wants_frames=True)
    try:
        wait_until(lambda: recorder.count("frame") >= 3, "frames while watched")
        wait_until(
            lambda: any(r.frame.image is not placeholder_image(768, 576) for r in watcher.results),
            "a result with the camera's frame",
        )
    finally:
        watcher.close()
    wait_until(lambda: not publisher.watched(camera_id), "the watch to end at the publisher")
    seen = recorder.count("detections")
    wait_until(lambda: recorder.count("detections") >= seen + 2, "detections after unwatching")
    frames = recorder.count("frame")
    wait_until(lambda: recorder.count("detections") >= seen + 2 + AFTER_UNWATCH, "detections")
    assert recorder.count("frame") == frames


def test_broker_outage_engine_keeps_counting_and_the_dashboard_recovers(fleet):
    camera_id, mosquitto = fleet["camera_id"], fleet["mosquitto"]
    watcher = HubWatcher(fleet["dashboard"], camera_id)
    with Database(fleet["url"]) as db:

        def stored() -> int:
            return sum(db.count_events(camera_id=camera_id).values())

        mosquitto.stop()
        try:
            wait_until(
                lambda: any(s.reason == BUS_UNAVAILABLE for s in watcher.statuses),
                "the dashboard to say 'bus unavailable'",
            )
            status = fleet["dashboard"].hub.status(camera_id)
            assert (status.state, status.reason) == ("reconnecting", BUS_UNAVAILABLE)
            before = stored()
            wait_until(lambda: stored() > before, "events stored while the broker is down")
        finally:
            mosquitto.start()
    results = len(watcher.results)
    wait_until(lambda: len(watcher.results) > results + 2, "results after the broker returned")
    wait_until(lambda: fleet["dashboard"].hub.status(camera_id).state == "online", "online")
    watcher.close()


def test_a_process_never_sends_back_what_it_serves_from_the_bus(fleet):
    """A process that publishes its own cameras and feeds its hub with the others' must
    not publish the others' cameras again (a loop)."""
    recorder, camera_id = fleet["recorder"], fleet["camera_id"]
    hub = ResultHub()
    with Database(fleet["url"]) as db:
        bus = Bus(
            fleet["mosquitto"].url, hub, publish=True, calibration_for=db.get_calibration
        ).start()
        try:
            wait_until(lambda: hub.latest(camera_id) is not None, "the camera in the hub")
            seen = recorder.count("detections")
            wait_until(lambda: recorder.count("detections") >= seen + 5, "more detections")
        finally:
            bus.stop()
    for kind in ("status", "counts", "detections", "events"):
        assert all(p["origin"] != bus.origin for p in recorder.json(kind)), kind


#: Production mode for the two dashboard servers: one secret, shared by both.
JWT_SECRET = "bus-test-secret-" + "x" * 24
#: The admin's password there (production mode refuses the development one).
ADMIN_PASSWORD = "a real password for the bus test"
#: Messages read from a feed before its camera's detections must have come.
MAX_FEED_MESSAGES = 200


def _token(server_url: str) -> str:
    from urllib.parse import urlencode
    from urllib.request import urlopen

    form = urlencode({"username": "admin", "password": ADMIN_PASSWORD}).encode()
    with urlopen(f"{server_url}/api/token", data=form) as answer:  # POST
        return json.loads(answer.read())["access_token"]


async def _first_detections(server_url: str, camera_id: int, token: str) -> dict:
    ws_url = server_url.replace("http", "ws") + f"/ws/detections/{camera_id}?token={token}"
    conn = await websocket_connect(HTTPRequest(ws_url))
    try:
        for _ in range(MAX_FEED_MESSAGES):
            message = json.loads(await asyncio.wait_for(conn.read_message(), WAIT_S))
            if message["type"] == "detections":
                return message
    finally:
        conn.close()
    raise AssertionError(f"no detections in {MAX_FEED_MESSAGES} messages from {server_url}")


async def _first_event(server_url: str, token: str) -> dict:
    conn = await websocket_connect(
        HTTPRequest(server_url.replace("http", "ws") + f"/ws/events?token={token}")
    )
    try:
        while True:  # bounded by the wait below: events come every few seconds
            message = json.loads(await asyncio.wait_for(conn.read_message(), WAIT_S))
            if message["type"] == "event":
                return message
    finally:
        conn.close()


async def _refused(server_url: str, camera_id: int, token: str) -> bool:
    ws_url = server_url.replace("http", "ws") + f"/ws/detections/{camera_id}?token={token}"
    try:
        conn = await websocket_connect(HTTPRequest(ws_url))
    except HTTPClientError as error:
        return error.code in (401, 403)
    conn.close()
    return False


@pytest.mark.ui
def test_two_dashboard_servers_on_one_database_and_bus(fleet, tmp_path, model_path):
    """Two `panel serve` dashboards without engines: a token from one works on the other,
    both serve the engine's camera on /ws/detections (and its events on /ws/events), and ending the user's sessions in
    the shared database ends the token on both."""
    camera_id = fleet["camera_id"]
    env = {
        "ZVPANEL_DATABASE_URL": fleet["url"],
        "ZVPANEL_MQTT_URL": fleet["mosquitto"].url,
        "ZVPANEL_ENGINE": "0",
        "ZVPANEL_DEV_MODE": "0",
        "ZVPANEL_JWT_SECRET": JWT_SECRET,
    }
    with Database(fleet["url"]) as db:
        db.reset_password("admin", ADMIN_PASSWORD)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        panel_server(tmp_path / "a", model_path, env=env) as first,
        panel_server(tmp_path / "b", model_path, env=env) as second,
    ):
        token = _token(first.url)
        from_first = asyncio.run(_first_detections(first.url, camera_id, token))
        from_second = asyncio.run(_first_detections(second.url, camera_id, token))
        for message in (from_first, from_second):
            assert message["camera_id"] == camera_id and message["status"] == "online"
            assert (message["width"], message["height"]) == (768, 576)
        event = asyncio.run(_first_event(second.url, token))
        assert event["camera_id"] == camera_id and event["direction"] in ("entry", "exit")
        with Database(fleet["url"]) as db:
            db.end_sessions("admin")
        assert asyncio.run(_refused(second.url, camera_id, token))
        assert asyncio.run(_refused(first.url, camera_id, token))
    assert "Traceback" not in first.log_text() + second.log_text()


#: Track ids and frame indexes no real track or frame has (a test node's events).
FAKE_TRACK = 900_000
FAKE_FRAME = 9_000_000


def test_ws_events_of_a_bus_fed_dashboard_has_each_event_once(fleet):
    """A dashboard's /ws/events takes a bus camera's events from the QoS 1 events topic,
    not from the QoS 0 detections: an event whose detections message was lost still
    comes, and one whose detections came too comes once."""
    camera_id, dashboard = fleet["camera_id"], fleet["dashboard"]
    watcher = HubWatcher(fleet["engine"], camera_id)
    try:
        wait_until(lambda: any(r.events for r in watcher.results), "an event")
    finally:
        watcher.close()
    real = _with_event(watcher)
    lost, sent, last = (
        replace(
            real,
            frame=replace(real.frame, index=FAKE_FRAME + k),
            events=(replace(real.events[0], track_id=FAKE_TRACK + k),),
        )
        for k in range(3)
    )
    routes = build_routes(lambda: dashboard, encoder_provider=FrameEncoder, registry=FeedRegistry())
    version = dashboard.db.get_user("admin").token_version  # an earlier test ended sessions
    token = issue_token(dashboard.settings, "admin", admin=True, version=version)
    node = Bus(fleet["mosquitto"].url, ResultHub(), publish=True).start()

    async def fake_tracks(url: str) -> list[int]:
        conn = await websocket_connect(HTTPRequest(f"{url}/ws/events?token={token}"))
        try:
            assert json.loads(await conn.read_message())["type"] == "hello"
            # lost: its events go, its detections do not; sent: both; last: ends the read.
            node.publisher._send({camera_id: sent}, {}, deque([lost, sent]))
            node.publisher._send({}, {}, deque([last]))
            seen: list[int] = []
            while FAKE_TRACK + 2 not in seen:  # bounded by the wait below
                message = json.loads(await asyncio.wait_for(conn.read_message(), WAIT_S))
                if message["type"] == "event" and message["track_id"] >= FAKE_TRACK:
                    seen.append(message["track_id"])
            return seen
        finally:
            conn.close()

    try:
        wait_until(node.connected.is_set, "the test node to connect")
        with FeedServer(routes) as server:
            seen = asyncio.run(fake_tracks(server.ws_url))
    finally:
        node.stop()
    assert seen == [FAKE_TRACK, FAKE_TRACK + 1, FAKE_TRACK + 2]


def _with_event(watcher: HubWatcher) -> FrameResult:
    return next(r for r in watcher.results if r.events)


def test_a_redelivered_bus_event_reaches_ws_events_once(fleet):
    """QoS 1 delivers at least once: the same event message arriving twice (a redelivery
    after a lost acknowledgement) is one event on a dashboard's /ws/events; the same
    frame, track and line at another time (a looping file counted again) is another."""
    from zvpanel.bus.messages import event_payloads

    camera_id, dashboard = fleet["camera_id"], fleet["dashboard"]
    watcher = HubWatcher(fleet["engine"], camera_id)
    try:
        wait_until(lambda: any(r.events for r in watcher.results), "an event")
    finally:
        watcher.close()
    real = _with_event(watcher)
    twice, last = (
        replace(
            real,
            frame=replace(real.frame, index=FAKE_FRAME + 10 + k),
            events=(replace(real.events[0], track_id=FAKE_TRACK + 10 + k),),
        )
        for k in range(2)
    )
    routes = build_routes(lambda: dashboard, encoder_provider=FrameEncoder, registry=FeedRegistry())
    version = dashboard.db.get_user("admin").token_version  # an earlier test ended sessions
    token = issue_token(dashboard.settings, "admin", admin=True, version=version)
    node = Bus(fleet["mosquitto"].url, ResultHub(), publish=True).start()
    topic = camera_topic(camera_id, "events")

    async def fake_tracks(url: str) -> list[int]:
        conn = await websocket_connect(HTTPRequest(f"{url}/ws/events?token={token}"))
        try:
            assert json.loads(await conn.read_message())["type"] == "hello"
            (payload,) = event_payloads(twice, node.origin)
            for _ in range(2):  # byte for byte the same message, as a redelivery is
                node.client.publish(topic, orjson.dumps(payload), qos=1).wait_for_publish()
            again = payload | {"timestamp": payload["timestamp"].replace("Z", "1Z", 1)}
            assert again["timestamp"] != payload["timestamp"]
            node.client.publish(topic, orjson.dumps(again), qos=1).wait_for_publish()
            (payload,) = event_payloads(last, node.origin)
            node.client.publish(topic, orjson.dumps(payload), qos=1)  # ends the read
            seen: list[int] = []
            while FAKE_TRACK + 11 not in seen:  # bounded by the wait below
                message = json.loads(await asyncio.wait_for(conn.read_message(), WAIT_S))
                if message["type"] == "event" and message["track_id"] >= FAKE_TRACK + 10:
                    seen.append(message["track_id"])
            return seen
        finally:
            conn.close()

    try:
        wait_until(node.connected.is_set, "the test node to connect")
        with FeedServer(routes) as server:
            seen = asyncio.run(fake_tracks(server.ws_url))
    finally:
        node.stop()
    assert seen == [FAKE_TRACK + 10, FAKE_TRACK + 10, FAKE_TRACK + 11]


#: Waits for what a page must show (milliseconds).
PAGE_TIMEOUT_MS = 60_000


@pytest.mark.ui
def test_a_dashboard_without_engine_shows_the_video_and_says_bus_unavailable(
    fleet, tmp_path, model_path, launch_chromium
):
    """The live page of a dashboard fed by the bus: the camera's real frames (asked for
    with a watch), and during a broker outage 'bus unavailable', then video again; its
    overview shows the camera's health from the bus."""
    from playwright.sync_api import sync_playwright
    from serving import login

    with Database(fleet["url"]) as db:
        db.reset_password("admin", ADMIN_PASSWORD)
    env = {
        "ZVPANEL_DATABASE_URL": fleet["url"],
        "ZVPANEL_MQTT_URL": fleet["mosquitto"].url,
        "ZVPANEL_ENGINE": "0",
        "ZVPANEL_DEV_MODE": "0",
        "ZVPANEL_JWT_SECRET": JWT_SECRET,
    }
    mosquitto = fleet["mosquitto"]
    with panel_server(tmp_path, model_path, env=env) as server, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        login(page, server.url, "admin", ADMIN_PASSWORD)
        page.wait_for_url("**/live")
        canvas = page.locator("canvas.zv-stream").first
        canvas.wait_for()
        wait_until(lambda: canvas.get_attribute("data-frame") is not None, "a painted frame")
        assert canvas.evaluate("canvas => [canvas.width, canvas.height]") == [768, 576]
        assert _png_spread(canvas.screenshot()) > 20, "a black placeholder, not the video"
        status = page.locator(".zv-status").first
        mosquitto.stop()
        try:
            page.get_by_text(BUS_UNAVAILABLE).first.wait_for()
        finally:
            mosquitto.start()
        wait_until(lambda: BUS_UNAVAILABLE not in status.inner_text(), "the status to recover")
        first = canvas.get_attribute("data-frame")
        wait_until(lambda: canvas.get_attribute("data-frame") != first, "frames after the outage")
        # The overview's camera health comes from the bus too: online, at the engine's rate.
        page.goto(f"{server.url}/overview")
        row = page.locator(".zv-overview-cameras .tabulator-row").first
        row.wait_for()
        assert row.locator('[tabulator-field="state"]').inner_text() == "online"
        rate = row.locator('[tabulator-field="rate (fps)"]').inner_text()
        assert rate.endswith(f"of {DETECTION_FPS:.1f}"), rate
        stores = page.locator(".zv-overview-stores .tabulator-row").first
        assert stores.locator('[tabulator-field="cameras"]').inner_text().startswith("1/1 online")
        browser.close()


def _png_spread(png: bytes) -> float:
    """Standard deviation of a screenshot's pixels (about 0 for a flat black image)."""
    import cv2
    import numpy as np

    return float(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE).std())


#: A process that publishes one camera's status on the bus, then waits to be killed.
PUBLISHER_SCRIPT = """
import sys, time
from zvpanel.bus import Bus
from zvpanel.engine import ResultHub
from zvpanel.engine.result import CameraStatus
hub = ResultHub()
bus = Bus(sys.argv[1], hub, publish=True).start()
bus.connected.wait(30)
hub.set_status(CameraStatus(int(sys.argv[2]), "online"))
print("published", flush=True)
time.sleep(600)
"""


def test_a_killed_engine_process_shows_as_gone_not_online(fleet):
    """kill -9 of a publishing process: the broker sends its last will, the dashboard's
    camera goes offline saying why, and its retained "online" status is cleared."""
    import subprocess
    import sys

    from zvpanel.bus.feed import ENGINE_GONE

    camera_id = 4242  # a camera only that process publishes
    hub = fleet["dashboard"].hub
    process = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER_SCRIPT, fleet["mosquitto"].url, str(camera_id)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "published"
        wait_until(lambda: hub.status(camera_id) is not None, "the status on the dashboard")
        assert hub.status(camera_id).state == "online"
    finally:
        process.kill()
        process.wait()
    wait_until(lambda: hub.status(camera_id).reason == ENGINE_GONE, "the camera marked gone")
    assert hub.status(camera_id).state == "offline"
    # Its retained status is cleared: a new subscriber to that camera's status topic and
    # then to the fleet camera's gets only the latter's retained status (in filter order).
    assert _retained_statuses(fleet["mosquitto"].url, [camera_id, fleet["camera_id"]]) == [
        fleet["camera_id"]
    ]


def _retained_statuses(url: str, camera_ids: list[int]) -> list[int]:
    """Camera ids of the retained status messages a new subscriber gets, until the last
    camera's (the broker sends them per filter, in the subscription's order)."""
    got: list[int] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *_: c.subscribe(
        [(camera_topic(camera_id, "status"), 1) for camera_id in camera_ids]
    )
    client.on_message = lambda c, u, message: got.append(orjson.loads(message.payload)["camera_id"])
    broker = parse_mqtt_url(url)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        wait_until(lambda: camera_ids[-1] in got, "the last camera's retained status")
    finally:
        client.disconnect()
        client.loop_stop()
    return got


def test_a_dashboard_logs_one_line_while_the_database_is_down(fleet, postgres, caplog):
    """The bus feed reads each camera's calibration from the database: while it is down
    the dashboard says so once (no traceback per bus message) and keeps drawing the
    camera with the calibration it had."""
    from zvpanel.bus.feed import CALIBRATION_TTL_S

    camera_id = fleet["camera_id"]
    watcher = HubWatcher(fleet["dashboard"], camera_id)
    feed_records = lambda: [r for r in caplog.records if r.name == "zvpanel.bus.feed"]  # noqa: E731
    try:
        wait_until(lambda: watcher.results, "a result")
        caplog.set_level(logging.INFO, logger="zvpanel.bus.feed")
        caplog.clear()
        postgres.stop()
        try:
            # Bus messages keep coming past two calibration lifetimes: each asked again.
            expired = time.monotonic() + 2 * CALIBRATION_TTL_S + 1
            wait_until(lambda: time.monotonic() > expired, "the calibrations to expire")
            during = len(watcher.results)
            wait_until(lambda: len(watcher.results) > during + 3, "results while it is down")
        finally:
            postgres.start()
        outage = [r for r in feed_records() if r.levelno >= logging.WARNING]
        wait_until(
            lambda: any("readable again" in r.getMessage() for r in feed_records()),
            "the feed to read calibrations again",
        )
    finally:
        watcher.close()
    assert len(outage) == 1, [r.getMessage() for r in outage]
    assert outage[0].getMessage().startswith("cannot read calibrations (")
    assert outage[0].exc_info is None
    assert all(r.calibration.lines for r in watcher.results)
