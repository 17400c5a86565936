"""``Detections``: the one value passed between detection, tracking, counting and publishing."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Detections"]


def _empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


@dataclass(frozen=True)
class Detections:
    """Parallel arrays, one row per detected person, in full-frame pixel coordinates.

    ``tracker_id`` is -1 for a detection that no track has claimed (yet).
    """

    xyxy: np.ndarray = field(default_factory=lambda: _empty((0, 4), np.float32))
    confidence: np.ndarray = field(default_factory=lambda: _empty((0,), np.float32))
    class_id: np.ndarray = field(default_factory=lambda: _empty((0,), np.int32))
    tracker_id: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(n, 4)
        object.__setattr__(self, "xyxy", xyxy)
        for name, dtype in (("confidence", np.float32), ("class_id", np.int32)):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=dtype).reshape(n))
        tracker = self.tracker_id
        if tracker is None or len(tracker) == 0:
            tracker = np.full(n, -1, dtype=np.int64)
        object.__setattr__(self, "tracker_id", np.asarray(tracker, dtype=np.int64).reshape(n))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index) -> Detections:
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            tracker_id=self.tracker_id[index],
        )

    @classmethod
    def empty(cls) -> Detections:
        return cls()

    def shifted(self, dx: float, dy: float) -> Detections:
        """The same boxes moved by (dx, dy): maps a crop's boxes back to the full frame."""
        return Detections(
            xyxy=self.xyxy + np.array([dx, dy, dx, dy], dtype=np.float32),
            confidence=self.confidence,
            class_id=self.class_id,
            tracker_id=self.tracker_id,
        )

    def tracked(self) -> Detections:
        """Only the rows a tracker has given an id."""
        return self[self.tracker_id >= 0]
