"""Drawing what the engine sees on a frame: people, ROI, counting lines, zones, running counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from .calibration import Calibration, CountingLine, Zone
from .detections import Detections

__all__ = [
    "annotate",
    "draw_detections",
    "draw_roi",
    "draw_line",
    "draw_zone",
    "entry_arrow",
    "entry_direction",
]

BOX_COLOR = (0, 200, 255)  # BGR: amber boxes
UNTRACKED_COLOR = (160, 160, 160)
ROI_COLOR = (255, 200, 0)
LINE_COLOR = (0, 0, 255)
ENTRY_COLOR = (0, 200, 0)
ZONE_COLOR = (200, 80, 200)  # BGR: violet
QUEUE_COLOR = (0, 140, 255)  # BGR: orange
TEXT_COLOR = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX
#: Arrow length as a fraction of the line length, bounded in pixels so it stays visible.
ARROW_FRACTION = 0.25
ARROW_MIN_PX, ARROW_MAX_PX = 30.0, 80.0


def _thickness(image: np.ndarray) -> int:
    return max(1, round(max(image.shape[:2]) / 400))


def _scale(image: np.ndarray) -> float:
    return max(0.4, max(image.shape[:2]) / 1600)


def _label(image: np.ndarray, text: str, origin: tuple[int, int], color, scale: float) -> None:
    """Text on a filled background so it reads on any footage."""
    thickness = max(1, _thickness(image) - 1)
    (w, h), base = cv2.getTextSize(text, FONT, scale, thickness)
    x = min(max(0, origin[0]), max(0, image.shape[1] - w))
    y = min(max(h + base, origin[1]), image.shape[0])
    cv2.rectangle(image, (x, y - h - base), (x + w, y), color, cv2.FILLED)
    cv2.putText(image, text, (x, y - base), FONT, scale, TEXT_COLOR, thickness, cv2.LINE_AA)


def draw_detections(
    image: np.ndarray, detections: Detections, labels: Sequence[str] | None = None
) -> None:
    """Boxes labelled ``#<track id> <confidence>`` (and the class name if there are several)."""
    thickness = _thickness(image)
    scale = _scale(image)
    for i in range(len(detections)):
        x1, y1, x2, y2 = (int(round(v)) for v in detections.xyxy[i])
        track_id = int(detections.tracker_id[i])
        color = BOX_COLOR if track_id >= 0 else UNTRACKED_COLOR
        cv2.rectangle(image, (x1, y1), (x2, y2), color, thickness)
        parts = [f"#{track_id}"] if track_id >= 0 else []
        if labels is not None and len(labels) > 1:
            parts.append(labels[int(detections.class_id[i])])
        parts.append(f"{float(detections.confidence[i]):.2f}")
        _label(image, " ".join(parts), (x1, y1), color, scale)


def draw_roi(image: np.ndarray, roi: Sequence[float] | None) -> None:
    if roi is None:
        return
    x1, y1, x2, y2 = (int(round(v)) for v in roi)
    cv2.rectangle(image, (x1, y1), (x2, y2), ROI_COLOR, _thickness(image))


def entry_direction(line: CountingLine) -> tuple[float, float]:
    """Unit vector across the line, pointing to the side people come to when they enter."""
    dx, dy = (line.x2 - line.x1) / line.length, (line.y2 - line.y1) / line.length
    # side value = dx*(py-y1) - dy*(px-x1): the normal (-dy, dx) points to side +1.
    return -dy * line.entry_side, dx * line.entry_side


def entry_arrow(line: CountingLine) -> tuple[tuple[float, float], tuple[float, float]]:
    """Start and tip of an arrow from the line's midpoint towards its entry side."""
    mx, my = (line.x1 + line.x2) / 2, (line.y1 + line.y2) / 2
    nx, ny = entry_direction(line)
    size = min(ARROW_MAX_PX, max(ARROW_MIN_PX, ARROW_FRACTION * line.length))
    return (mx, my), (mx + nx * size, my + ny * size)


def draw_line(
    image: np.ndarray, line: CountingLine, counts: Mapping[str, int] | None = None
) -> None:
    """The segment, an arrow pointing to where people go when they enter, and its counts."""
    thickness = _thickness(image)
    start = (int(round(line.x1)), int(round(line.y1)))
    end = (int(round(line.x2)), int(round(line.y2)))
    cv2.line(image, start, end, LINE_COLOR, thickness + 1, cv2.LINE_AA)
    (ax, ay), (bx, by) = entry_arrow(line)
    cv2.arrowedLine(
        image,
        (int(round(ax)), int(round(ay))),
        (int(round(bx)), int(round(by))),
        ENTRY_COLOR,
        thickness + 1,
        cv2.LINE_AA,
        tipLength=0.35,
    )
    text = line.id
    if counts is not None:
        text += f"  in {counts.get('entries', 0)}  out {counts.get('exits', 0)}"
    # The text sits at the line's start, away from the arrow in the middle.
    _label(image, text, (start[0] + thickness, start[1] + 4 * thickness), LINE_COLOR, _scale(image))


def draw_zone(image: np.ndarray, zone: Zone, counts: Mapping[str, object] | None = None) -> None:
    """The polygon, its name and, with ``counts``, the people inside (and a queue's longest
    wait)."""
    color = QUEUE_COLOR if zone.queue else ZONE_COLOR
    vertices = np.round(np.asarray(zone.points)).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(image, [vertices], True, color, _thickness(image), cv2.LINE_AA)
    text = zone.id
    if counts is not None:
        text += f"  {counts.get('occupancy', 0)} inside"
        if zone.queue:
            text += f"  wait {float(counts.get('longest_inside_s', 0.0)):.0f}s"
    top = min(zone.points, key=lambda p: (p[1], p[0]))
    _label(image, text, (int(top[0]), int(top[1])), color, _scale(image))


def annotate(
    image: np.ndarray,
    detections: Detections,
    calibration: Calibration,
    counts: Mapping[str, Mapping[str, int]] | None = None,
    labels: Sequence[str] | None = None,
    zones: Mapping[str, Mapping[str, object]] | None = None,
) -> np.ndarray:
    """A copy of ``image`` (BGR) with the ROI, the zones with their occupancy, the counting
    lines with their entry arrows and counts, and every detection (track id and confidence)."""
    out = image.copy()
    draw_roi(out, calibration.roi)
    for zone in calibration.zones:
        draw_zone(out, zone, None if zones is None else zones.get(zone.id))
    for line in calibration.lines:
        draw_line(out, line, None if counts is None else counts.get(line.id))
    draw_detections(out, detections, labels)
    return out
