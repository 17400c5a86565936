"""One camera's live frames, rendered once and written to everyone watching it.

The path of one frame to its viewers::

    camera thread   hub.publish(result) -> CameraStream._on_result
                    render(result) -> bytes: JPEG-encode, add the route's framing
                    IOLoop.add_callback(_publish)
    IOLoop          CameraStream._publish: the newest frame, offered to each viewer
    IOLoop          each idle viewer writes the bytes as they are (one socket write)

Cost model: a :class:`CameraStream` exists while its camera has viewers (nothing is
rendered while nobody watches). Each frame is rendered ONCE, whatever the number of
viewers, on the camera's own engine thread, right after the frame was detected, while
its pixels are still in the CPU's caches, and with no hand-over to another thread: the
camera's next detection waits the few milliseconds of one encoding, and only while
someone watches. The IOLoop only hands ready bytes to the sockets, one wake-up per frame.

Backpressure: a viewer writes a frame, and until its socket has taken it, it writes
nothing else; then it writes whatever is newest at that moment. A slow viewer gets a
lower frame rate, never a queue, and never delays the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

from ..engine.hub import ResultHub, Subscription
from ..engine.result import FrameResult
from ..numbers import whole_number
from .access import visible_camera

__all__ = ["StreamFrame", "Renderer", "Writer", "Viewer", "CameraStream", "StreamRegistry"]
__all__ += ["streamed_camera"]

log = logging.getLogger(__name__)

#: Makes the bytes every viewer writes for one frame (runs on the camera's thread).
Renderer = Callable[[FrameResult], bytes]
#: Writes one frame's bytes to one viewer: None if its socket took them at once, else a
#: future that resolves once it has. Raises (or fails the future) once the viewer is gone.
Writer = Callable[[bytes], Any]


@dataclass(frozen=True)
class StreamFrame:
    seq: int  # increasing per camera stream; gaps seen by a viewer are frames it skipped
    payload: bytes  # what every viewer writes, as it is


def streamed_camera(db: Any, camera_id: str, username: str) -> Any | None:
    """The camera a stream URL names (its id as text), or None if there is none to show.

    None also for a deleted (archived) camera, as on the feed, and for one outside the
    stores ``username`` may see (:mod:`.access`): the caller answers all alike. Only
    ASCII digits name a camera, as on the feed (:func:`~zvpanel.numbers.whole_number`).
    """
    try:
        number = whole_number(camera_id)
    except ValueError:
        return None
    return visible_camera(db, username, number)


class Viewer:
    """One viewer of a :class:`CameraStream`: writes its newest frame whenever the
    viewer's socket has taken the previous one (IOLoop only)."""

    def __init__(self, stream: CameraStream, write: Writer) -> None:
        self.stream = stream
        self._write = write
        self._sent = 0  # seq of the newest frame written
        self._writing = False
        self.stopped = False  # the viewer is gone: writing failed

    def offer(self) -> None:
        """Write the stream's newest frame, unless this viewer has it or is still writing."""
        frame = self.stream.latest
        if self._writing or self.stopped or frame is None or frame.seq <= self._sent:
            return
        self._sent = frame.seq
        try:
            written = self._write(frame.payload)
        except (StreamClosedError, WebSocketClosedError):  # gone: its handler releases it
            self.stopped = True
            return
        except Exception:  # a bug: this viewer stops, the others go on
            log.exception("camera %s: writing to a viewer failed", self.stream.camera_id)
            self.stopped = True
            return
        if written is None:  # the socket took it at once (the usual case)
            return
        if written.done():
            self._check(written)
        else:
            self._writing = True
            written.add_done_callback(self._written)

    def _written(self, written) -> None:
        self._writing = False
        if self._check(written):
            self.offer()  # whatever is newest now

    def _check(self, written) -> bool:
        if written.cancelled() or written.exception() is not None:
            self.stopped = True
        return not self.stopped


