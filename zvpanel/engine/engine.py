"""The engine: one :class:`CameraWorker` per enabled, calibrated camera, sharing one detector.

The database says which cameras exist; :meth:`Engine.reload_camera` brings one camera's
worker in line with its row (started, stopped, restarted on a new source, or given a new
calibration in place) without touching the others.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..calibration import Calibration
from ..crops import CropSettings
from ..errors import NotFoundError, OutageLog, ZvpanelError, one_line
from ..memory import tune_malloc
from ..sources import mask_source
from .hub import ResultHub
from .result import CameraStatus
from .worker import CameraSpec, CameraWorker, EventSink

if TYPE_CHECKING:
    from ..storage import Database

__all__ = ["Engine", "NOT_CALIBRATED", "DISABLED"]

log = logging.getLogger(__name__)

#: ``last_error`` of a camera that has no calibration yet (so nothing to count).
NOT_CALIBRATED = "not calibrated: draw a counting line for this camera to start counting"
#: ``last_error`` of a camera an admin switched off.
DISABLED = "disabled"
#: Database change kinds that concern the engine.
_WATCHED_CHANGES = ("camera", "calibration")
#: How often the engine looks for changes made by another process (e.g. ``zvpanel calibrate``).
CONFIG_POLL_S = 2.0


class Engine:
    """Runs every enabled, calibrated camera of ``db`` in its own worker thread; with
    ``owns``, only the cameras it says this engine runs (fleet mode: the dashboards run the
    unassigned cameras, a node those assigned to it, see :mod:`zvpanel.node`)."""

    def __init__(
        self,
        db: Database,
        hub: ResultHub,
        writer: EventSink | None,
        detector: Any,
        *,
        tracker_kind: str = "bytetrack",
        realtime: bool = True,
        motion_gating: bool = True,
        owns: Callable[[int], bool] | None = None,
        crops: CropSettings | None = None,
    ) -> None:
        self.db = db
        #: How each crossing's crop is made (None: no crops).
        self.crops = crops
        #: Whether this engine runs a camera (fleet mode: others run on nodes); None: all.
        self.owns = owns
        self.hub = hub
        self.writer = writer
        self.detector = detector
        self.tracker_kind = tracker_kind
        self.realtime = realtime
        self.motion_gating = motion_gating
        self._workers: dict[int, CameraWorker] = {}
        # Serialises start/stop/reload: they may come from a web request and a CLI at once.
        # Held only to read or swap ``_workers``, never while a thread is joined: a stream
        # that takes long to close must not hold up status queries or other cameras.
        self._lock = threading.RLock()
        # One per camera: the changes of one camera are applied one after another.
        self._camera_locks: dict[int, threading.Lock] = {}
        self._running = False
        # Changes made through ``db`` (dashboards, admin pages) are applied by a small
        # thread, so the request that made the change never waits for a capture to close.
        self._changes: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._unsubscribe = None
        self._reloader: threading.Thread | None = None
        self._revision_outage = OutageLog(log)  # one line per outage, not one per poll

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start a worker for every enabled, non-deleted camera that has a calibration."""
        with self._lock:
            if self._running:
                return
            self._running = True
            # Before the camera threads exist: they would each get a malloc arena of their own.
            tune_malloc()
            # Listening first, so no change made while the cameras start is missed.
            if hasattr(self.db, "subscribe"):
                self._unsubscribe = self.db.subscribe(self._on_change)
                self._reloader = threading.Thread(
                    target=self._reload_loop, name="zvpanel-engine-reload", daemon=True
                )
                self._reloader.start()
        for camera in self.db.list_cameras():
            self.reload_camera(camera.id)

    def stop(self) -> None:
        """Stop every worker: threads joined, captures released."""
        with self._lock:
            self._running = False
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            workers, self._workers = list(self._workers.values()), {}
        if self._reloader is not None:
            self._changes.put(None)
            self._reloader.join()
            self._reloader = None
        _stop_all(workers)

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def reload_camera(self, camera_id: int) -> None:
        """Apply a change to one camera (calibration, enabled, source, added or deleted).

        Returns once the change is applied: a worker being replaced is stopped first,
        which waits for its stream to close (up to the source's timeouts). Only this
        camera's changes wait meanwhile.
        """
        with self._camera_lock(camera_id):
            if self._running:
                self._sync_or_report(camera_id)

    def request_reload(self, camera_id: int) -> None:
        """Like :meth:`reload_camera`, but on the engine's reload thread: returns at once
        (for a web request, which must not wait for a stream to close)."""
        if self._reloader is not None:
            self._changes.put(int(camera_id))
        else:
            self.reload_camera(camera_id)

    # ------------------------------------------------------------------ queries
    def statuses(self) -> dict[int, CameraStatus]:
        """The newest status of every camera the engine knows about."""
        statuses = self.hub.statuses()
        with self._lock:
            for camera_id, worker in self._workers.items():
                statuses.setdefault(camera_id, worker.status)
        return statuses

    def status(self, camera_id: int) -> CameraStatus | None:
        return self.statuses().get(camera_id)

    def counts(self, camera_id: int) -> dict[str, dict[str, int]]:
        """Entries and exits per line since the camera's worker started."""
        worker = self.worker(camera_id)
        if worker is None:
            raise NotFoundError(f"camera {camera_id} is not running in the engine")
        return worker.counts()

    def worker(self, camera_id: int) -> CameraWorker | None:
        with self._lock:
            return self._workers.get(camera_id)

    @property
    def camera_ids(self) -> list[int]:
        """Cameras with a running worker."""
        with self._lock:
            return sorted(self._workers)

    # ------------------------------------------------------------------ internals
    def _on_change(self, change: Any) -> None:
        if change.kind in _WATCHED_CHANGES:
            self._changes.put(int(change.id))

    def _reload_loop(self) -> None:
        revision = self._config_revision()
        while True:
            try:
                camera_id = self._changes.get(timeout=CONFIG_POLL_S)
            except queue.Empty:
                # Nothing changed through this process's ``db``: another process (the CLI,
                # a second server) may have changed the configuration in the same file.
                latest = self._config_revision()
                if latest is not None and latest != revision:
                    revision = latest
                    self._reload_all()
                continue
            if camera_id is None:
                return
            revision = self._config_revision()
            try:
                self.reload_camera(camera_id)
            except Exception:  # top of the thread loop: one bad camera row must not stop reloads
                log.exception("camera %s: could not apply a change", camera_id)

    def _config_revision(self) -> int | None:
        try:
            revision = self.db.config_revision()
        except Exception as error:  # a locked or vanished file must not stop the reload thread
            self._revision_outage.failed(
                "could not read the configuration revision (%s)", one_line(error)
            )
            return None
        self._revision_outage.ended("the configuration revision can be read again")
        return revision

    def _reload_all(self) -> None:
        try:
            rows = {camera.id for camera in self.db.list_cameras()}
        except Exception:  # the database went away meanwhile: the next poll tries again
            log.exception("could not list the cameras")
            return
        with self._lock:
            camera_ids = set(self._workers) | rows
        for camera_id in sorted(camera_ids):
            try:
                self.reload_camera(camera_id)
            except Exception:  # top of the thread loop, as above
                log.exception("camera %s: could not apply a change", camera_id)

    def _sync_or_report(self, camera_id: int) -> None:
        """Sync one camera; a camera whose row cannot be used must not stop the others."""
        try:
            self._sync(camera_id)
        except ZvpanelError as error:
            log.error("camera %s: cannot start: %s", camera_id, error)
            self._retire(camera_id)
            self.hub.set_status(CameraStatus(camera_id, state="offline", last_error=str(error)))

    def _sync(self, camera_id: int) -> None:
        """Bring one camera in line with its row (its camera lock held, not the engine's).

        A status is set after the old worker stopped, so its last "stopped" does not
        hide why the camera is not running.
        """
        if self.owns is not None and not self.owns(camera_id):
            self._retire(camera_id)  # another process runs it (or nobody may, for now)
            return
        camera = self._camera(camera_id)
        if camera is None:  # deleted
            self._retire(camera_id)
            self.hub.forget(camera_id)
            return
        if not camera.enabled:
            self._retire(camera_id)
            self.hub.set_status(CameraStatus(camera_id, state="stopped", last_error=DISABLED))
            return
        calibration = self._calibration(camera_id)
        if calibration is None:
            self._retire(camera_id)
            self.hub.set_status(CameraStatus(camera_id, state="offline", last_error=NOT_CALIBRATED))
            return
        spec = CameraSpec.from_camera(camera)
        worker = self.worker(camera_id)
        if worker is not None and worker.camera == spec:
            worker.apply_calibration(calibration)
            return
        self._retire(camera_id)  # new camera, or its source/store changed
        self._start_worker(spec, calibration)

    def _start_worker(self, spec: CameraSpec, calibration: Calibration) -> None:
        # Raises SourceError for a source string that cannot mean anything.
        worker = CameraWorker(
            spec,
            calibration,
            self.detector,
            self.hub,
            self.writer,
            tracker_kind=self.tracker_kind,
            realtime=self.realtime,
            labels=tuple(getattr(self.detector, "labels", ("person",))),
            motion_gating=self.motion_gating,
            crops=self.crops,
        )
        with self._lock:
            if not self._running:  # stopped meanwhile
                return
            worker.start()
            self._workers[spec.id] = worker
        log.info("camera %s: started (%s)", spec.id, spec.name or mask_source(spec.source))

    def _retire(self, camera_id: int) -> None:
        """Take the camera's worker out under the lock, then stop it outside the lock."""
        with self._lock:
            worker = self._workers.pop(camera_id, None)
        if worker is not None:
            worker.stop()
            log.info("camera %s: stopped", camera_id)

    def _camera_lock(self, camera_id: int) -> threading.Lock:
        with self._lock:
            return self._camera_locks.setdefault(camera_id, threading.Lock())

    def _camera(self, camera_id: int) -> Any | None:
        """The camera's row, or None if it does not exist or was deleted."""
        try:
            camera = self.db.get_camera(camera_id)
        except NotFoundError:
            return None
        if camera is None or getattr(camera, "deleted_at", None) is not None:
            return None
        return camera

    def _calibration(self, camera_id: int) -> Calibration | None:
        try:
            return self.db.get_calibration(camera_id)
        except NotFoundError:
            return None


def _stop_all(workers: list[CameraWorker]) -> None:
    """Stop workers in parallel: each may wait for its stream to close (source timeouts),
    so one after another would add those waits up."""
    for worker in workers:
        worker.request_stop()
    stoppers = [
        threading.Thread(target=worker.stop, name=f"zvpanel-stop-{worker.camera_id}", daemon=True)
        for worker in workers
    ]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join()
