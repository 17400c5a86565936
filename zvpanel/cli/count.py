"""``zvpanel count`` (count people crossing lines in a video file) and ``zvpanel eval``
(compare those counts with MOTChallenge ground truth)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..calibration import MAX_DETECTION_FPS, Calibration, parse_calibration
from ..config import Settings, load_settings
from ..display import csv_cell
from ..errors import CalibrationError, SourceError
from ..pipeline import CountingPipeline, FrameSampler, OfflineRun, PipelineOutput, run_offline
from ..sources import Frame, SourceInfo, iter_frames, probe_source
from ..tracking import TRACKER_KINDS
from .lines import ANCHORS, add_line_arguments, lines_from_args, number

__all__ = ["register", "build_calibration", "count_video"]

#: Codec of ``--annotate`` videos (MPEG-4 part 2: OpenCV's pip wheels can always write it).
ANNOTATE_FOURCC = "mp4v"


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``count`` and ``eval`` to the ``zvpanel`` parser's sub-commands."""
    p = sub.add_parser(
        "count",
        help="count people crossing lines in a video file (as fast as possible)",
        description="Detect, track and count people crossing the given line(s) in VIDEO.",
    )
    _common_arguments(p)
    p.add_argument("--events", type=Path, metavar="OUT.csv", help="write every event to a CSV file")
    p.add_argument(
        "--annotate", type=Path, metavar="OUT.mp4", help="write the processed frames, annotated"
    )
    p.set_defaults(func=_count_command)

    p = sub.add_parser(
        "eval",
        help="compare counts with MOTChallenge ground truth",
        description=(
            "Count VIDEO as `zvpanel count` does and compare with the crossings of the "
            "ground-truth tracks (GT frame k+1 = decoded frame k), per line and direction."
        ),
    )
    _common_arguments(p)
    p.add_argument("--gt", type=Path, required=True, metavar="GT.txt", help="MOTChallenge gt.txt")
    p.add_argument(
        "--window",
        type=number,
        default=None,
        metavar="FRAMES",
        help="match a counted event to a true crossing at most this many frames away "
        "(default: 1.5 s of video)",
    )
    p.add_argument(
        "--html", type=Path, metavar="OUT.html", help="also write the report as an HTML page"
    )
    p.set_defaults(func=_eval_command)


def _common_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", metavar="VIDEO", help="video file (or stream URL)")
    add_line_arguments(p)
    p.add_argument(
        "--calibration", type=Path, metavar="FILE.json", help="a calibration JSON instead of --line"
    )
    p.add_argument(
        "--roi",
        nargs=4,
        type=number,
        metavar=("X1", "Y1", "X2", "Y2"),
        help="detect only inside this box (pixels); the lines must lie inside it",
    )
    p.add_argument("--model", help="YOLO weights (overrides ZVPANEL_MODEL)")
    p.add_argument(
        "--fps",
        type=number,
        help="detections per second of video (default: the calibration default; "
        "at or above the file's rate every frame is processed)",
    )
    p.add_argument("--tracker", choices=TRACKER_KINDS, help="overrides ZVPANEL_TRACKER")
    p.add_argument("--confidence", type=number, help="overrides ZVPANEL_CONFIDENCE")
    p.add_argument("--anchor", choices=ANCHORS)
    p.add_argument("--min-distance", type=number, help="hysteresis: pixels past the line")
    p.add_argument("--min-frames", type=int, help="hysteresis: detections past the line")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N decoded frames")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def build_calibration(args: argparse.Namespace, source_fps: float) -> Calibration:
    """The calibration the command line describes (``--calibration`` or ``--line`` ...)."""
    if args.calibration is not None:
        if args.line:
            raise CalibrationError("give either --calibration or --line, not both")
        try:
            data: dict[str, Any] = json.loads(args.calibration.read_text())
        except (OSError, ValueError) as error:
            raise CalibrationError(f"--calibration {str(args.calibration)!r}: {error}") from None
    else:
        if not args.line:
            raise CalibrationError("give at least one --line X1 Y1 X2 Y2 (or --calibration)")
        data = {"lines": lines_from_args(args)}
    if args.roi is not None:
        data["roi"] = list(args.roi)
    if args.fps is not None:
        # A rate above the file's means "every frame"; the calibration caps what it stores.
        data["detection_fps"] = min(args.fps, source_fps or args.fps, MAX_DETECTION_FPS)
    for key, value in (
        ("anchor", args.anchor),
        ("min_distance", args.min_distance),
        ("min_frames", args.min_frames),
    ):
        if value is not None:
            data[key] = value
    return parse_calibration(data)


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        key: value
        for key, value in (
            ("model", args.model),
            ("tracker", args.tracker),
            ("confidence", args.confidence),
        )
        if value is not None
    }
    return load_settings(**overrides)


