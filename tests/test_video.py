"""``/ws/video/{camera_id}`` and ``/stream/{id}.mjpg``: a real server, real clients.

The server, App, hub and the published results (the real model on vtest.avi) are
:mod:`test_ws`'s ``feed`` fixture; the clients are Tornado's WebSocket client, a raw TCP
socket (for a viewer that never reads) and Tornado's HTTP client (MJPEG). JPEGs are
decoded with OpenCV; headers are validated against ``zvpanel/schemas/frame.json``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import os
import socket
import struct
import time
from dataclasses import replace
from datetime import datetime, timedelta

import cv2
import jsonschema
import numpy as np
import pytest
import test_ws
from test_ws import Feed, connect, read, read_json, read_until, run
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection

from zvpanel.annotate import entry_arrow
from zvpanel.engine import FrameResult
from zvpanel.web.auth import verify_token
from zvpanel.web.feed import load_schema
from zvpanel.web.jpeg import FrameVariant, render
from zvpanel.web.mjpeg import BOUNDARY
from zvpanel.web.video import VideoHandler, parse_video_message
from zvpanel.web.ws_handlers import CLOSE_POLICY_VIOLATION

# test_ws's fixtures: a server with the real routes, App and hub, and the real model's
# results on vtest.avi.
feed = test_ws.feed
pipeline_results = test_ws.pipeline_results

#: How long a test waits for the server to reach a state it polls for.
WAIT_S = 10.0
#: How long a test waits for a message it expects.
READ_S = 20.0
#: Token lifetime of the expiry tests (JWT ``exp`` is whole seconds: it ends in 1-2 s).
SHORT_LIFETIME = timedelta(seconds=2)


# ---------------------------------------------------------------------- helpers
def video_path(feed: Feed, camera: int | str | None = None) -> str:
    return f"/ws/video/{feed.camera_id if camera is None else camera}"


async def open_viewer(feed: Feed, **query) -> WebSocketClientConnection:
    """The first viewer of the camera, connected and subscribed to its frames."""
    conn = await connect(feed.url(video_path(feed), **({"token": feed.token()} | query)))
    await wait_until(lambda: feed.app.hub.frames_wanted(feed.camera_id), "the stream exists")
    return conn


def rendered(feed: Feed) -> int:
    """Frames the video route's streams have rendered (encoded and packed)."""
    route = next(route for route in feed.routes if route[1] is VideoHandler)
    return route[2]["streams"].stats.rendered


async def wait_until(predicate, what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.01)


async def read_frame(conn: WebSocketClientConnection) -> tuple[dict, bytes]:
    """The next message, which must be a frame: (validated header, JPEG bytes)."""
    message = await asyncio.wait_for(read(conn), READ_S)
    assert isinstance(message, bytes), f"expected a binary frame message, got {message!r}"
    header, jpeg = parse_video_message(message)
    jsonschema.validate(header, load_schema("frame"))
    assert header["image"]["bytes"] == len(jpeg)
    return header, jpeg


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def assert_header_matches(header: dict, result: FrameResult) -> None:
    """The header carries exactly what the published result holds."""
    assert header["type"] == "frame"
    assert header["camera_id"] == result.camera_id
    assert header["frame"] == result.frame.index
    assert (header["width"], header["height"]) == (result.frame.width, result.frame.height)
    sent = datetime.fromisoformat(header["timestamp"].replace("Z", "+00:00"))
    assert sent == result.frame.captured_at
    dets, columns = result.detections, header["detections"]
    assert {len(column) for column in columns.values()} == {len(dets)}
    assert np.allclose(np.reshape(columns["xyxy"], (-1, 4)), dets.xyxy, rtol=0, atol=0.01)
    assert columns["confidence"] == pytest.approx(dets.confidence.tolist(), abs=1e-6)
    assert columns["class_id"] == dets.class_id.tolist()
    assert columns["tracker_id"] == dets.tracker_id.tolist()
    assert header["labels"] == list(result.labels)
    assert header["counts"] == result.counts
    assert (header["status"], header["target_fps"]) == ("online", 5.0)


