"""Bus payloads: built from the engine's results, and read back into them.

A publisher turns a :class:`FrameResult` into the WebSocket feed's own message shapes
(plus ``origin``), so one vocabulary serves browsers, dashboards and Home Assistant. A
dashboard reads them back into ``FrameResult`` / ``CameraStatus`` values for its hub. The
frame's pixels travel separately (JPEG on the ``frame`` topic, only while watched).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

import numpy as np

from ..calibration import Calibration
from ..counting import CrossingEvent, ZoneEvent
from ..detections import Detections
from ..engine.result import CameraStatus, FrameResult
from ..sources.frame import Frame
from ..web.feed import detections_message, event_messages, iso_utc

#: Frame sizes whose black placeholder image is kept.
PLACEHOLDER_SIZES = 8

__all__ = [
    "status_payload",
    "counts_payload",
    "detections_payload",
    "event_payloads",
    "status_from_payload",
    "result_from_payload",
    "placeholder_image",
]


def _now() -> str:
    return iso_utc(datetime.now(timezone.utc))


def status_payload(status: CameraStatus, origin: str) -> dict[str, Any]:
    body = status.as_dict()
    state = body.pop("status")
    body.pop("last_error")
    return {
        "type": "status",
        "origin": origin,
        "timestamp": _now(),
        "state": state,
        "reason": status.reason,
    } | body


def counts_payload(result: FrameResult, origin: str) -> dict[str, Any]:
    message = detections_message(result)
    return {
        "type": "counts",
        "origin": origin,
        "camera_id": message["camera_id"],
        "timestamp": message["timestamp"],
        "counts": message["counts"],
        "zones": message["zones"],
    }


def detections_payload(result: FrameResult, origin: str) -> dict[str, Any]:
    return {"origin": origin} | detections_message(result)


def event_payloads(result: FrameResult, origin: str) -> list[dict[str, Any]]:
    return [{"origin": origin} | message for message in event_messages(result)]


def status_from_payload(payload: dict[str, Any]) -> CameraStatus:
    """Raises KeyError/TypeError/ValueError on a payload that is not a bus status."""
    return CameraStatus(
        camera_id=int(payload["camera_id"]),
        state=_state(payload["state"]),
        last_error=payload["reason"],
        target_fps=float(payload["target_fps"]),
        actual_fps=float(payload["actual_fps"]),
        processing_ms=float(payload["processing_ms"]),
        frames_decoded=int(payload["frames_decoded"]),
        frames_processed=int(payload["frames_processed"]),
        frames_dropped=int(payload["frames_dropped"]),
        hardware_limited=bool(payload["hardware_limited"]),
        gated_share=float(payload["gated_share"]),
    )


def _state(value: Any) -> str:
    if value not in ("starting", "online", "reconnecting", "offline", "stopped"):
        raise ValueError(f"state: {value!r} is not a camera state")
    return value


@lru_cache(maxsize=PLACEHOLDER_SIZES)
def placeholder_image(width: int, height: int) -> np.ndarray:
    """A black BGR image of the frame's size (one per size, shared, read-only): what a
    result shows until the camera's frames come (they are sent only while watched)."""
    image = np.zeros((height, width, 3), np.uint8)
    image.flags.writeable = False
    return image


def result_from_payload(
    payload: dict[str, Any],
    calibration: Calibration,
    status: CameraStatus | None,
    image: np.ndarray | None,
) -> FrameResult:
    """The ``FrameResult`` a bus ``detections`` payload describes; ``image`` is the
    camera's newest frame if one came (a placeholder of the right size otherwise).
    Raises KeyError/TypeError/ValueError on a payload that is not bus detections."""
    camera_id = int(payload["camera_id"])
    width, height = int(payload["width"]), int(payload["height"])
    if image is None or image.shape[:2] != (height, width):
        image = placeholder_image(width, height)
    rows = payload["detections"]
    labels = _labels(rows)
    frame = Frame(
        image=image,
        index=int(payload["frame"]),
        media_time=0.0,
        captured_at=datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00")),
        loop=int(payload["loop"]),
    )
    detections = Detections(
        xyxy=np.array([r["bbox"] for r in rows], np.float32).reshape(len(rows), 4),
        confidence=np.array([r["confidence"] for r in rows], np.float32),
        class_id=np.array([r["class_id"] for r in rows], np.int32),
        tracker_id=np.array([-1 if r["track_id"] is None else r["track_id"] for r in rows]),
    )
    base = status or CameraStatus(camera_id=camera_id)
    return FrameResult(
        camera_id=camera_id,
        frame=frame,
        detections=detections,
        events=tuple(_event(e) for e in payload["events"]),
        counts={
            k: {"entries": int(v["entries"]), "exits": int(v["exits"])}
            for k, v in payload["counts"].items()
        },
        calibration=calibration,
        status=replace(
            base,
            state=_state(payload["status"]),
            actual_fps=float(payload["actual_fps"]),
            target_fps=float(payload["target_fps"]),
            hardware_limited=bool(payload["hardware_limited"]),
        ),
        labels=labels,
        zone_events=tuple(_zone_event(e) for e in payload["zone_events"]),
        zones={k: dict(v) for k, v in payload["zones"].items()},
    )


def _labels(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """class_id -> label as the publisher named them (classes not seen keep their number)."""
    named = {int(r["class_id"]): str(r["label"]) for r in rows}
    size = max(named, default=-1) + 1
    return tuple(named.get(i, str(i)) for i in range(size)) or ("person",)


def _event(item: dict[str, Any]) -> CrossingEvent:
    return CrossingEvent(
        line_id=str(item["line_id"]),
        track_id=int(item["track_id"]),
        direction=item["direction"],
        frame_index=int(item["frame"]),
        confidence=float(item["confidence"]),
        point=(float(item["point"][0]), float(item["point"][1])),
    )


def _zone_event(item: dict[str, Any]) -> ZoneEvent:
    point = item["point"]
    return ZoneEvent(
        zone_id=str(item["zone_id"]),
        track_id=int(item["track_id"]),
        kind=item["kind"],
        frame_index=int(item["frame"]),
        media_time=0.0,  # not sent: a dashboard has no use for the publisher's media clock
        dwell_s=None if item["dwell_s"] is None else float(item["dwell_s"]),
        point=None if point is None else (float(point[0]), float(point[1])),
    )
