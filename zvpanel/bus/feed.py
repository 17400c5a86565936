"""Dashboard side of the bus: the cameras other processes run, fed into this process's hub.

Messages arrive on paho's network thread and go into the hub as the engine's own results
would (``hub.publish`` / ``hub.set_status``; events, from their reliable topic, by
``hub.publish_events``), so the pages and the WebSocket feed serve
them with their usual rules: newest wins, nobody waits on a slow viewer. While the broker
is unreachable every camera the feed serves says so (state ``reconnecting``, reason
:data:`BUS_UNAVAILABLE`); the retained statuses that come on reconnecting replace it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import cv2
import numpy as np
import orjson

from ..calibration import Calibration
from ..engine.hub import ResultHub
from ..engine.result import CameraStatus
from ..errors import OutageLog, one_line
from .messages import result_from_payload, status_from_payload
from .topics import validate_payload

__all__ = ["BusFeed", "BUS_UNAVAILABLE", "ENGINE_GONE", "WAITING_FOR_NODE"]

log = logging.getLogger(__name__)

#: The reason a camera shows while this process cannot reach the broker.
BUS_UNAVAILABLE = "bus unavailable"
#: The reason a camera shows when the process that ran it left the bus without a goodbye.
ENGINE_GONE = "its engine's process left the bus (stopped or lost); waiting for it"
#: The reason a camera shows between a reconnect and its first message.
WAITING_FOR_NODE = "bus reconnected; waiting for the camera's engine"
#: How long a camera's calibration (read from the shared database) is reused, seconds.
CALIBRATION_TTL_S = 5.0
#: A camera the feed wrote to the hub within this many seconds is another process's (so
#: this process's publisher must not send it back to the bus).
REMOTE_FRESH_S = 10.0
#: How many of the latest events the feed remembers, to pass a redelivered one (QoS 1
#: delivers at least once) to the hub only once. Redeliveries follow within seconds.
SEEN_EVENTS = 4096

CalibrationSource = Callable[[int], Calibration | None]


class BusFeed:
    """Feeds ``hub`` with what other processes publish (never what ``origin`` published)."""

    def __init__(
        self,
        hub: ResultHub,
        origin: str,
        calibration_for: CalibrationSource,
        expected_cameras: Callable[[], Iterable[int]] = tuple,
    ) -> None:
        self.hub = hub
        self.origin = origin
        self.calibration_for = calibration_for
        self.expected_cameras = expected_cameras
        self.bad_messages = 0
        self._lock = threading.Lock()
        self._statuses: dict[int, CameraStatus] = {}
        self._images: dict[int, np.ndarray] = {}
        self._calibrations: dict[int, tuple[float, Calibration | None]] = {}
        self._unavailable: set[int] = set()
        self._fed_at: dict[int, float] = {}  # camera -> when the feed last wrote it
        self._origins: dict[int, str] = {}  # camera -> the process that publishes it
        self._seen_events: set[tuple] = set()  # keys of the latest SEEN_EVENTS events
        self._seen_order: deque[tuple] = deque()
        self._calibrations_outage = OutageLog(log)  # the database is down (logged once)

    # ------------------------------------------------------------------ connection
    def bus_lost(self) -> None:
        """The broker is gone: every camera served from the bus says so."""
        with self._lock:
            cameras = set(self._statuses) | set(_safe_ids(self.expected_cameras))
            self._unavailable |= cameras
        for camera_id in sorted(cameras):
            self._set_status(CameraStatus(camera_id, "reconnecting", BUS_UNAVAILABLE))

    def bus_back(self) -> None:
        """Connected again: the retained statuses that follow tell each camera's truth."""
        with self._lock:
            cameras, self._unavailable = self._unavailable, set()
        for camera_id in sorted(cameras):
            self._set_status(CameraStatus(camera_id, "starting", WAITING_FOR_NODE))

    # ------------------------------------------------------------------ paho thread
    def on_message(self, camera_id: int, kind: str, payload: bytes) -> None:
        try:
            if kind == "frame":
                self._on_frame(camera_id, payload)
                return
            if not payload:
                return  # a retained message being cleared
            message = orjson.loads(payload)
            if message.get("origin") == self.origin or message.get("camera_id") != camera_id:
                return  # our own cameras reach the hub directly
            self._origins[camera_id] = message["origin"]
            if kind == "status":
                self._set_status(status_from_payload(message))
            elif kind == "detections":
                self._on_detections(camera_id, message)
            elif kind == "events":
                self._on_event(camera_id, message)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            self.bad_messages += 1
            log.warning(
                "camera %s: ignored a bad %s message from the bus: %r", camera_id, kind, error
            )

    def origin_gone(self, payload: bytes) -> list[int]:
        """A publishing process's last will (``bus_gone.json``): its cameras say so.
        Returns those cameras (whose retained status the caller clears)."""
        try:
            message = orjson.loads(payload)
            validate_payload("gone", message)
        except ValueError as error:
            self.bad_messages += 1
            log.warning("ignored a bad last will from the bus: %r", error)
            return []
        gone = message["origin"]
        cameras = sorted(c for c, origin in self._origins.items() if origin == gone)
        for camera_id in cameras:
            self._set_status(CameraStatus(camera_id, "offline", ENGINE_GONE))
        return cameras

    def feeds(self, camera_id: int) -> bool:
        """True if this camera's results in the hub come from the bus (another process)."""
        fed_at = self._fed_at.get(camera_id)
        return fed_at is not None and time.monotonic() - fed_at < REMOTE_FRESH_S

    def _set_status(self, status: CameraStatus) -> None:
        with self._lock:
            self._statuses[status.camera_id] = status
            self._fed_at[status.camera_id] = time.monotonic()
        self.hub.set_status(status)

    def _on_frame(self, camera_id: int, payload: bytes) -> None:
        if not self.hub.frames_wanted(camera_id):
            self._images.pop(camera_id, None)
            return
        image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError("frame: not a JPEG image")
        self._images[camera_id] = image

    def _on_detections(self, camera_id: int, message: dict[str, Any]) -> None:
        calibration = self._calibration(camera_id)
        if calibration is None:
            return  # not calibrated here (yet): nothing to draw the counts against
        with self._lock:
            status = self._statuses.get(camera_id)
        image = self._images.get(camera_id) if self.hub.frames_wanted(camera_id) else None
        # Its events reach the hub from the events topic (QoS 1): detections may be lost.
        result = replace(
            result_from_payload(message, calibration, status, image), events=(), zone_events=()
        )
        with self._lock:
            self._statuses[camera_id] = result.status
            self._fed_at[camera_id] = time.monotonic()
        self.hub.publish(result)

    def _on_event(self, camera_id: int, message: dict[str, Any]) -> None:
        validate_payload("events", message)
        if not self._first_delivery(_event_key(message)):
            return
        del message["origin"]  # what is left is the /ws/events message
        self.hub.publish_events(camera_id, [message])

    def _first_delivery(self, key: tuple) -> bool:
        with self._lock:
            if key in self._seen_events:
                return False
            self._seen_events.add(key)
            self._seen_order.append(key)
            if len(self._seen_order) > SEEN_EVENTS:
                self._seen_events.discard(self._seen_order.popleft())
        return True

    def _calibration(self, camera_id: int) -> Calibration | None:
        now = time.monotonic()
        cached = self._calibrations.get(camera_id)
        if cached is not None and now - cached[0] < CALIBRATION_TTL_S:
            return cached[1]
        try:
            calibration = self.calibration_for(camera_id)
        except Exception as error:  # the database may be down: keep the one we had
            # Every message would ask again: try once per TTL, log once per outage.
            self._calibrations[camera_id] = (now, cached[1] if cached else None)
            self._calibrations_outage.failed(
                "cannot read calibrations (%s); the bus cameras keep the ones they had",
                one_line(error),
            )
            return cached[1] if cached else None
        self._calibrations_outage.ended("calibrations readable again")
        self._calibrations[camera_id] = (now, calibration)
        return calibration


def _event_key(message: dict[str, Any]) -> tuple:
    """What identifies an event on the bus: a redelivery repeats it, two events never share
    it (one process, camera, capture time, frame and track; line and direction, or zone
    and kind). The time matters: a looping file or a restarted camera counts its frames
    and tracks from 0 again."""
    return (
        message["origin"], message["camera_id"], message["type"], message["timestamp"],
        message["frame"], message["track_id"], message.get("line_id", message.get("zone_id")),
        message.get("direction", message.get("kind")),
    )  # fmt: skip


def _safe_ids(source: Callable[[], Iterable[int]]) -> list[int]:
    try:
        return list(source())
    except Exception:  # the database may be down too
        log.warning("could not list the cameras to mark them unavailable", exc_info=True)
        return []
