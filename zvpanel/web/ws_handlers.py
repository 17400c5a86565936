"""The WebSocket feed: detections, live frames and entry/exit events.

Backpressure: the hub calls :meth:`FeedHandler._on_result` on an engine thread. It only
stores the result in the connection's one-slot-per-camera buffer (replacing, and
counting as dropped, a result the client has not been sent yet) and wakes the IOLoop
with ``IOLoop.add_callback`` -- the one thread-safe entry into the loop. Each connection
has one sender coroutine that awaits ``write_message``; while it waits on a slow client,
newer results replace the pending one. So a stalled client costs the engine nothing and
never delays the other clients.

Routes (see :mod:`zvpanel.web.routes`):

- ``/ws/detections/{camera_id}?max_fps=``
- ``/ws/detections?camera_ids=1,2,3&max_fps=`` (without ``camera_ids``: every camera the
  user may see, also those added after the socket opened)
- ``/ws/live/{camera_id}?frames=annotated|raw&max_height=&quality=&max_fps=``: each
  ``detections`` message is followed by the frame as a binary JPEG message
- ``/ws/events``: one ``event`` message per entry/exit of every camera the user may see
  (also those added later)

Every route also sends a ``status`` message when a camera's state changes (reconnecting,
offline, stopped, back online) and, on connect, for each camera that is not online, so a
camera that went quiet says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, ClassVar
from urllib.parse import urlsplit

from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.locks import Event
from tornado.util import TimeoutError as TornadoTimeoutError
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..engine.hub import EventsListener
from ..engine.result import CameraStatus, FrameResult
from ..errors import AuthError
from ..numbers import finite_float, whole_number
from .access import visible_cameras
from .auth import Claims, authenticate_request
from .feed import (
    ClientMessageError,
    MessageCache,
    error_message,
    event_messages,
    hello_message,
    parse_client_message,
    status_message,
    with_dropped,
)
from .jpeg import FrameEncoder, FrameVariant
from .revocation import SESSION_WATCH, Watched
from .token_handler import JsonErrorMixin

__all__ = [
    "AuthenticatedSocket",
    "FeedHandler",
    "DetectionsHandler",
    "MultiDetectionsHandler",
    "LiveHandler",
    "EventsHandler",
    "FeedRegistry",
    "FeedRequestError",
    "MAX_FPS",
    "CLOSE_POLICY_VIOLATION",
]

log = logging.getLogger(__name__)

#: Upper bound of ``max_fps`` (messages per second per camera).
MAX_FPS = 60.0
#: Largest message a client may send (bytes); Tornado closes the socket (1009) above it.
CLIENT_MAX_MESSAGE_BYTES = 4096
#: Replies (pong, settings, errors) waiting for a client that does not read; oldest dropped.
CONTROL_QUEUE_MAX = 16
#: Entry/exit events kept for a client that does not read; oldest dropped and counted.
EVENT_QUEUE_MAX = 1000
#: Keep-alive: a ping this often, and a client that answers none for PING_TIMEOUT_S is
#: closed (a vanished client must not hold its subscription forever).
PING_INTERVAL_S = 30.0
PING_TIMEOUT_S = 30.0
#: A socket that follows new cameras asks the database about a camera it does not know
#: at once the first time, then (a camera the user may not see) at most this often.
NEW_CAMERA_CHECK_S = 10.0
#: WebSocket close codes (RFC 6455): refused request, and a server-side failure.
CLOSE_POLICY_VIOLATION = 1008
CLOSE_SERVER_ERROR = 1011
#: A close reason must fit in a control frame (125 bytes minus the 2-byte code).
MAX_CLOSE_REASON_BYTES = 123


class FeedRequestError(Exception):
    """What a client asked for in the URL cannot be served (bad parameter, unknown camera)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FeedRegistry:
    """The open feed connections of one server (for stats, tests and benchmarks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handlers: set[FeedHandler] = set()

    def add(self, handler: FeedHandler) -> None:
        with self._lock:
            self._handlers.add(handler)

    def discard(self, handler: FeedHandler) -> None:
        with self._lock:
            self._handlers.discard(handler)

    def handlers(self) -> list[FeedHandler]:
        with self._lock:
            return list(self._handlers)


def cameras_visible_to(db: Any, claims: Claims) -> dict[int, Any]:
    """Cameras (not deleted) of the stores ``claims`` may see (:mod:`.access` decides)."""
    return {camera.id: camera for camera in visible_cameras(db, claims.username)}


def _parse_camera_id(text: str) -> int:
    try:
        return whole_number(text)  # int() would also take "1_0", " 1" and "١"
    except ValueError:
        raise FeedRequestError("unknown_camera", f"unknown camera {text[:40]!r}") from None


def _close_reason(text: str) -> str:
    data = text.encode("utf-8")[:MAX_CLOSE_REASON_BYTES]
    return data.decode("utf-8", "ignore")


class AuthenticatedSocket(JsonErrorMixin, WebSocketHandler):
    """A WebSocket only for a logged-in user, closed when the user's token expires or ends.

    Checks the token (``?token=``, bearer or session cookie) and that it still holds (its
    user exists, is enabled, has not logged out or changed password) before the upgrade, so a refused client gets an HTTP 401 with a JSON body;
    allows the same origin and ``settings.allowed_origins``; pings to drop vanished
    clients; takes small client messages only.
    """

    def initialize(self, app_provider: Callable[[], Any]) -> None:
        self.app_provider = app_provider
        self.claims: Claims | None = None
        self._expiry: object | None = None
        self._watched: Watched | None = None

    # ------------------------------------------------------------------ before upgrade
    def prepare(self) -> None:
        self.app = self.app_provider()
        if getattr(self.app, "hub", None) is None or getattr(self.app, "db", None) is None:
            self.send_json_error(503, "server_error", "the engine is not running yet")
            return
        try:
            self.claims = authenticate_request(self, self.app.db, self.app.settings)
        except AuthError as error:
            self.set_header("WWW-Authenticate", 'Bearer realm="zvpanel", error="invalid_token"')
            self.send_json_error(401, "unauthorized", str(error))

    def check_origin(self, origin: str) -> bool:
        """Allow the same origin and ``settings.allowed_origins``; refuse other sites.

        Tornado 6.6 asks only about requests it sees as cross-origin, but 6.3-6.5 ask
        about every browser request, the dashboards' own included: the same-origin rule
        is Tornado's own default, so it is asked first.
        """
        if super().check_origin(origin):
            return True
        netloc = urlsplit(origin).netloc.lower()
        allowed = {
            (urlsplit(entry).netloc if "://" in entry else entry).lower()
            for entry in self.app.settings.allowed_origins
        }
        return bool(netloc) and netloc in allowed

    @property
    def max_message_size(self) -> int:
        return CLIENT_MAX_MESSAGE_BYTES

    @property
    def ping_interval(self) -> float:
        return PING_INTERVAL_S

    @property
    def ping_timeout(self) -> float:
        return PING_TIMEOUT_S

    # ------------------------------------------------------------------ connection
    def close_at_expiry(self) -> None:
        """Close the socket (1008) when the client's token expires or stops working (its
        user's password changed, the user was disabled or logged out)."""
        loop = IOLoop.current()
        delay = self.claims.expires_at.timestamp() - time.time()
        self._expiry = loop.call_later(max(0.0, delay), self._expired)
        self._watched = SESSION_WATCH.watch(self.app.db, self.claims, self._revoked)

    def _revoked(self, reason: str) -> None:
        self._watched = None
        self.refuse(FeedRequestError("token_revoked", reason))

    def _expired(self) -> None:
        self._expiry = None
        self.refuse(FeedRequestError("token_expired", "token expired: log in again"))

    def refuse(self, error: FeedRequestError) -> None:
        """Tell the client why in an error message and close with 1008 and the reason."""
        with contextlib.suppress(WebSocketClosedError):
            self.write_message(json.dumps(error_message(error.code, error.message)))
        self.close(CLOSE_POLICY_VIOLATION, _close_reason(error.message))

    def on_close(self) -> None:
        if self._expiry is not None:
            IOLoop.current().remove_timeout(self._expiry)
            self._expiry = None
        if self._watched is not None:
            SESSION_WATCH.unwatch(self._watched)
            self._watched = None


