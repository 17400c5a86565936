"""What the engine's cameras did, recorded for the charts: status changes, online time and
where people walked.

:class:`RecordingHub` stands between the engine and its :class:`ResultHub`: every status
and result the engine publishes passes through :class:`ActivityRecorder` on its way. So
only this process's own cameras are recorded; the bus feeds the same hub with other
processes' cameras, which record their own.

Status changes
    Each change of a camera's state or reason (online, reconnecting, offline, stopped
    with ``disabled``...), stamped when seen, never the repeated status of every frame.
Coverage
    Online seconds are credited per UTC quarter hour at each change and at every flush
    (every :data:`FLUSH_SECONDS`: the "still online" mark). A process that dies stops
    being credited, so without any "offline" row its cameras count as not covered from
    its last flush on: at most :data:`FLUSH_SECONDS` of real counting is lost.
Heat
    Each tracked person's anchor point (the calibration's, normally the feet) is placed in
    a cell of a :data:`~zvpanel.storage.activity.HEAT_COLUMNS` x
    :data:`~zvpanel.storage.activity.HEAT_ROWS` grid over the frame; a track adds one
    visit to a cell when it enters it, so someone standing still counts once, whatever
    the detection rate. Grids are kept per UTC hour.

The camera threads only update counters under a lock; the recorder's own thread writes
them through an :class:`ActivitySink` (the database, or a node's outbox), running totals
of this run, so a write that failed is simply made again with newer totals.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..geometry import anchor_points
from ..storage.activity import (
    HEAT_COLUMNS,
    HEAT_ROWS,
    QUARTER_SECONDS,
    CoverageRow,
    HeatRow,
    StatusChangeRow,
)
from ..storage.values import new_event_uid, utc_text
from .hub import ResultHub
from .result import CameraStatus, FrameResult

__all__ = [
    "ActivityRecorder",
    "ActivitySink",
    "RecordingHub",
    "FLUSH_SECONDS",
    "MAX_PENDING_CHANGES",
]

log = logging.getLogger(__name__)

#: How often online time is credited and everything is written.
FLUSH_SECONDS = 60.0
#: Status changes kept while the sink fails (the oldest are dropped beyond, and logged).
MAX_PENDING_CHANGES = 10_000
_HOUR_SECONDS = 3600


class ActivitySink(Protocol):
    """Where the records go: :class:`~zvpanel.storage.Database` or a node's outbox."""

    def record_activity(self, changes: Any, coverage: Any, heat: Any) -> None: ...


@dataclass
class _Camera:
    state: str | None = None
    reason: str | None = None
    online_since: float | None = None  # wall clock, while online
    cells: dict[int, tuple[int, int]] = field(default_factory=dict)  # track id -> cell now


