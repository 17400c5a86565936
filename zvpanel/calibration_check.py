"""Warnings about counting lines placed where they will count badly.

Pure: a calibration, a frame size and (optionally) trajectories seen in the footage in,
a list of warnings out. Used by the calibration page and the CLI. A warning is advice,
not an error: the calibration stays valid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from .calibration import Calibration, CountingLine
from .tracks import displacements, line_crossing_counts

if TYPE_CHECKING:
    from .config import Settings
    from .pipeline import Detector

__all__ = [
    "CalibrationWarning",
    "WarningCode",
    "check_calibration",
    "check_footage",
    "format_warnings",
    "CHECK_FRAMES",
    "main_walking_direction",
    "EDGE_MARGIN",
    "MAX_EDGE_SHARE",
    "PARALLEL_ANGLE_DEG",
    "MIN_DIRECTION_DOMINANCE",
    "MIN_DISPLACEMENTS",
    "MIN_MOVE_PX",
    "MIN_TRACKS_CROSSING",
    "line_reliability",
    "MAX_BROKEN_SHARE",
    "MAX_HIDDEN_SHARE",
]

WarningCode = Literal[
    "outside_frame",
    "near_edge",
    "outside_roi",
    "parallel_to_walking",
    "few_tracks",
    "broken_tracks",
    "crowded",
]

#: Band along each frame edge (fraction of the frame's width or height) where people are cut
#: off: their boxes, and so their anchor points, are wrong, and tracks are still unconfirmed.
EDGE_MARGIN = 0.05
#: A line with more than this share of its length inside that band lies near the edge.
MAX_EDGE_SHARE = 0.5
#: A line closer than this angle (degrees) to the main walking direction is walked along,
#: not across: people touch it at a shallow angle and jitter over it.
PARALLEL_ANGLE_DEG = 20.0
#: The walking direction is "main" only when the spread along it is at least this many
#: times the spread across it (people walking every way have no main direction).
MIN_DIRECTION_DOMINANCE = 2.0
#: Fewer walking vectors than this say nothing about a main direction.
MIN_DISPLACEMENTS = 20
#: Walking vectors shorter than this (pixels) are people standing still, not walking.
MIN_MOVE_PX = 3.0
#: A line crossed by fewer distinct tracks than this in the footage counts next to nothing.
MIN_TRACKS_CROSSING = 3
#: An anchor point within this many of its box heights of a line is "at the line".
NEAR_LINE_HEIGHTS = 0.5
#: Tracks that begin or end at a line (not at the clip's start or end, nor at the frame
#: edge) were lost or found there: per track passing the line, more than this share of
#: such ends means the tracker breaks people up there, and each break can miss a crossing.
MAX_BROKEN_SHARE = 0.3
#: A box covered by another over at least this share of its own area is hidden.
HIDDEN_COVER = 0.5
#: More than this share of the boxes at a line hidden by others: too crowded to count well.
#: (On benchmarks/scenes.toml's lines: vtest 0-8%, Venice-2 4-21%, TUD-Stadtmitte 0-10%;
#: broken shares 0-62%, 15-86% and 0-50%, with 0% line error on every vtest line below 30%.)
MAX_HIDDEN_SHARE = 0.1
#: The two reliability warnings need at least this many tracks at the line to mean anything.
MIN_TRACKS_NEAR = 3
#: Frames of a camera's footage :func:`check_footage` tracks people in (30 s at 10 fps).
CHECK_FRAMES = 300
#: Detections per second :func:`check_footage` runs at (the engine's default rate).
CHECK_DETECTION_FPS = 5.0
#: Points sampled along a line to measure which share of it lies where.
_SAMPLES = 101


@dataclass(frozen=True)
class CalibrationWarning:
    """One problem with one line: ``code`` for programs, ``message`` for people."""

    line_id: str
    code: WarningCode
    message: str

    def as_dict(self) -> dict:
        return asdict(self)


def check_calibration(
    calibration: Calibration,
    frame_size: tuple[int, int],
    tracks: pd.DataFrame | None = None,
) -> list[CalibrationWarning]:
    """Warnings for each line of ``calibration`` on a ``(w, h)`` frame.

    Geometry alone: lines outside the frame, near an edge, or outside the ROI. With
    ``tracks`` (a :mod:`zvpanel.tracks` table of the same camera's footage): lines nearly
    parallel to the main walking direction, lines few tracks cross, and lines where tracks
    break up or boxes hide each other (:func:`line_reliability`).
    """
    width, height = frame_size
    if width <= 0 or height <= 0:
        raise ValueError(f"frame_size={frame_size!r} must be positive (width, height)")
    direction: float | None = None
    crossed: dict[str, int] = {}
    reliability: dict[str, dict] = {}
    if tracks is not None and len(tracks):
        direction = main_walking_direction(tracks)
        counts = line_crossing_counts(tracks, calibration.lines)
        crossed = dict(zip(counts["line_id"], counts["tracks"].astype(int), strict=True))
        if {"w", "h"} <= set(tracks.columns):
            table = line_reliability(tracks, calibration.lines, frame_size)
            reliability = table.set_index("line_id").to_dict("index")
    warnings: list[CalibrationWarning] = []
    for line in calibration.lines:
        warnings.extend(_geometry_warnings(line, calibration.roi, width, height))
        if direction is not None:
            warnings.extend(_parallel_warning(line, direction))
        if line.id in crossed and crossed[line.id] < MIN_TRACKS_CROSSING:
            warnings.append(
                CalibrationWarning(
                    line.id,
                    "few_tracks",
                    f"line {line.id!r}: only {crossed[line.id]} track(s) cross it in the "
                    f"footage (fewer than {MIN_TRACKS_CROSSING}); put it where people walk",
                )
            )
        if line.id in reliability:
            warnings.extend(_reliability_warnings(line, reliability[line.id]))
    return warnings


def line_reliability(
    tracks: pd.DataFrame, lines: Sequence[CountingLine], frame_size: tuple[int, int]
) -> pd.DataFrame:
    """How well each line's surroundings are tracked: one row per line.

    ``near_tracks``: tracks with an anchor point within ``NEAR_LINE_HEIGHTS`` box heights of
    the line; ``broken``: track beginnings and ends there (not at the clip's first or last
    frame, nor within ``EDGE_MARGIN`` of the frame edge); ``broken_share`` = broken /
    near_tracks; ``hidden_share``: share of the boxes there covered by another box over at
    least ``HIDDEN_COVER`` of their area.
    """
    width, height = frame_size
    first, last = int(tracks["frame"].min()), int(tracks["frame"].max())
    ends = _track_ends(tracks, first, last, width, height)
    hidden = _hidden(tracks)
    rows = []
    for line in lines:
        near = _near(line, tracks["x"].to_numpy(), tracks["y"].to_numpy(), tracks["h"].to_numpy())
        n_tracks = int(tracks.loc[near, "track_id"].nunique())
        end_near = _near(line, ends["x"].to_numpy(), ends["y"].to_numpy(), ends["h"].to_numpy())
        broken = int(end_near.sum())
        rows.append(
            {
                "line_id": line.id,
                "near_tracks": n_tracks,
                "broken": broken,
                "broken_share": broken / n_tracks if n_tracks else 0.0,
                "hidden_share": float(hidden[near].mean()) if near.any() else 0.0,
            }
        )
    return pd.DataFrame(rows)


def _near(line: CountingLine, x: np.ndarray, y: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Points within NEAR_LINE_HEIGHTS of their box height of the segment."""
    dx, dy = line.x2 - line.x1, line.y2 - line.y1
    t = np.clip(((x - line.x1) * dx + (y - line.y1) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    distance = np.hypot(x - (line.x1 + t * dx), y - (line.y1 + t * dy))
    return distance <= NEAR_LINE_HEIGHTS * h


def _track_ends(
    tracks: pd.DataFrame, first: int, last: int, width: int, height: int
) -> pd.DataFrame:
    """The first and last points of tracks that begin or end inside the clip and frame."""
    by_track = tracks.sort_values("frame").groupby("track_id", sort=False)
    starts = by_track.head(1)
    starts = starts[starts["frame"] > first]
    stops = by_track.tail(1)
    stops = stops[stops["frame"] < last]
    ends = pd.concat([starts, stops])
    mx, my = EDGE_MARGIN * width, EDGE_MARGIN * height
    left, right = ends["x"] - ends["w"] / 2, ends["x"] + ends["w"] / 2
    inside = (left > mx) & (right < width - mx) & (ends["y"] - ends["h"] > my)
    return ends[inside & (ends["y"] < height - my)]


def _hidden(tracks: pd.DataFrame) -> np.ndarray:
    """For each row: is its box covered by another box of the same frame over HIDDEN_COVER?"""
    x1 = (tracks["x"] - tracks["w"] / 2).to_numpy()
    x2 = (tracks["x"] + tracks["w"] / 2).to_numpy()
    y2 = tracks["y"].to_numpy()
    y1 = y2 - tracks["h"].to_numpy()
    hidden = np.zeros(len(tracks), dtype=bool)
    for rows in tracks.groupby("frame").indices.values():
        if len(rows) < 2:
            continue
        ix = np.clip(
            np.minimum(x2[rows, None], x2[None, rows]) - np.maximum(x1[rows, None], x1[None, rows]),
            0,
            None,
        )
        iy = np.clip(
            np.minimum(y2[rows, None], y2[None, rows]) - np.maximum(y1[rows, None], y1[None, rows]),
            0,
            None,
        )
        cover = ix * iy
        np.fill_diagonal(cover, 0.0)
        area = np.maximum((x2[rows] - x1[rows]) * (y2[rows] - y1[rows]), 1e-9)
        hidden[rows] = cover.max(axis=1) >= HIDDEN_COVER * area
    return hidden


def _reliability_warnings(line: CountingLine, row: dict) -> list[CalibrationWarning]:
    if row["near_tracks"] < MIN_TRACKS_NEAR:
        return []
    found = []
    if row["broken_share"] > MAX_BROKEN_SHARE:
        found.append(
            CalibrationWarning(
                line.id,
                "broken_tracks",
                f"line {line.id!r}: {row['broken']} tracks begin or end near it for "
                f"{row['near_tracks']} tracks passing it ({_pct(row['broken_share'])}, more "
                f"than {_pct(MAX_BROKEN_SHARE)}): people are lost or hidden there and "
                "crossings can be missed or counted twice; move it where people are seen whole",
            )
        )
    if row["hidden_share"] > MAX_HIDDEN_SHARE:
        found.append(
            CalibrationWarning(
                line.id,
                "crowded",
                f"line {line.id!r}: {_pct(row['hidden_share'])} of the boxes near it are at "
                f"least {_pct(HIDDEN_COVER)} covered by another (more than "
                f"{_pct(MAX_HIDDEN_SHARE)}): people hide each other there; a line where they "
                "walk apart counts better",
            )
        )
    return found


def check_footage(
    calibration: Calibration,
    source: str | Path | int,
    detector: Detector | Settings,
    *,
    max_frames: int = CHECK_FRAMES,
    detection_fps: float = CHECK_DETECTION_FPS,
    tracker: str = "bytetrack",
) -> list[CalibrationWarning]:
    """:func:`check_calibration` with the tracks of the first ``max_frames`` frames of
    ``source`` (detected and tracked as the engine would, inside the calibration's ROI)."""
    from .tracks import tracks_from_video

    tracks = tracks_from_video(
        source,
        detector,
        tracker,
        max_frames=max_frames,
        detection_fps=detection_fps,
        roi=calibration.roi,
        anchor=calibration.anchor,
    )
    return check_calibration(calibration, tracks.attrs["frame_size"], tracks)


def format_warnings(warnings: list[CalibrationWarning]) -> str:
    """One line per warning, for a terminal; a reassuring line when there is none."""
    if not warnings:
        return "no warnings: every line is well placed"
    return "\n".join(f"warning [{w.code}] {w.message}" for w in warnings)


def _geometry_warnings(
    line: CountingLine, roi: tuple[float, float, float, float] | None, width: int, height: int
) -> list[CalibrationWarning]:
    t = np.linspace(0.0, 1.0, _SAMPLES)
    x = line.x1 + t * (line.x2 - line.x1)
    y = line.y1 + t * (line.y2 - line.y1)
    found: list[CalibrationWarning] = []
    outside = (x < 0) | (x > width) | (y < 0) | (y > height)
    if outside.any():
        found.append(
            CalibrationWarning(
                line.id,
                "outside_frame",
                f"line {line.id!r}: {_pct(outside.mean())} of it is outside the "
                f"{width}x{height} frame",
            )
        )
    mx, my = EDGE_MARGIN * width, EDGE_MARGIN * height
    near = ~outside & ((x < mx) | (x > width - mx) | (y < my) | (y > height - my))
    if near.mean() > MAX_EDGE_SHARE:
        found.append(
            CalibrationWarning(
                line.id,
                "near_edge",
                f"line {line.id!r}: {_pct(near.mean())} of it lies within "
                f"{_pct(EDGE_MARGIN)} of the frame edge, where people are cut off; "
                "move it towards the middle",
            )
        )
    if roi is not None:
        rx1, ry1, rx2, ry2 = roi
        out_roi = (x < rx1) | (x > rx2) | (y < ry1) | (y > ry2)
        if out_roi.any():
            found.append(
                CalibrationWarning(
                    line.id,
                    "outside_roi",
                    f"line {line.id!r}: {_pct(out_roi.mean())} of it is outside the ROI "
                    f"{tuple(roi)}, where nobody is detected",
                )
            )
    return found


def main_walking_direction(tracks: pd.DataFrame) -> float | None:
    """The main walking direction in the footage, as an angle in degrees in [0, 180)
    (image axes, y down), or None when there is none.

    It is the principal axis of the tracks' walking vectors (the sign of a vector does not
    matter: walking left and walking right are the same axis); there is none when there are
    too few vectors or when the spread along the axis is not clearly larger than across it.
    """
    vectors = displacements(tracks)
    vectors = vectors[np.hypot(vectors[:, 0], vectors[:, 1]) >= MIN_MOVE_PX]
    if len(vectors) < MIN_DISPLACEMENTS:
        return None
    scatter = vectors.T @ vectors / len(vectors)
    eigenvalues, eigenvectors = np.linalg.eigh(scatter)  # ascending
    if eigenvalues[1] < MIN_DIRECTION_DOMINANCE * max(eigenvalues[0], 1e-9):
        return None
    dx, dy = eigenvectors[:, 1]
    return math.degrees(math.atan2(dy, dx)) % 180.0


def _parallel_warning(line: CountingLine, direction: float) -> list[CalibrationWarning]:
    angle = math.degrees(math.atan2(line.y2 - line.y1, line.x2 - line.x1)) % 180.0
    between = abs(angle - direction)
    between = min(between, 180.0 - between)
    if between >= PARALLEL_ANGLE_DEG:
        return []
    return [
        CalibrationWarning(
            line.id,
            "parallel_to_walking",
            f"line {line.id!r} is {between:.0f} degrees from the main walking direction "
            f"({direction:.0f} degrees); people walk along it rather than across it. "
            "Turn it across the walkway",
        )
    ]


def _pct(share: float) -> str:
    return f"{100 * share:.0f}%"
