"""One camera's live frames, encoded once and shared by everyone watching it.

The path of one frame to its viewers::

    engine thread   hub.publish(result) -> CameraStream._on_result
    encoder pool    render(result) -> bytes: JPEG-encode, add the route's framing
    IOLoop          CameraStream._publish: newest frame, viewers woken
    IOLoop          each viewer's handler writes ``frame.payload`` as it is

Cost model: a :class:`CameraStream` exists while its camera has viewers (nothing is
encoded while nobody watches); each frame is rendered ONCE, in the encoder's thread
pool, whatever the number of viewers, so the IOLoop only hands ready bytes to the
sockets. What a payload is depends on the route: an MJPEG part (:mod:`.mjpeg`) or a
whole WebSocket frame of header + JPEG (:mod:`.video`).

Backpressure: at most one frame per camera is being encoded; a result arriving
meanwhile waits in a one-slot buffer (a newer one replaces it). Each viewer sends the
newest frame, waits until its socket has taken it, then takes whatever is newest at that
moment: a slow viewer gets a lower frame rate, never a queue.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from tornado.ioloop import IOLoop

from ..engine.hub import ResultHub, Subscription
from ..engine.result import FrameResult
from ..errors import NotFoundError
from .jpeg import FrameEncoder, shared_encoder

__all__ = ["StreamFrame", "Renderer", "CameraStream", "StreamRegistry", "streamed_camera"]

log = logging.getLogger(__name__)

#: Makes the bytes every viewer sends for one frame (runs in the encoder's pool).
Renderer = Callable[[FrameResult], bytes]


@dataclass(frozen=True)
class StreamFrame:
    seq: int  # 1, 2, 3 ... per camera stream; gaps seen by a viewer are frames it skipped
    payload: bytes  # what every viewer writes, as it is


def streamed_camera(db: Any, camera_id: str) -> Any | None:
    """The camera a stream URL names (its id as text), or None if there is none to show.

    Deleted (archived) cameras are not shown, as on the feed. Only ASCII digits name a
    camera (``"²".isdigit()`` is true but ``int()`` refuses it), and an id beyond SQLite's
    64-bit integers, which makes the query raise OverflowError, names none either.
    """
    if not (camera_id.isascii() and camera_id.isdigit()):
        return None
    try:
        camera = db.get_camera(int(camera_id))
    except (NotFoundError, OverflowError):
        return None
    return None if camera.archived else camera


class CameraStream:
    """The newest packed frame of one camera, shared by all of its viewers.

    Lives on the server's IOLoop; :meth:`_on_result` runs on the engine's thread and
    :meth:`_rendered` on the encoder's.
    """

    def __init__(
        self,
        hub: ResultHub,
        camera_id: int,
        loop: IOLoop,
        encoder: FrameEncoder,
        render: Renderer,
    ) -> None:
        self.hub = hub
        self.camera_id = camera_id
        self._loop = loop
        self._encoder = encoder
        self._render = render
        self._lock = threading.Lock()
        self._pending: FrameResult | None = None  # one slot: newer results replace it
        self._encoding = False
        self._viewers = 0
        self._subscription: Subscription | None = None
        self._changed = asyncio.Event()
        self._seq = 0
        self.latest: StreamFrame | None = None

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
            newest = self.hub.latest(self.camera_id)
            if newest is not None:  # shown at once, even if the camera has stalled since
                self._on_result(newest)

    def release(self) -> None:
        self._viewers -= 1
        if self._viewers <= 0 and self._subscription is not None:
            self._subscription.close()
            self._subscription = None
            with self._lock:
                self._pending = None
            self.latest = None  # the next first viewer starts from the hub's newest result

    # ------------------------------------------------------------------ engine thread
    def _on_result(self, result: FrameResult) -> None:
        """Start encoding ``result``, or keep it as the next one if an encoding runs."""
        with self._lock:
            if self._encoding:
                self._pending = result
                return
            self._encoding = True
        self._submit(result)

    def _submit(self, result: FrameResult) -> None:
        future = self._encoder.run(self._render, result)
        future.add_done_callback(lambda done: self._rendered(result, done))

    # ------------------------------------------------------------------ encoder thread
    def _rendered(self, result: FrameResult, future: Future[bytes]) -> None:
        """Hand the frame to the IOLoop; then render the pending result, if any."""
        try:
            payload = future.result()
        except Exception:  # a bad frame must not stop the stream
            log.exception("camera %s: encoding a stream frame failed", self.camera_id)
        else:
            self._loop.add_callback(self._publish, payload)
        with self._lock:
            result, self._pending = self._pending, None
            if result is None:
                self._encoding = False
                return
        self._submit(result)

    # ------------------------------------------------------------------ IOLoop
    def _publish(self, payload: bytes) -> None:
        if self._subscription is None:  # nobody watches any more: drop it
            return
        self._seq += 1
        self.latest = StreamFrame(self._seq, payload)
        self._changed.set()  # wakes every waiting viewer ...
        self._changed.clear()  # ... and the next wait waits for the next frame

    async def next_frame(self, after_seq: int) -> StreamFrame:
        """The newest frame newer than ``after_seq``, as soon as there is one.

        Waits without a timeout: a viewer that leaves cancels its sending task.
        """
        while True:
            latest = self.latest
            if latest is not None and latest.seq > after_seq:
                return latest
            await self._changed.wait()

    async def send_to(self, send: Callable[[bytes], Awaitable[None]]) -> None:
        """Send every newest frame with ``send``, awaiting each (until cancelled or the
        connection fails): a slow viewer gets fewer frames, never a queue."""
        seq = 0
        while True:
            frame = await self.next_frame(seq)
            seq = frame.seq
            await send(frame.payload)


class StreamRegistry:
    """The :class:`CameraStream` of each watched camera, for one route on its IOLoop.

    Every stream of a registry makes its frames with ``render``. The hub and encoder are
    looked up when a camera's first viewer arrives: the routes are built
    before the ``--setup`` script has started the App.
    """

    def __init__(
        self,
        hub_provider: Callable[[], ResultHub],
        render: Renderer,
        encoder_provider: Callable[[], FrameEncoder] = shared_encoder,
    ) -> None:
        self._hub_provider = hub_provider
        self._encoder_provider = encoder_provider
        self._render = render
        self._streams: dict[int, CameraStream] = {}

    def acquire(self, camera_id: int) -> CameraStream:
        stream = self._streams.get(camera_id)
        if stream is None:
            stream = CameraStream(
                self._hub_provider(),
                camera_id,
                IOLoop.current(),
                self._encoder_provider(),
                self._render,
            )
            self._streams[camera_id] = stream
        stream.acquire()
        return stream

    def release(self, stream: CameraStream) -> None:
        stream.release()
        if stream.viewers <= 0:
            self._streams.pop(stream.camera_id, None)
