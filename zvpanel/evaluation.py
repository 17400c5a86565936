"""Counting accuracy against MOTChallenge ground truth.

The true crossings are found by running the same :class:`LineCounter` on the annotated
tracks (no hysteresis: annotations do not jitter), so "true" and "counted" mean exactly
the same thing. Counted events are then matched one-to-one to true crossings of the same
line and direction within a time window, so that a missed entry and a spurious entry
cannot hide each other behind a correct total.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .calibration import Calibration, CountingLine
from .counting import CrossingEvent, LineCounter
from .detections import Detections
from .errors import GroundTruthError

__all__ = [
    "GroundTruth",
    "read_mot_gt",
    "true_crossings",
    "match_events",
    "DirectionScore",
    "EvaluationReport",
    "calibration_crossings",
    "evaluate",
    "DEFAULT_MATCH_WINDOW_S",
    "LineRule",
    "Scene",
    "load_scenes",
    "generated_lines",
]

#: A counted event matches a true crossing at most this many seconds apart: the tracker
#: needs a few detections to confirm a track, and slower detection rates see the crossing late.
DEFAULT_MATCH_WINDOW_S = 1.5
DIRECTIONS = ("entry", "exit")


@dataclass(frozen=True)
class GroundTruth:
    """Annotated boxes per decoded frame (0-based), as tracked :class:`Detections`."""

    frames: dict[int, Detections]
    num_frames: int  # annotated frames: decoded frames 0 .. num_frames-1

    @property
    def track_ids(self) -> set[int]:
        return {int(t) for dets in self.frames.values() for t in dets.tracker_id}

    def at(self, index: int) -> Detections:
        return self.frames.get(index, Detections.empty())


def read_mot_gt(path: str | Path) -> GroundTruth:
    """Read a MOTChallenge ``gt.txt``: ``frame,id,x,y,w,h,flag,...`` with frames from 1.

    GT frame ``k + 1`` is decoded frame ``k``; rows with ``flag`` 0 are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise GroundTruthError(f"ground truth file {str(path)!r} does not exist")
    try:
        rows = np.loadtxt(path, delimiter=",", ndmin=2, usecols=range(7))
    except ValueError as error:
        raise GroundTruthError(
            f"{str(path)!r} is not MOTChallenge ground truth (frame,id,x,y,w,h,flag,...): {error}"
        ) from None
    if not len(rows):
        raise GroundTruthError(f"ground truth file {str(path)!r} has no rows")
    if rows[:, 0].min() < 1:
        raise GroundTruthError(f"{str(path)!r}: MOTChallenge frames start at 1")
    num_frames = int(rows[:, 0].max())
    rows = rows[rows[:, 6] != 0]
    frames: dict[int, Detections] = {}
    index = rows[:, 0].astype(np.int64) - 1
    for frame in np.unique(index):
        sel = rows[index == frame]
        x, y, w, h = sel[:, 2], sel[:, 3], sel[:, 4], sel[:, 5]
        frames[int(frame)] = Detections(
            xyxy=np.stack([x, y, x + w, y + h], axis=1),
            confidence=np.ones(len(sel)),
            class_id=np.zeros(len(sel)),
            tracker_id=sel[:, 1].astype(np.int64),
        )
    return GroundTruth(frames=frames, num_frames=num_frames)


def true_crossings(
    gt: GroundTruth,
    line: CountingLine,
    anchor: str = "bottom_center",
    max_frames: int | None = None,
) -> list[CrossingEvent]:
    """Every crossing of ``line`` by an annotated track, in decoded frames < ``max_frames``."""
    counter = LineCounter(line, anchor=anchor, min_distance=0.0, min_frames=1)
    last = gt.num_frames if max_frames is None else min(gt.num_frames, max_frames)
    events: list[CrossingEvent] = []
    for index in range(last):
        events.extend(counter.update(gt.at(index), index))
    return events


def match_events(
    true: Sequence[CrossingEvent], counted: Sequence[CrossingEvent], window: float
) -> list[tuple[int, int]]:
    """One-to-one pairs ``(true index, counted index)`` of the same line and direction at
    most ``window`` frames apart, chosen to minimise the total time difference."""
    import lap  # linear assignment, already required by Ultralytics' trackers

    pairs: list[tuple[int, int]] = []
    keys = {(e.line_id, e.direction) for e in true} & {(e.line_id, e.direction) for e in counted}
    for key in sorted(keys):
        ti = [i for i, e in enumerate(true) if (e.line_id, e.direction) == key]
        ci = [i for i, e in enumerate(counted) if (e.line_id, e.direction) == key]
        t_frames = np.array([true[i].frame_index for i in ti], dtype=float)
        c_frames = np.array([counted[i].frame_index for i in ci], dtype=float)
        cost = np.abs(t_frames[:, None] - c_frames[None, :])
        _, row_to_col, _ = lap.lapjv(cost, extend_cost=True, cost_limit=window + 1e-6)
        pairs.extend((ti[r], ci[c]) for r, c in enumerate(row_to_col) if c >= 0)
    return sorted(pairs)