def assert_calibration_matches(overlay: dict, calibration) -> None:
    if calibration.roi is None:
        assert overlay["roi"] is None
    else:
        assert overlay["roi"] == pytest.approx(list(calibration.roi), abs=0.051)
    assert [line["id"] for line in overlay["lines"]] == [line.id for line in calibration.lines]
    for sent, line in zip(overlay["lines"], calibration.lines, strict=True):
        assert sent["start"] == pytest.approx([line.x1, line.y1], abs=0.051)
        assert sent["end"] == pytest.approx([line.x2, line.y2], abs=0.051)
        assert sent["orientation"] == line.orientation
        start, tip = entry_arrow(line)
        assert sent["entry_arrow"][0] == pytest.approx(list(start), abs=0.051)
        assert sent["entry_arrow"][1] == pytest.approx(list(tip), abs=0.051)


async def assert_refused(conn: WebSocketClientConnection, code: str, named: str = "") -> dict:
    """An ``error`` message with ``code`` (frames before it are skipped), then close 1008."""
    error = await asyncio.wait_for(read_until(conn, "error"), READ_S)
    assert error["code"] == code and named in error["message"], error
    assert await asyncio.wait_for(conn.read_message(), WAIT_S) is None, "not closed"
    assert conn.close_code == CLOSE_POLICY_VIOLATION
    return error


# ---------------------------------------------------------------------- frames
@pytest.mark.model
def test_viewer_gets_header_and_jpeg_of_each_published_frame(feed):
    calibration = feed.app.db.get_calibration(feed.camera_id)
    # Not vacuous: the footage has people, some of them tracked.
    assert any(len(r.detections) >= 3 for r in feed.results)
    assert any((r.detections.tracker_id >= 0).any() for r in feed.results)

    async def scenario():
        conn = await open_viewer(feed)
        indices = []
        for k in range(len(feed.results)):
            result = feed.result(k)
            feed.app.hub.publish(result)
            header, jpeg = await read_frame(conn)
            assert_header_matches(header, result)
            assert_calibration_matches(header["calibration"], calibration)
            image = decode(jpeg)
            assert image.shape == (header["height"], header["width"], 3) == (576, 768, 3)
            assert (header["image"]["width"], header["image"]["height"]) == (768, 576)
            indices.append(header["frame"])
        assert indices == sorted(set(indices)) == list(range(len(feed.results)))
        conn.close()

    run(scenario())


@pytest.mark.model
def test_jpeg_is_the_raw_frame_not_the_annotated_one(feed):
    k = max(range(len(feed.results)), key=lambda i: len(feed.results[i].detections))
    result = feed.result(k)
    (door,) = result.calibration.lines
    assert door.x1 == door.x2, "the demo's counting line is vertical"
    line = slice(round(door.x1) - 2, round(door.x1) + 3)  # the columns it is drawn on

    async def scenario():
        conn = await open_viewer(feed)
        feed.app.hub.publish(result)
        header, jpeg = await read_frame(conn)
        conn.close()
        return header, decode(jpeg)

    header, sent = run(scenario())
    assert header["frame"] == k
    source = result.frame.image
    annotated = decode(render(result, FrameVariant("annotated")).jpeg)
    assert mean_abs_diff(sent, source) < 3
    raw_on_line = mean_abs_diff(sent[:, line], source[:, line])
    annotated_on_line = mean_abs_diff(annotated[:, line], source[:, line])
    assert raw_on_line < 3
    assert annotated_on_line > raw_on_line + 20, (raw_on_line, annotated_on_line)


