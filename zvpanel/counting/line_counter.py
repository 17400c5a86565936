"""Counting people crossing a line segment, with hysteresis.

A track's anchor point has a *confirmed side* of the line. It changes side only when
the point is at least ``min_distance`` pixels past the line for ``min_frames``
consecutive observations; jitter on the line therefore cannot count twice. When it
changes side, the path from the last point on the old side to the new point must meet
the line within the segment's extent (a person walking past the segment's end is not
counted). Every side change is one event; the track keeps its state while it is lost
for up to ``forget_after`` frames, so a track that is lost and found again on the same
side does not count again. :class:`MultiLineCounter` first puts back the feet of boxes cut
off from below (:class:`~zvpanel.counting.feet.FeetEstimator`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..calibration import Calibration, CountingLine
from ..detections import Detections
from ..geometry import Anchor, anchor_points, crossing_param, side_values
from .feet import FeetEstimator

__all__ = ["CrossingEvent", "LineCounter", "MultiLineCounter", "FORGET_AFTER_FRAMES"]

#: Observations a vanished track's side is remembered for (at the detection rate).
FORGET_AFTER_FRAMES = 300

Direction = Literal["entry", "exit"]


@dataclass(frozen=True)
class CrossingEvent:
    line_id: str
    track_id: int
    direction: Direction
    frame_index: int
    confidence: float
    point: tuple[float, float]


@dataclass
class _TrackState:
    side: int
    last_point: tuple[float, float]  # last anchor point seen on the confirmed side
    last_seen: int
    pending: int = 0


@dataclass
class LineCounter:
    """Counts crossings of one :class:`CountingLine`; feed it every processed frame."""

    line: CountingLine
    anchor: Anchor = "bottom_center"
    min_distance: float = 0.0
    min_frames: int = 1
    forget_after: int = FORGET_AFTER_FRAMES
    entries: int = 0
    exits: int = 0
    _tracks: dict[int, _TrackState] = field(default_factory=dict, repr=False)
    _updates: int = field(default=0, repr=False)

    def update(self, detections: Detections, frame_index: int) -> list[CrossingEvent]:
        """Process one frame's tracked detections; return the crossings it completes."""
        self._updates += 1
        tracked = detections.tracked()
        events: list[CrossingEvent] = []
        if len(tracked):
            points = anchor_points(tracked.xyxy, self.anchor)
            distance = side_values(self.line.start, self.line.end, points) / self.line.length
            for i, track_id in enumerate(tracked.tracker_id.tolist()):
                event = self._observe(
                    track_id,
                    (float(points[i, 0]), float(points[i, 1])),
                    float(distance[i]),
                    frame_index,
                    float(tracked.confidence[i]),
                )
                if event is not None:
                    events.append(event)
        self._forget_stale()
        return events

    def _observe(
        self,
        track_id: int,
        point: tuple[float, float],
        distance: float,
        frame_index: int,
        confidence: float,
    ) -> CrossingEvent | None:
        state = self._tracks.get(track_id)
        if abs(distance) < self.min_distance or distance == 0.0:
            # In the dead band around the line: it says nothing about the side.
            if state is not None:
                state.last_seen = self._updates
            return None
        side = 1 if distance > 0 else -1
        if state is None:
            self._tracks[track_id] = _TrackState(side, point, self._updates)
            return None
        state.last_seen = self._updates
        if side == state.side:
            state.pending = 0
            state.last_point = point
            return None
        state.pending += 1
        if state.pending < self.min_frames:
            return None
        before = state.last_point
        state.side, state.last_point, state.pending = side, point, 0
        t = crossing_param(self.line.start, self.line.end, before, point)
        if not 0.0 <= t <= 1.0:
            return None  # walked past the end of the segment
        direction: Direction = "entry" if side == self.line.entry_side else "exit"
        if direction == "entry":
            self.entries += 1
        else:
            self.exits += 1
        return CrossingEvent(self.line.id, track_id, direction, frame_index, confidence, point)

    def _forget_stale(self) -> None:
        horizon = self._updates - self.forget_after
        if horizon <= 0 or len(self._tracks) < 64 and self._updates % 32:
            return
        for track_id in [t for t, s in self._tracks.items() if s.last_seen < horizon]:
            del self._tracks[track_id]


class MultiLineCounter:
    """One :class:`LineCounter` per line of a calibration."""

    def __init__(
        self,
        calibration: Calibration,
        forget_after: int = FORGET_AFTER_FRAMES,
        feet: FeetEstimator | None = None,
    ):
        self.calibration = calibration
        #: Shared by the lines: a box cut off from below keeps its feet where they were.
        self.feet = FeetEstimator() if feet is None else feet
        self.counters = {
            line.id: LineCounter(
                line,
                anchor=calibration.anchor,
                min_distance=calibration.min_distance,
                min_frames=calibration.min_frames,
                forget_after=forget_after,
            )
            for line in calibration.lines
        }

    def update(self, detections: Detections, frame_index: int) -> list[CrossingEvent]:
        return self.count(self.feet.update(detections.tracked()), frame_index)

    def count(self, detections: Detections, frame_index: int) -> list[CrossingEvent]:
        """Count detections whose feet are already placed (the pipeline shares them with
        the zones; the estimator must see each frame once)."""
        events: list[CrossingEvent] = []
        for counter in self.counters.values():
            events.extend(counter.update(detections, frame_index))
        return events

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            line_id: {"entries": c.entries, "exits": c.exits}
            for line_id, c in self.counters.items()
        }