@dataclass(frozen=True)
class DirectionScore:
    """True vs counted crossings of one line in one direction."""

    line_id: str
    direction: str
    true: int
    counted: int
    matched: int

    @property
    def error(self) -> int:
        return self.counted - self.true

    @property
    def relative_error(self) -> float | None:
        return self.error / self.true if self.true else None

    @property
    def precision(self) -> float | None:
        return self.matched / self.counted if self.counted else None

    @property
    def recall(self) -> float | None:
        return self.matched / self.true if self.true else None

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "error": self.error,
            "relative_error": _round(self.relative_error),
            "precision": _round(self.precision),
            "recall": _round(self.recall),
        }


@dataclass(frozen=True)
class EvaluationReport:
    scores: tuple[DirectionScore, ...]
    frames: int
    window_frames: float
    true_events: tuple[CrossingEvent, ...]
    counted_events: tuple[CrossingEvent, ...]
    matches: tuple[tuple[int, int], ...]

    def score(self, line_id: str, direction: str) -> DirectionScore:
        for s in self.scores:
            if (s.line_id, s.direction) == (line_id, direction):
                return s
        raise KeyError(f"no score for line {line_id!r} direction {direction!r}")

    @property
    def precision(self) -> float | None:
        return len(self.matches) / len(self.counted_events) if self.counted_events else None

    @property
    def recall(self) -> float | None:
        return len(self.matches) / len(self.true_events) if self.true_events else None

    @property
    def max_relative_error(self) -> float:
        """The worst |counted - true| / true over lines and directions with true crossings."""
        errors = [abs(s.relative_error) for s in self.scores if s.relative_error is not None]
        return max(errors, default=0.0)

    def as_dict(self) -> dict:
        lines: dict[str, dict] = {}
        for s in self.scores:
            lines.setdefault(s.line_id, {})[s.direction] = s.as_dict()
        return {
            "frames": self.frames,
            "window_frames": self.window_frames,
            "true_entries": sum(s.true for s in self.scores if s.direction == "entry"),
            "true_exits": sum(s.true for s in self.scores if s.direction == "exit"),
            "counted_entries": sum(s.counted for s in self.scores if s.direction == "entry"),
            "counted_exits": sum(s.counted for s in self.scores if s.direction == "exit"),
            "precision": _round(self.precision),
            "recall": _round(self.recall),
            "max_relative_error": _round(self.max_relative_error),
            "lines": lines,
        }

    def format_table(self) -> str:
        """A plain-text table: one row per line and direction."""
        head = f"{'line':<14}{'direction':<10}{'true':>6}{'counted':>9}{'error':>7}{'err %':>8}{'precision':>11}{'recall':>8}"
        rows = [head, "-" * len(head)]
        for s in self.scores:
            rows.append(
                f"{s.line_id:<14}{s.direction:<10}{s.true:>6}{s.counted:>9}{s.error:>+7}"
                f"{_pct(s.relative_error):>8}{_pct(s.precision):>11}{_pct(s.recall):>8}"
            )
        rows.append("-" * len(head))
        rows.append(
            f"{len(self.true_events)} true and {len(self.counted_events)} counted crossings in "
            f"{self.frames} frames, {len(self.matches)} matched within {self.window_frames:g} "
            f"frames: precision {_pct(self.precision)}, recall {_pct(self.recall)}"
        )
        return "\n".join(rows)


def calibration_crossings(
    calibration: Calibration, gt: GroundTruth, frames: int | None = None
) -> list[CrossingEvent]:
    """The ground truth's crossings of every line of ``calibration``, in frame order."""
    frames = gt.num_frames if frames is None else min(frames, gt.num_frames)
    true: list[CrossingEvent] = []
    for line in calibration.lines:
        true.extend(true_crossings(gt, line, calibration.anchor, frames))
    true.sort(key=lambda e: (e.frame_index, e.line_id))
    return true


