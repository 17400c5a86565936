"""Per-track anchor trajectories, from a video run or from ground truth, as a DataFrame.

One row per (track, frame): ``track_id``, ``frame`` (0-based decoded frame index), ``x``,
``y`` (the anchor point in image pixels), ``speed`` (pixels per decoded frame since the
track's previous point; NaN at its first point) and ``w``, ``h`` (the box's size). The notebooks and the calibration check
read footage through this table: where people walk, how fast, and which candidate lines
they cross cleanly.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .calibration import CountingLine
from .counting import CrossingEvent, LineCounter
from .detections import Detections
from .geometry import Anchor, anchor_points

if TYPE_CHECKING:
    from .config import Settings
    from .pipeline import Detector
    from .tracking import PersonTracker

__all__ = [
    "TRACK_COLUMNS",
    "QUICK_RECROSS_FRAMES",
    "Heatmap",
    "tracks_from_detections",
    "tracks_from_ground_truth",
    "tracks_from_video",
    "heatmap",
    "speeds",
    "displacements",
    "candidate_lines",
    "line_crossings",
    "line_crossing_counts",
]

TRACK_COLUMNS = ("track_id", "frame", "x", "y", "speed", "w", "h")
#: A track crossing a line back within this many decoded frames of its previous crossing is
#: hesitating or jittering on the line, which makes the line a poor place to count.
QUICK_RECROSS_FRAMES = 10
#: Candidate lines keep this fraction of the frame free at each edge (boxes are cut there).
CANDIDATE_MARGIN = 0.05
#: Frames between the two ends of a displacement vector: one frame of walking is mostly
#: detector jitter; a few frames show where the person is going.
DISPLACEMENT_STEP_FRAMES = 5


def tracks_from_detections(
    frames: Iterable[tuple[int, Detections]], anchor: Anchor = "bottom_center"
) -> pd.DataFrame:
    """The trajectory table of tracked detections given as ``(frame index, Detections)``."""
    parts: list[np.ndarray] = []
    for index, detections in frames:
        tracked = detections.tracked()
        if not len(tracked):
            continue
        points = anchor_points(tracked.xyxy, anchor)
        size = tracked.xyxy[:, 2:4] - tracked.xyxy[:, 0:2]
        parts.append(
            np.column_stack([tracked.tracker_id, np.full(len(tracked), index), points, size])
        )
    rows = np.concatenate(parts) if parts else np.zeros((0, 6))
    table = pd.DataFrame(
        {
            "track_id": rows[:, 0].astype(np.int64),
            "frame": rows[:, 1].astype(np.int64),
            "x": rows[:, 2].astype(float),
            "y": rows[:, 3].astype(float),
            "w": rows[:, 4].astype(float),
            "h": rows[:, 5].astype(float),
        }
    )
    return _with_speed(table)


def _with_speed(table: pd.DataFrame) -> pd.DataFrame:
    table = table.sort_values(["track_id", "frame"], kind="stable").reset_index(drop=True)
    by_track = table.groupby("track_id", sort=False)
    step = np.hypot(by_track["x"].diff(), by_track["y"].diff())
    table["speed"] = step / by_track["frame"].diff()
    return table[list(TRACK_COLUMNS)]


def tracks_from_ground_truth(
    gt_path: str | Path, max_frame: int | None = None, anchor: Anchor = "bottom_center"
) -> pd.DataFrame:
    """Trajectories of the annotated people of a MOTChallenge ``gt.txt`` (flag 0 rows left out),
    in decoded frames ``< max_frame``."""
    from .evaluation import read_mot_gt

    gt = read_mot_gt(gt_path)
    items = sorted(gt.frames.items())
    if max_frame is not None:
        items = [(index, dets) for index, dets in items if index < max_frame]
    return tracks_from_detections(items, anchor)


def tracks_from_video(
    video: str | Path | int,
    detector: Detector | Settings,
    tracker: str | PersonTracker = "bytetrack",
    *,
    max_frames: int | None = None,
    detection_fps: float | None = None,
    roi: Sequence[float] | None = None,
    anchor: Anchor = "bottom_center",
) -> pd.DataFrame:
    """Detect and track people in ``video`` and return their trajectories.

    ``detector`` is a detector (:class:`zvpanel.detection.YoloDetector`) or the settings to
    build one from; ``tracker`` a tracker kind (``"bytetrack"``/``"botsort"``) or a ready
    :class:`PersonTracker`. ``detection_fps`` (default: every frame) samples frames as the
    engine would. ``table.attrs`` holds ``frame_size`` (w, h), ``fps`` (the file's) and
    ``detection_fps`` (the rate really used).
    """
    from .detection import YoloDetector
    from .pipeline import FrameSampler
    from .sources import FALLBACK_FPS, iter_frames, probe_source
    from .tracking import PersonTracker

    if not hasattr(detector, "detect"):
        detector = YoloDetector.from_settings(detector)
    info = probe_source(video)
    fps = info.fps or FALLBACK_FPS  # a live stream has no nominal rate
    sampler = FrameSampler(detection_fps or fps, fps)
    if isinstance(tracker, str):
        tracker = PersonTracker(sampler.rate, tracker)
    else:
        tracker.set_frame_rate(sampler.rate)

    def tracked_frames():
        for frame in iter_frames(video, max_frames=max_frames):
            if sampler.take_frame(frame):
                yield frame.index, tracker.update(detector.detect(frame.image, roi), frame.image)

    table = tracks_from_detections(tracked_frames(), anchor)
    table.attrs.update(frame_size=(info.width, info.height), fps=fps, detection_fps=sampler.rate)
    return table


@dataclass(frozen=True)
class Heatmap:
    """Anchor points counted per cell; ``counts[row, col]`` with row 0 at the top of the frame."""

    counts: np.ndarray  # (rows, cols)
    x_edges: np.ndarray
    y_edges: np.ndarray

    @property
    def frame_size(self) -> tuple[float, float]:
        return float(self.x_edges[-1]), float(self.y_edges[-1])


def heatmap(
    tracks: pd.DataFrame, frame_size: tuple[int, int], bins: int | tuple[int, int] = (32, 24)
) -> Heatmap:
    """Where people walk: a 2-D histogram of anchor points over a ``(w, h)`` frame.

    ``bins`` is ``(columns, rows)`` or one number for both.
    """
    width, height = frame_size
    if width <= 0 or height <= 0:
        raise ValueError(f"frame_size={frame_size!r} must be positive (width, height)")
    cols, rows = (bins, bins) if isinstance(bins, int) else bins
    counts, x_edges, y_edges = np.histogram2d(
        tracks["x"].to_numpy(float),
        tracks["y"].to_numpy(float),
        bins=(cols, rows),
        range=[[0, width], [0, height]],
    )
    return Heatmap(counts=counts.T, x_edges=x_edges, y_edges=y_edges)


def speeds(tracks: pd.DataFrame, fps: float) -> pd.DataFrame:
    """Per track: points, duration (s), path length (px) and median speed (px/s)."""
    if not fps > 0:
        raise ValueError(f"fps={fps!r} must be > 0")
    tracks = tracks.sort_values(["track_id", "frame"])
    by_track = tracks.groupby("track_id")
    step = np.hypot(by_track["x"].diff(), by_track["y"].diff())
    grouped = tracks.assign(step=step).groupby("track_id")
    summary = pd.DataFrame(
        {
            "points": grouped.size(),
            "duration_s": (grouped["frame"].max() - grouped["frame"].min()) / fps,
            "distance_px": grouped["step"].sum(),
            "speed_px_s": grouped["speed"].median() * fps,
        }
    )
    return summary.reset_index()


def displacements(tracks: pd.DataFrame, step: int = DISPLACEMENT_STEP_FRAMES) -> np.ndarray:
    """(N, 2) walking vectors: each track's move over about ``step`` decoded frames."""
    vectors: list[np.ndarray] = []
    for _, track in tracks.groupby("track_id"):
        frames = track["frame"].to_numpy()
        points = track[["x", "y"]].to_numpy(float)
        # The point at least `step` frames later than each point (tracks may skip frames).
        later = np.searchsorted(frames, frames + step)
        ok = later < len(frames)
        vectors.append(points[later[ok]] - points[ok])
    return np.concatenate(vectors) if vectors else np.zeros((0, 2))


def candidate_lines(
    frame_size: tuple[int, int], steps: int = 5, margin: float = CANDIDATE_MARGIN
) -> list[CountingLine]:
    """Lines worth trying on a ``(w, h)`` frame: ``steps`` horizontal and vertical lines across
    it and its two diagonals, each kept ``margin`` (a fraction) away from the edges."""
    width, height = frame_size
    x0, x1 = width * margin, width * (1 - margin)
    y0, y1 = height * margin, height * (1 - margin)
    lines = []
    for k in range(1, steps + 1):
        y = round(height * k / (steps + 1), 1)
        lines.append(CountingLine(id=f"h{k}", x1=x0, y1=y, x2=x1, y2=y))
    for k in range(1, steps + 1):
        x = round(width * k / (steps + 1), 1)
        lines.append(CountingLine(id=f"v{k}", x1=x, y1=y0, x2=x, y2=y1))
    lines.append(CountingLine(id="d1", x1=x0, y1=y0, x2=x1, y2=y1))
    lines.append(CountingLine(id="d2", x1=x0, y1=y1, x2=x1, y2=y0))
    return lines


def line_crossings(
    tracks: pd.DataFrame, lines: Iterable[CountingLine], min_distance: float = 0.0
) -> list[CrossingEvent]:
    """Every crossing of each line by the trajectories, with the engine's own line counter."""
    # A zero-size box at the anchor point has that point as its bottom centre.
    frames = []
    for index, rows in tracks.groupby("frame", sort=True):
        x, y = rows["x"].to_numpy(float), rows["y"].to_numpy(float)
        frames.append(
            (
                int(index),
                Detections(
                    xyxy=np.column_stack([x, y, x, y]),
                    confidence=np.ones(len(rows)),
                    class_id=np.zeros(len(rows)),
                    tracker_id=rows["track_id"].to_numpy(np.int64),
                ),
            )
        )
    events: list[CrossingEvent] = []
    for line in lines:
        counter = LineCounter(line, anchor="bottom_center", min_distance=min_distance)
        for index, detections in frames:
            events.extend(counter.update(detections, index))
    return events


def line_crossing_counts(
    tracks: pd.DataFrame,
    lines: Sequence[CountingLine],
    *,
    min_distance: float = 0.0,
    recross_frames: int = QUICK_RECROSS_FRAMES,
) -> pd.DataFrame:
    """How each candidate line is crossed: one row per line.

    ``crossings`` (= ``entries`` + ``exits``), ``tracks`` (distinct tracks crossing it),
    ``recrossings`` (crossings back within ``recross_frames`` of the same track's previous
    crossing: hesitation or jitter on the line) and ``score`` = crossings - 2 x recrossings,
    the number of clean crossings a line placed there would count.
    """
    events = line_crossings(tracks, lines, min_distance)
    rows = []
    for line in lines:
        mine = sorted(
            (e.track_id, e.frame_index, e.direction) for e in events if e.line_id == line.id
        )
        recrossings = sum(
            1
            for (t0, f0, _), (t1, f1, _) in itertools.pairwise(mine)
            if t0 == t1 and f1 - f0 <= recross_frames
        )
        entries = sum(1 for e in mine if e[2] == "entry")
        rows.append(
            {
                "line_id": line.id,
                "x1": line.x1,
                "y1": line.y1,
                "x2": line.x2,
                "y2": line.y2,
                "crossings": len(mine),
                "entries": entries,
                "exits": len(mine) - entries,
                "tracks": len({e[0] for e in mine}),
                "recrossings": recrossings,
                "score": len(mine) - 2 * recrossings,
            }
        )
    return pd.DataFrame(rows)
