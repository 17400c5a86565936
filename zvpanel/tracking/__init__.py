"""Per-camera person tracking (Ultralytics' ByteTrack / BoT-SORT) on :class:`Detections`."""

from .stitch import TrackStitcher
from .tracker import (
    DEFAULT_IOU_BUFFER,
    DEFAULT_OVERRIDES,
    MAX_BOX_PAD,
    REFERENCE_FPS,
    TRACKER_KINDS,
    PersonTracker,
    TrackerKind,
)

__all__ = [
    "PersonTracker",
    "TrackStitcher",
    "TrackerKind",
    "TRACKER_KINDS",
    "REFERENCE_FPS",
    "DEFAULT_OVERRIDES",
    "DEFAULT_IOU_BUFFER",
    "MAX_BOX_PAD",
]
