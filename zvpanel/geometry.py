"""Points, segments and sides in image pixels (x right, y down). Pure functions."""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["Anchor", "anchor_points", "side_values", "segment_param", "crossing_param"]

#: Which point of a box stands for the person: where the feet are, or the box centre.
Anchor = Literal["bottom_center", "center"]


def anchor_points(xyxy: np.ndarray, anchor: Anchor = "bottom_center") -> np.ndarray:
    """(N, 2) anchor points of (N, 4) boxes ``x1, y1, x2, y2``."""
    xyxy = np.asarray(xyxy, dtype=float).reshape(-1, 4)
    x = (xyxy[:, 0] + xyxy[:, 2]) / 2
    if anchor == "bottom_center":
        y = xyxy[:, 3]
    elif anchor == "center":
        y = (xyxy[:, 1] + xyxy[:, 3]) / 2
    else:
        raise ValueError(f"anchor={anchor!r} is not 'bottom_center' or 'center'")
    return np.stack([x, y], axis=1)


def side_values(
    start: tuple[float, float], end: tuple[float, float], points: np.ndarray
) -> np.ndarray:
    """``(x2-x1)*(py-y1) - (y2-y1)*(px-x1)`` for each point: its sign is the side of the line.

    This is the prototype's definition, kept so that saved orientations mean the same.
    Divided by the segment length it is the signed distance in pixels.
    """
    (x1, y1), (x2, y2) = start, end
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    return (x2 - x1) * (points[:, 1] - y1) - (y2 - y1) * (points[:, 0] - x1)


def segment_param(
    start: tuple[float, float], end: tuple[float, float], point: tuple[float, float]
) -> float:
    """Where ``point`` projects onto the segment: 0 at ``start``, 1 at ``end``."""
    (x1, y1), (x2, y2) = start, end
    dx, dy = x2 - x1, y2 - y1
    return ((point[0] - x1) * dx + (point[1] - y1) * dy) / (dx * dx + dy * dy)


def crossing_param(
    start: tuple[float, float],
    end: tuple[float, float],
    before: tuple[float, float],
    after: tuple[float, float],
) -> float:
    """Where the path ``before -> after`` meets the line through the segment (0..1 = on it).

    The two points must lie on opposite sides of the line.
    """
    s_before, s_after = side_values(start, end, np.array([before, after]))
    w = s_before / (s_before - s_after)
    meet = (before[0] + w * (after[0] - before[0]), before[1] + w * (after[1] - before[1]))
    return segment_param(start, end, meet)
