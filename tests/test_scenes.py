"""Real footage, real model: counting on a stretch of each scene of benchmarks/scenes.toml,
at the default settings, against the scene's MOTChallenge ground truth.

The floors are what the current counting reaches on these stretches (rounded down by about
one event); the counting before the track stitcher and the feet estimator (issue #11),
on the same detections, fell below at least one floor on every stretch: vtest P 0.941
R 0.914, Venice-2 P 0.828 R 0.602, TUD-Stadtmitte P 0.920 R 0.775 (more crossings found
there, at the price of a few more counted that match none). The full benchmark is
benchmarks/accuracy.py (not run in CI). The scenes are test data only: read from ../shared
at run time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from zvpanel.calibration import parse_calibration
from zvpanel.detection import YoloDetector
from zvpanel.evaluation import DEFAULT_MATCH_WINDOW_S, evaluate, load_scenes, read_mot_gt
from zvpanel.pipeline import CountingPipeline, FrameSampler, run_offline
from zvpanel.sources import iter_frames, probe_source

SCENES = Path(__file__).resolve().parent.parent / "benchmarks" / "scenes.toml"
DETECTION_FPS = 5.0  # the default


@pytest.fixture(scope="module")
def detector(model_path: str) -> YoloDetector:
    return YoloDetector(model_path)


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "frames", "min_precision", "min_recall"),
    [
        ("vtest", 200, 0.95, 0.91),  # measured 0.958 / 0.920 (175 true crossings)
        ("Venice-2", 300, 0.84, 0.62),  # measured 0.846 / 0.625 (88)
        ("TUD-Stadtmitte", 179, 0.85, 0.81),  # measured 0.859 / 0.820 (89)
    ],
)
def test_scene_stretch_is_counted_like_the_ground_truth(
    detector, name, frames, min_precision, min_recall
):
    scene = next(s for s in load_scenes(SCENES) if s.name == name)
    if not scene.video.is_file():
        pytest.fail(f"{scene.video} not found (CI has ../shared beside the clone)")
    info = probe_source(scene.video)
    gt = read_mot_gt(scene.ground_truth)
    lines = scene.all_lines(gt, info.width, info.height)
    calibration = parse_calibration(
        {"lines": [line.model_dump() for line in lines], "detection_fps": DETECTION_FPS}
    )
    pipeline = CountingPipeline(calibration, detector)
    run = run_offline(
        iter_frames(scene.video, max_frames=frames),
        pipeline,
        FrameSampler(DETECTION_FPS, info.fps),
    )
    report = evaluate(
        calibration,
        gt,
        run.events,
        frames=frames,
        window_frames=DEFAULT_MATCH_WINDOW_S * info.fps,
    )
    assert run.frames == frames
    assert len(report.true_events) >= 80, "the stretch must hold enough crossings to mean much"
    assert report.precision >= min_precision, report.format_table()
    assert report.recall >= min_recall, report.format_table()
