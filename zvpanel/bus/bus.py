"""One MQTT connection per process: its cameras' publisher and/or the feed of the others'.

:class:`Bus` owns the paho client (its network thread does all socket I/O and reconnects
by itself), routes incoming messages to the publisher (watch requests) and the feed
(status, detections, frames), and keeps this process's frame watches alive.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import paho.mqtt.client as mqtt

from ..engine.hub import ResultHub
from ..errors import OutageLog
from .client import KEEPALIVE_S, make_client, new_origin, parse_mqtt_url
from .feed import BusFeed, CalibrationSource
from .publisher import BusPublisher
from .topics import GONE_ROOT, camera_topic, gone_topic, parse_topic, subscription

if TYPE_CHECKING:
    from ..app import App

__all__ = ["Bus", "WATCH_EXPIRY_S", "WATCH_RENEW_S"]

log = logging.getLogger(__name__)

#: A frame watch lasts this long unless renewed (a dashboard that dies stops the frames).
WATCH_EXPIRY_S = 15.0
#: Watches are renewed this often (well inside their expiry).
WATCH_RENEW_S = 5.0
#: How long a clean stop waits for its goodbye to reach the broker, seconds.
GOODBYE_WAIT_S = 2.0
#: What the feed subscribes to.
FEED_KINDS = ("status", "detections", "frame")


class Bus:
    """Connects to ``url`` in the background; ``publish`` and/or ``feed`` say its roles."""

    def __init__(
        self,
        url: str,
        hub: ResultHub,
        *,
        publish: bool,
        calibration_for: CalibrationSource | None = None,
        expected_cameras: Callable[[], Iterable[int]] = tuple,
        origin: str | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self.target = parse_mqtt_url(url)
        self.hub = hub
        self.origin = origin or new_origin()
        self.client = make_client(self.origin, self.target, ca_file)
        self.feed = (
            BusFeed(hub, self.origin, calibration_for, expected_cameras)
            if calibration_for is not None
            else None
        )
        is_remote = self.feed.feeds if self.feed is not None else lambda camera_id: False
        self.publisher = BusPublisher(hub, self.client, self.origin, is_remote) if publish else None
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        # One line for each outage or refusal, not one per retry (every 1-2 s).
        self._refused, self._unreachable = OutageLog(log), OutageLog(log)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_message = self._on_message
        if self.publisher is not None:
            gone = orjson.dumps({"origin": self.origin})
            self.client.will_set(gone_topic(self.origin), gone, qos=1)

    @classmethod
    def for_app(cls, app: App, *, feed: bool = True) -> Bus:
        """An app's bus, started: it publishes the cameras the app's engine runs (if it has
        one) and, with ``feed`` (a process that serves dashboards), feeds its hub with
        every camera other processes publish."""

        def expected_cameras() -> list[int]:
            # The cameras this process serves from the bus, so that each says "bus
            # unavailable" in an outage (also one that never published yet).
            cameras = [c.id for c in app.db.list_cameras()]
            return [c for c in cameras if app.engine is None or not app.runs_camera(c)]

        return cls(
            app.settings.mqtt_url.get_secret_value(),
            app.hub,
            publish=app.engine is not None,
            calibration_for=app.db.get_calibration if feed else None,
            expected_cameras=expected_cameras,
            ca_file=app.settings.mqtt_ca_file,
        ).start()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Bus:
        self.client.connect_async(self.target.host, self.target.port, KEEPALIVE_S)
        self.client.loop_start()
        if self.publisher is not None:
            self.publisher.start()
        if self.feed is not None:
            self.hub.on_demand(self._on_demand)
            self._renewer = threading.Thread(
                target=self._renew_watches, name="zvpanel-bus-watches", daemon=True
            )
            self._renewer.start()
        log.info("bus: %s connecting to %s", self.origin, self.target)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self.publisher is not None:
            self.publisher.stop()
            self._say_gone()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        self.client.disconnect()
        self.client.loop_stop()

    def _say_gone(self) -> None:
        """What the last will says, said on a clean stop too (which sends no will)."""
        if self.connected.is_set():
            gone = orjson.dumps({"origin": self.origin})
            info = self.client.publish(gone_topic(self.origin), gone, qos=1)
            info.wait_for_publish(GOODBYE_WAIT_S)

    # ------------------------------------------------------------------ paho thread
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:  # e.g. "Not authorized": a wrong user or password
            self._refused.failed(
                "bus: %s refused the connection: %s; retrying", self.target, reason_code
            )
            return
        self._refused.ended()  # "connected to" below says it
        self._unreachable.ended()
        topics = []
        if self.publisher is not None:
            topics.append((subscription("watch"), 1))
        if self.feed is not None:
            topics += [(subscription(kind), 0) for kind in FEED_KINDS]
            topics.append((subscription("events"), 1))  # every event, unlike detections
            topics.append((gone_topic("+"), 1))
        if topics:
            client.subscribe(topics)
        self.connected.set()
        if self.feed is not None:
            self.feed.bus_back()
            self._send_watches()  # the broker forgot nothing, but the publisher may have
        log.info("bus: connected to %s", self.target)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._lost(f"disconnected ({reason_code})")

    def _on_connect_fail(self, client, userdata) -> None:
        # paho does not say why: no broker there, a firewall, or a TLS certificate refused.
        self._unreachable.failed(
            "bus: cannot connect to %s (no broker there, or its TLS certificate not "
            "trusted?); retrying",
            self.target,
        )
        self._lost("cannot connect")

    def _lost(self, why: str) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        if self._stop.is_set():
            return
        if was_connected:
            log.warning("bus: %s %s; retrying", self.target, why)
        if self.feed is not None:
            self.feed.bus_lost()

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        parsed = parse_topic(message.topic)
        if parsed is None:
            if self.feed is not None and message.topic.startswith(GONE_ROOT + "/"):
                self._on_gone(message.payload)
            return
        camera_id, kind = parsed
        if kind == "watch":
            if self.publisher is not None:
                self.publisher.on_watch(camera_id, message.payload)
        elif self.feed is not None:
            self.feed.on_message(camera_id, kind, message.payload)

    def _on_gone(self, payload: bytes) -> None:
        """Another process died: its cameras say so here, and their retained "online"
        status is cleared so that a dashboard starting later does not believe it."""
        for camera_id in self.feed.origin_gone(payload):
            self.client.publish(camera_topic(camera_id, "status"), b"", qos=1, retain=True)

    # ------------------------------------------------------------------ frame watches
    def _on_demand(self, camera_id: int, wanted: bool) -> None:
        self._send_watch(camera_id, WATCH_EXPIRY_S if wanted else 0.0)

    def _send_watch(self, camera_id: int, expires_in: float) -> None:
        payload = orjson.dumps({"viewer": self.origin, "expires_in": expires_in})
        self.client.publish(camera_topic(camera_id, "watch"), payload, qos=1)

    def _send_watches(self) -> None:
        for camera_id in self.hub.statuses():
            if self.hub.frames_wanted(camera_id):
                self._send_watch(camera_id, WATCH_EXPIRY_S)

    def _renew_watches(self) -> None:
        while not self._stop.wait(WATCH_RENEW_S):
            if self.connected.is_set():
                self._send_watches()