def count_video(
    video: str,
    calibration: Calibration,
    settings: Settings,
    *,
    max_frames: int | None = None,
    on_output: Callable[[Frame, PipelineOutput], None] | None = None,
    info: SourceInfo | None = None,
    progress: bool = False,
) -> OfflineRun:
    """Count ``video`` from its first frame with the settings' model and tracker.

    ``progress`` shows a bar on stderr: frames, frames per second and the counts so far.
    """
    from ..detection import YoloDetector
    from ..pipeline import tracker_factory

    info = info or probe_source(video)
    calibration.check_frame(info.width, info.height)
    if max_frames is not None and max_frames < 1:
        raise SourceError(f"--max-frames must be at least 1, got {max_frames}")
    detector = YoloDetector.from_settings(settings)
    pipeline = CountingPipeline(calibration, detector, tracker_factory(settings.tracker))
    sampler = FrameSampler(calibration.detection_fps, info.fps or calibration.detection_fps)
    frames = iter_frames(video, max_frames=max_frames)
    if not progress:
        return run_offline(frames, pipeline, sampler, on_output)
    with _ProgressBar(_expected_frames(info, max_frames), on_output) as bar:
        return run_offline(bar.frames(frames), pipeline, sampler, bar)


def _expected_frames(info: SourceInfo, max_frames: int | None) -> int | None:
    counts = [n for n in (info.frame_count, max_frames) if n]
    return min(counts) if counts else None


