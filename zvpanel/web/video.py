"""``/ws/video/{camera_id}``: the dashboards' live video, one binary message per frame.

Each message is ``[4-byte big-endian header length][header JSON][JPEG]``: the header
(``schemas/frame.json``) carries the detections, counts, status and calibration of the
frame; the JPEG is the raw frame. The browser draws the overlay itself
(:class:`zvpanel.ui.streaming_image.StreamingImage`), so the server spends nothing on
drawing, and the boxes always belong to the frame they are drawn on. A change of the
camera's state comes as a ``status`` JSON text message (``schemas/status.json``): at
once on connect if the camera is not online, then whenever it changes.

JPEG bytes travel as they are (binary WebSocket messages: no base64, no raw pixels).
Each frame is encoded and packed once per camera whatever the number of viewers, only
while someone watches, and a slow viewer gets fewer frames rather than a queue: see
:class:`~.camera_stream.CameraStream`. The socket closes when the viewer's token
expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import Callable
from typing import Any

import orjson
from tornado.ioloop import IOLoop
from tornado.websocket import WebSocketClosedError

from ..annotate import entry_arrow
from ..calibration import Calibration
from ..engine.hub import Subscription
from ..engine.result import CameraStatus, FrameResult
from .camera_stream import StreamRegistry, Viewer, streamed_camera
from .feed import PIXEL_DECIMALS, error_message, status_message, zone_counts
from .jpeg import DEFAULT_QUALITY, encode_jpeg
from .ws_handlers import AuthenticatedSocket, FeedRequestError

__all__ = [
    "VideoHandler",
    "VIDEO_QUALITY",
    "HEADER_LENGTH_BYTES",
    "frame_header",
    "video_frame",
    "parse_video_message",
    "video_route",
]

#: The frame as the camera saw it, at full size (the browser draws the overlay).
VIDEO_QUALITY = DEFAULT_QUALITY
HEADER_LENGTH_BYTES = 4
#: First byte of a WebSocket frame: FIN + opcode 2 (binary).
BINARY_FRAME = 0x82
#: Calibrations whose overlay JSON is kept (a few per camera at most are ever live).
CALIBRATIONS_KEPT = 256


def calibration_overlay(calibration: Calibration) -> dict[str, Any]:
    """What a viewer needs to draw the calibration: the ROI, each line and its entry arrow,
    each zone."""

    def rounded(values) -> list[float]:
        return [round(float(v), PIXEL_DECIMALS) for v in values]

    return {
        "roi": None if calibration.roi is None else rounded(calibration.roi),
        "lines": [
            {
                "id": line.id,
                "start": rounded(line.start),
                "end": rounded(line.end),
                "orientation": line.orientation,
                "entry_arrow": [rounded(xy) for xy in entry_arrow(line)],
            }
            for line in calibration.lines
        ],
        "zones": [
            {"id": zone.id, "points": [rounded(xy) for xy in zone.points], "queue": zone.queue}
            for zone in calibration.zones
        ],
    }


_calibration_cache: dict[int, tuple[Calibration, bytes]] = {}


def _calibration_json(calibration: Calibration) -> bytes:
    """The overlay JSON of a calibration, serialised once per calibration object (a
    camera's calibration changes rarely; the engine hands out the same object until then)."""
    cached = _calibration_cache.get(id(calibration))
    if cached is None or cached[0] is not calibration:  # id() alone could be reused
        if len(_calibration_cache) >= CALIBRATIONS_KEPT:
            _calibration_cache.clear()
        cached = _calibration_cache[id(calibration)] = (
            calibration,
            orjson.dumps(calibration_overlay(calibration)),
        )
    return cached[1]


def frame_header(result: FrameResult, width: int, height: int, jpeg_bytes: int) -> bytes:
    """The header JSON of one frame (``schemas/frame.json``), as UTF-8.

    This runs once per frame on the stream's path, so it is cheap: detections are the
    columns of :class:`~zvpanel.detections.Detections` written by orjson straight from
    numpy (no Python object per box), and the calibration is serialised once.
    """
    dets = result.detections
    status = result.status
    header = {
        "type": "frame",
        "camera_id": result.camera_id,
        "frame": result.frame.index,
        "timestamp": result.frame.captured_at,
        "width": result.frame.width,
        "height": result.frame.height,
        "detections": {
            "xyxy": dets.xyxy,
            "confidence": dets.confidence,
            "class_id": dets.class_id,
            "tracker_id": dets.tracker_id,
        },
        "labels": result.labels,
        "counts": result.counts,
        "zones": zone_counts(result),
        "status": status.state,
        "actual_fps": round(status.actual_fps, 2),
        "target_fps": round(status.target_fps, 2),
        "hardware_limited": status.hardware_limited,
        "image": {"format": "jpeg", "width": width, "height": height, "bytes": jpeg_bytes},
    }
    text = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_UTC_Z)
    return text[:-1] + b',"calibration":' + _calibration_json(result.calibration) + b"}"


