"""One camera's thread: newest frame -> detect -> track -> count -> events + published result.

A :class:`CameraWorker` owns the camera's :class:`~zvpanel.sources.CameraSource` (its one
decoder), its tracker and its counting pipeline. It takes the newest decoded frame at
most ``calibration.detection_fps`` times per second of wall time; the frames decoded in
between are skipped and counted as dropped. The detector is shared by every camera
(it runs a few frames at once and queues the rest), so a worker that waits for the
detector simply processes fewer frames, which shows up as ``hardware_limited``; its
``processing_ms`` includes the wait for the detector, so it grows with the number of
cameras. With motion gating, a frame in which nothing moved skips the detector
(:class:`~zvpanel.detection.GatedDetector`); the status shows the share skipped.

Everything that changes the pipeline (a new calibration) happens on the worker's own
thread, between two frames; other threads only hand it over and read snapshots.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from ..calibration import Calibration
from ..crops import CropSettings, event_crops
from ..detection.motion import GatedDetector
from ..pipeline import CountingPipeline
from ..rate import RATE_WINDOW_S, MovingMean, Pacer, RateMeter
from ..sources import CameraSource, FrameReader
from ..sources.frame import Frame
from ..tracking import PersonTracker
from .hub import ResultHub
from .result import CameraStatus, FrameResult, SourceState

__all__ = [
    "CameraWorker",
    "CameraSpec",
    "EventSink",
    "HARDWARE_LIMITED_RATIO",
    "STATUS_INTERVAL_S",
    "STOP_TIMEOUT_S",
]

log = logging.getLogger(__name__)

#: A camera whose actual rate stays below this share of its target is hardware limited.
HARDWARE_LIMITED_RATIO = 0.85
#: How long the loop waits for a frame before it re-publishes the status (seconds).
STATUS_INTERVAL_S = 0.5
#: How long stop() waits for the worker thread (a read can block for the source's timeout).
STOP_TIMEOUT_S = 10.0
#: The same processing error is logged with its traceback at most once per this many seconds.
ERROR_LOG_INTERVAL_S = 30.0
#: Distinct error messages remembered for that (bounded: messages may contain values).
MAX_REMEMBERED_ERRORS = 100
#: Weight of the newest frame in the moving mean of the processing time.
PROCESSING_MEAN_WEIGHT = 0.1


class EventSink(Protocol):
    """Where crossing and zone events go (``storage.EventWriter``, a node's ``Outbox``):
    ``events`` mixes :class:`~zvpanel.counting.CrossingEvent` and
    :class:`~zvpanel.counting.ZoneEvent` values."""

    def submit(self, store_id: int, camera_id: int, events: Any, captured_at: Any) -> Any: ...


@dataclass(frozen=True)
class CameraSpec:
    """What a worker needs to know about its camera (a row of the cameras table)."""

    id: int
    store_id: int
    source: str
    name: str = field(default="", compare=False)  # renaming does not restart the camera

    @classmethod
    def from_camera(cls, camera: Any) -> CameraSpec:
        """From a ``storage`` camera record (anything with these attributes)."""
        return cls(
            id=int(camera.id),
            store_id=int(camera.store_id),
            source=str(camera.source),
            name=str(getattr(camera, "name", "")),
        )


class CameraWorker:
    """The thread that counts people on one camera. ``start()``, then ``stop()``."""

    def __init__(
        self,
        camera: CameraSpec,
        calibration: Calibration,
        detector: Any,
        hub: ResultHub,
        writer: EventSink | None,
        *,
        tracker_kind: str = "bytetrack",
        realtime: bool = True,
        labels: tuple[str, ...] = ("person",),
        motion_gating: bool = True,
        crops: CropSettings | None = None,
    ) -> None:
        self.camera = camera
        #: How each crossing's crop is made (None: no crops).
        self.crops = crops
        self.hub = hub
        self.writer = writer
        # Motion gating is per camera (it compares this camera's frames): its own wrapper.
        self.detector = GatedDetector(detector, calibration) if motion_gating else detector
        self.tracker_kind = tracker_kind
        self.labels = labels
        # Raises SourceError at once for a source string that cannot mean anything.
        self.source = CameraSource(camera.source, camera_id=camera.id, realtime=realtime)
        self._calibration = calibration
        # The pipeline is used on the worker thread only; other threads read the snapshot.
        self._pipeline = self._new_pipeline(calibration)
        self._counts = self._pipeline.counts()
        self._pending: Calibration | None = None
        self._checked_size: tuple[Calibration, int, int] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pacer = Pacer(calibration.detection_fps)
        self._processed_rate = RateMeter(RATE_WINDOW_S)
        self._decoded_rate = RateMeter(RATE_WINDOW_S)
        self._processing_ms = MovingMean(PROCESSING_MEAN_WEIGHT)
        self._processed = 0
        self._last_decoded = 0
        self._reader: FrameReader | None = None
        self._error: str | None = None
        self._error_logged: dict[str, float] = {}
        self._status = CameraStatus(camera.id, target_fps=calibration.detection_fps)

    # ------------------------------------------------------------------ public
    @property
    def camera_id(self) -> int:
        return self.camera.id

    @property
    def calibration(self) -> Calibration:
        with self._lock:
            return self._pending or self._calibration

    @property
    def status(self) -> CameraStatus:
        return self._status

    @property
    def tracker_fps(self) -> float:
        """The rate the tracker is told it gets (the actual rate when hardware limited)."""
        return self._pipeline.frame_rate

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"camera {self.camera.id}: worker already started")
        self.source.start()
        self._thread = threading.Thread(
            target=self._run, name=f"zvpanel-camera-{self.camera.id}", daemon=True
        )
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the loop to end (returns at once; ``stop()`` waits for it)."""
        self._stop.set()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the loop, join the thread and release the capture."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("camera %s: worker did not stop within %.0f s", self.camera.id, timeout)
        self.source.stop()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def apply_calibration(self, calibration: Calibration) -> None:
        """Use ``calibration`` from the next frame on (no restart; counts are kept)."""
        with self._lock:
            self._pending = calibration

    def counts(self) -> dict[str, dict[str, int]]:
        """Entries and exits per line id since the worker started."""
        return self._counts

    # ------------------------------------------------------------------ loop
    def _run(self) -> None:
        reader = self._reader = self.source.reader()
        self._processed_rate.reset(time.monotonic())
        self._decoded_rate.reset(time.monotonic())
        while not self._stop.is_set():
            try:
                self._step(reader)
            except Exception as error:  # one bad frame must not stop the camera
                self._log_error(error)
                self._status = self._make_status()
                self.hub.set_status(self._status)
                # Do not spin on an error that repeats at once (e.g. every frame fails).
                self._stop.wait(1.0 / max(self._calibration.detection_fps, 1.0))
        self._close_zones()
        self.hub.set_status(self._make_status(state="stopped"))

    def _close_zones(self) -> None:
        """The camera stops: whoever is inside a zone leaves now, so the stored enters and
        leaves still add up to who was inside (and nobody stays inside forever)."""
        events = self._pipeline.finish()
        if events and self.writer is not None:
            self.writer.submit(
                self.camera.store_id, self.camera.id, events, datetime.now(timezone.utc)
            )

    def _step(self, reader: FrameReader) -> None:
        self._take_pending_calibration()
        delay = self._pacer.delay(time.monotonic())
        if delay > 0 and self._stop.wait(delay):
            return
        frame = reader.read(timeout=STATUS_INTERVAL_S)
        self._count_decoded()
        if frame is None or self._stop.is_set():
            self._status = self._make_status()
            self.hub.set_status(self._status)
            return
        now = time.monotonic()
        self._pacer.taken(now)
        self._process(frame)

    def _process(self, frame: Frame) -> None:
        calibration = self._calibration
        started = time.perf_counter()
        try:
            self._check_frame(calibration, frame)
            output = self._pipeline.process(frame)
        except Exception as error:
            self._error = f"frame {frame.index} failed: {type(error).__name__}: {error}"
            raise
        self._error = None
        self._counts = output.counts
        self._processing_ms.add((time.perf_counter() - started) * 1000)
        self._processed += 1
        self._processed_rate.tick(time.monotonic())
        if (output.events or output.zone_events) and self.writer is not None:
            self.writer.submit(
                self.camera.store_id,
                self.camera.id,
                (*output.events, *output.zone_events),
                frame.captured_at,
                **self._crops(frame, output),
            )
        self._status = self._make_status()
        self._adapt_tracker_rate()
        self.hub.publish(
            FrameResult(
                camera_id=self.camera.id,
                frame=frame,
                detections=output.detections,
                events=output.events,
                counts=output.counts,
                calibration=calibration,
                status=self._status,
                labels=self.labels,
                zone_events=output.zone_events,
                zones=output.zones,
            )
        )

    # ------------------------------------------------------------------ helpers
    def _crops(self, frame: Frame, output: Any) -> dict[str, Any]:
        """``crops=`` for the sink: each crossing's JPEG, when crops are on (a crossing is
        rare, so the few milliseconds are spent on this thread, before the next frame)."""
        if self.crops is None or not output.events:
            return {}
        return {
            "crops": event_crops(
                frame.image, output.detections, output.events, self.crops, self.camera.id
            )
        }

    def _new_pipeline(self, calibration: Calibration) -> CountingPipeline:
        tracker = PersonTracker(frame_rate=calibration.detection_fps, kind=self.tracker_kind)
        return CountingPipeline(calibration, self.detector, tracker)

    def _take_pending_calibration(self) -> None:
        with self._lock:
            calibration, self._pending = self._pending, None
            if calibration is None or calibration == self._calibration:
                return
            # Counts of kept line ids survive; the tracker keeps its tracks and rescales its
            # time-based parameters to a new rate (so nobody on screen is counted twice).
            self._pipeline.set_calibration(calibration)
            if isinstance(self.detector, GatedDetector):
                self.detector.set_calibration(calibration)
            self._calibration = calibration
            self._counts = self._pipeline.counts()
        self._pacer.set_fps(calibration.detection_fps)
        self._processed_rate.reset(time.monotonic())  # the old rate says nothing of the new
        log.info("camera %s: calibration applied", self.camera.id)

    def _check_frame(self, calibration: Calibration, frame: Frame) -> None:
        """A calibration drawn for another resolution would count nothing: say so instead."""
        key = (calibration, frame.width, frame.height)
        if self._checked_size != key:
            calibration.check_frame(frame.width, frame.height)
            self._checked_size = key

    def _adapt_tracker_rate(self) -> None:
        """Tell the tracker the rate it really gets when the machine cannot keep the target."""
        status = self._status
        target = status.target_fps
        rate = status.actual_fps if status.hardware_limited and status.actual_fps > 0 else target
        self._pipeline.set_frame_rate(rate)

    def _count_decoded(self) -> None:
        decoded = self.source.status.frames_decoded
        if decoded > self._last_decoded:
            self._decoded_rate.tick(time.monotonic(), decoded - self._last_decoded)
        self._last_decoded = decoded

    def _make_status(self, state: SourceState | None = None) -> CameraStatus:
        now = time.monotonic()
        source = self.source.status
        source_state = source.state
        target = self._calibration.detection_fps
        actual = self._processed_rate.rate(now)
        # Limited by the hardware only if frames were there to take: a source slower than
        # the target (or one that is offline) is not the hardware's fault.
        available = min(target, self._decoded_rate.rate(now))
        limited = (
            source_state == "online"
            and self._processed_rate.full(now)
            and available > 0
            and actual < HARDWARE_LIMITED_RATIO * available
        )
        return CameraStatus(
            camera_id=self.camera.id,
            state=state or source_state,
            last_error=self._error or source.last_error,
            target_fps=target,
            actual_fps=actual,
            processing_ms=self._processing_ms.value,
            frames_decoded=source.frames_decoded,
            frames_processed=self._processed,
            frames_dropped=self._reader.dropped if self._reader is not None else 0,
            hardware_limited=limited,
            gated_share=getattr(self.detector, "gated_share", 0.0),
        )

    def _log_error(self, error: Exception) -> None:
        key = f"{type(error).__name__}: {error}"
        now = time.monotonic()
        last = self._error_logged.get(key)
        if last is None or now - last >= ERROR_LOG_INTERVAL_S:
            if len(self._error_logged) >= MAX_REMEMBERED_ERRORS:
                self._error_logged.clear()
            self._error_logged[key] = now
            log.exception("camera %s: frame processing failed", self.camera.id)
        else:
            log.debug("camera %s: %s (repeated)", self.camera.id, key)
