"""What the engine publishes for every processed frame, and a camera's live status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..calibration import Calibration
from ..counting import CrossingEvent, ZoneEvent
from ..detections import Detections
from ..sources.frame import Frame

__all__ = ["SourceState", "CameraStatus", "FrameResult"]

SourceState = Literal["starting", "online", "reconnecting", "offline", "stopped"]


@dataclass(frozen=True)
class CameraStatus:
    """A snapshot of one camera's health, safe to hand to any thread."""

    camera_id: int
    state: SourceState = "starting"
    last_error: str | None = None
    target_fps: float = 0.0
    actual_fps: float = 0.0
    processing_ms: float = 0.0  # detect + track + count, per processed frame (moving mean)
    frames_decoded: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0  # decoded but never processed (the engine only takes the newest)
    hardware_limited: bool = False
    gated_share: float = 0.0  # share of the frames taken that motion gating did not detect on

    @property
    def reason(self) -> str | None:
        """Why the camera is not online (its newest problem); None while it is online."""
        return None if self.state == "online" else self.last_error

    def as_dict(self) -> dict:
        return {
            "camera_id": self.camera_id,
            "status": self.state,
            "last_error": self.last_error,
            "target_fps": round(self.target_fps, 3),
            "actual_fps": round(self.actual_fps, 3),
            "processing_ms": round(self.processing_ms, 2),
            "frames_decoded": self.frames_decoded,
            "frames_processed": self.frames_processed,
            "frames_dropped": self.frames_dropped,
            "hardware_limited": self.hardware_limited,
            "gated_share": round(self.gated_share, 3),
        }


@dataclass(frozen=True)
class FrameResult:
    """One processed frame: what was seen, tracked and counted on it."""

    camera_id: int
    frame: Frame
    detections: Detections  # tracked people, full-frame pixels
    events: tuple[CrossingEvent, ...]
    counts: dict[str, dict[str, int]]  # line id -> {"entries": n, "exits": n}
    calibration: Calibration
    status: CameraStatus
    labels: tuple[str, ...] = field(default=("person",))  # class_id -> label
    zone_events: tuple[ZoneEvent, ...] = ()  # enters/leaves of zones on this frame
    zones: dict[str, dict] = field(default_factory=dict)  # zone id -> MultiZoneCounter.counts()
