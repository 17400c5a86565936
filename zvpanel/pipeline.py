"""One camera's counting pipeline: detect -> track -> count, and offline runs over a file."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .calibration import Calibration
from .counting import CrossingEvent, LineCounter, MultiLineCounter, MultiZoneCounter, ZoneEvent
from .detections import Detections
from .sources.frame import Frame
from .tracking import PersonTracker, TrackStitcher

__all__ = [
    "Detector",
    "PipelineOutput",
    "CountingPipeline",
    "FrameSampler",
    "OfflineRun",
    "run_offline",
    "tracker_factory",
]


class Detector(Protocol):
    """What the pipeline needs from a detector (:class:`zvpanel.detection.YoloDetector`)."""

    labels: tuple[str, ...]

    def detect(self, image: np.ndarray, roi=None) -> Detections: ...


TrackerFactory = Callable[[float], PersonTracker]


def tracker_factory(kind: str = "bytetrack", **overrides) -> TrackerFactory:
    """A factory making :class:`PersonTracker` s of one kind for a given detection rate."""

    def make(frame_rate: float) -> PersonTracker:
        return PersonTracker(frame_rate, kind, **overrides)

    return make


@dataclass(frozen=True)
class PipelineOutput:
    """One processed frame: the tracked people, the crossings it completed, running counts,
    and its zones' enters/leaves and counts (:meth:`MultiZoneCounter.counts`)."""

    detections: Detections
    events: tuple[CrossingEvent, ...]
    counts: dict[str, dict[str, int]]
    zone_events: tuple[ZoneEvent, ...] = ()
    zones: dict[str, dict] = field(default_factory=dict)


class CountingPipeline:
    """detect(frame, roi) -> track -> stitch -> count, for one camera. Not thread-safe: one
    per worker. The stitcher gives a track the tracker lost and found again under a new id
    its old id back (:class:`~zvpanel.tracking.stitch.TrackStitcher`).

    ``tracker`` is a :class:`PersonTracker` or a factory ``frame_rate -> PersonTracker``
    (default: ByteTrack). It must be called at ``calibration.detection_fps`` (see
    :class:`FrameSampler`), or pass the real rate as ``frame_rate``.
    """

    def __init__(
        self,
        calibration: Calibration,
        detector: Detector,
        tracker: PersonTracker | TrackerFactory | None = None,
        *,
        frame_rate: float | None = None,
    ) -> None:
        self.detector = detector
        self.calibration = calibration
        self.frame_rate = float(frame_rate or calibration.detection_fps)
        if tracker is None:
            tracker = tracker_factory()
        self.tracker = tracker if isinstance(tracker, PersonTracker) else tracker(self.frame_rate)
        self.tracker.set_frame_rate(self.frame_rate)
        self.counter = MultiLineCounter(calibration)
        self.zones = MultiZoneCounter(calibration)
        # Leaves of zones a new calibration removed or changed; they go out with the next frame.
        self._closed: list[ZoneEvent] = []
        self.stitcher = TrackStitcher()

    def process(self, frame: Frame) -> PipelineOutput:
        detections = self.detector.detect(frame.image, self.calibration.roi)
        tracked = self.stitcher.update(self.tracker.update(detections), frame.media_time)
        placed = self.counter.feet.update(tracked.tracked())
        events = self.counter.count(placed, frame.index)
        zone_events = [*self._closed, *self.zones.update(placed, frame.index, frame.media_time)]
        self._closed = []
        return PipelineOutput(
            tracked, tuple(events), self.counter.counts(), tuple(zone_events), self.zones.counts()
        )

    def finish(self) -> list[ZoneEvent]:
        """The video ended: everybody inside a zone leaves (at their last sighting)."""
        events, self._closed = [*self._closed, *self.zones.close()], []
        return events

    def counts(self) -> dict[str, dict[str, int]]:
        return self.counter.counts()

    def set_frame_rate(self, frame_rate: float) -> None:
        """The rate frames really arrive at (e.g. below target on a busy machine)."""
        if abs(frame_rate - self.frame_rate) > 1e-9:
            self.frame_rate = float(frame_rate)
            self.tracker.set_frame_rate(frame_rate)

    def set_calibration(self, calibration: Calibration, frame_rate: float | None = None) -> None:
        """Apply a new calibration without losing counts or tracks.

        A line whose id is kept keeps its counts; if its geometry or the hysteresis changed,
        its per-track sides start afresh (they were measured against the old line). The
        tracker keeps its tracks and only adapts its time-based parameters to a new rate.
        """
        old = self.counter.counters
        self.counter = MultiLineCounter(calibration)
        for line_id, counter in self.counter.counters.items():
            previous = old.get(line_id)
            if previous is None:
                continue
            if _same_counting(previous, counter):
                self.counter.counters[line_id] = previous
            else:
                counter.entries, counter.exits = previous.entries, previous.exits
        self._set_zones(calibration)
        self.calibration = calibration
        self.set_frame_rate(frame_rate or calibration.detection_fps)

    def _set_zones(self, calibration: Calibration) -> None:
        """A zone kept as it was keeps who is inside; the people in a zone removed or
        changed leave it (their stays were measured against the old polygon)."""
        zones = MultiZoneCounter(calibration)
        for zone_id, counter in self.zones.counters.items():
            new = zones.counters.get(zone_id)
            if new is not None and (new.zone, new.min_distance, new.min_frames, new.anchor) == (
                counter.zone,
                counter.min_distance,
                counter.min_frames,
                counter.anchor,
            ):
                zones.counters[zone_id] = counter
            else:
                self._closed.extend(counter.close())
                if new is not None:
                    new.enters, new.leaves = counter.enters, counter.leaves
        self.zones = zones

    def reset(self) -> None:
        """Start again from nothing: tracks forgotten, counts zero (e.g. a new video)."""
        self.tracker.reset()
        self.stitcher.reset()
        self.counter = MultiLineCounter(self.calibration)
        self._closed = self.zones.close()  # who was inside leaves, with the next frame
        self.zones = MultiZoneCounter(self.calibration)


