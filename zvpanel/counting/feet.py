"""Where the feet are when the bottom of a box is hidden.

A person whose legs disappear behind a counter, a car or another person keeps the top of
their box while its bottom jumps up. Counted from the box bottom, that jump looks like a
step across a horizontal line. :class:`FeetEstimator` remembers each track's usual box
height and, when a box suddenly becomes much shorter, puts the bottom back at the top plus
that height: the feet stay where they were heading.
"""

from __future__ import annotations

from ..detections import Detections

__all__ = ["FeetEstimator", "CUT_RATIO", "HEIGHT_SMOOTHING"]

#: A box shorter than this share of its track's usual height has its bottom cut off
#: (0.6-0.8 measured alike on the scenes of benchmarks/scenes.toml; 0.7 was best).
CUT_RATIO = 0.7
#: Weight of a new full box in a track's usual height (people grow and shrink with depth).
HEIGHT_SMOOTHING = 0.3
#: Tracks not seen for this many updates are forgotten.
FORGET_AFTER_UPDATES = 300


class FeetEstimator:
    """Replaces the bottom of boxes cut off from below (one instance per camera)."""

    def __init__(self, cut_ratio: float = CUT_RATIO) -> None:
        if not 0 < cut_ratio <= 1:
            raise ValueError(f"cut_ratio={cut_ratio!r} must be in (0, 1]")
        self.cut_ratio = cut_ratio
        self._height: dict[int, float] = {}
        self._seen: dict[int, int] = {}
        self._updates = 0

    def update(self, tracked: Detections) -> Detections:
        """``tracked`` with the bottom of each cut-off box at top + the track's usual height."""
        self._updates += 1
        if not len(tracked):
            return tracked
        xyxy = tracked.xyxy.copy()
        for i, track_id in enumerate(tracked.tracker_id.tolist()):
            height = float(xyxy[i, 3] - xyxy[i, 1])
            usual = self._height.get(track_id)
            self._seen[track_id] = self._updates
            if usual is not None and height < self.cut_ratio * usual:
                xyxy[i, 3] = xyxy[i, 1] + usual
                continue
            self._height[track_id] = (
                height if usual is None else usual + HEIGHT_SMOOTHING * (height - usual)
            )
        self._forget()
        return Detections(xyxy, tracked.confidence, tracked.class_id, tracked.tracker_id)

    def _forget(self) -> None:
        if self._updates % 64:
            return
        horizon = self._updates - FORGET_AFTER_UPDATES
        for track_id in [t for t, seen in self._seen.items() if seen < horizon]:
            del self._seen[track_id]
            self._height.pop(track_id, None)
