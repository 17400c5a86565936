"""Sweeping detection, tracking and hysteresis settings against ground truth.

The model is the expensive part, so it runs once per inference size over the clip, at
the lowest confidence of the sweep: a higher threshold keeps exactly the boxes whose
confidence passes it (a box's non-maximum suppression only ever involves boxes of higher
confidence, which pass too), and a lower detection rate processes a subset of the same
frames. Every (confidence, size, rate) is therefore a cheap view of one cached run, and the
tracker / hysteresis sweep never touches the model again.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .calibration import Calibration, parse_calibration
from .counting import CrossingEvent, MultiLineCounter
from .detections import Detections
from .evaluation import (
    DEFAULT_MATCH_WINDOW_S,
    EvaluationReport,
    GroundTruth,
    calibration_crossings,
    evaluate,
)

__all__ = [
    "SweepGrid",
    "DetectionCache",
    "Recommendation",
    "model_input_size",
    "run_sweep",
    "track_frames",
    "count_events",
    "recommend",
    "TARGET_ERROR",
]

#: The issue's accuracy target: entries and exits each within 10% of the truth.
TARGET_ERROR = 0.10


@dataclass(frozen=True)
class SweepGrid:
    """The values tried for each setting; every combination is evaluated."""

    confidence: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5)
    imgsz: tuple[int, ...] = (320, 480, 640)
    detection_fps: tuple[float, ...] = (30.0, 10.0, 5.0, 2.0)  # capped at the file's rate
    tracker: tuple[str, ...] = ("bytetrack", "botsort")
    track_buffer: tuple[int, ...] = (30, 60, 120)
    min_distance: tuple[float, ...] = (0.0, 4.0, 8.0)
    min_frames: tuple[int, ...] = (1, 2)

    @classmethod
    def quick(cls) -> SweepGrid:
        """A few combinations, for CI and a first look."""
        return cls(
            confidence=(0.25, 0.4),
            imgsz=(640,),
            detection_fps=(10.0, 5.0),
            tracker=("bytetrack", "botsort"),
            track_buffer=(30,),
            min_distance=(0.0, 4.0),
            min_frames=(1,),
        )

    def for_model(self, model: str | Path) -> SweepGrid:
        """This grid, with only the input size a fixed-size model really runs at."""
        fixed = model_input_size(model)
        return self if fixed is None else replace(self, imgsz=(fixed,))

    @property
    def size(self) -> int:
        return int(np.prod([len(v) for v in self.__dict__.values()]))


def model_input_size(model: str | Path) -> int | None:
    """The fixed input size of an exported model (OpenVINO folder or .xml), None if any size
    works. A fixed-size model ignores ``imgsz``, so sweeping it would only repeat one run."""
    path = Path(model)
    xml = next(iter(sorted(path.glob("*.xml"))), None) if path.is_dir() else path
    if xml is None or xml.suffix != ".xml" or not xml.is_file():
        return None
    import openvino as ov

    shape = ov.Core().read_model(xml).inputs[0].partial_shape
    return int(shape[-1].get_length()) if shape.is_static else None


@dataclass
class _Run:
    detections: list[Detections]  # one per decoded frame, at the cache's base confidence
    ms_per_frame: float


class DetectionCache:
    """Detections of the first ``max_frames`` frames of ``video``, one model run per size."""

    def __init__(
        self,
        video: str | Path,
        model: str | Path,
        *,
        max_frames: int | None = None,
        base_confidence: float = 0.2,
        classes: Sequence[str] = ("person",),
        roi: Sequence[float] | None = None,
        cache_dir: str | Path | None = None,
        rect: bool = True,
    ) -> None:
        from .sources import probe_source

        info = probe_source(video)
        self.video, self.model = str(video), str(model)
        self.max_frames, self.classes, self.roi = max_frames, tuple(classes), roi
        self.base_confidence = float(base_confidence)
        self.fps = info.fps
        self.width, self.height = info.width, info.height
        #: Where runs are kept between processes (None: in memory only). Many experiments
        #: replay one model run; a scene of 600 full-HD frames costs the model a minute.
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.rect = rect  # YoloDetector's: inference at the frame's aspect ratio
        self._runs: dict[int, _Run] = {}

    def run(self, imgsz: int) -> _Run:
        """The model's detections at inference size ``imgsz`` (computed on first use)."""
        if imgsz not in self._runs:
            self._runs[imgsz] = self._load(imgsz) or self._detect(imgsz)
        return self._runs[imgsz]

    def _detect(self, imgsz: int) -> _Run:
        from .detection import YoloDetector
        from .sources import iter_frames

        detector = YoloDetector(
            self.model, self.classes, confidence=self.base_confidence, imgsz=imgsz, rect=self.rect
        )
        detections, seconds = [], 0.0
        for i, frame in enumerate(iter_frames(self.video, max_frames=self.max_frames)):
            if i == 0:
                detector.detect(frame.image, self.roi)  # warm-up: not timed
            started = time.perf_counter()
            detections.append(detector.detect(frame.image, self.roi))
            seconds += time.perf_counter() - started
        run = _Run(detections, 1000 * seconds / max(1, len(detections)))
        self._save(imgsz, run)
        return run

    def _path(self, imgsz: int) -> Path | None:
        if self.cache_dir is None:
            return None
        import hashlib

        key = repr(
            (
                str(Path(self.video).resolve()),
                str(Path(self.model).resolve()),
                imgsz,
                self.base_confidence,
                self.max_frames,
                self.classes,
                self.roi,
                self.rect,
            )
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return self.cache_dir / f"{Path(self.video).stem}-{imgsz}-{digest}.npz"

    def _save(self, imgsz: int, run: _Run) -> None:
        path = self._path(imgsz)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        dets = run.detections
        np.savez_compressed(
            path,
            counts=np.array([len(d) for d in dets], dtype=np.int64),
            xyxy=np.concatenate([d.xyxy for d in dets]) if dets else np.zeros((0, 4)),
            confidence=np.concatenate([d.confidence for d in dets]) if dets else np.zeros(0),
            class_id=np.concatenate([d.class_id for d in dets]) if dets else np.zeros(0),
            ms_per_frame=np.array(run.ms_per_frame),
        )

    def _load(self, imgsz: int) -> _Run | None:
        path = self._path(imgsz)
        if path is None or not path.is_file():
            return None
        data = np.load(path)
        bounds = np.concatenate([[0], np.cumsum(data["counts"])])
        detections = [
            Detections(
                xyxy=data["xyxy"][a:b],
                confidence=data["confidence"][a:b],
                class_id=data["class_id"][a:b],
            )
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        return _Run(detections, float(data["ms_per_frame"]))

    def detections(
        self, confidence: float, imgsz: int, detection_fps: float
    ) -> list[tuple[int, Detections]]:
        """``(frame index, Detections)`` of the frames the engine would process at
        ``detection_fps``, keeping boxes with at least ``confidence``."""
        from .pipeline import FrameSampler

        if confidence < self.base_confidence:
            raise ValueError(
                f"confidence={confidence} is below the cache's base_confidence="
                f"{self.base_confidence}; build the cache with a lower one"
            )
        sampler = FrameSampler(detection_fps, self.fps)
        out = []
        for index, dets in enumerate(self.run(imgsz).detections):
            if sampler.take(index / self.fps):
                out.append((index, dets[dets.confidence >= confidence]))
        return out

    def rate(self, detection_fps: float) -> float:
        """Detections per second of video really run at ``detection_fps``."""
        return min(detection_fps, self.fps)


def track_frames(
    frames: list[tuple[int, Detections]],
    tracker: str,
    track_buffer: int,
    rate: float,
    source_fps: float,
) -> tuple[list[tuple[int, Detections]], float]:
    """Tracked and stitched as :class:`~zvpanel.pipeline.CountingPipeline` does."""
    from .tracking import PersonTracker, TrackStitcher

    person_tracker = PersonTracker(rate, tracker, track_buffer=track_buffer)
    stitcher = TrackStitcher()
    tracked, started = [], time.perf_counter()
    for index, dets in frames:
        tracked.append((index, stitcher.update(person_tracker.update(dets), index / source_fps)))
    ms = 1000 * (time.perf_counter() - started) / max(1, len(frames))
    return tracked, ms


def count_events(
    tracked: Iterable[tuple[int, Detections]], calibration: Calibration
) -> list[CrossingEvent]:
    """The crossing events of ``tracked`` frames (``track_frames``) over the calibration's lines."""
    counter = MultiLineCounter(calibration)
    events: list[CrossingEvent] = []
    for index, dets in tracked:
        events.extend(counter.update(dets, index))
    return events


def run_sweep(
    cache: DetectionCache,
    calibration: Calibration,
    gt: GroundTruth,
    grid: SweepGrid,
    *,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Evaluate every combination of ``grid`` on the cached clip: one row per combination.

    Columns: the settings; ``max_error`` (worst |counted - true| / max(true, 1) over lines
    and directions), ``abs_error`` (sum of |counted - true|), ``precision``, ``recall``, ``f1``
    of events; ``err <line> <direction>`` (counted - true); speed: ``detect_ms`` and
    ``track_ms`` per processed frame, ``cost_ms_per_s`` (processing time per second of
    video) and ``max_cameras`` (cameras of this kind one such machine keeps up with).
    """
    frames = min(cache.max_frames or gt.num_frames, gt.num_frames)
    window = DEFAULT_MATCH_WINDOW_S * cache.fps
    # The true crossings depend only on the lines, the anchor and the frames: replay the
    # ground truth once, not once per combination.
    true = calibration_crossings(calibration, gt, frames)
    rows = []
    for confidence, imgsz, fps in itertools.product(
        grid.confidence, grid.imgsz, sorted(set(map(cache.rate, grid.detection_fps)), reverse=True)
    ):
        detected = cache.detections(confidence, imgsz, fps)
        detect_ms = cache.run(imgsz).ms_per_frame
        for tracker, track_buffer in itertools.product(grid.tracker, grid.track_buffer):
            if progress is not None:
                progress(
                    f"conf {confidence} imgsz {imgsz} {fps:g}/s {tracker} buffer {track_buffer}"
                )
            tracked, track_ms = track_frames(detected, tracker, track_buffer, fps, cache.fps)
            for min_distance, min_frames in itertools.product(grid.min_distance, grid.min_frames):
                variant = parse_calibration(
                    {
                        **calibration.model_dump(),
                        "detection_fps": fps,
                        "min_distance": min_distance,
                        "min_frames": min_frames,
                    }
                )
                report = evaluate(
                    variant,
                    gt,
                    count_events(tracked, variant),
                    frames=frames,
                    window_frames=window,
                    true=true,
                )
                cost = fps * (detect_ms + track_ms)
                row = {
                    "confidence": confidence,
                    "imgsz": imgsz,
                    "detection_fps": fps,
                    "tracker": tracker,
                    "track_buffer": track_buffer,
                    "min_distance": min_distance,
                    "min_frames": min_frames,
                    "max_error": _max_error(report),
                    "abs_error": sum(abs(s.error) for s in report.scores),
                    "true": len(report.true_events),
                    "counted": len(report.counted_events),
                    "precision": report.precision,
                    "recall": report.recall,
                    "f1": _f1(report.precision, report.recall),
                    "detect_ms": detect_ms,
                    "track_ms": track_ms,
                    "cost_ms_per_s": cost,
                    "max_cameras": 1000.0 / cost if cost > 0 else np.inf,
                }
                for s in report.scores:
                    row[f"err {s.line_id} {s.direction}"] = s.error
                rows.append(row)
    return pd.DataFrame(rows)


def _max_error(report: EvaluationReport) -> float:
    # Like report.max_relative_error, but events counted where nothing truly crossed are
    # errors too (relative to one crossing), so a noisy line cannot look perfect.
    return max((abs(s.error) / max(s.true, 1) for s in report.scores), default=0.0)


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


SETTING_COLUMNS = (
    "confidence",
    "imgsz",
    "detection_fps",
    "tracker",
    "track_buffer",
    "min_distance",
    "min_frames",
)


@dataclass(frozen=True)
class Recommendation:
    """The chosen settings, the row of the sweep they come from, and why."""

    settings: dict
    row: dict
    reason: str
    meets_target: bool
    alternatives: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)

    def as_text(self) -> str:
        s = self.settings
        return "\n".join(
            [
                self.reason,
                "",
                "Settings (environment):",
                f"  ZVPANEL_CONFIDENCE={s['confidence']:g}",
                f"  ZVPANEL_IMGSZ={s['imgsz']}",
                f"  ZVPANEL_TRACKER={s['tracker']}",
                "Calibration of this camera:",
                f"  detection_fps={s['detection_fps']:g}  min_distance={s['min_distance']:g}  "
                f"min_frames={s['min_frames']}",
                f"Tracker: track_buffer={s['track_buffer']} (30 fps frames; PersonTracker override)",
                "",
                f"Measured: worst error per line and direction {_pct(self.row['max_error'])}, "
                f"precision {_pct(self.row['precision'])}, recall {_pct(self.row['recall'])}, "
                f"{self.row['cost_ms_per_s']:.0f} ms of processing per second of video "
                f"(about {self.row['max_cameras']:.1f} cameras per machine like this one).",
            ]
        )

    def __str__(self) -> str:
        return self.as_text()


def _pct(value) -> str:
    return "-" if value is None or pd.isna(value) else f"{100 * value:.0f}%"


def recommend(results: pd.DataFrame, target: float = TARGET_ERROR) -> Recommendation:
    """The cheapest settings whose every line and direction is within ``target`` of the truth
    (best F1, then smallest error, among equally cheap ones); if none is, the most accurate."""
    if results.empty:
        raise ValueError("results is empty: run the sweep first")
    ranked = results.assign(_f1=results["f1"].fillna(0.0))
    good = ranked[ranked["max_error"] <= target]
    if len(good):
        # Cost is measured on a shared machine: round it so noise does not decide.
        good = good.assign(_cost=good["cost_ms_per_s"].round(-1))
        best = good.sort_values(
            ["_cost", "_f1", "max_error", "abs_error"], ascending=[True, False, True, True]
        )
        meets = True
    else:
        best = ranked.sort_values(
            ["max_error", "abs_error", "_f1", "cost_ms_per_s"], ascending=[True, True, False, True]
        )
        meets = False
    row = best.iloc[0].drop(labels=[c for c in best.columns if c.startswith("_")]).to_dict()
    settings = {name: row[name] for name in SETTING_COLUMNS}
    if meets:
        reason = (
            f"{len(good)} of {len(results)} combinations keep every line and direction within "
            f"{_pct(target)} of the truth; this is the cheapest of them."
        )
    else:
        reason = (
            f"No combination keeps every line and direction within {_pct(target)} of the truth "
            f"on this clip; this one has the smallest worst error."
        )
    top = best.drop(columns=[c for c in best.columns if c.startswith("_")]).head(10)
    return Recommendation(settings, row, reason, meets, top.reset_index(drop=True))
