"""Joining a lost track to the new track that takes over from it.

A person hidden behind another at the line is often lost by the tracker and found again a
moment later with a new id. To the line counter that is one person vanishing on one side
and another appearing on the other: the crossing is lost. :class:`TrackStitcher` sits
between the tracker and the counter and gives a new track the id of a recently lost one
when the new track starts where the lost one was heading (position, velocity and time),
at a similar size. The counter then sees one person change side (counted once) or come
back on the same side (counted zero).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..detections import Detections

__all__ = ["TrackStitcher", "STITCH_MAX_GAP_S", "STITCH_MAX_DISTANCE_HEIGHTS"]

#: A lost track can be taken over for this long after it was last seen (seconds).
STITCH_MAX_GAP_S = 2.0
#: The new track must start within this many box heights of where the lost one was heading.
STITCH_MAX_DISTANCE_HEIGHTS = 0.5
#: ... and its box height must be within this factor of the lost one's.
STITCH_MAX_SIZE_RATIO = 1.5
#: The lost track's motion is extrapolated for at most this long (a person stops, turns).
MAX_EXTRAPOLATION_S = 1.0
#: Weight of the newest step in a track's velocity (the rest is its previous velocity).
VELOCITY_SMOOTHING = 0.5
#: Two tracks' ids are swapped back when their boxes are further than this many box heights
#: (together) from where the tracks were heading ...
SWAP_MIN_HEIGHTS = 0.25
#: ... and swapping would bring them at least this much closer (the share that remains).
SWAP_GAIN = 0.5


@dataclass
class _Track:
    point: np.ndarray  # bottom-centre anchor
    height: float
    velocity: np.ndarray  # pixels per second
    seen: float  # media time, seconds
    steps: int = 0  # observations the velocity is measured from


class TrackStitcher:
    """Renames new tracker ids to the lost track they continue (one instance per camera)."""

    def __init__(
        self,
        max_gap_s: float = STITCH_MAX_GAP_S,
        max_distance_heights: float = STITCH_MAX_DISTANCE_HEIGHTS,
        max_size_ratio: float = STITCH_MAX_SIZE_RATIO,
        unswap: bool = True,
    ) -> None:
        if max_gap_s < 0 or max_distance_heights < 0 or max_size_ratio < 1:
            raise ValueError(
                f"max_gap_s={max_gap_s!r} and max_distance_heights={max_distance_heights!r} "
                f"must be >= 0, max_size_ratio={max_size_ratio!r} >= 1"
            )
        self.max_gap_s = max_gap_s
        self.max_distance_heights = max_distance_heights
        self.max_size_ratio = max_size_ratio
        self.unswap = unswap
        self._now: float | None = None
        self._alias: dict[int, int] = {}  # tracker id -> stitched id
        self._tracks: dict[int, _Track] = {}  # stitched id -> last state

    def update(self, tracked: Detections, media_time: float) -> Detections:
        """``tracked`` with each tracker id replaced by the id of the person it continues."""
        if self._now is not None and media_time < self._now:
            self.reset()  # a looping file started again
        self._now = media_time
        if not len(tracked):
            self._forget(media_time)
            return tracked
        raw = tracked.tracker_id.tolist()
        xyxy = tracked.xyxy.astype(float)
        points = np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, xyxy[:, 3]], axis=1)
        heights = xyxy[:, 3] - xyxy[:, 1]
        taken: set[int] = set()
        for track_id in sorted(raw):  # ids grow with time: the older track keeps its name
            alias = self._alias.get(track_id)
            if alias in taken:
                # The tracker found again a track that had been stitched to a newer one.
                self._alias[track_id] = track_id
            taken.add(self._alias.get(track_id, track_id))
        ids = []
        for i, track_id in enumerate(raw):
            if track_id not in self._alias:
                found = self._continued(points[i], heights[i], media_time, taken)
                self._alias[track_id] = track_id if found is None else found
                taken.add(self._alias[track_id])
            ids.append(self._alias[track_id])
        if self.unswap:
            self._unswap(raw, ids, points, heights, media_time)
        for i, track_id in enumerate(ids):
            self._observe(track_id, points[i], float(heights[i]), media_time)
        self._forget(media_time)
        return Detections(tracked.xyxy, tracked.confidence, tracked.class_id, np.array(ids))

    def _continued(
        self, point: np.ndarray, height: float, now: float, taken: set[int]
    ) -> int | None:
        best, best_distance = None, np.inf
        for track_id, track in self._tracks.items():
            gap = now - track.seen
            if track_id in taken or not 0 < gap <= self.max_gap_s:
                continue
            ratio = max(height, track.height) / max(1e-6, min(height, track.height))
            if ratio > self.max_size_ratio:
                continue
            expected = track.point + track.velocity * min(gap, MAX_EXTRAPOLATION_S)
            distance = float(np.hypot(*(point - expected)))
            if distance <= self.max_distance_heights * max(height, track.height) and (
                distance < best_distance
            ):
                best, best_distance = track_id, distance
        return best

    def _unswap(
        self, raw: list[int], ids: list[int], points: np.ndarray, heights: np.ndarray, now: float
    ) -> None:
        """Give two people their ids back when the tracker swapped them as they met: each
        box is then where the *other* track was heading, far from where its own was."""
        expected = {}
        for i, track_id in enumerate(ids):
            track = self._tracks.get(track_id)
            if track is not None and track.steps and 0 < now - track.seen <= self.max_gap_s:
                gap = min(now - track.seen, MAX_EXTRAPOLATION_S)
                expected[i] = track.point + track.velocity * gap
        for i, j in itertools.combinations(sorted(expected), 2):
            same = _dist(points[i], expected[i]) + _dist(points[j], expected[j])
            swapped = _dist(points[i], expected[j]) + _dist(points[j], expected[i])
            size = max(heights[i], heights[j])
            if same > SWAP_MIN_HEIGHTS * size and swapped < SWAP_GAIN * same:
                ids[i], ids[j] = ids[j], ids[i]
                expected[i], expected[j] = expected[j], expected[i]
                self._alias[raw[i]], self._alias[raw[j]] = ids[i], ids[j]

    def _observe(self, track_id: int, point: np.ndarray, height: float, now: float) -> None:
        track = self._tracks.get(track_id)
        if track is None:
            self._tracks[track_id] = _Track(point, height, np.zeros(2), now)
            return
        dt = now - track.seen
        if dt > 0:
            track.steps += 1
            step = (point - track.point) / dt
            track.velocity = VELOCITY_SMOOTHING * step + (1 - VELOCITY_SMOOTHING) * track.velocity
        track.point, track.height, track.seen = point, height, now

    def _forget(self, now: float) -> None:
        stale = [t for t, s in self._tracks.items() if now - s.seen > self.max_gap_s]
        for track_id in stale:
            del self._tracks[track_id]
        if stale:
            gone = set(stale)
            self._alias = {k: v for k, v in self._alias.items() if v not in gone}

    def reset(self) -> None:
        """Forget every track (a new video, or the tracker was reset)."""
        self._alias.clear()
        self._tracks.clear()
        self._now = None


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.hypot(*(a - b)))
