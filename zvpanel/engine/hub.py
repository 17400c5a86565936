"""The newest result of every camera, handed to whoever listens, without ever waiting.

The engine's camera threads call :meth:`ResultHub.publish`. Listeners (WebSocket
handlers, dashboard sessions) are called on that thread and must not wait on anything:
the usual listener keeps a one-slot "newest" buffer and wakes its own event loop with
``IOLoop.add_callback``. Nobody waits on a slow viewer. The one exception to "return at
once" is a video stream (``zvpanel.web.camera_stream``), which encodes the frame right
there, once for all its viewers, while someone watches (a millisecond or two per frame).

A camera's status reaches ``on_status`` listeners when its state or reason changes
(:meth:`ResultHub.set_status` while no frame comes: connecting, reconnecting, offline,
disabled; and on the first frame after such a state), so a feed can say why a camera
went quiet.

A camera fed from the bus (``zvpanel.bus.feed``) has its results published without their
events (those come in newest-wins detections messages, which may be lost) and its events,
from the bus's reliable events topic, told to ``on_events`` listeners by
:meth:`ResultHub.publish_events`: each event once, none missed.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .result import CameraStatus, FrameResult

__all__ = [
    "ResultHub",
    "Subscription",
    "Listener",
    "StatusListener",
    "DemandListener",
    "EventsListener",
]

log = logging.getLogger(__name__)

Listener = Callable[[FrameResult], None]
StatusListener = Callable[[CameraStatus], None]
#: Told (camera id, True) when someone starts wanting a camera's frames, False when nobody does.
DemandListener = Callable[[int, bool], None]
#: Told a camera's events that came without their frame: ``/ws/events`` ``event`` messages.
EventsListener = Callable[[int, list[dict[str, Any]]], None]


@dataclass(eq=False)
class Subscription:
    hub: ResultHub
    camera_ids: frozenset[int] | None  # None: every camera
    listener: Listener | None  # None: statuses only
    wants_frames: bool = False
    on_status: StatusListener | None = None
    on_events: EventsListener | None = None

    def wants(self, camera_id: int) -> bool:
        return self.camera_ids is None or camera_id in self.camera_ids

    def close(self) -> None:
        self.hub._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ResultHub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[int, FrameResult] = {}
        self._status: dict[int, CameraStatus] = {}
        self._subs: list[Subscription] = []
        self._frame_demand: dict[int, int] = defaultdict(int)
        self._demand_listeners: list[DemandListener] = []

    # ----------------------------------------------------------------- engine side
    def publish(self, result: FrameResult) -> None:
        with self._lock:
            self._latest[result.camera_id] = result
            previous = self._status.get(result.camera_id)
            self._status[result.camera_id] = result.status
            subs = [s for s in self._subs if s.wants(result.camera_id)]
        # A frame says "online" itself; a status is told only when it ends another state.
        if previous is not None and _changed(previous, result.status):
            self._tell_status(subs, result.status)
        for sub in subs:
            if sub.listener is None:
                continue
            try:
                sub.listener(result)
            except Exception:  # a broken listener must not stop the camera
                log.exception("listener failed for camera %s", result.camera_id)

    def publish_events(self, camera_id: int, messages: list[dict[str, Any]]) -> None:
        """Events of a camera whose results are published without them (the bus feed)."""
        with self._lock:
            subs = [s for s in self._subs if s.on_events is not None and s.wants(camera_id)]
        for sub in subs:
            try:
                sub.on_events(camera_id, messages)
            except Exception:  # a broken listener must not stop the feed
                log.exception("events listener failed for camera %s", camera_id)

    def set_status(self, status: CameraStatus) -> None:
        """Status without a frame (connecting, reconnecting, offline, stopped)."""
        with self._lock:
            previous = self._status.get(status.camera_id)
            self._status[status.camera_id] = status
            subs = [s for s in self._subs if s.wants(status.camera_id)]
        if previous is None or _changed(previous, status):
            self._tell_status(subs, status)

    def _tell_status(self, subs: list[Subscription], status: CameraStatus) -> None:
        for sub in subs:
            if sub.on_status is None:
                continue
            try:
                sub.on_status(status)
            except Exception:  # a broken listener must not stop the camera
                log.exception("status listener failed for camera %s", status.camera_id)

    def forget(self, camera_id: int) -> None:
        with self._lock:
            self._latest.pop(camera_id, None)
            self._status.pop(camera_id, None)

    def frames_wanted(self, camera_id: int) -> bool:
        """True while some subscriber wants this camera's images (so encode them)."""
        return self._frame_demand.get(camera_id, 0) > 0

    # ----------------------------------------------------------------- reader side
    def latest(self, camera_id: int) -> FrameResult | None:
        return self._latest.get(camera_id)

    def status(self, camera_id: int) -> CameraStatus | None:
        return self._status.get(camera_id)

    def statuses(self) -> dict[int, CameraStatus]:
        with self._lock:
            return dict(self._status)

    def subscribe(
        self,
        listener: Listener | None,
        camera_ids: Iterable[int] | None = None,
        wants_frames: bool = False,
        on_status: StatusListener | None = None,
        on_events: EventsListener | None = None,
    ) -> Subscription:
        """Call ``listener`` with each result, ``on_status`` with each status change and
        ``on_events`` with each :meth:`publish_events` of ``camera_ids`` (every camera,
        also those added later, if None)."""
        ids = None if camera_ids is None else frozenset(camera_ids)
        sub = Subscription(self, ids, listener, wants_frames, on_status, on_events)
        with self._lock:
            self._subs.append(sub)
            if wants_frames:
                for camera_id in ids or ():
                    self._frame_demand[camera_id] += 1
            started = [c for c in ids or () if wants_frames and self._frame_demand[c] == 1]
        self._tell_demand(started, True)
        return sub

    def on_demand(self, listener: DemandListener) -> None:
        """Call ``listener`` when a camera's frames become wanted or unwanted (e.g. to ask
        a remote engine for them); it must return at once."""
        with self._lock:
            self._demand_listeners.append(listener)

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub not in self._subs:
                return
            self._subs.remove(sub)
            if sub.wants_frames:
                for camera_id in sub.camera_ids or ():
                    self._frame_demand[camera_id] -= 1
            ended = [
                c for c in sub.camera_ids or () if sub.wants_frames and not self._frame_demand[c]
            ]
        self._tell_demand(ended, False)

    def _tell_demand(self, camera_ids: list[int], wanted: bool) -> None:
        for camera_id in camera_ids:
            for listener in self._demand_listeners:
                try:
                    listener(camera_id, wanted)
                except Exception:  # a broken listener must not break a viewer
                    log.exception("demand listener failed for camera %s", camera_id)


def _changed(previous: CameraStatus, status: CameraStatus) -> bool:
    """A change worth telling: another state, or another reason for it."""
    return (previous.state, previous.reason) != (status.state, status.reason)