class ActivityRecorder:
    """Records one engine's cameras; ``start()``, ``wrap(hub)`` for the engine, ``stop()``.

    ``store_of(camera_id)`` names the camera's store (called on the recorder's thread).
    """

    def __init__(
        self,
        sink: ActivitySink,
        store_of: Callable[[int], int],
        *,
        node: str | None = None,
        flush_seconds: float = FLUSH_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not flush_seconds > 0:
            raise ValueError(f"flush_seconds {flush_seconds!r} must be > 0")
        self.sink = sink
        self.store_of = store_of
        self.node = node
        #: This process's run: its totals are stored beside other runs', never over them.
        self.run = uuid.uuid4().hex[:12]
        self.flush_seconds = flush_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._cameras: dict[int, _Camera] = {}
        self._stores: dict[int, int] = {}
        self._changes: list[tuple[int, str, str, str | None, str]] = []
        self._online: dict[tuple[int, float], float] = {}  # (camera, quarter) -> seconds
        self._heat: dict[tuple[int, int], np.ndarray] = {}  # (camera, hour) -> visits
        self._dirty_online: set[tuple[int, float]] = set()
        self._dirty_heat: set[tuple[int, int]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ActivityRecorder:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="zvpanel-recorder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the thread and write what is left (the engine has stopped by now)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if not self.flush():
            log.warning("recorder: the last camera activity could not be written")

    def wrap(self, hub: ResultHub) -> RecordingHub:
        """The hub the engine publishes to: records, then passes everything on."""
        return RecordingHub(hub, self)

    # ------------------------------------------------------------------ camera threads
    def observe_status(self, status: CameraStatus) -> None:
        """Note a status; a change of state or reason is recorded."""
        now = self.clock()
        with self._lock:
            camera = self._cameras.setdefault(status.camera_id, _Camera())
            if (camera.state, camera.reason) == (status.state, status.reason):
                return
            self._credit(status.camera_id, camera, now)
            camera.state, camera.reason = status.state, status.reason
            camera.online_since = now if status.state == "online" else None
            if status.state != "online":
                camera.cells = {}
            self._changes.append(
                (status.camera_id, utc_text(now), status.state, status.reason, new_event_uid())
            )
            if len(self._changes) > MAX_PENDING_CHANGES:
                del self._changes[0]
                log.error("recorder: too many unwritten status changes; dropped the oldest")
            if status.state == "stopped":
                self._stores.pop(status.camera_id, None)  # it may restart in another store

    def observe_frame(self, result: FrameResult) -> None:
        """A processed frame: its status, and its tracked people for the heat grid."""
        self.observe_status(result.status)
        tracked = result.detections.tracked()
        width, height = result.frame.width, result.frame.height
        points = anchor_points(tracked.xyxy, result.calibration.anchor)
        xs = np.clip((points[:, 0] * HEAT_COLUMNS / width).astype(int), 0, HEAT_COLUMNS - 1)
        ys = np.clip((points[:, 1] * HEAT_ROWS / height).astype(int), 0, HEAT_ROWS - 1)
        captured = result.frame.captured_at.timestamp()
        hour = int(captured - captured % _HOUR_SECONDS)
        key = (result.camera_id, hour)
        with self._lock:
            camera = self._cameras.setdefault(result.camera_id, _Camera())
            grid = self._heat.get(key)
            if grid is None:
                grid = self._heat[key] = np.zeros((HEAT_ROWS, HEAT_COLUMNS), dtype=np.int64)
            cells = {}
            for track_id, x, y in zip(
                tracked.tracker_id.tolist(), xs.tolist(), ys.tolist(), strict=True
            ):
                cells[track_id] = (x, y)
                if camera.cells.get(track_id) != (x, y):
                    grid[y, x] += 1
                    self._dirty_heat.add(key)
            camera.cells = cells

    # ------------------------------------------------------------------ writing
    def flush(self) -> bool:
        """Credit online time up to now and write everything new; False if the sink failed
        (kept for the next flush)."""
        with self._lock:
            now = self.clock()
            for camera_id, camera in self._cameras.items():
                self._credit(camera_id, camera, now)
            changes, self._changes = self._changes, []
            online = {k: self._online[k] for k in self._dirty_online}
            heat = {k: self._heat[k].copy() for k in self._dirty_heat}
            self._dirty_online, self._dirty_heat = set(), set()
        try:
            self.sink.record_activity(
                [self._change_row(*c) for c in changes],
                [self._coverage_row(k, v) for k, v in online.items()],
                [self._heat_row(key, grid) for key, grid in heat.items()],
            )
        except Exception as error:  # the database may be down: keep it all for the next flush
            with self._lock:
                self._changes[:0] = changes
                self._dirty_online |= set(online)
                self._dirty_heat |= set(heat)
            log.warning("recorder: could not write camera activity (%s); will retry", error)
            return False
        self._forget_old(now)
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def _credit(self, camera_id: int, camera: _Camera, until: float) -> None:
        """Add the online time since the last credit to its quarters (lock held)."""
        t = camera.online_since
        if t is None:
            return
        while t < until:
            quarter = t - t % QUARTER_SECONDS
            end = min(until, quarter + QUARTER_SECONDS)
            key = (camera_id, quarter)
            self._online[key] = min(QUARTER_SECONDS, self._online.get(key, 0.0) + end - t)
            self._dirty_online.add(key)
            t = end
        camera.online_since = until

    def _forget_old(self, now: float) -> None:
        """Drop written totals of past quarters, and of hours before the last (a frame may
        arrive a little late): nothing adds to them any more."""
        quarter = now - now % QUARTER_SECONDS
        last_hour = now - now % _HOUR_SECONDS - _HOUR_SECONDS
        with self._lock:
            _drop(self._online, lambda key: key[1] < quarter, self._dirty_online)
            _drop(self._heat, lambda key: key[1] < last_hour, self._dirty_heat)

    def _store(self, camera_id: int) -> int:
        store = self._stores.get(camera_id)
        if store is None:
            store = self._stores[camera_id] = int(self.store_of(camera_id))
        return store

    def _change_row(self, camera_id, ts, state, reason, uid) -> StatusChangeRow:
        return StatusChangeRow(uid, self._store(camera_id), camera_id, ts, state, reason, self.node)

    def _coverage_row(self, key: tuple[int, float], seconds: float) -> CoverageRow:
        camera_id, quarter = key
        return CoverageRow(self._store(camera_id), camera_id, utc_text(quarter), self.run, seconds)

    def _heat_row(self, key: tuple[int, int], grid: np.ndarray) -> HeatRow:
        camera_id, hour = key
        return HeatRow.of(camera_id, utc_text(float(hour)), self.run, grid)


def _drop(totals: dict, old: Callable[[Any], bool], unwritten: set) -> None:
    for key in [k for k in totals if old(k) and k not in unwritten]:
        del totals[key]


class RecordingHub:
    """A :class:`ResultHub` for the engine: what it publishes is recorded, then handed on."""

    def __init__(self, hub: ResultHub, recorder: ActivityRecorder) -> None:
        self._hub = hub
        self._recorder = recorder

    def publish(self, result: FrameResult) -> None:
        try:
            self._recorder.observe_frame(result)
        except Exception:  # recording must never stop the camera
            log.exception("camera %s: recording the frame failed", result.camera_id)
        self._hub.publish(result)

    def set_status(self, status: CameraStatus) -> None:
        try:
            self._recorder.observe_status(status)
        except Exception:  # recording must never stop the camera
            log.exception("camera %s: recording the status failed", status.camera_id)
        self._hub.set_status(status)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hub, name)