def websocket_frame_head(length: int) -> bytes:
    """RFC 6455 head of one unfragmented, unmasked (server to client) binary frame."""
    if length < 126:
        return struct.pack("!BB", BINARY_FRAME, length)
    if length <= 0xFFFF:
        return struct.pack("!BBH", BINARY_FRAME, 126, length)
    return struct.pack("!BBQ", BINARY_FRAME, 127, length)


def video_frame(result: FrameResult) -> bytes:
    """One ``/ws/video`` message, as the complete WebSocket frame every viewer writes.

    The message: header length (4 bytes, big-endian), header JSON, JPEG of the raw frame.
    Framed here, once per frame on the camera's thread, so that sending it to a viewer is
    one socket write (Tornado's ``write_message`` would copy the JPEG into a new frame for
    every viewer); the JPEG bytes are copied once, into this frame.
    """
    image = result.frame.image
    jpeg = encode_jpeg(image, VIDEO_QUALITY, result.camera_id)
    height, width = image.shape[:2]
    header = frame_header(result, width, height, len(jpeg))
    length = HEADER_LENGTH_BYTES + len(header) + len(jpeg)
    prefix = len(header).to_bytes(HEADER_LENGTH_BYTES, "big")
    return b"".join((websocket_frame_head(length), prefix, header, jpeg))


def parse_video_message(message: bytes) -> tuple[dict[str, Any], bytes]:
    """A ``/ws/video`` message's header and JPEG (for Python clients and tests)."""
    size = int.from_bytes(message[:HEADER_LENGTH_BYTES], "big")
    end = HEADER_LENGTH_BYTES + size
    return json.loads(message[HEADER_LENGTH_BYTES:end]), message[end:]


class VideoHandler(AuthenticatedSocket):
    """Sends one camera's newest frames to one viewer while it stays connected."""

    def initialize(self, app_provider: Callable[[], Any], streams: StreamRegistry) -> None:
        super().initialize(app_provider)
        self._streams = streams
        self._viewer: Viewer | None = None
        self._statuses: Subscription | None = None

    def open(self, camera_id: str) -> None:
        camera = streamed_camera(self.app.db, camera_id, self.claims.username)
        if camera is None:
            self.refuse(FeedRequestError("unknown_camera", f"unknown camera {camera_id[:40]!r}"))
            return
        self.set_nodelay(True)
        self.close_at_expiry()
        self._viewer = self._streams.watch(camera.id, self._write_frame)
        self._follow_status(camera.id)

    def _follow_status(self, camera_id: int) -> None:
        """Send a ``status`` text message now if the camera is not online (so a disabled
        or unreachable camera says why there is no video), and whenever it changes."""
        loop = IOLoop.current()
        self._statuses = self.app.hub.subscribe(
            None, [camera_id], on_status=lambda status: loop.add_callback(self._send_status, status)
        )
        status = self.app.hub.status(camera_id)
        if status is not None and status.state != "online":
            self._send_status(status)

    def _send_status(self, status: CameraStatus) -> None:
        with contextlib.suppress(WebSocketClosedError):
            self.write_message(json.dumps(status_message(status)))

    def _write_frame(self, frame: bytes) -> asyncio.Future[None] | None:
        """Write a ready WebSocket frame (see :func:`video_frame`): None if the socket took
        it at once, else a future that resolves once it has.

        The usual case, a socket with nothing pending, is one ``send`` with no Tornado
        future or extra IOLoop turn: ``write_to_fd`` is the call IOStream itself makes
        (plain or TLS), safe here because IOStream writes only on this IOLoop and has
        nothing buffered. A partial write leaves the rest to ``IOStream.write``.
        """
        connection = self.ws_connection
        if connection is None or connection.is_closing() or connection.stream is None:
            raise WebSocketClosedError()
        stream = connection.stream
        if not stream.writing():
            try:
                sent = stream.write_to_fd(frame)
            except OSError:  # full (BlockingIOError) or failed: IOStream.write handles both
                sent = 0
            if sent == len(frame):
                return None
            frame = memoryview(frame)[sent:]
        return stream.write(frame)

    def on_message(self, message: str | bytes) -> None:
        reply = error_message("bad_message", "/ws/video takes no messages; it only sends frames")
        with contextlib.suppress(WebSocketClosedError):
            self.write_message(json.dumps(reply))

    def on_close(self) -> None:
        super().on_close()
        if self._statuses is not None:
            self._statuses.close()
            self._statuses = None
        if self._viewer is not None:
            self._streams.unwatch(self._viewer)
            self._viewer = None


def video_route(app_provider: Callable[[], Any]) -> tuple[str, type, dict[str, Any]]:
    """The ``/ws/video/{camera_id}`` route tuple (``zvpanel.web.routes`` mounts it)."""
    streams = StreamRegistry(lambda: app_provider().hub, video_frame)
    return (r"/ws/video/([^/]+)", VideoHandler, {"app_provider": app_provider, "streams": streams})
