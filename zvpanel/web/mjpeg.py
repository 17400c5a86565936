"""``GET /stream/{camera_id}.mjpg``: the annotated live video as an MJPEG stream.

For other applications (an ``<img>`` on any page, VLC, a recorder): a browser shows
``multipart/x-mixed-replace`` JPEG parts in a plain ``<img>``, so the bytes on the wire
are the JPEG bytes (no base64, no raw pixels) and no custom decoder is needed. The
dashboards' own video pane uses :mod:`.video` instead, which sends the raw frame and lets
the browser draw the overlay, saving the server the drawing.

Each frame is annotated, encoded and wrapped in its multipart part once per camera,
whatever the number of viewers, by a :class:`~.camera_stream.CameraStream` (see there
for the cost model and the backpressure: a slow client gets fewer frames, never a queue).

This route is a ``--plugins`` route, outside Bokeh's ``--auth-module`` protection: the
handler checks the session cookie (or a bearer/``?token=`` token) itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from tornado.iostream import StreamClosedError
from tornado.web import RequestHandler

from ..engine.result import FrameResult
from ..errors import AuthError
from .auth import authenticate_request
from .camera_stream import StreamRegistry, streamed_camera
from .jpeg import DEFAULT_QUALITY, FrameVariant, render
from .revocation import SESSION_WATCH
from .token_handler import JsonErrorMixin

__all__ = ["BOUNDARY", "MjpegHandler", "STREAM_VARIANT", "mjpeg_part", "mjpeg_route"]

BOUNDARY = "zvpanelframe"
#: The annotated frame at full size.
STREAM_VARIANT = FrameVariant("annotated", None, DEFAULT_QUALITY)


class MjpegHandler(JsonErrorMixin, RequestHandler):
    """Serves one camera's annotated frames to one client while the client stays connected."""

    def initialize(self, app_provider: Callable[[], Any], streams: StreamRegistry) -> None:
        # The App arrives lazily: routes are imported before --setup has built it.
        self._app_provider = app_provider
        self._streams = streams
        self._gone = asyncio.Event()  # the viewer went away, or its token stopped working

    def on_connection_close(self) -> None:
        self._gone.set()

    async def get(self, camera_id: str) -> None:
        app = self._app_provider()
        try:
            claims = authenticate_request(self, app.db, app.settings)
        except AuthError as error:
            self.send_json_error(401, "unauthorized", f"log in first: {error}")
            return
        camera = streamed_camera(app.db, camera_id, claims.username)
        if camera is None:
            self.send_json_error(404, "not_found", f"camera {camera_id} does not exist")
            return

        self.set_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.set_header("Cache-Control", "no-store, no-cache, must-revalidate")
        self.set_header("Pragma", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # proxies must not buffer the stream
        try:
            await self.flush()  # the headers now: the viewer knows the stream is on its way
        except StreamClosedError:
            return  # the viewer went away already
        viewer = self._streams.watch(camera.id, self._send_part)
        # Ends when the token stops working (password changed, disabled, logged out).
        watched = SESSION_WATCH.watch(app.db, claims, lambda reason: self._gone.set())
        try:
            # Ends when the token expires, or when the viewer goes away.
            expires_in = claims.expires_at.timestamp() - time.time()
            await asyncio.wait_for(self._gone.wait(), max(0.0, expires_in))
        except asyncio.TimeoutError:
            pass  # its token expired: a normal end
        finally:
            SESSION_WATCH.unwatch(watched)
            self._streams.unwatch(viewer)

    def _send_part(self, part: bytes) -> asyncio.Future[None]:
        """Write one part; the future resolves once the socket took it."""
        self.write(part)
        return self.flush()


def mjpeg_part(result: FrameResult) -> bytes:
    """One part of the multipart stream (made once per frame, sent to every viewer)."""
    encoded = render(result, STREAM_VARIANT)
    head = (
        f"--{BOUNDARY}\r\n"
        "Content-Type: image/jpeg\r\n"
        f"Content-Length: {len(encoded.jpeg)}\r\n"
        f"X-Frame-Index: {result.frame.index}\r\n"
        f"X-Captured-At: {result.frame.captured_at.isoformat()}\r\n"
        "\r\n"
    )
    return head.encode("ascii") + encoded.jpeg + b"\r\n"


def mjpeg_route(app_provider: Callable[[], Any]) -> tuple[str, type, dict[str, Any]]:
    """The ``/stream/{camera_id}.mjpg`` route tuple (``zvpanel.web.routes`` mounts it)."""
    streams = StreamRegistry(lambda: app_provider().hub, mjpeg_part)
    return (
        r"/stream/(\d+)\.mjpg",
        MjpegHandler,
        {"app_provider": app_provider, "streams": streams},
    )
