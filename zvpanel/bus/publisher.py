"""Engine side of the bus: every camera's status, counts, detections and events, and its
frames while someone watches.

The hub calls :meth:`BusPublisher._on_result` on the camera's thread; it only keeps the
newest result per camera (plus every result that carries events, in a bounded queue) and
wakes the publisher thread, so a slow or absent broker never slows counting down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

from ..engine.result import CameraStatus, FrameResult
from ..web.jpeg import encode_jpeg
from .messages import counts_payload, detections_payload, event_payloads, status_payload
from .topics import camera_topic, validate_payload

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

    from ..engine.hub import ResultHub, Subscription

__all__ = ["BusPublisher"]

log = logging.getLogger(__name__)

#: Results with events kept while the publisher thread is behind (older ones are dropped:
#: the database, not the bus, is the record of events).
MAX_PENDING_EVENT_RESULTS = 1000
#: A running camera's status (its rates) is republished at most this often, seconds.
STATUS_EVERY_S = 2.0
#: JPEG quality of the frames sent to watching dashboards.
FRAME_JPEG_QUALITY = 80
#: How long the publisher thread sleeps at most before looking at the clock again.
IDLE_WAIT_S = 0.5


class BusPublisher:
    """Publishes one hub's cameras on the bus (their ``origin`` is this process)."""

    def __init__(
        self,
        hub: ResultHub,
        client: mqtt.Client,
        origin: str,
        is_remote: Callable[[int], bool] = lambda camera_id: False,
    ) -> None:
        self.hub = hub
        self.is_remote = is_remote  # cameras another process runs: never sent back
        self.client = client
        self.origin = origin
        self.events_dropped = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._newest: dict[int, FrameResult] = {}
        self._statuses: dict[int, CameraStatus] = {}
        self._with_events: deque[FrameResult] = deque()
        self._watchers: dict[int, dict[str, float]] = {}  # camera -> viewer -> expiry
        self._status_sent: dict[int, tuple[float, str, str | None]] = {}
        self._counts_sent: dict[int, tuple[dict, dict]] = {}  # (line counts, zones) sent
        self._running = False
        self._thread: threading.Thread | None = None
        self._subscription: Subscription | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> BusPublisher:
        self._running = True
        self._thread = threading.Thread(target=self._run, name="zvpanel-bus-publisher", daemon=True)
        self._thread.start()
        self._subscription = self.hub.subscribe(self._on_result, None, on_status=self._on_status)
        return self

    def stop(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        self._running = False
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # ------------------------------------------------------------------ camera threads
    def _on_result(self, result: FrameResult) -> None:
        if self.is_remote(result.camera_id):
            return
        with self._lock:
            self._newest[result.camera_id] = result
            if result.events or result.zone_events:
                if len(self._with_events) >= MAX_PENDING_EVENT_RESULTS:
                    self._with_events.popleft()
                    self.events_dropped += 1
                self._with_events.append(result)
        self._wake.set()

    def _on_status(self, status: CameraStatus) -> None:
        if self.is_remote(status.camera_id):
            return
        with self._lock:
            self._statuses[status.camera_id] = status
        self._wake.set()

    # ------------------------------------------------------------------ paho thread
    def on_watch(self, camera_id: int, payload: bytes) -> None:
        """A viewer asks for (or gives up) a camera's frames: ``bus_watch.json``."""
        try:
            request = orjson.loads(payload)
            validate_payload("watch", request)
        except ValueError as error:  # orjson.JSONDecodeError is a ValueError
            log.warning("camera %s: ignored a bad watch request: %s", camera_id, error)
            return
        expiry = time.monotonic() + float(request["expires_in"])
        with self._lock:
            viewers = self._watchers.setdefault(camera_id, {})
            if request["expires_in"] > 0:
                viewers[request["viewer"]] = expiry
            else:
                viewers.pop(request["viewer"], None)

    def watched(self, camera_id: int) -> bool:
        now = time.monotonic()
        with self._lock:
            viewers = self._watchers.get(camera_id, {})
            for viewer in [v for v, expiry in viewers.items() if expiry <= now]:
                del viewers[viewer]
            return bool(viewers)

    # ------------------------------------------------------------------ publisher thread
    def _run(self) -> None:
        while self._running:
            self._wake.wait(IDLE_WAIT_S)
            self._wake.clear()
            with self._lock:
                newest, self._newest = self._newest, {}
                statuses, self._statuses = self._statuses, {}
                with_events, self._with_events = self._with_events, deque()
            try:
                self._send(newest, statuses, with_events)
            except Exception:  # the bus must never stop for one bad message
                log.exception("publishing on the bus failed")

    def _send(
        self,
        newest: dict[int, FrameResult],
        statuses: dict[int, CameraStatus],
        with_events: deque[FrameResult],
    ) -> None:
        for status in statuses.values():
            self._send_status(status)
        for result in with_events:
            for payload in event_payloads(result, self.origin):
                self._publish(result.camera_id, "events", payload, qos=1)
            self._send_counts(result)
        for result in newest.values():
            self._send_result(result)

    def _send_result(self, result: FrameResult) -> None:
        camera_id = result.camera_id
        self._send_status(result.status, only_if_due=True)
        self._send_counts(result)
        if self.watched(camera_id):
            jpeg = encode_jpeg(result.frame.image, FRAME_JPEG_QUALITY, camera_id)
            self.client.publish(camera_topic(camera_id, "frame"), jpeg.tobytes(), qos=0)
        self._publish(camera_id, "detections", detections_payload(result, self.origin))

    def _send_status(self, status: CameraStatus, only_if_due: bool = False) -> None:
        sent = self._status_sent.get(status.camera_id)
        now = time.monotonic()
        same = sent is not None and sent[1:] == (status.state, status.reason)
        if only_if_due and same and now - sent[0] < STATUS_EVERY_S:
            return
        self._status_sent[status.camera_id] = (now, status.state, status.reason)
        payload = status_payload(status, self.origin)
        self._publish(status.camera_id, "status", payload, qos=1, retain=True)

    def _send_counts(self, result: FrameResult) -> None:
        # Zones' times inside grow every frame; only who is inside makes news.
        zones = {k: (z["occupancy"], z["enters"], z["leaves"]) for k, z in result.zones.items()}
        if self._counts_sent.get(result.camera_id) == (result.counts, zones):
            return
        self._counts_sent[result.camera_id] = (result.counts, zones)
        payload = counts_payload(result, self.origin)
        self._publish(result.camera_id, "counts", payload, retain=True)

    def _publish(
        self, camera_id: int, kind: str, payload: dict, qos: int = 0, retain: bool = False
    ) -> None:
        self.client.publish(camera_topic(camera_id, kind), orjson.dumps(payload), qos, retain)
