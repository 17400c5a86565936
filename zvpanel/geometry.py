"""Points, segments and sides in image pixels (x right, y down). Pure functions."""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = [
    "Anchor",
    "anchor_points",
    "side_values",
    "segment_param",
    "crossing_param",
    "polygon_area",
    "polygon_is_simple",
    "polygon_depth",
]

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


def polygon_area(vertices: np.ndarray) -> float:
    """Unsigned area (pixels²) of the polygon through (N, 2) ``vertices`` (shoelace)."""
    v = np.asarray(vertices, dtype=float).reshape(-1, 2)
    x, y = v[:, 0], v[:, 1]
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2


def _segments_cross(a, b, c, d) -> bool:
    """Whether closed segments ab and cd share a point (touching counts)."""

    def orient(p, q, r) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    def on(p, q, r) -> bool:  # r on segment pq, given the three are collinear
        return min(p[0], q[0]) <= r[0] <= max(p[0], q[0]) and min(p[1], q[1]) <= r[1] <= max(
            p[1], q[1]
        )

    o1, o2, o3, o4 = orient(a, b, c), orient(a, b, d), orient(c, d, a), orient(c, d, b)
    if (o1 > 0) != (o2 > 0) and (o3 > 0) != (o4 > 0) and 0 not in (o1, o2, o3, o4):
        return True
    return any(
        o == 0 and on(p, q, r)
        for o, p, q, r in ((o1, a, b, c), (o2, a, b, d), (o3, c, d, a), (o4, c, d, b))
    )


def polygon_is_simple(vertices: np.ndarray) -> bool:
    """True if no two non-adjacent edges of the closed polygon meet (O(n²); zones are small)."""
    v = [tuple(p) for p in np.asarray(vertices, dtype=float).reshape(-1, 2).tolist()]
    n = len(v)
    edges = [(v[i], v[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # neighbours share a vertex by construction
            if _segments_cross(*edges[i], *edges[j]):
                return False
    return True


def polygon_depth(vertices: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Signed distance in pixels of each point to the polygon's boundary: positive inside,
    negative outside (even-odd rule), so a hysteresis band is a threshold on it."""
    v = np.asarray(vertices, dtype=float).reshape(-1, 2)
    p = np.asarray(points, dtype=float).reshape(-1, 2)
    a, b = v, np.roll(v, -1, axis=0)  # edges a[i] -> b[i]
    px, py = p[:, None, 0], p[:, None, 1]
    ax, ay, bx, by = a[None, :, 0], a[None, :, 1], b[None, :, 0], b[None, :, 1]
    # Distance to each edge segment.
    dx, dy = bx - ax, by - ay
    t = np.clip(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    distance = np.hypot(px - (ax + t * dx), py - (ay + t * dy)).min(axis=1)
    # Even-odd ray casting to the right.
    straddles = (ay > py) != (by > py)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = ax + (py - ay) * dx / dy
    inside = (straddles & (px < x_cross)).sum(axis=1) % 2 == 1
    return np.where(inside, distance, -distance)