@pytest.mark.model
def test_two_viewers_share_one_encoding_and_nothing_is_encoded_without_viewers(feed):
    async def scenario():
        first = await open_viewer(feed)
        feed.app.hub.publish(feed.result(0))
        assert (await read_frame(first))[0]["frame"] == 0
        # The second viewer starts with the newest frame: it is registered once it has it.
        second = await connect(feed.url(video_path(feed), token=feed.token()))
        assert (await read_frame(second))[0]["frame"] == 0
        assert rendered(feed) == 1
        frames = 6
        for k in range(1, frames):
            feed.app.hub.publish(feed.result(k))
            for conn in (first, second):
                assert (await read_frame(conn))[0]["frame"] == k
            assert rendered(feed) == k + 1  # one more per frame, not one per viewer
        first.close()
        second.close()
        await wait_until(
            lambda: not feed.app.hub.frames_wanted(feed.camera_id), "the stream was dropped"
        )
        for k in range(frames, frames + 5):
            feed.app.hub.publish(feed.result(k))
        await asyncio.sleep(0.2)
        assert rendered(feed) == frames

    run(scenario())


# ---------------------------------------------------------------------- auth
@pytest.mark.model
@pytest.mark.model
def test_video_socket_closes_when_the_token_expires(feed):
    token = feed.token(lifetime=SHORT_LIFETIME)
    expires_at = verify_token(feed.app.settings, token).expires_at.timestamp()

    async def scenario():
        conn = await open_viewer(feed, token=token)
        feed.app.hub.publish(feed.result(0))
        assert (await read_frame(conn))[0]["frame"] == 0
        error = await assert_refused(conn, "token_expired")
        assert "expired" in conn.close_reason
        closed_at = time.time()
        assert expires_at - 0.1 <= closed_at <= expires_at + 2, closed_at - expires_at
        jsonschema.validate(error, load_schema("error"))
        await wait_until(
            lambda: not feed.app.hub.frames_wanted(feed.camera_id), "the stream was dropped"
        )

    run(scenario())


@pytest.mark.model
def test_feed_sockets_close_when_the_token_expires(feed):
    token = feed.token(lifetime=SHORT_LIFETIME)
    expires_at = verify_token(feed.app.settings, token).expires_at.timestamp()
    paths = [f"/ws/detections/{feed.camera_id}", f"/ws/live/{feed.camera_id}", "/ws/events"]

    async def scenario():
        conns = [await connect(feed.url(path, token=token)) for path in paths]
        for conn in conns:
            await read_json(conn, "hello")
        for conn in conns:
            await assert_refused(conn, "token_expired")
        assert time.time() >= expires_at - 0.1
        await wait_until(lambda: not feed.registry.handlers(), "the handlers were closed")

    run(scenario())


# ---------------------------------------------------------------------- refusals
#: Camera ids that name no camera: (as in the URL, as the server reads it).
UNKNOWN_CAMERAS = [
    pytest.param("987", "987", id="unknown"),
    pytest.param("abc", "abc", id="not-a-number"),
    pytest.param("-1", "-1", id="negative"),
    pytest.param("%C2%B2", "\u00b2", id="superscript-two"),  # isdigit() but not int()
    pytest.param("9" * 25, "9" * 25, id="beyond-sqlite-integers"),
    pytest.param("archived", "", id="archived"),
]


@pytest.mark.model
@pytest.mark.parametrize("in_url, named", UNKNOWN_CAMERAS)
def test_unknown_or_archived_camera_is_refused(feed, in_url, named):
    if in_url == "archived":
        store = feed.app.db.list_stores()[0]
        source = str(feed.app.settings.sample_video)
        archived = feed.app.db.create_camera(store.id, "Old door", source)
        feed.app.db.delete_camera(archived.id)
        in_url = named = str(archived.id)

    async def scenario():
        conn = await connect(feed.url(video_path(feed, in_url), token=feed.token()))
        await assert_refused(conn, "unknown_camera", named)
        assert named in conn.close_reason
        cameras = feed.app.db.list_cameras(include_deleted=True)
        assert not any(feed.app.hub.frames_wanted(camera.id) for camera in cameras)

    run(scenario())


