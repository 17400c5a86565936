"""Counting accuracy against ground truth, per line and direction, at several detection rates
and with both trackers Ultralytics ships.

    .venv/bin/python benchmarks/accuracy.py [--video data/vtest.avi] [--gt GT.txt]
        [--rates full,10,5,2] [--trackers bytetrack,botsort] [--model PATH]

The video is decoded and every frame detected once (a frame's detections do not depend on
the rate); each rate then replays the frames it would process through a fresh tracker and
line counters, exactly as ``zvpanel count --fps N`` would. Prints one table per tracker:
counted/true and the relative error for each line, direction and rate, then precision and
recall of matched events, and the detector's cost per frame.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from zvpanel.calibration import MAX_DETECTION_FPS, Calibration, parse_calibration
from zvpanel.config import PROJECT_ROOT, load_settings
from zvpanel.detection import YoloDetector
from zvpanel.detections import Detections
from zvpanel.errors import ZvpanelError
from zvpanel.evaluation import DEFAULT_MATCH_WINDOW_S, EvaluationReport, evaluate, read_mot_gt
from zvpanel.pipeline import CountingPipeline, FrameSampler, run_offline, tracker_factory
from zvpanel.sources import Frame, iter_frames, probe_source

DEFAULT_GT = PROJECT_ROOT.parent / "shared" / "ground_truth" / "vtest-first400" / "gt.txt"
#: Lines across vtest.avi's walkways that ground-truth people cross several times each way.
LINES = {
    "vertical": (345.6, 0.0, 345.6, 576.0),
    "horizontal": (450.0, 290.0, 750.0, 290.0),
    "side-road": (450.0, 200.0, 750.0, 200.0),
    "diagonal": (450.0, 150.0, 650.0, 450.0),
    "diagonal-2": (420.0, 330.0, 640.0, 170.0),
}
TARGET = 0.10  # each direction within 10% of the truth


class _Replay:
    """Hands the pipeline the detections found earlier for the frame being processed."""

    def __init__(self, detections: list[Detections], labels: tuple[str, ...]) -> None:
        self.detections, self.labels, self.index = detections, labels, 0

    def detect(self, image, roi=None) -> Detections:
        return self.detections[self.index]


def _replayed(frames: list[Frame], replay: _Replay) -> Iterator[Frame]:
    for frame in frames:
        replay.index = frame.index
        yield frame


def _calibration(rate: float) -> Calibration:
    return parse_calibration(
        {
            "lines": [
                {"id": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2}
                for name, (x1, y1, x2, y2) in LINES.items()
            ],
            "detection_fps": min(rate, MAX_DETECTION_FPS),
        }
    )


def _detect_all(detector: YoloDetector, video: str, frames: int):
    """Every frame's detections, and frames without their images (memory stays small)."""
    found: list[Detections] = []
    stubs: list[Frame] = []
    spent = inference = 0.0
    for frame in iter_frames(video, max_frames=frames):
        started = time.perf_counter()
        found.append(detector.detect(frame.image))
        spent += time.perf_counter() - started
        inference += detector.last_speed.get("inference", 0.0) if detector.last_speed else 0.0
        stubs.append(Frame(frame.image[:1, :1], frame.index, frame.media_time, frame.captured_at))
    n = max(1, len(found))
    print(
        f"detected {len(found)} frames: detect() {1000 * spent / n:.1f} ms/frame "
        f"(of which Ultralytics inference {inference / n:.1f} ms)"
    )
    return found, stubs


def _report(rows: dict[str, EvaluationReport], rates: list[str]) -> str:
    first = next(iter(rows.values()))
    head = f"{'line':<12}{'dir':<7}" + "".join(f"{r:>16}" for r in rates)
    out = [head, "-" * len(head)]
    for score in first.scores:
        cells = []
        for rate in rates:
            s = rows[rate].score(score.line_id, score.direction)
            err = "-" if s.relative_error is None else f"{100 * s.relative_error:+.0f}%"
            flag = "" if s.relative_error is None or abs(s.relative_error) <= TARGET else "!"
            cells.append(f"{s.counted:>3}/{s.true:<3}{err:>6}{flag:1}")
        out.append(f"{score.line_id:<12}{score.direction:<7}" + "".join(f"{c:>16}" for c in cells))
    out.append("-" * len(head))
    for label, attr in (("precision", "precision"), ("recall", "recall")):
        values = []
        for rate in rates:
            v = getattr(rows[rate], attr)
            values.append("-" if v is None else f"{100 * v:.0f}%")
        out.append(f"{label:<19}" + "".join(f"{v:>16}" for v in values))
    worst = [f"{100 * rows[r].max_relative_error:.0f}%" for r in rates]
    out.append(f"{'worst error':<19}" + "".join(f"{v:>16}" for v in worst))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", default=str(PROJECT_ROOT / "data" / "vtest.avi"))
    parser.add_argument("--gt", type=Path, default=DEFAULT_GT)
    parser.add_argument("--model", help="YOLO weights (default: the ZVPANEL_MODEL setting)")
    parser.add_argument("--rates", default="full,10,5,2", help="detections per second")
    parser.add_argument("--trackers", default="bytetrack,botsort")
    args = parser.parse_args(argv)

    settings = load_settings(**({"model": args.model} if args.model else {}))
    gt = read_mot_gt(args.gt)
    source_fps = probe_source(args.video).fps
    print(f"{args.video}: {gt.num_frames} ground-truth frames at {source_fps:g} fps")
    detector = YoloDetector.from_settings(settings)
    found, frames = _detect_all(detector, args.video, gt.num_frames)
    replay = _Replay(found, detector.labels)
    rates = [r.strip() for r in args.rates.split(",") if r.strip()]
    window = DEFAULT_MATCH_WINDOW_S * source_fps
    for kind in [k.strip() for k in args.trackers.split(",") if k.strip()]:
        rows: dict[str, EvaluationReport] = {}
        for rate in rates:
            fps = source_fps if rate == "full" else float(rate)
            calibration = _calibration(fps)
            pipeline = CountingPipeline(calibration, replay, tracker_factory(kind))
            sampler = FrameSampler(fps, source_fps)
            run = run_offline(_replayed(frames, replay), pipeline, sampler)
            rows[rate] = evaluate(
                calibration, gt, run.events, frames=len(frames), window_frames=window
            )
        print(f"\n{kind}: counted/true and error per line and direction (! = over 10%)")
        print(_report(rows, rates))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ZvpanelError as error:
        sys.exit(f"accuracy: {error}")
