"""People in polygon zones: who is inside, enter/leave events, dwell and waiting time.

A track's anchor point is *inside* a zone once it is at least ``min_distance`` pixels
inside the polygon for ``min_frames`` consecutive observations, and *outside* again once
it is that far outside for as many; between the two (the band around the edge) nothing
changes, so a box jittering on the edge does not flicker in and out. Every change is an
event: ``enter``, or ``leave`` with the seconds the track was inside (its dwell; for a
queue, its waiting time). A track not seen for :data:`ZONE_LOST_AFTER_S` while inside
leaves at the time it was last seen, so a person the tracker lost does not stay in the
occupancy. Time is the frames' media time, handed in by the caller: pure, no clocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..calibration import Calibration, Zone
from ..detections import Detections
from ..geometry import Anchor, anchor_points, polygon_depth

__all__ = ["ZoneEvent", "ZoneCounter", "MultiZoneCounter", "ZONE_LOST_AFTER_S"]

#: A track inside a zone that is not seen for this long has left (seconds). Longer than
#: the stitcher's gap (:data:`~zvpanel.tracking.stitch.STITCH_MAX_GAP_S`), so a person
#: lost and found again under the old id keeps one stay.
ZONE_LOST_AFTER_S = 3.0

ZoneEventKind = Literal["enter", "leave"]


@dataclass(frozen=True)
class ZoneEvent:
    zone_id: str
    track_id: int
    kind: ZoneEventKind
    frame_index: int
    media_time: float  # seconds, the time of the frame (for a lost track: last seen)
    dwell_s: float | None  # seconds inside, on leave only
    point: tuple[float, float] | None  # the anchor point (None for a lost track)


@dataclass
class _Stay:
    inside: bool
    since: float  # media time the track entered (meaningful while inside)
    last_time: float  # media time it was last seen
    last_frame: int
    pending: int = 0


@dataclass
class ZoneCounter:
    """Who is inside one :class:`Zone`; feed it every processed frame, in time order."""

    zone: Zone
    anchor: Anchor = "bottom_center"
    min_distance: float = 0.0
    min_frames: int = 1
    lost_after: float = ZONE_LOST_AFTER_S
    enters: int = 0
    leaves: int = 0
    _tracks: dict[int, _Stay] = field(default_factory=dict, repr=False)
    _vertices: np.ndarray = field(init=False, repr=False)
    _now: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._vertices = np.asarray(self.zone.points, dtype=float)

    def update(
        self, detections: Detections, frame_index: int, media_time: float
    ) -> list[ZoneEvent]:
        """Process one frame's tracked detections; return the enters and leaves it makes."""
        events: list[ZoneEvent] = []
        if self._now is not None and media_time < self._now:
            # Time went back (a looping file started again): nobody's stay goes on.
            events.extend(self.close())
        self._now = media_time
        tracked = detections.tracked()
        if len(tracked):
            points = anchor_points(tracked.xyxy, self.anchor)
            depth = polygon_depth(self._vertices, points)
            for i, track_id in enumerate(tracked.tracker_id.tolist()):
                point = (float(points[i, 0]), float(points[i, 1]))
                event = self._observe(track_id, point, float(depth[i]), frame_index, media_time)
                if event is not None:
                    events.append(event)
        events.extend(self._lose_stale(media_time))
        return events

    @property
    def occupancy(self) -> int:
        """Tracks inside now (a lost one until it times out)."""
        return sum(stay.inside for stay in self._tracks.values())

    def inside_seconds(self) -> list[float]:
        """How long each track inside has been inside so far (its wait, for a queue)."""
        now = self._now or 0.0
        return sorted(now - s.since for s in self._tracks.values() if s.inside)

    def close(self) -> list[ZoneEvent]:
        """Everybody inside leaves at their last sighting (the video ended or restarted)."""
        events = [self._leave(t, s) for t, s in self._tracks.items() if s.inside]
        self._tracks.clear()
        self._now = None
        return events

    def _observe(
        self, track_id: int, point: tuple[float, float], depth: float, frame: int, now: float
    ) -> ZoneEvent | None:
        stay = self._tracks.get(track_id)
        if stay is None:
            # Unknown tracks start outside; being inside takes min_frames like any change.
            stay = self._tracks[track_id] = _Stay(False, now, now, frame)
        stay.last_time, stay.last_frame = now, frame
        if abs(depth) < self.min_distance or depth == 0.0:
            return None  # in the band around the edge: says nothing
        if (depth > 0) == stay.inside:
            stay.pending = 0
            return None
        stay.pending += 1
        if stay.pending < self.min_frames:
            return None
        stay.pending = 0
        if stay.inside:
            return self._leave(track_id, stay, point)
        stay.inside, stay.since = True, now
        self.enters += 1
        return ZoneEvent(self.zone.id, track_id, "enter", frame, now, None, point)

    def _leave(
        self, track_id: int, stay: _Stay, point: tuple[float, float] | None = None
    ) -> ZoneEvent:
        stay.inside = False
        self.leaves += 1
        dwell = max(0.0, stay.last_time - stay.since)
        return ZoneEvent(
            self.zone.id, track_id, "leave", stay.last_frame, stay.last_time, dwell, point
        )

    def _lose_stale(self, now: float) -> list[ZoneEvent]:
        stale = [t for t, s in self._tracks.items() if now - s.last_time > self.lost_after]
        events = [self._leave(t, self._tracks[t]) for t in stale if self._tracks[t].inside]
        for track_id in stale:
            del self._tracks[track_id]
        return events


class MultiZoneCounter:
    """One :class:`ZoneCounter` per zone of a calibration."""

    def __init__(self, calibration: Calibration, lost_after: float = ZONE_LOST_AFTER_S):
        self.counters = {
            zone.id: ZoneCounter(
                zone,
                anchor=calibration.anchor,
                min_distance=calibration.min_distance,
                min_frames=calibration.min_frames,
                lost_after=lost_after,
            )
            for zone in calibration.zones
        }

    def update(
        self, detections: Detections, frame_index: int, media_time: float
    ) -> list[ZoneEvent]:
        events: list[ZoneEvent] = []
        for counter in self.counters.values():
            events.extend(counter.update(detections, frame_index, media_time))
        return events

    def close(self) -> list[ZoneEvent]:
        return [event for counter in self.counters.values() for event in counter.close()]

    def counts(self) -> dict[str, dict]:
        """Per zone: occupancy now, enters and leaves so far, and how long the people inside
        have been there (for a queue: its length and waiting times)."""
        result = {}
        for zone_id, counter in self.counters.items():
            seconds = counter.inside_seconds()
            result[zone_id] = {
                "occupancy": counter.occupancy,
                "enters": counter.enters,
                "leaves": counter.leaves,
                "queue": counter.zone.queue,
                "longest_inside_s": round(seconds[-1], 2) if seconds else 0.0,
                "mean_inside_s": round(sum(seconds) / len(seconds), 2) if seconds else 0.0,
            }
        return result