def _same_counting(a: LineCounter, b: LineCounter) -> bool:
    return (a.line, a.anchor, a.min_distance, a.min_frames) == (
        b.line,
        b.anchor,
        b.min_distance,
        b.min_frames,
    )


class FrameSampler:
    """Chooses which decoded frames to process so detection runs at ``detection_fps`` in
    media time (offline, where decoding is faster than real time).

    With a 10 fps file and 5 detections per second every second frame is taken; with 3 per
    second frames 0, 3, 7, 10, ... (the frame nearest each due time, within half a
    frame). When the media time goes backwards (a looping file starts again), the
    schedule restarts.
    """

    def __init__(self, detection_fps: float, source_fps: float) -> None:
        if not detection_fps > 0 or not source_fps > 0:
            raise ValueError(
                f"detection_fps={detection_fps!r} and source_fps={source_fps!r} must be > 0"
            )
        self.detection_fps = float(detection_fps)
        self.source_fps = float(source_fps)
        self._period = 1.0 / detection_fps
        # Half a source frame of slack: media times are index / fps, rounding must not skip.
        self._slack = 0.5 / source_fps
        self._next: float | None = None
        self._last: float | None = None

    @property
    def rate(self) -> float:
        """Frames processed per second of media: the tracker's real frame rate."""
        return min(self.detection_fps, self.source_fps)

    def take(self, media_time: float) -> bool:
        """Whether the frame at ``media_time`` (seconds) should be processed."""
        if self._last is not None and media_time < self._last:
            self._next = None
        self._last = media_time
        if self._next is not None and media_time + self._slack < self._next:
            return False
        # Schedule from the due time, not the frame time, so the rate does not drift; but
        # never fall behind by more than a period (after a gap in a live stream).
        due = media_time if self._next is None else self._next
        self._next = max(due + self._period, media_time + self._period - self._slack)
        return True

    def take_frame(self, frame: Frame) -> bool:
        return self.take(frame.media_time)


@dataclass
class OfflineRun:
    """The result of counting a whole file (or its first frames)."""

    frames: int = 0  # decoded
    processed: int = 0  # detected, tracked and counted
    seconds: float = 0.0  # wall-clock time of the run
    detection_fps: float = 0.0  # processed frames per second of video
    events: list[CrossingEvent] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    event_times: list[float] = field(default_factory=list)  # media time of each event
    zone_events: list[ZoneEvent] = field(default_factory=list)  # closed at the end
    zones: dict[str, dict] = field(default_factory=dict)  # the zones' counts at the end

    @property
    def entries(self) -> int:
        return sum(c["entries"] for c in self.counts.values())

    @property
    def exits(self) -> int:
        return sum(c["exits"] for c in self.counts.values())

    @property
    def fps(self) -> float:
        """Decoded frames per wall-clock second."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def run_offline(
    frames: Iterable[Frame],
    pipeline: CountingPipeline,
    sampler: FrameSampler,
    on_output: Callable[[Frame, PipelineOutput], None] | None = None,
) -> OfflineRun:
    """Feed decoded ``frames`` through ``pipeline`` at the sampler's rate; count everything."""
    run = OfflineRun(detection_fps=sampler.rate, counts=pipeline.counts())
    pipeline.set_frame_rate(sampler.rate)
    started = time.perf_counter()
    for frame in _timed(frames, run):
        if not sampler.take_frame(frame):
            continue
        output = pipeline.process(frame)
        run.processed += 1
        run.events.extend(output.events)
        run.event_times.extend(frame.media_time for _ in output.events)
        run.counts = output.counts
        run.zone_events.extend(output.zone_events)
        run.zones = output.zones
        if on_output is not None:
            on_output(frame, output)
    run.zone_events.extend(pipeline.finish())
    run.seconds = time.perf_counter() - started
    return run


def _timed(frames: Iterable[Frame], run: OfflineRun) -> Iterator[Frame]:
    for frame in frames:
        run.frames += 1
        yield frame