@pytest.mark.model
def test_client_messages_get_an_error_and_frames_keep_coming(feed):
    async def scenario():
        conn = await open_viewer(feed)
        feed.app.hub.publish(feed.result(0))
        assert (await read_frame(conn))[0]["frame"] == 0
        for k, message in enumerate(['{"type": "ping"}', b"\x00\x01"], start=1):
            await conn.write_message(message, binary=isinstance(message, bytes))
            error = await asyncio.wait_for(read_json(conn, "error"), READ_S)
            assert error["code"] == "bad_message"
            feed.app.hub.publish(feed.result(k))
            assert (await read_frame(conn))[0]["frame"] == k
        conn.close()

    run(scenario())


# ---------------------------------------------------------------------- backpressure
#: Frames published while one viewer does not read.
STALL_FRAMES = 30
#: Size of the stalled viewer's frames: random pixels make JPEGs of about 1.4 MB, so a few
#: of them fill the kernel's socket buffers and the rest would have to queue in the server.
BIG_FRAME_SHAPE = (1080, 1920, 3)


def raw_websocket(port: int, path: str) -> socket.socket:
    """A WebSocket opened by hand over TCP, with a tiny receive buffer; nothing read after
    the handshake's response until the test says so."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(WAIT_S)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while not response.endswith(b"\r\n\r\n"):  # byte by byte: no frame byte is taken
        byte = sock.recv(1)
        assert byte, f"closed during the handshake: {response!r}"
        response += byte
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(min(size - len(data), 1 << 20))
        assert chunk, "the server closed the socket"
        data += chunk
    return bytes(data)


def read_raw_message(sock: socket.socket) -> tuple[int, bytes]:
    """(opcode, payload) of the next unfragmented, unmasked frame the server sent."""
    first, second = recv_exactly(sock, 2)
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", recv_exactly(sock, 2))
    elif size == 127:
        (size,) = struct.unpack("!Q", recv_exactly(sock, 8))
    return first & 0x0F, recv_exactly(sock, size)


def server_handler_of(sock: socket.socket) -> VideoHandler:
    """The server's handler of the client socket ``sock`` (found among live objects)."""
    port = sock.getsockname()[1]
    for obj in gc.get_objects():
        if isinstance(obj, VideoHandler) and obj.ws_connection is not None:
            stream = obj.ws_connection.stream
            with contextlib.suppress(AttributeError, OSError):  # closed ones
                if stream.socket.getpeername()[1] == port:
                    return obj
    raise AssertionError(f"no VideoHandler for the client port {port}")


@pytest.mark.model
def test_stalled_viewer_gets_no_queue_and_does_not_slow_the_other(feed):
    rng = np.random.default_rng(7)
    big = [
        replace(r, frame=replace(r.frame, image=rng.integers(0, 256, BIG_FRAME_SHAPE, np.uint8)))
        for r in feed.results[:3]
    ]

    def big_result(k: int) -> FrameResult:
        result = feed.result(k)
        return replace(result, frame=replace(big[k % len(big)].frame, index=k))

    async def scenario():
        stalled = raw_websocket(feed.server.port, f"{video_path(feed)}?token={feed.token()}")
        with contextlib.closing(stalled):
            return await with_stalled_viewer(stalled)

    async def with_stalled_viewer(stalled: socket.socket) -> float:
        await wait_until(lambda: feed.app.hub.frames_wanted(feed.camera_id), "stream exists")
        viewer = await connect(feed.url(video_path(feed), token=feed.token()))
        sizes = []
        started = time.monotonic()
        for k in range(STALL_FRAMES):
            feed.app.hub.publish(big_result(k))
            header, jpeg = await read_frame(viewer)
            assert header["frame"] == k  # every frame, none skipped
            assert (header["width"], header["height"]) == (1920, 1080)
            sizes.append(len(jpeg))
        elapsed = time.monotonic() - started
        frame_size = max(sizes) + 4096  # a whole WebSocket frame, its header included
        # The server holds at most the one frame the stalled socket is taking
        # (IOStream._write_buffer is private: Tornado has no public buffer size).
        handler = server_handler_of(stalled)
        buffered = len(handler.ws_connection.stream._write_buffer)
        assert buffered <= frame_size, f"{buffered} bytes queued for the stalled viewer"
        # What the kernel can hold for it (both sockets' buffers, overhead included).
        in_kernel = handler.ws_connection.stream.socket.getsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF
        ) + stalled.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        viewer.close()

        # It reads again: a few frames from the socket buffers, then the newest one.
        received = []
        while not received or received[-1] < STALL_FRAMES - 1:
            opcode, payload = read_raw_message(stalled)
            if opcode == 0x2:
                received.append(parse_video_message(payload)[0]["frame"])
        # Skipped ahead, not queued: what the kernel held, the frame being written, the newest.
        assert received == sorted(set(received)) and received[0] == 0
        assert len(received) <= in_kernel // min(sizes) + 3 < STALL_FRAMES, (received, in_kernel)
        return elapsed

    elapsed = run(scenario())
    assert elapsed < 30, f"{STALL_FRAMES} frames took {elapsed:.1f} s"