class CameraStream:
    """The newest rendered frame of one camera, offered to all of its viewers.

    Lives on the server's IOLoop; :meth:`_on_result` runs on the camera's engine thread.
    """

    def __init__(
        self,
        hub: ResultHub,
        camera_id: int,
        loop: IOLoop,
        render: Renderer,
        stats: RenderStats,
    ) -> None:
        self.hub = hub
        self.camera_id = camera_id
        self._loop = loop
        self._render = render
        self._stats = stats
        self._lock = threading.Lock()
        self._rendering_seq = 0  # seq of the newest result being rendered
        self._viewers: list[Viewer] = []
        self._subscription: Subscription | None = None
        self.latest: StreamFrame | None = None

    # ------------------------------------------------------------------ viewers
    @property
    def viewers(self) -> int:
        return len(self._viewers)

    def watch(self, write: Writer) -> Viewer:
        """A new viewer, written to with ``write`` from now on, starting with the newest frame."""
        viewer = Viewer(self, write)
        self._viewers.append(viewer)
        if self._subscription is None:
            self._subscription = self.hub.subscribe(
                self._on_result, [self.camera_id], wants_frames=True
            )
            newest = self.hub.latest(self.camera_id)
            if newest is not None:  # shown at once, even if the camera has stalled since
                # Rendered off the IOLoop; a result the camera publishes meanwhile wins.
                self._loop.run_in_executor(None, self._on_result, newest)
        else:
            viewer.offer()
        return viewer

    def unwatch(self, viewer: Viewer) -> None:
        self._viewers.remove(viewer)
        viewer.stopped = True
        if not self._viewers and self._subscription is not None:
            self._subscription.close()
            self._subscription = None
            self.latest = None  # the next first viewer starts from the hub's newest result

    # ------------------------------------------------------------------ camera thread
    def _on_result(self, result: FrameResult) -> None:
        """Render ``result`` on this thread and hand it to the IOLoop."""
        start = time.thread_time()
        with self._lock:
            self._rendering_seq += 1
            seq = self._rendering_seq
        try:
            payload = self._render(result)
        except Exception:  # a bad frame must not stop the stream
            log.exception("camera %s: rendering a stream frame failed", self.camera_id)
        else:
            self._loop.add_callback(self._publish, StreamFrame(seq, payload))
        self._stats.add(time.thread_time() - start)

    # ------------------------------------------------------------------ IOLoop
    def _publish(self, frame: StreamFrame) -> None:
        if self._subscription is None:  # nobody watches any more: drop it
            return
        if self.latest is not None and frame.seq <= self.latest.seq:
            return  # an older result finished rendering after a newer one
        self.latest = frame
        for viewer in self._viewers:
            viewer.offer()


class RenderStats:
    """Frames rendered by a route's streams and the CPU time they took (for tests and
    benchmarks: rendering runs on the cameras' threads, whose CPU is mostly detection)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rendered = 0
        self.cpu_s = 0.0

    def add(self, cpu_s: float) -> None:
        with self._lock:
            self.rendered += 1
            self.cpu_s += cpu_s


class StreamRegistry:
    """The :class:`CameraStream` of each watched camera, for one route on its IOLoop.

    Every stream of a registry makes its frames with ``render``. The hub is looked up
    when a camera's first viewer arrives: the routes are built before the ``--setup``
    script has started the App.
    """

    def __init__(self, hub_provider: Callable[[], ResultHub], render: Renderer) -> None:
        self._hub_provider = hub_provider
        self._render = render
        self._streams: dict[int, CameraStream] = {}
        self.stats = RenderStats()

    def watch(self, camera_id: int, write: Writer) -> Viewer:
        """Start writing ``camera_id``'s frames with ``write``; :meth:`unwatch` stops."""
        stream = self._streams.get(camera_id)
        if stream is None:
            hub = self._hub_provider()
            stream = CameraStream(hub, camera_id, IOLoop.current(), self._render, self.stats)
            self._streams[camera_id] = stream
        return stream.watch(write)

    def unwatch(self, viewer: Viewer) -> None:
        stream = viewer.stream
        stream.unwatch(viewer)
        if not stream.viewers:
            self._streams.pop(stream.camera_id, None)