class _ProgressBar:
    """A tqdm bar of decoded frames whose postfix shows the entries and exits so far."""

    def __init__(
        self, total: int | None, on_output: Callable[[Frame, PipelineOutput], None] | None
    ) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True)
        self._on_output = on_output

    def frames(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        for frame in frames:
            self._bar.update(1)
            yield frame

    def __call__(self, frame: Frame, output: PipelineOutput) -> None:
        entries = sum(c["entries"] for c in output.counts.values())
        exits = sum(c["exits"] for c in output.counts.values())
        self._bar.set_postfix(entries=entries, exits=exits, refresh=False)
        if self._on_output is not None:
            self._on_output(frame, output)

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self._bar.close()


def _show_progress(args: argparse.Namespace) -> bool:
    """A bar only for a person watching: not with --json, not when output is redirected."""
    return not args.json and sys.stdout.isatty()


def _run_summary(run: OfflineRun, calibration: Calibration, source_fps: float) -> dict:
    return {
        "entries": run.entries,
        "exits": run.exits,
        "frames": run.frames,
        "processed_frames": run.processed,
        "seconds": round(run.seconds, 3),
        "fps": round(run.fps, 2),
        "detection_fps": round(run.detection_fps, 3),
        "source_fps": round(source_fps, 3),
        "lines": {
            line.id: {
                **run.counts.get(line.id, {"entries": 0, "exits": 0}),
                "x1": line.x1,
                "y1": line.y1,
                "x2": line.x2,
                "y2": line.y2,
                "orientation": line.orientation,
            }
            for line in calibration.lines
        },
        "events": [
            {
                "frame": e.frame_index,
                "time": round(t, 3),
                "track_id": e.track_id,
                "type": e.direction,
                "line": e.line_id,
                "confidence": round(e.confidence, 4),
                "x": round(e.point[0], 1),
                "y": round(e.point[1], 1),
            }
            for e, t in zip(run.events, run.event_times, strict=True)
        ],
        "zones": _zones_summary(run, calibration),
    }


def _zones_summary(run: OfflineRun, calibration: Calibration) -> dict:
    """Per zone: enters, leaves, the most people inside at once and the time inside (the
    run's end closed every stay)."""
    from ..storage.zones import dwell_stats

    summary = {}
    for zone in calibration.zones:
        events = [e for e in run.zone_events if e.zone_id == zone.id]
        inside = peak = 0
        for event in events:
            inside += 1 if event.kind == "enter" else -1
            peak = max(peak, inside)
        stats = dwell_stats([e.dwell_s for e in events if e.kind == "leave"])
        summary[zone.id] = {
            "queue": zone.queue,
            "enters": sum(e.kind == "enter" for e in events),
            "leaves": stats.stays,
            "peak_inside": peak,
            "median_inside_s": round(stats.median_s, 2),
            "p90_inside_s": round(stats.p90_s, 2),
        }
    return summary


def _write_events(path: Path, summary: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = ["frame", "time", "line", "track_id", "type", "confidence", "x", "y"]
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        for event in summary["events"]:
            writer.writerow({key: csv_cell(event[key]) for key in fields})


class _AnnotatedWriter:
    """Writes each processed frame, annotated, to a video at the detection rate."""

    def __init__(self, path: Path, calibration: Calibration, fps: float, labels) -> None:
        self.path, self.calibration, self.fps, self.labels = path, calibration, fps, labels
        self._writer = None

    def __call__(self, frame: Frame, output: PipelineOutput) -> None:
        import cv2

        from ..annotate import annotate

        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*ANNOTATE_FOURCC)
            self._writer = cv2.VideoWriter(
                str(self.path), fourcc, self.fps, (frame.width, frame.height)
            )
            if not self._writer.isOpened():
                raise SourceError(f"cannot write video {str(self.path)!r}")
        image = annotate(
            frame.image, output.detections, self.calibration, output.counts, self.labels
        )
        self._writer.write(image)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


def _prepare(args: argparse.Namespace) -> tuple[Settings, Calibration, SourceInfo]:
    settings = _settings(args)
    info = probe_source(args.video)
    return settings, build_calibration(args, info.fps), info


def _count_command(args: argparse.Namespace) -> int:
    settings, calibration, info = _prepare(args)
    source_fps = info.fps
    writer = None
    if args.annotate is not None:
        rate = min(calibration.detection_fps, source_fps or calibration.detection_fps)
        writer = _AnnotatedWriter(args.annotate, calibration, rate, tuple(settings.person_classes))
    try:
        run = count_video(
            args.video,
            calibration,
            settings,
            max_frames=args.max_frames,
            on_output=writer,
            info=info,
            progress=_show_progress(args),
        )
    finally:
        if writer is not None:
            writer.close()
    summary = _run_summary(run, calibration, source_fps)
    if args.events is not None:
        _write_events(args.events, summary)
    if args.json:
        json.dump(summary, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(
        f"{run.frames} frames ({run.processed} processed at {run.detection_fps:g}/s) in "
        f"{run.seconds:.1f} s ({run.fps:.1f} fps): {run.entries} entries, {run.exits} exits"
    )
    for line_id, counts in run.counts.items():
        print(f"  {line_id}: {counts['entries']} entries, {counts['exits']} exits")
    for zone_id, zone in summary["zones"].items():
        print(
            f"  zone {zone_id}: {zone['enters']} stays, at most {zone['peak_inside']} inside, "
            f"time inside median {zone['median_inside_s']:g} s, 90% under "
            f"{zone['p90_inside_s']:g} s"
        )
    return 0


def _eval_command(args: argparse.Namespace) -> int:
    from ..evaluation import DEFAULT_MATCH_WINDOW_S, evaluate, read_mot_gt

    settings, calibration, info = _prepare(args)
    source_fps = info.fps
    gt = read_mot_gt(args.gt)
    max_frames = gt.num_frames if args.max_frames is None else min(args.max_frames, gt.num_frames)
    run = count_video(
        args.video,
        calibration,
        settings,
        max_frames=max_frames,
        info=info,
        progress=_show_progress(args),
    )
    window = args.window if args.window is not None else DEFAULT_MATCH_WINDOW_S * source_fps
    report = evaluate(calibration, gt, run.events, frames=run.frames, window_frames=window)
    if args.html is not None:
        from ..report import write_html_report

        write_html_report(
            report,
            args.html,
            calibration=calibration,
            fps=source_fps or None,
            frame_size=(info.width, info.height),
            title=f"zvpanel counting accuracy: {Path(args.video).name}",
        )
    if args.json:
        result = {**_run_summary(run, calibration, source_fps), "evaluation": report.as_dict()}
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(report.format_table())
    print(
        f"{run.frames} frames ({run.processed} processed at {run.detection_fps:g}/s) in "
        f"{run.seconds:.1f} s ({run.fps:.1f} fps)"
    )
    return 0
