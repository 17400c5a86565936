"""How fast zvpanel counts: inference alone, the full pipeline, and N live cameras.

Prints, from one run:

1. inference-only fps: ``YoloDetector.detect`` on vtest.avi frames decoded beforehand;
2. full pipeline fps: decode + detect + track + count, as fast as possible
   (``iter_frames`` + ``CountingPipeline``, every frame), and its ratio to (1) (target >= 0.9);
3. for 1, 2, 4, 6 and 8 cameras (the same file opened as separate cameras, each looping in
   real time at its own 10 fps) at 5 detections per second each, run by the real
   :class:`~zvpanel.engine.Engine` on a temporary database: after a warm-up, the actual
   rate of every camera and whether it reports ``hardware_limited`` (target: 6+ cameras
   at 5/s on 2 cores).

Usage: ``python benchmarks/throughput.py [--quick] [--model PATH] [--video PATH]``
(the model defaults to the ``ZVPANEL_MODEL`` setting).
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from zvpanel.calibration import parse_calibration
from zvpanel.config import PROJECT_ROOT, load_settings
from zvpanel.detection import YoloDetector
from zvpanel.engine import HARDWARE_LIMITED_RATIO, Engine, ResultHub
from zvpanel.pipeline import CountingPipeline
from zvpanel.sources import Frame, iter_frames
from zvpanel.storage import Database, EventWriter
from zvpanel.tracking import PersonTracker

#: Camera counts measured, and the detection rate each camera asks for.
CAMERA_COUNTS = (1, 2, 4, 6, 8)
DETECTION_FPS = 5.0
#: (frames for inference / pipeline, warm-up seconds, measured seconds) per mode.
FULL = (300, 6.0, 12.0)
QUICK = (100, 3.0, 6.0)
#: Frames decoded ahead by the decoding thread of the overlapped pipeline run.
DECODE_AHEAD = 4
#: Frames per alternating chunk of the inference / pipeline measurement.
CHUNK = 10
#: vtest.avi: a vertical line through the crossroads (the demo camera's line).
CALIBRATION = {
    "lines": [{"id": "door", "x1": 345.6, "y1": 0, "x2": 345.6, "y2": 576}],
    "detection_fps": DETECTION_FPS,
}
#: The file's own rate: the offline pipeline run tracks every frame at this rate.
VIDEO_FPS = 10.0


class TimedDetector:
    """The real detector, with the time spent in it added up (to split the pipeline's time)."""

    def __init__(self, detector: YoloDetector) -> None:
        self.detector = detector
        self.labels = detector.labels
        self.seconds = 0.0

    def detect(self, image, roi=None):
        began = time.perf_counter()
        try:
            return self.detector.detect(image, roi)
        finally:
            self.seconds += time.perf_counter() - began


@dataclass
class OfflineFigures:
    frames: int = 0
    inference_s: float = 0.0  # detector alone, on frames decoded beforehand
    pipeline_s: float = 0.0  # decode + detect + track + count
    decode_s: float = 0.0  # the pipeline's parts ...
    detect_s: float = 0.0
    events: int = 0
    overlapped_s: float = 0.0  # the same pipeline, decoding ahead in its own thread

    @property
    def overlapped_fps(self) -> float:
        return self.frames / self.overlapped_s

    @property
    def inference_fps(self) -> float:
        return self.frames / self.inference_s

    @property
    def pipeline_fps(self) -> float:
        return self.frames / self.pipeline_s

    def ms(self, seconds: float) -> float:
        return 1000 * seconds / self.frames


def decode_ahead(video: Path, frames: int) -> Iterator[Frame]:
    """``iter_frames`` with decoding in its own thread, up to :data:`DECODE_AHEAD` frames
    ahead (as the engine's sources do): OpenCV releases the GIL while it decodes, so the
    next frame is decoded while this one is detected."""
    buffer: queue.Queue[Frame | None] = queue.Queue(maxsize=DECODE_AHEAD)
    stop = threading.Event()

    def decode() -> None:
        for frame in iter_frames(video, max_frames=frames):
            while not stop.is_set():
                try:
                    buffer.put(frame, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
        buffer.put(None)

    thread = threading.Thread(target=decode, name="bench-decode-ahead", daemon=True)
    thread.start()
    try:
        while (frame := buffer.get()) is not None:
            yield frame
    finally:
        stop.set()
        thread.join()


def measure_offline(detector: YoloDetector, video: Path, frames: int) -> OfflineFigures:
    """Inference alone and the full pipeline on the same frames, with the pipeline's parts.

    The two are measured in alternating chunks of :data:`CHUNK` frames, so that other
    load on a shared machine falls on both alike and their ratio stays meaningful.
    """
    images = [frame.image for frame in iter_frames(video, max_frames=frames)]
    calibration = parse_calibration({**CALIBRATION, "detection_fps": VIDEO_FPS})
    timed = TimedDetector(detector)
    pipeline = CountingPipeline(calibration, timed, PersonTracker(VIDEO_FPS))
    decoded = iter_frames(video, max_frames=len(images))
    overlapped = CountingPipeline(calibration, detector, PersonTracker(VIDEO_FPS))
    ahead = decode_ahead(video, len(images))
    figures = OfflineFigures(frames=len(images))
    for start in range(0, len(images), CHUNK):
        chunk = images[start : start + CHUNK]
        began = time.perf_counter()
        for image in chunk:
            detector.detect(image)
        figures.inference_s += time.perf_counter() - began
        for _ in chunk:
            began = time.perf_counter()
            frame = next(decoded)
            figures.decode_s += time.perf_counter() - began
            figures.events += len(pipeline.process(frame).events)
            figures.pipeline_s += time.perf_counter() - began
        began = time.perf_counter()
        for _ in chunk:
            overlapped.process(next(ahead))
        figures.overlapped_s += time.perf_counter() - began
    decoded.close()
    ahead.close()
    figures.detect_s = timed.seconds
    return figures


def cameras_run(
    detector: YoloDetector, video: Path, n: int, warmup: float, seconds: float
) -> list[dict]:
    """Run ``n`` cameras in the real engine; per camera: measured rate and final status."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "bench.db")
        store = db.create_store("Bench", "UTC")
        calibration = parse_calibration(CALIBRATION)
        for i in range(n):
            camera = db.create_camera(store.id, f"cam-{i + 1}", str(video))
            db.set_calibration(camera.id, calibration)
        writer = EventWriter(db)
        engine = Engine(db, ResultHub(), writer, detector)
        try:
            engine.start()
            time.sleep(warmup)
            before = {c: engine.status(c).frames_processed for c in engine.camera_ids}
            started = time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - started
            rows = []
            for camera_id in engine.camera_ids:
                status = engine.status(camera_id)
                rows.append(
                    {
                        "camera": camera_id,
                        "rate": (status.frames_processed - before[camera_id]) / elapsed,
                        "window_rate": status.actual_fps,
                        "limited": status.hardware_limited,
                        "ms": status.processing_ms,
                        "dropped": status.frames_dropped,
                        "decoded": status.frames_decoded,
                    }
                )
        finally:
            engine.stop()
            writer.close()
            db.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames, shorter runs")
    parser.add_argument("--model", help="YOLO weights (default: the ZVPANEL_MODEL setting)")
    parser.add_argument("--video", type=Path, default=PROJECT_ROOT / "data" / "vtest.avi")
    parser.add_argument(
        "--cameras", type=int, nargs="+", default=list(CAMERA_COUNTS), help="camera counts"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    frames, warmup, seconds = QUICK if args.quick else FULL

    settings = load_settings(**({"model": args.model} if args.model else {}))
    detector = YoloDetector.from_settings(settings)
    detector.warmup()
    print(f"model: {settings.model}  video: {args.video.name}  frames: {frames}")
    # The machine may be shared: say how busy it was, so the figures can be read fairly.
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")

    f = measure_offline(detector, args.video, frames)
    ratio = f.pipeline_fps / f.inference_fps
    print(f"inference only      : {f.inference_fps:6.1f} fps ({f.ms(f.inference_s):.1f} ms/frame)")
    print(
        f"full pipeline       : {f.pipeline_fps:6.1f} fps ({f.ms(f.pipeline_s):.1f} ms/frame: "
        f"decode {f.ms(f.decode_s):.1f}, detect {f.ms(f.detect_s):.1f}, track+count "
        f"{f.ms(f.pipeline_s - f.decode_s - f.detect_s):.1f}; {f.events} events)"
    )
    verdict = "OK" if ratio >= 0.9 else "below target 0.9"
    print(f"pipeline / inference: {ratio:6.2f} ({verdict})")
    print(
        f"  with decoding ahead in its own thread (as the engine does): "
        f"{f.overlapped_fps:.1f} fps, ratio {f.overlapped_fps / f.inference_fps:.2f}"
    )

    print(
        f"\nlive cameras (vtest.avi looping at {VIDEO_FPS:g} fps each), "
        f"target {DETECTION_FPS:g} detections/s per camera, "
        f"warm-up {warmup:g} s, measured {seconds:g} s"
    )
    for n in args.cameras:
        rows = cameras_run(detector, args.video, n, warmup, seconds)
        keeping_up = sum(r["rate"] >= HARDWARE_LIMITED_RATIO * DETECTION_FPS for r in rows)
        total = sum(r["rate"] for r in rows)
        print(
            f"{n} camera(s): total {total:5.1f} det/s, {keeping_up}/{n} at target, "
            f"mean processing {statistics.mean(r['ms'] for r in rows):5.1f} ms"
        )
        for r in rows:
            print(
                f"    camera {r['camera']}: actual {r['rate']:4.2f}/s "
                f"(status window {r['window_rate']:4.2f}/s) "
                f"hardware_limited={r['limited']!s:5} "
                f"processing {r['ms']:5.1f} ms, dropped {r['dropped']}/{r['decoded']}"
            )
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