def evaluate(
    calibration: Calibration,
    gt: GroundTruth,
    counted: Iterable[CrossingEvent],
    *,
    frames: int | None = None,
    window_frames: float = 15.0,
    true: Sequence[CrossingEvent] | None = None,
) -> EvaluationReport:
    """Compare ``counted`` events (decoded frames < ``frames``) with the ground truth's crossings
    of the calibration's lines (same anchor; no hysteresis).

    ``true`` (from :func:`calibration_crossings` with the same lines, anchor and frames)
    saves replaying the ground truth when many runs are compared with it.
    """
    frames = gt.num_frames if frames is None else min(frames, gt.num_frames)
    counted = tuple(e for e in counted if e.frame_index < frames)
    if true is None:
        true = calibration_crossings(calibration, gt, frames)
    matches = match_events(true, counted, window_frames)
    matched_true = {t for t, _ in matches}
    scores = []
    for line in calibration.lines:
        for direction in DIRECTIONS:
            n_true = [
                i for i, e in enumerate(true) if (e.line_id, e.direction) == (line.id, direction)
            ]
            scores.append(
                DirectionScore(
                    line_id=line.id,
                    direction=direction,
                    true=len(n_true),
                    counted=sum(
                        1 for e in counted if (e.line_id, e.direction) == (line.id, direction)
                    ),
                    matched=sum(1 for i in n_true if i in matched_true),
                )
            )
    return EvaluationReport(
        scores=tuple(scores),
        frames=frames,
        window_frames=window_frames,
        true_events=tuple(true),
        counted_events=counted,
        matches=tuple(matches),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


@dataclass(frozen=True)
class LineRule:
    """How :func:`generated_lines` lays segments over where ground-truth people walk."""

    grid: int = 3
    angles: tuple[float, ...] = (0.0, 45.0, 90.0, 135.0)
    length_heights: float = 2.0  # segment length in median ground-truth box heights
    min_crossings: int = 5
    region: tuple[float, float, float, float] | None = None  # cut the walk region to this


@dataclass(frozen=True)
class Scene:
    """One footage clip with ground truth and its counting lines (benchmarks/scenes.toml)."""

    name: str
    video: Path
    ground_truth: Path
    frames: int  # decoded frames 0 .. frames-1 are counted
    lines: tuple[CountingLine, ...]
    rule: LineRule | None = None

    def all_lines(self, gt: GroundTruth, width: int, height: int) -> tuple[CountingLine, ...]:
        """The hand-placed lines, then the generated ones (see :class:`LineRule`)."""
        if self.rule is None:
            return self.lines
        return self.lines + tuple(generated_lines(gt, self.rule, width, height, self.frames))


def load_scenes(path: str | Path, root: str | Path | None = None) -> list[Scene]:
    """Read a scene list (TOML, ``[[scene]]`` tables); relative paths are from ``root``
    (default: the file's parent's parent, the repository root for benchmarks/scenes.toml)."""
    import tomllib  # Python 3.11+; only the benchmarks and tests read scene lists

    path = Path(path)
    root = Path(root) if root is not None else path.resolve().parent.parent
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    scenes = []
    for i, item in enumerate(data.get("scene", [])):
        try:
            rule = item.get("generated")
            scenes.append(
                Scene(
                    name=item["name"],
                    video=root / item["video"],
                    ground_truth=root / item["ground_truth"],
                    frames=int(item["frames"]),
                    lines=tuple(CountingLine(**line) for line in item.get("lines", [])),
                    rule=None if rule is None else _rule(rule),
                )
            )
        except (KeyError, TypeError, ValueError) as error:
            raise GroundTruthError(f"{path}: scene {i + 1} is invalid: {error!r}") from None
    return scenes


def _rule(data: dict) -> LineRule:
    region = data.get("region")
    return LineRule(
        grid=int(data.get("grid", LineRule.grid)),
        angles=tuple(float(a) for a in data.get("angles", LineRule.angles)),
        length_heights=float(data.get("length_heights", LineRule.length_heights)),
        min_crossings=int(data.get("min_crossings", LineRule.min_crossings)),
        region=None if region is None else tuple(float(v) for v in region),
    )


def generated_lines(
    gt: GroundTruth, rule: LineRule, width: int, height: int, frames: int | None = None
) -> list[CountingLine]:
    """Segments over the ground truth's walk region in several orientations, kept when the
    ground truth crosses each ``rule.min_crossings`` times or more. Uses only the truth."""
    last = gt.num_frames if frames is None else min(frames, gt.num_frames)
    boxes = [gt.at(i).xyxy for i in range(last)]
    xyxy = np.concatenate([b for b in boxes if len(b)] or [np.zeros((0, 4))])
    if not len(xyxy):
        return []
    feet = np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, xyxy[:, 3]], axis=1)
    if rule.region is not None:
        x1, y1, x2, y2 = rule.region
        inside = (feet[:, 0] >= x1) & (feet[:, 0] <= x2) & (feet[:, 1] >= y1) & (feet[:, 1] <= y2)
        feet = feet[inside]
    if not len(feet):
        return []
    (lx, ly), (hx, hy) = np.percentile(feet, 5, axis=0), np.percentile(feet, 95, axis=0)
    half = rule.length_heights * float(np.median(xyxy[:, 3] - xyxy[:, 1])) / 2
    kept = []
    for row in range(rule.grid):
        for col in range(rule.grid):
            cx = lx + (col + 0.5) / rule.grid * (hx - lx)
            cy = ly + (row + 0.5) / rule.grid * (hy - ly)
            for angle in rule.angles:
                dx, dy = half * math.cos(math.radians(angle)), -half * math.sin(math.radians(angle))
                line = CountingLine(
                    id=f"g{row + 1}{col + 1}-{angle:g}",
                    x1=float(np.clip(cx - dx, 0, width)),
                    y1=float(np.clip(cy - dy, 0, height)),
                    x2=float(np.clip(cx + dx, 0, width)),
                    y2=float(np.clip(cy + dy, 0, height)),
                )
                if len(true_crossings(gt, line, max_frames=last)) >= rule.min_crossings:
                    kept.append(line)
    return kept
