"""``GET /stream/{camera_id}.mjpg``: the annotated live video as an MJPEG stream.

Why MJPEG: a browser shows ``multipart/x-mixed-replace`` JPEG parts in a plain ``<img>``,
so the bytes on the wire are the JPEG bytes (no base64, no raw pixels) and no custom
decoder is needed.

Cost model: every camera has one :class:`CameraStream`, created when its first viewer
connects and closed when its last viewer leaves; nothing is encoded while nobody watches.
It subscribes to the :class:`~zvpanel.engine.hub.ResultHub` with ``wants_frames=True``,
keeps the newest result in a one-slot buffer and has it annotated + encoded ONCE per
frame, whatever the number of viewers, by the feed's shared
:class:`~zvpanel.web.jpeg.FrameEncoder` (thread pool; a frame also watched over
``/ws/live`` with the same variant is encoded only once for both).

Backpressure: each client loop sends the newest encoded frame, then ``await flush()``
until the socket has taken it, then takes whatever is newest at that moment. A slow
client therefore gets a lower frame rate, never a queue.

This route is a ``--plugins`` route, outside Bokeh's ``--auth-module`` protection: the
handler checks the session cookie (or a bearer/``?token=`` token) itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.web import HTTPError, RequestHandler

from ..engine.hub import ResultHub, Subscription
from ..engine.result import FrameResult
from ..errors import NotFoundError
from .jpeg import DEFAULT_QUALITY, FrameEncoder, FrameVariant, shared_encoder

__all__ = [
    "BOUNDARY",
    "EncodedFrame",
    "CameraStream",
    "StreamRegistry",
    "MjpegHandler",
    "STREAM_VARIANT",
    "mjpeg_route",
]

log = logging.getLogger(__name__)

BOUNDARY = "zvpanelframe"
#: What the dashboards show: the annotated frame at full size, ``/ws/live``'s default
#: variant, so a frame watched both ways is encoded once.
STREAM_VARIANT = FrameVariant("annotated", None, DEFAULT_QUALITY)
#: A client waiting this long without a new frame re-checks that it is still connected.
CLIENT_WAIT_S = 2.0


@dataclass(frozen=True)
class EncodedFrame:
    seq: int  # 1, 2, 3 ... per camera stream; gaps seen by a client are frames it skipped
    jpeg: bytes
    frame_index: int
    captured_at: datetime


class CameraStream:
    """The newest encoded frame of one camera, shared by all of its viewers.

    Lives on the server's IOLoop; only :meth:`_on_result` runs on the engine's thread.
    """

    def __init__(self, hub: ResultHub, camera_id: int, loop: IOLoop, encoder: FrameEncoder) -> None:
        self.hub = hub
        self.camera_id = camera_id
        self._loop = loop
        self._encoder = encoder
        self._lock = threading.Lock()
        self._pending: FrameResult | None = None  # one slot: newer results replace it
        self._encoding = False
        self._viewers = 0
        self._subscription: Subscription | None = None
        self._changed = asyncio.Event()
        self.latest: EncodedFrame | None = None
        self.frames_encoded = 0

    # ------------------------------------------------------------------ viewers
    @property
    def viewers(self) -> int:
        return self._viewers

    def acquire(self) -> None:
        self._viewers += 1
        if self._subscription is None:
            self._subscription = self.hub.subscribe(
                self._on_result, [self.camera_id], wants_frames=True
            )

    def release(self) -> None:
        self._viewers -= 1
        if self._viewers <= 0 and self._subscription is not None:
            self._subscription.close()
            self._subscription = None
            with self._lock:
                self._pending = None
            self.latest = None  # a stale frame must not be shown to the next viewer

    # ------------------------------------------------------------------ engine thread
    def _on_result(self, result: FrameResult) -> None:
        """Called by the hub on the camera's thread: start encoding or keep it as the newest.

        At most one encoding per camera is in flight; a result arriving meanwhile waits in
        the one-slot ``_pending`` (replacing an older one).
        Submitting from here rather than from the IOLoop saves one IOLoop wake-up per frame.
        """
        with self._lock:
            if self._encoding:
                self._pending = result
                return
            self._encoding = True
        self._submit(result)

    def _submit(self, result: FrameResult) -> None:
        # Shared with /ws/live clients: one encoding per frame and variant.
        future = self._encoder.encode(result, STREAM_VARIANT)
        future.add_done_callback(lambda done: self._loop.add_callback(self._encoded, result, done))

    # ------------------------------------------------------------------ IOLoop
    def _encoded(self, result: FrameResult, future: Future) -> None:
        try:
            encoded = future.result()
        except Exception:  # a bad frame must not stop the stream
            log.exception("camera %s: encoding a stream frame failed", self.camera_id)
        else:
            if self._subscription is not None:  # nobody watches any more: drop it
                self.frames_encoded += 1
                self.latest = EncodedFrame(
                    self.frames_encoded, encoded.jpeg, result.frame.index, result.frame.captured_at
                )
                changed, self._changed = self._changed, asyncio.Event()
                changed.set()
        with self._lock:
            result, self._pending = self._pending, None
            if result is None:
                self._encoding = False
                return
        self._submit(result)

    async def next_frame(
        self, after_seq: int, timeout: float = CLIENT_WAIT_S
    ) -> EncodedFrame | None:
        """The newest frame newer than ``after_seq``; None if none came within ``timeout``."""
        latest = self.latest
        if latest is not None and latest.seq > after_seq:
            return latest
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            return None
        latest = self.latest
        return latest if latest is not None and latest.seq > after_seq else None


class StreamRegistry:
    """The :class:`CameraStream` of each watched camera (one registry per route, on its IOLoop).

    The hub and encoder are looked up when a camera's first viewer arrives: the routes are
    built before the ``--setup`` script has started the App.
    """

    def __init__(
        self,
        hub_provider: Callable[[], ResultHub],
        encoder_provider: Callable[[], FrameEncoder] = shared_encoder,
    ) -> None:
        self._hub_provider = hub_provider
        self._encoder_provider = encoder_provider
        self._streams: dict[int, CameraStream] = {}

    def acquire(self, camera_id: int) -> CameraStream:
        stream = self._streams.get(camera_id)
        if stream is None:
            stream = CameraStream(
                self._hub_provider(), camera_id, IOLoop.current(), self._encoder_provider()
            )
            self._streams[camera_id] = stream
        stream.acquire()
        return stream

    def release(self, stream: CameraStream) -> None:
        stream.release()
        if stream.viewers <= 0:
            self._streams.pop(stream.camera_id, None)


class MjpegHandler(RequestHandler):
    """Serves one camera's annotated frames to one client while the client stays connected."""

    def initialize(self, app_provider: Callable[[], Any], streams: StreamRegistry) -> None:
        # The App arrives lazily: routes are imported before --setup has built it.
        self._app_provider = app_provider
        self._streams = streams
        self._closed = asyncio.Event()

    def on_connection_close(self) -> None:
        self._closed.set()

    async def get(self, camera_id: str) -> None:
        from .auth_module import request_claims

        app = self._app_provider()
        claims = request_claims(self, app.settings)
        if claims is None:
            raise HTTPError(401, reason="log in first: no valid session cookie or token")
        cam_id = int(camera_id)
        try:
            camera = app.db.get_camera(cam_id)
        except NotFoundError:
            camera = None
        if camera is None or camera.archived:  # as the feed: deleted cameras are not shown
            raise HTTPError(404, reason=f"camera {cam_id} does not exist")

        self.set_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.set_header("Cache-Control", "no-store, no-cache, must-revalidate")
        self.set_header("Pragma", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # proxies must not buffer the stream
        stream = self._streams.acquire(cam_id)
        try:
            await self.flush()  # the headers now: the viewer knows the stream is on its way
            await self._send_frames(stream)
        except StreamClosedError:
            pass  # the viewer went away: a normal end
        finally:
            self._streams.release(stream)

    async def _send_frames(self, stream: CameraStream) -> None:
        seq = 0
        while not self._closed.is_set():
            frame = await stream.next_frame(seq)
            if frame is None:
                continue
            seq = frame.seq
            self.write(_part(frame))
            # Wait until the socket took the part: a slow client gets fewer frames.
            await self.flush()


def _part(frame: EncodedFrame) -> bytes:
    head = (
        f"--{BOUNDARY}\r\n"
        "Content-Type: image/jpeg\r\n"
        f"Content-Length: {len(frame.jpeg)}\r\n"
        f"X-Frame-Index: {frame.frame_index}\r\n"
        f"X-Captured-At: {frame.captured_at.isoformat()}\r\n"
        "\r\n"
    )
    return head.encode("ascii") + frame.jpeg + b"\r\n"


def mjpeg_route(
    app_provider: Callable[[], Any],
    encoder_provider: Callable[[], FrameEncoder] = shared_encoder,
) -> tuple[str, type, dict[str, Any]]:
    """The ``/stream/{camera_id}.mjpg`` route tuple (``zvpanel.web.routes`` mounts it)."""
    streams = StreamRegistry(lambda: app_provider().hub, encoder_provider)
    return (
        r"/stream/(\d+)\.mjpg",
        MjpegHandler,
        {"app_provider": app_provider, "streams": streams},
    )
