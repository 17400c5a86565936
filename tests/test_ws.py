"""The WebSocket feed: a real Tornado server on 127.0.0.1, real WebSocket clients.

The server runs the real routes with a real App (SQLite in tmp_path, bootstrap with the
demo camera, a ResultHub); the results it publishes are real FrameResults computed by the
CountingPipeline with the real model on the first frames of vtest.avi. One test runs the
whole App (engine included). Every message is validated against zvpanel/schemas.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from datetime import timedelta
from urllib.parse import urlencode

import cv2
import jsonschema
import numpy as np
import pytest
from pydantic import SecretStr
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from zvpanel.app import App
from zvpanel.engine import CameraStatus, FrameResult
from zvpanel.web.auth import SESSION_COOKIE, issue_token
from zvpanel.web.feed import load_schema
from zvpanel.web.jpeg import FrameEncoder
from zvpanel.web.routes import build_routes
from zvpanel.web.server import FeedServer
from zvpanel.web.ws_handlers import CLOSE_POLICY_VIOLATION, FeedRegistry

#: Guard against a hang: a read that gets nothing for this long fails the test.
READ_TIMEOUT_S = 60.0
#: Frames of vtest.avi run through the real pipeline for the published results.
RESULT_FRAMES = 30
#: Origin the test server trusts besides its own host.
TRUSTED_ORIGIN = "trusted.example:8443"


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def pipeline_results(model_path, video_path) -> list:
    """(frame, PipelineOutput) of every 2nd frame of the first RESULT_FRAMES (5 per second)."""
    from zvpanel.detection import YoloDetector
    from zvpanel.pipeline import CountingPipeline
    from zvpanel.sources.capture import iter_frames
    from zvpanel.storage.bootstrap import DEMO_CALIBRATION

    pipeline = CountingPipeline(DEMO_CALIBRATION, YoloDetector(model_path))
    outputs = []
    for frame in iter_frames(video_path, max_frames=RESULT_FRAMES):
        if frame.index % 2 == 0:
            outputs.append((frame, pipeline.process(frame)))
    assert any(out.events for _, out in outputs), "the test footage must contain a crossing"
    return outputs


@dataclass
class Feed:
    """A running test server and what the tests need to drive it."""

    server: FeedServer
    app: App
    encoder: FrameEncoder
    registry: FeedRegistry
    camera_id: int
    results: list[FrameResult]
    routes: list[tuple]

    def url(self, path: str, **query) -> str:
        return f"{self.server.ws_url}{path}" + (f"?{urlencode(query)}" if query else "")

    def token(self, username: str = "admin", **kwargs) -> str:
        return issue_token(self.app.settings, username, admin=True, **kwargs)

    def result(self, k: int, camera_id: int | None = None) -> FrameResult:
        """The k-th published result: the real results cycled, frame index k (unique)."""
        base = self.results[k % len(self.results)]
        return replace(
            base,
            camera_id=camera_id or self.camera_id,
            frame=replace(base.frame, index=k),
            status=replace(base.status, camera_id=camera_id or self.camera_id),
        )


def make_results(pipeline_results, calibration, camera_id: int) -> list[FrameResult]:
    status = CameraStatus(camera_id, state="online", target_fps=5.0, actual_fps=4.9)
    return [
        FrameResult(camera_id, frame, out.detections, out.events, out.counts, calibration, status)
        for frame, out in pipeline_results
    ]


@pytest.fixture
def feed(settings, pipeline_results):
    settings = settings.model_copy(update={"allowed_origins": [TRUSTED_ORIGIN]})
    app = App(settings)
    app.start_database()
    app.start_bootstrap()
    app.start_hub()
    camera = app.db.list_cameras()[0]
    calibration = app.db.get_calibration(camera.id)
    encoder = FrameEncoder()
    registry = FeedRegistry()
    routes = build_routes(lambda: app, encoder_provider=lambda: encoder, registry=registry)
    with FeedServer(routes) as server:
        yield Feed(
            server,
            app,
            encoder,
            registry,
            camera.id,
            make_results(pipeline_results, calibration, camera.id),
            routes,
        )
    encoder.shutdown()
    app.stop_database()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, READ_TIMEOUT_S * 4))


async def connect(url: str, **headers) -> WebSocketClientConnection:
    return await websocket_connect(HTTPRequest(url, headers=headers))


async def read(conn: WebSocketClientConnection):
    message = await asyncio.wait_for(conn.read_message(), READ_TIMEOUT_S)
    assert message is not None, f"socket closed: {conn.close_code} {conn.close_reason}"
    return message


async def read_json(conn: WebSocketClientConnection, expect: str | None = None) -> dict:
    message = await read(conn)
    assert isinstance(message, str), "expected a JSON text message"
    data = json.loads(message)
    jsonschema.validate(data, load_schema(data["type"]))
    if expect is not None:
        assert data["type"] == expect, data
    return data


async def read_until(conn, kind: str, **match) -> dict:
    while True:
        data = await read_json(conn)
        if data["type"] == kind and all(data.get(k) == v for k, v in match.items()):
            return data


def assert_matches(message: dict, result: FrameResult) -> None:
    """The message says what the result holds: boxes, confidences, ids, counts."""
    assert message["camera_id"] == result.camera_id
    assert message["frame"] == result.frame.index
    assert (message["width"], message["height"]) == (768, 576)
    dets = result.detections
    assert len(message["detections"]) == len(dets)
    for row, xyxy, conf, track in zip(
        message["detections"], dets.xyxy, dets.confidence, dets.tracker_id, strict=True
    ):
        assert row["label"] == "person"
        assert row["bbox"] == pytest.approx(xyxy.tolist(), abs=0.051)
        expected = np.clip(xyxy / np.array([768, 576, 768, 576]), 0, 1)
        assert row["bbox_normalized"] == pytest.approx(expected.tolist(), abs=1e-4)
        assert row["confidence"] == pytest.approx(float(conf), abs=1e-4)
        assert row["track_id"] == (int(track) if track >= 0 else None)
    assert message["counts"] == result.counts
    assert [e["track_id"] for e in message["events"]] == [e.track_id for e in result.events]
    assert message["status"] == "online"
    assert message["target_fps"] == 5.0


# ---------------------------------------------------------------------- happy paths
@pytest.mark.model
def test_detections_feed_sends_each_published_frame(feed):
    async def scenario():
        conn = await connect(feed.url(f"/ws/detections/{feed.camera_id}", token=feed.token()))
        hello = await read_json(conn, "hello")
        assert hello["camera_ids"] == [feed.camera_id]
        assert hello["user"] == "admin"
        confidences = set()
        for k in range(len(feed.results)):
            result = feed.result(k)
            feed.app.hub.publish(result)
            message = await read_json(conn, "detections")
            assert_matches(message, result)
            assert message["dropped"] == 0
            confidences.update(d["confidence"] for d in message["detections"])
        # Real confidences from the model, not a constant.
        assert len(confidences) > 5 and all(0 < c < 1 for c in confidences)
        conn.close()

    run(scenario())


@pytest.mark.model
def test_event_in_detections_message(feed):
    k = next(i for i, r in enumerate(feed.results) if r.events)

    async def scenario():
        conn = await connect(feed.url(f"/ws/detections/{feed.camera_id}", token=feed.token()))
        await read_json(conn, "hello")
        feed.app.hub.publish(feed.result(k))
        message = await read_json(conn, "detections")
        event = feed.results[k].events[0]
        assert message["event"]["line_id"] == event.line_id == "door"
        assert message["event"]["track_id"] == event.track_id
        assert message["event"]["direction"] == event.direction
        conn.close()

    run(scenario())


@pytest.mark.model
@pytest.mark.parametrize("how", ["query", "bearer", "cookie"])
def test_token_accepted_from_query_header_and_cookie(feed, how):
    token = feed.token()
    url = feed.url(
        f"/ws/detections/{feed.camera_id}", **({"token": token} if how == "query" else {})
    )
    headers = {
        "query": {},
        "bearer": {"Authorization": f"Bearer {token}"},
        "cookie": {"Cookie": f"{SESSION_COOKIE}={token}"},
    }[how]

    async def scenario():
        conn = await connect(url, **headers)
        assert (await read_json(conn, "hello"))["user"] == "admin"
        conn.close()

    run(scenario())


@pytest.mark.model
def test_newest_result_is_sent_on_connect_and_max_fps_is_reported(feed):
    feed.app.hub.publish(feed.result(3))

    async def scenario():
        conn = await connect(
            feed.url(f"/ws/detections/{feed.camera_id}", token=feed.token(), max_fps="2.5")
        )
        assert (await read_json(conn, "hello"))["max_fps"] == 2.5
        assert (await read_json(conn, "detections"))["frame"] == 3
        conn.close()

    run(scenario())


@pytest.mark.model
def test_max_fps_holds_back_and_counts_what_it_skips(feed):
    async def scenario():
        # One message per 100 s: after the first, everything waits in the one slot.
        conn = await connect(
            feed.url(f"/ws/detections/{feed.camera_id}", token=feed.token(), max_fps="0.01")
        )
        await read_json(conn, "hello")
        feed.app.hub.publish(feed.result(0))
        assert (await read_json(conn, "detections"))["frame"] == 0
        for k in range(1, 5):
            feed.app.hub.publish(feed.result(k))
        await conn.write_message(json.dumps({"type": "ping"}))
        # Frames 1-3 were replaced by newer ones before they were due; 4 is still pending.
        assert (await read_json(conn, "pong"))["dropped"] == 3
        # Lifting the limit sends the pending newest frame at once.
        await conn.write_message(json.dumps({"type": "set", "max_fps": None}))
        assert (await read_json(conn, "settings"))["max_fps"] is None
        message = await read_json(conn, "detections")
        assert (message["frame"], message["dropped"]) == (4, 3)
        conn.close()

    run(scenario())


@pytest.mark.model
def test_several_cameras_on_one_socket(feed):
    store = feed.app.db.list_stores()[0]
    second = feed.app.db.create_camera(store.id, "Second door", str(feed.app.settings.sample_video))

    async def scenario():
        ids = f"{feed.camera_id},{second.id}"
        conn = await connect(feed.url("/ws/detections", token=feed.token(), camera_ids=ids))
        assert (await read_json(conn, "hello"))["camera_ids"] == sorted([feed.camera_id, second.id])
        seen = {}
        for k in range(4):
            for camera_id in (feed.camera_id, second.id):
                result = feed.result(k, camera_id)
                feed.app.hub.publish(result)
                message = await read_json(conn, "detections")
                assert_matches(message, result)
                seen.setdefault(message["camera_id"], []).append(message["frame"])
        assert seen == {feed.camera_id: [0, 1, 2, 3], second.id: [0, 1, 2, 3]}
        conn.close()

    run(scenario())


@pytest.mark.model
def test_live_feed_sends_json_then_jpeg_encoded_once_per_variant(feed):
    async def scenario():
        url = feed.url(
            f"/ws/live/{feed.camera_id}",
            token=feed.token(),
            frames="raw",
            max_height=288,
            quality=70,
        )
        first, second = await connect(url), await connect(url)
        for conn in (first, second):
            hello = await read_json(conn, "hello")
            assert (hello["frames"], hello["max_height"], hello["quality"]) == ("raw", 288, 70)
        assert feed.app.hub.frames_wanted(feed.camera_id)
        frames = 3
        for k in range(frames):
            feed.app.hub.publish(feed.result(k))
            for conn in (first, second):
                message = await read_json(conn, "detections")
                assert message["frame"] == k
                assert message["image"]["variant"] == "raw"
                jpeg = await read(conn)
                assert isinstance(jpeg, bytes) and len(jpeg) == message["image"]["bytes"]
                image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                assert image.shape == (288, 384, 3)
                # The raw frame, scaled: close to the published image.
                scaled = cv2.resize(
                    feed.result(k).frame.image, (384, 288), interpolation=cv2.INTER_AREA
                )
                assert np.abs(image.astype(int) - scaled).mean() < 8
        # Two clients, same variant: each frame encoded once.
        assert feed.encoder.encoded == frames
        first.close()
        second.close()

    run(scenario())


@pytest.mark.model
def test_annotated_live_frames(feed):
    k = next(i for i, r in enumerate(feed.results) if len(r.detections))

    async def scenario():
        conn = await connect(feed.url(f"/ws/live/{feed.camera_id}", token=feed.token()))
        assert (await read_json(conn, "hello"))["frames"] == "annotated"
        feed.app.hub.publish(feed.result(k))
        message = await read_json(conn, "detections")
        assert message["image"]["variant"] == "annotated"
        image = cv2.imdecode(np.frombuffer(await read(conn), np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (576, 768, 3)
        # Boxes and the counting line are drawn: the image differs from the raw frame.
        assert np.abs(image.astype(int) - feed.result(k).frame.image).mean() > 1
        conn.close()

    run(scenario())


@pytest.mark.model
def test_no_jpeg_encoded_without_a_frame_client(feed):
    async def scenario():
        conn = await connect(feed.url(f"/ws/detections/{feed.camera_id}", token=feed.token()))
        await read_json(conn, "hello")
        assert not feed.app.hub.frames_wanted(feed.camera_id)
        for k in range(5):
            feed.app.hub.publish(feed.result(k))
            await read_json(conn, "detections")
        assert feed.encoder.encoded == 0
        live = await connect(feed.url(f"/ws/live/{feed.camera_id}", token=feed.token()))
        await read_json(live, "hello")
        await read_json(live, "detections")  # the newest result, sent on connect
        await read(live)
        assert feed.encoder.encoded == 1
        live.close()
        conn.close()

    run(scenario())


@pytest.mark.model
def test_events_feed(feed):
    with_events = [k for k, r in enumerate(feed.results) if r.events]

    async def scenario():
        conn = await connect(feed.url("/ws/events", token=feed.token()))
        assert (await read_json(conn, "hello"))["endpoint"] == "events"
        for k in range(len(feed.results)):
            feed.app.hub.publish(feed.result(k))
        for k in with_events:
            for event in feed.results[k].events:
                message = await read_json(conn, "event")
                assert message["camera_id"] == feed.camera_id
                assert message["frame"] == event.frame_index
                assert (message["line_id"], message["track_id"], message["direction"]) == (
                    event.line_id,
                    event.track_id,
                    event.direction,
                )
                assert message["counts"] == feed.results[k].counts
                assert message["dropped"] == 0
        conn.close()

    run(scenario())


def test_example_page_is_served(feed):
    async def scenario():
        response = await AsyncHTTPClient().fetch(f"{feed.server.url}/feed/")
        body = response.body.decode()
        assert "<canvas" in body and "/api/token" in body and "/ws/live/" in body

    run(scenario())


# ---------------------------------------------------------------------- refusals
ENDPOINTS = [
    "/ws/detections/{cam}",
    "/ws/detections",
    "/ws/live/{cam}",
    "/ws/events",
    "/ws/video/{cam}",
]


@pytest.mark.model
@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("problem", ["missing", "bad_signature", "expired", "garbage"])
def test_bad_tokens_are_refused_before_the_upgrade(feed, path, problem):
    good = feed.token()
    head, payload, signature = good.split(".")
    token = {
        "missing": None,
        "bad_signature": f"{head}.{payload}.{signature[::-1]}",
        "expired": feed.token(lifetime=timedelta(hours=-1)),
        "garbage": "not-a-jwt",
    }[problem]
    query = {} if token is None else {"token": token}
    url = feed.url(path.format(cam=feed.camera_id), **query)

    async def scenario():
        with pytest.raises(HTTPClientError) as refused:
            await connect(url)
        assert refused.value.code == 401
        body = json.loads(refused.value.response.body)
        jsonschema.validate(body, load_schema("http_error"))
        assert body["error"] == "unauthorized"
        if problem == "expired":
            assert "expired" in body["message"]

    run(scenario())


@pytest.mark.model
def test_token_signed_with_another_secret_is_refused(feed):
    other = feed.app.settings.model_copy(update={"jwt_secret": SecretStr("x" * 40)})

    async def scenario():
        with pytest.raises(HTTPClientError) as refused:
            await connect(feed.url("/ws/events", token=issue_token(other, "admin")))
        assert refused.value.code == 401

    run(scenario())


@pytest.mark.model
@pytest.mark.parametrize("path", ENDPOINTS)
def test_token_of_a_deleted_user_is_refused(feed, path):
    async def scenario():
        with pytest.raises(HTTPClientError) as refused:
            await connect(feed.url(path.format(cam=feed.camera_id), token=feed.token("ghost")))
        assert refused.value.code == 401
        assert "no longer exists" in json.loads(refused.value.response.body)["message"]
        assert not feed.app.hub.frames_wanted(feed.camera_id)

    run(scenario())


@pytest.mark.model
@pytest.mark.parametrize(
    "path, query, named",
    [
        ("/ws/detections/987", {}, "987"),
        ("/ws/live/987", {}, "987"),
        ("/ws/detections/abc", {}, "abc"),
        ("/ws/detections", {"camera_ids": "{cam},987,988"}, "987, 988"),
    ],
)
def test_unknown_camera_is_refused_naming_it(feed, path, query, named):
    query = {k: v.format(cam=feed.camera_id) for k, v in query.items()}

    async def scenario():
        conn = await connect(feed.url(path, token=feed.token(), **query))
        error = await read_json(conn, "error")
        assert error["code"] == "unknown_camera" and named in error["message"]
        assert await conn.read_message() is None  # then closed
        assert conn.close_code == CLOSE_POLICY_VIOLATION
        assert named in conn.close_reason

    run(scenario())


@pytest.mark.model
@pytest.mark.parametrize(
    "query, named",
    [
        ({"max_fps": "fast"}, "max_fps"),
        ({"max_fps": "-1"}, "max_fps"),
        ({"quality": "0"}, "quality"),
        ({"frames": "gif"}, "frames"),
        ({"max_height": "99999"}, "max_height"),
    ],
)
def test_bad_parameters_are_refused_naming_them(feed, query, named):
    async def scenario():
        conn = await connect(feed.url(f"/ws/live/{feed.camera_id}", token=feed.token(), **query))
        error = await read_json(conn, "error")
        assert error["code"] == "bad_parameter" and named in error["message"]
        assert await conn.read_message() is None
        assert conn.close_code == CLOSE_POLICY_VIOLATION and named in conn.close_reason

    run(scenario())


@pytest.mark.model
def test_origin_is_checked(feed):
    url = feed.url(f"/ws/detections/{feed.camera_id}", token=feed.token())
    own = f"http://127.0.0.1:{feed.server.port}"

    async def scenario():
        with pytest.raises(HTTPClientError) as refused:
            await connect(url, Origin="http://evil.example")
        assert refused.value.code == 403
        for origin in (own, f"https://{TRUSTED_ORIGIN}"):
            conn = await connect(url, Origin=origin)
            await read_json(conn, "hello")
            conn.close()

    run(scenario())


@pytest.mark.model
def test_malformed_messages_get_errors_and_the_socket_keeps_working(feed):
    bad = [
        "not json",
        "[1, 2]",
        '{"type": "subscribe"}',
        '{"no_type": 1}',
        '{"type": "set", "max_fps": -3}',
        '{"type": "set", "max_fps": "fast"}',
        '{"type": "ping", "extra": true}',
        "[" * 1500 + "]" * 1500,  # nested deeper than the JSON parser's recursion limit
        b"\x00\xffbinary",
    ]

    async def scenario():
        conn = await connect(feed.url(f"/ws/detections/{feed.camera_id}", token=feed.token()))
        await read_json(conn, "hello")
        for message in bad:
            await conn.write_message(message, binary=isinstance(message, bytes))
            error = await read_json(conn, "error")
            assert error["code"] == "bad_message"
        await conn.write_message(json.dumps({"type": "ping", "id": 7}))
        assert (await read_json(conn, "pong"))["id"] == 7
        await conn.write_message(json.dumps({"type": "set", "max_fps": 30}))
        assert (await read_json(conn, "settings"))["max_fps"] == 30
        feed.app.hub.publish(feed.result(0))
        assert_matches(await read_json(conn, "detections"), feed.result(0))
        conn.close()

    run(scenario())


@pytest.mark.model
def test_oversized_message_closes_only_that_socket(feed):
    async def scenario():
        url = feed.url(f"/ws/detections/{feed.camera_id}", token=feed.token())
        big, other = await connect(url), await connect(url)
        await read_json(big, "hello")
        await read_json(other, "hello")
        await big.write_message("x" * 1_000_000)
        while await big.read_message() is not None:
            pass
        assert big.close_code == 1009  # "message too big"
        feed.app.hub.publish(feed.result(0))
        assert_matches(await read_json(other, "detections"), feed.result(0))
        other.close()

    run(scenario())


# ---------------------------------------------------------------------- backpressure
#: The stalled client must have missed at least this many frames before the test stops.
STALLED_DROPS = 10
#: Give up (and fail) if the stalled client has not dropped enough after this many frames.
MAX_FRAMES = 3000


@pytest.mark.model
def test_stalled_client_is_skipped_ahead_while_another_gets_every_frame(feed):
    async def scenario():
        # Large raw JPEGs fill the socket buffers of the client that stops reading quickly.
        stalled = await connect(
            feed.url(f"/ws/live/{feed.camera_id}", token=feed.token(), frames="raw", quality=95)
        )
        await read_json(stalled, "hello")
        fast = await connect(feed.url(f"/ws/detections/{feed.camera_id}", token=feed.token()))
        await read_json(fast, "hello")
        (stalled_handler,) = [h for h in feed.registry.handlers() if h.endpoint == "live"]
        published = 0
        # The "engine" (this thread) publishes; the fast client gets each frame before the
        # next is published. The stalled client reads nothing from here on.
        while stalled_handler.dropped < STALLED_DROPS and published < MAX_FRAMES:
            feed.app.hub.publish(feed.result(published))
            message = await read_json(fast, "detections")
            assert message["frame"] == published and message["dropped"] == 0
            published += 1
        assert stalled_handler.dropped >= STALLED_DROPS, "the stalled client never fell behind"
        # Now it reads again: it is skipped ahead to the newest frame, and what it was
        # sent plus what it dropped is everything published.
        received = 0
        while True:
            message = await read_json(stalled, "detections")
            assert isinstance(await read(stalled), bytes)
            received += 1
            if message["frame"] == published - 1:
                break
        assert received + message["dropped"] == published
        assert message["dropped"] == stalled_handler.dropped >= STALLED_DROPS
        assert received < published
        stalled.close()
        fast.close()

    run(scenario())


# ---------------------------------------------------------------------- whole app
@pytest.mark.model
def test_running_engine_feeds_detections_and_live_frames(settings):
    app = App(settings).start()
    try:
        camera_id = app.db.list_cameras()[0].id
        with FeedServer(build_routes(lambda: app)) as server:
            token = issue_token(settings, "admin")

            async def scenario():
                detections = await connect(
                    f"{server.ws_url}/ws/detections/{camera_id}?token={token}"
                )
                live = await connect(
                    f"{server.ws_url}/ws/live/{camera_id}?token={token}&max_height=240"
                )
                await read_json(detections, "hello")
                await read_json(live, "hello")
                frames = []
                for _ in range(3):  # a "status" (starting) may come first
                    message = await read_until(detections, "detections")
                    assert message["camera_id"] == camera_id and message["target_fps"] == 5.0
                    frames.append(message["frame"])
                assert frames == sorted(frames) and len(set(frames)) == 3
                message = await read_until(live, "detections")
                assert message["image"]["height"] == 240
                jpeg = await read(live)
                assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape[0] == 240
                detections.close()
                live.close()

            run(scenario())
    finally:
        app.stop()


# ---------------------------------------------------------------------- example page
#: Frames published per second while the browser connects.
PAGE_PUBLISH_FPS = 10.0
#: Playwright waits at most this long for the page (milliseconds).
PAGE_TIMEOUT_MS = 60_000


@pytest.mark.ui
@pytest.mark.model
def test_example_page_draws_the_boxes_over_the_video(feed, launch_chromium):
    import threading

    from playwright.sync_api import sync_playwright

    stop = threading.Event()

    def publish() -> None:  # the "engine": a steady stream until the page is connected
        k = 0
        while not stop.wait(1 / PAGE_PUBLISH_FPS):
            feed.app.hub.publish(feed.result(k))
            k += 1

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(f"{feed.server.url}/feed/")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", "admin")
            page.fill("input[name=camera]", str(feed.camera_id))
            page.click("button[type=submit]")
            page.wait_for_function("document.getElementById('video').naturalWidth === 768")
            stop.set()
            publisher.join()
            # One last, known frame: its boxes must be drawn where the model found them.
            k = 10_000 + next(i for i, r in enumerate(feed.results) if len(r.detections) >= 3)
            final = feed.result(k)
            feed.app.hub.publish(final)
            page.wait_for_function(
                f"document.getElementById('status').textContent.includes('frame {k},')"
            )
            opaque = page.evaluate(
                """(points) => {
                    const c = document.getElementById('overlay');
                    const ctx = c.getContext('2d');
                    return points.map(([x, y]) => ctx.getImageData(x, y, 1, 1).data[3]);
                }""",
                [
                    [round((x1 + x2) / 2), round(y1)]
                    for x1, y1, x2, _ in final.detections.xyxy.tolist()
                ],
            )
            assert all(alpha > 0 for alpha in opaque), opaque
            # And nothing is drawn in an empty corner.
            corner = page.evaluate(
                "document.getElementById('overlay').getContext('2d').getImageData(0, 570, 4, 4)"
                ".data.reduce((a, b) => a + b, 0)"
            )
            assert corner == 0
            counts = page.text_content("#counts")
            assert "door:" in counts
            browser.close()
    finally:
        stop.set()
        publisher.join()