class FeedHandler(AuthenticatedSocket):
    """Common part of the feed: one sender coroutine, one-slot buffers, client messages."""

    endpoint: ClassVar[str] = "detections"
    wants_frames: ClassVar[bool] = False

    def initialize(
        self,
        app_provider: Callable[[], Any],
        encoder_provider: Callable[[], FrameEncoder],
        messages: MessageCache,
        registry: FeedRegistry,
    ) -> None:
        super().initialize(app_provider)
        self.encoder_provider = encoder_provider
        self.messages = messages
        self.registry = registry
        self.camera_ids: list[int] = []
        self.max_fps: float | None = None
        self.dropped = 0
        self._lock = threading.Lock()
        self._closed = False
        self._wake_scheduled = False
        self._control: deque[dict[str, Any]] = deque(maxlen=CONTROL_QUEUE_MAX)
        self._subscription = None
        # True: every camera the user may see, also those added after the socket opened.
        self.follows_new_cameras = False
        self._cameras: frozenset[int] = frozenset()  # read on engine threads
        self._statuses: dict[int, CameraStatus] = {}  # newest unsent status per camera
        self._camera_checked: dict[int, float] = {}  # camera id -> when last asked about

    # ------------------------------------------------------------------ connection
    def open(self, *args: str) -> None:
        self.loop = IOLoop.current()
        self._wakeup = Event()
        try:
            self.configure(*args)
        except FeedRequestError as error:
            self.refuse(error)
            return
        self.set_nodelay(True)  # small messages must not wait for Nagle's algorithm
        self.close_at_expiry()
        self.registry.add(self)
        self._control.append(
            hello_message(self.endpoint, self.claims.username, self.camera_ids, **self.options())
        )
        self._cameras = frozenset(self.camera_ids)
        self._subscription = self.app.hub.subscribe(
            self._on_result,
            None if self.follows_new_cameras else self.camera_ids,
            wants_frames=self.wants_frames,
            on_status=self._on_status,
            on_events=self.events_listener(),
        )
        self.seed(self.camera_ids)
        self.loop.add_callback(self._run_sender)

    def configure(self, *args: str) -> None:
        """Read the URL (camera ids, options); raise :class:`FeedRequestError` if it is bad."""
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        return {"max_fps": self.max_fps}

    def events_listener(self) -> EventsListener | None:
        """The hub listener for events published without their frame (none by default)."""
        return None

    def seed(self, camera_ids: list[int]) -> None:
        """Queue what a new client sees at once: each camera's newest result, or why it
        has none (a result kept from before an outage would not be the truth)."""
        for camera_id in camera_ids:
            if self._seed_status(camera_id):
                continue
            result = self.app.hub.latest(camera_id)
            if result is not None:
                self._on_result(result)

    def _seed_status(self, camera_id: int) -> bool:
        """Queue the camera's status if it is not online; True if it did."""
        status = self.app.hub.status(camera_id)
        if status is None or status.state == "online":
            return False
        self._on_status(status)
        return True

    def on_close(self) -> None:
        super().on_close()
        with self._lock:
            self._closed = True
        if self._subscription is not None:
            self._subscription.close()
            if self.wants_frames:
                for camera_id in self.camera_ids:
                    if not self.app.hub.frames_wanted(camera_id):
                        self.encoder_provider().forget(camera_id)
        self.registry.discard(self)
        if hasattr(self, "_wakeup"):
            self._wakeup.set()  # let the sender coroutine finish

    # ------------------------------------------------------------------ engine thread
    def _on_result(self, result: FrameResult) -> None:
        """Hub listener (engine thread): keep the newest, wake the loop, return at once."""
        self._keep(result.camera_id, lambda: self._store(result))

    def _keep(self, camera_id: int, store: Callable[[], bool]) -> None:
        """Run ``store`` (lock held) for a camera this socket sends, and wake the loop."""
        if camera_id not in self._cameras:
            self._check_new_camera(camera_id)
            return
        with self._lock:
            if self._closed or not store() or self._wake_scheduled:
                return
            self._wake_scheduled = True
        self.loop.add_callback(self._wake)

    def _on_status(self, status: CameraStatus) -> None:
        """Hub status listener (engine thread): keep each camera's newest status."""
        if status.camera_id not in self._cameras:
            self._check_new_camera(status.camera_id)
            return
        with self._lock:
            if self._closed:
                return
            self._statuses[status.camera_id] = status
            if self._wake_scheduled:
                return
            self._wake_scheduled = True
        self.loop.add_callback(self._wake)

    def _check_new_camera(self, camera_id: int) -> None:
        """A camera this socket does not send: if it follows new cameras, ask the database
        (on the IOLoop) whether it may, at once for a camera never asked about before."""
        if not self.follows_new_cameras:
            return
        now = time.monotonic()
        with self._lock:
            asked = self._camera_checked.get(camera_id)
            if self._closed or (asked is not None and now - asked < NEW_CAMERA_CHECK_S):
                return
            self._camera_checked[camera_id] = now
        self.loop.add_callback(self._follow_new_cameras)

    def _follow_new_cameras(self) -> None:
        """(IOLoop) Send the cameras the user may see now, new ones from their newest state."""
        if self._closed:
            return
        visible = list(cameras_visible_to(self.app.db, self.claims))
        new = [camera_id for camera_id in visible if camera_id not in self._cameras]
        self.camera_ids = visible
        self._cameras = frozenset(visible)
        self.seed(new)

    def _store(self, result: FrameResult) -> bool:
        """Put ``result`` in the buffer (lock held); False if nothing needs sending."""
        raise NotImplementedError

    def _wake(self) -> None:
        with self._lock:
            self._wake_scheduled = False
        self._wakeup.set()

    # ------------------------------------------------------------------ IOLoop thread
    def _take(self, now: float) -> tuple[Any | None, float | None]:
        """The next item to send, or (None, seconds until one is due / None to wait)."""
        raise NotImplementedError

    async def _send(self, item: Any) -> None:
        raise NotImplementedError

    async def _run_sender(self) -> None:
        try:
            while not self._closed:
                self._wakeup.clear()  # before looking, so no wake-up is lost
                while self._control:
                    await self.write_message(json.dumps(self._control.popleft()))
                status = self._take_status()
                if status is not None:
                    await self.write_message(json.dumps(status_message(status)))
                    continue
                item, wait = self._take(self.loop.time())
                if item is not None:
                    await self._send(item)
                    continue
                if self._control:
                    continue
                deadline = None if wait is None else self.loop.time() + wait
                with contextlib.suppress(TornadoTimeoutError):
                    await self._wakeup.wait(deadline)
        except (WebSocketClosedError, StreamClosedError):
            pass  # the client went away: a normal end
        except Exception:  # top of this connection's loop: log, close, keep the server up
            log.exception(
                "%s feed for camera(s) %s failed; closing the connection",
                self.endpoint,
                self.camera_ids,
            )
            self.close(CLOSE_SERVER_ERROR, "internal error")

    def _take_status(self) -> CameraStatus | None:
        with self._lock:
            if not self._statuses:
                return None
            return self._statuses.pop(next(iter(self._statuses)))

    # ------------------------------------------------------------------ client messages
    def on_message(self, message: str | bytes) -> None:
        try:
            request = parse_client_message(message)
            reply = self.handle_request(request)
        except ClientMessageError as error:
            reply = error_message("bad_message", str(error))
        self._control.append(reply)
        if hasattr(self, "_wakeup"):
            self._wakeup.set()

    def handle_request(self, request: dict[str, Any]) -> dict[str, Any]:
        if request["type"] == "ping":
            reply: dict[str, Any] = {"type": "pong", "dropped": self.dropped}
            if "id" in request:
                reply["id"] = request["id"]
            return reply
        # "set" (the schema allows nothing else)
        self.max_fps = request["max_fps"]
        self.on_rate_changed()
        return {"type": "settings", "max_fps": self.max_fps}

    def on_rate_changed(self) -> None:
        pass

    # ------------------------------------------------------------------ URL parameters
    def _query_float(self, name: str, low: float, high: float) -> float | None:
        text = self.get_query_argument(name, None)
        if text is None or text == "":
            return None
        try:
            value = finite_float(text)
        except ValueError:
            value = None
        if value is None or not low < value <= high:
            raise FeedRequestError(
                "bad_parameter",
                f"{name}={text[:20]!r}: expected a number above {low:g} up to {high:g}",
            )
        return value

    def _query_int(self, name: str, low: int, high: int) -> int | None:
        text = self.get_query_argument(name, None)
        if text is None or text == "":
            return None
        try:
            value = whole_number(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise FeedRequestError(
                "bad_parameter", f"{name}={text[:20]!r}: expected a whole number {low}-{high}"
            )
        return value

    def _check_cameras(self, camera_ids: Iterable[int]) -> list[int]:
        visible = cameras_visible_to(self.app.db, self.claims)
        ids = list(dict.fromkeys(camera_ids))
        unknown = [camera_id for camera_id in ids if camera_id not in visible]
        if unknown:
            names = ", ".join(str(c) for c in unknown)
            word = "camera" if len(unknown) == 1 else "cameras"
            raise FeedRequestError("unknown_camera", f"unknown {word} {names}")
        return ids


class _DetectionsBase(FeedHandler):
    """One slot per camera; at most ``max_fps`` messages per second per camera."""

    def initialize(self, **kwargs: Any) -> None:
        super().initialize(**kwargs)
        self._pending: dict[int, FrameResult] = {}
        self._next_due: dict[int, float] = {}

    def _store(self, result: FrameResult) -> bool:
        if self._pending.pop(result.camera_id, None) is not None:
            self.dropped += 1  # the client never saw it: it was slower than the camera
        self._pending[result.camera_id] = result  # re-inserted last: cameras take turns
        return True

    def _take(self, now: float) -> tuple[FrameResult | None, float | None]:
        wait: float | None = None
        with self._lock:
            for camera_id in self._pending:
                due = self._next_due.get(camera_id, 0.0)
                if due <= now:
                    if self.max_fps:
                        self._next_due[camera_id] = now + 1.0 / self.max_fps
                    return self._pending.pop(camera_id), None
                wait = due - now if wait is None else min(wait, due - now)
        return None, wait

    def on_rate_changed(self) -> None:
        self._next_due.clear()

    async def _send(self, result: FrameResult) -> None:
        text = with_dropped(self.messages.detections_json(result), self.dropped)
        await self.write_message(text)


class DetectionsHandler(_DetectionsBase):
    """``/ws/detections/{camera_id}``"""

    def configure(self, camera_id: str) -> None:
        self.camera_ids = self._check_cameras([_parse_camera_id(camera_id)])
        self.max_fps = self._query_float("max_fps", 0.0, MAX_FPS)


class MultiDetectionsHandler(_DetectionsBase):
    """``/ws/detections?camera_ids=1,2,3`` (every visible camera without the parameter)."""

    def configure(self) -> None:
        text = self.get_query_argument("camera_ids", None)
        if text is None:
            ids = list(cameras_visible_to(self.app.db, self.claims))
            self.follows_new_cameras = True
        else:
            parts = [part.strip() for part in text.split(",") if part.strip()]
            if not parts:
                raise FeedRequestError("bad_parameter", "camera_ids is empty: give e.g. 1,2,3")
            ids = self._check_cameras(_parse_camera_id(part) for part in parts)
        self.camera_ids = ids
        self.max_fps = self._query_float("max_fps", 0.0, MAX_FPS)


class LiveHandler(_DetectionsBase):
    """``/ws/live/{camera_id}``: each ``detections`` message is followed by its JPEG."""

    endpoint = "live"
    wants_frames = True

    def configure(self, camera_id: str) -> None:
        self.camera_ids = self._check_cameras([_parse_camera_id(camera_id)])
        self.max_fps = self._query_float("max_fps", 0.0, MAX_FPS)
        frames = self.get_query_argument("frames", "annotated")
        if frames not in ("annotated", "raw"):
            raise FeedRequestError(
                "bad_parameter", f"frames={frames[:20]!r}: expected 'annotated' or 'raw'"
            )
        from .jpeg import DEFAULT_QUALITY, MAX_MAX_HEIGHT, MIN_MAX_HEIGHT

        self.variant = FrameVariant(
            frames=frames,
            max_height=self._query_int("max_height", MIN_MAX_HEIGHT, MAX_MAX_HEIGHT),
            quality=self._query_int("quality", 1, 100) or DEFAULT_QUALITY,
        )

    def options(self) -> dict[str, Any]:
        options = super().options() | {
            "frames": self.variant.frames,
            "quality": self.variant.quality,
        }
        if self.variant.max_height is not None:
            options["max_height"] = self.variant.max_height
        return options

    async def _send(self, result: FrameResult) -> None:
        encoded = await asyncio.wrap_future(self.encoder_provider().encode(result, self.variant))
        image = {
            "format": "jpeg",
            "variant": self.variant.frames,
            "width": encoded.width,
            "height": encoded.height,
            "bytes": len(encoded.jpeg),
        }
        base = with_dropped(self.messages.detections_json(result), self.dropped)
        await self.write_message(f'{base[:-1]},"image":{json.dumps(image)}}}')
        await self.write_message(encoded.jpeg, binary=True)


class EventsHandler(FeedHandler):
    """``/ws/events``: every entry/exit of every camera the user may see, in order."""

    endpoint = "events"

    def initialize(self, **kwargs: Any) -> None:
        super().initialize(**kwargs)
        self._events: deque[dict[str, Any]] = deque()

    def configure(self) -> None:
        self.camera_ids = list(cameras_visible_to(self.app.db, self.claims))
        self.follows_new_cameras = True

    def options(self) -> dict[str, Any]:
        return {}

    def seed(self, camera_ids: list[int]) -> None:
        # Events are news: a new client starts with the next one. Only a camera that is
        # not online says so at once.
        for camera_id in camera_ids:
            self._seed_status(camera_id)

    def events_listener(self) -> EventsListener:
        return self._on_events

    def _on_events(self, camera_id: int, messages: list[dict[str, Any]]) -> None:
        """Hub events listener (bus thread): events whose frames come without them."""
        self._keep(camera_id, lambda: self._queue(messages))

    def _store(self, result: FrameResult) -> bool:
        return self._queue(event_messages(result))

    def _queue(self, messages: list[dict[str, Any]]) -> bool:
        if not messages:
            return False
        for message in messages:
            if len(self._events) >= EVENT_QUEUE_MAX:
                self._events.popleft()
                self.dropped += 1
            self._events.append(message)
        return True

    def _take(self, now: float) -> tuple[dict[str, Any] | None, float | None]:
        with self._lock:
            return (self._events.popleft() if self._events else None), None

    async def _send(self, message: dict[str, Any]) -> None:
        await self.write_message(json.dumps(message | {"dropped": self.dropped}))

    def handle_request(self, request: dict[str, Any]) -> dict[str, Any]:
        if request["type"] == "set":
            raise ClientMessageError("'set' (max_fps) applies to detection feeds, not /ws/events")
        return super().handle_request(request)