# ---------------------------------------------------------------------- MJPEG
@pytest.mark.model
def test_mjpeg_stream_ends_when_the_token_expires(feed):
    token = feed.token(lifetime=SHORT_LIFETIME)
    expires_at = verify_token(feed.app.settings, token).expires_at.timestamp()
    url = f"{feed.server.url}/stream/{feed.camera_id}.mjpg?token={token}"

    async def publisher():
        await wait_until(lambda: feed.app.hub.frames_wanted(feed.camera_id), "stream exists")
        k = 0
        while True:
            feed.app.hub.publish(feed.result(k))
            k += 1
            await asyncio.sleep(0.1)

    async def scenario():
        chunks: list[bytes] = []
        publishing = asyncio.ensure_future(publisher())
        try:
            response = await AsyncHTTPClient().fetch(
                HTTPRequest(url, streaming_callback=chunks.append, request_timeout=30)
            )
        finally:
            publishing.cancel()
        return response, time.time(), b"".join(chunks)

    response, ended_at, body = run(scenario())
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
    assert expires_at - 0.1 <= ended_at <= expires_at + 3, ended_at - expires_at
    parts = body.split(f"--{BOUNDARY}\r\n".encode())[1:]
    assert len(parts) >= 3, f"only {len(parts)} parts before the expiry"
    for part in parts:
        head, _, rest = part.partition(b"\r\n\r\n")
        length = int(next(h for h in head.split(b"\r\n") if h.startswith(b"Content-Length:"))[15:])
        assert decode(rest[:length]).shape == (576, 768, 3)


@pytest.mark.model
@pytest.mark.parametrize("camera", ["987", "9" * 25], ids=["unknown", "beyond-sqlite-integers"])
def test_mjpeg_of_an_unknown_camera_is_404(feed, camera):
    url = f"{feed.server.url}/stream/{camera}.mjpg?token={feed.token()}"

    async def scenario():
        with pytest.raises(HTTPClientError) as refused:
            await AsyncHTTPClient().fetch(url, request_timeout=READ_S)
        assert refused.value.code == 404

    run(scenario())


@pytest.mark.model
def test_mjpeg_viewer_that_leaves_releases_the_stream_without_a_frame(feed):
    """No frame is ever published: only the closed connection can end the response."""
    path = f"/stream/{feed.camera_id}.mjpg?token={feed.token()}"

    async def scenario():
        with socket.create_connection(("127.0.0.1", feed.server.port), timeout=WAIT_S) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            response = b""
            while b"\r\n\r\n" not in response:
                chunk = sock.recv(4096)
                assert chunk, f"closed before the headers: {response!r}"
                response += chunk
            assert response.startswith(b"HTTP/1.1 200"), response
            await wait_until(lambda: feed.app.hub.frames_wanted(feed.camera_id), "stream exists")
        await wait_until(
            lambda: not feed.app.hub.frames_wanted(feed.camera_id), "the stream was dropped"
        )

    run(scenario())
