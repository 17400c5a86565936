"""The settings sweep: its detection cache against the real model, and the recommendation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zvpanel.calibration import parse_calibration
from zvpanel.evaluation import read_mot_gt
from zvpanel.tuning import (
    DetectionCache,
    SweepGrid,
    model_input_size,
    recommend,
    run_sweep,
)

FRAMES = 12
CALIBRATION = parse_calibration(
    {"lines": [{"id": "vertical", "x1": 345.6, "y1": 0, "x2": 345.6, "y2": 576}]}
)


@pytest.fixture(scope="module")
def cache(video_path, model_path):
    cache = DetectionCache(video_path, model_path, max_frames=FRAMES, base_confidence=0.25)
    cache.run(640)
    return cache


def test_model_input_size(model_path, tmp_path):
    assert model_input_size(model_path) == 640  # the shared OpenVINO export is fixed-size
    assert model_input_size(tmp_path / "yolov8n.pt") is None
    assert SweepGrid(imgsz=(320, 640)).for_model(model_path).imgsz == (640,)
    assert SweepGrid(imgsz=(320, 640)).for_model("yolov8n.pt").imgsz == (320, 640)


def test_grid_size():
    grid = SweepGrid.quick()
    assert grid.size == len(list(np.ndindex(*[len(v) for v in grid.__dict__.values()])))


@pytest.mark.model
def test_cached_detections_equal_a_direct_run(cache, video_path, model_path):
    """A higher threshold applied to the cached run is what the model gives at that threshold;
    a lower rate is a subset of the frames."""
    from zvpanel.detection import YoloDetector
    from zvpanel.sources import iter_frames

    detector = YoloDetector(model_path, confidence=0.5)
    direct = [detector.detect(f.image) for f in iter_frames(video_path, max_frames=FRAMES)]
    cached = cache.detections(0.5, 640, 10.0)
    assert [i for i, _ in cached] == list(range(FRAMES))
    for (_, got), want in zip(cached, direct, strict=True):
        assert len(got) == len(want)
        # Same boxes; int8 scores tie, and non-maximum suppression may then keep the other
        # of two overlapping boxes of equal score (a pixel or so apart) or list them in
        # another order.
        np.testing.assert_allclose(_rows(got.xyxy), _rows(want.xyxy), atol=2.0)
        assert (got.confidence >= 0.5).all()
    assert sum(len(d) for _, d in cache.detections(0.25, 640, 10.0)) > sum(
        len(d) for _, d in cached
    )
    assert [i for i, _ in cache.detections(0.5, 640, 5.0)] == list(range(0, FRAMES, 2))
    with pytest.raises(ValueError, match="base_confidence"):
        cache.detections(0.1, 640, 10.0)


def _rows(xyxy: np.ndarray) -> np.ndarray:
    return xyxy[np.lexsort(np.round(xyxy).T[::-1])]


@pytest.mark.model
def test_run_sweep_one_row_per_combination(cache, gt_path):
    grid = SweepGrid(
        confidence=(0.25, 0.5),
        imgsz=(640,),
        detection_fps=(10.0, 5.0, 30.0),  # 30/s is capped at the file's 10/s: one rate
        tracker=("bytetrack", "botsort"),
        track_buffer=(30,),
        min_distance=(0.0, 4.0),
        min_frames=(1,),
    )
    results = run_sweep(cache, CALIBRATION, read_mot_gt(gt_path), grid)
    assert len(results) == 2 * 2 * 2 * 2
    assert set(results["detection_fps"]) == {10.0, 5.0}
    assert {"err vertical entry", "err vertical exit", "max_error", "f1"} <= set(results.columns)
    assert (results["detect_ms"] > 0).all() and (results["max_cameras"] > 0).all()
    slow = results[results.detection_fps == 5.0]["cost_ms_per_s"].mean()
    fast = results[results.detection_fps == 10.0]["cost_ms_per_s"].mean()
    assert slow < fast


def _row(**values) -> dict:
    row = {
        "confidence": 0.25,
        "imgsz": 640,
        "detection_fps": 5.0,
        "tracker": "bytetrack",
        "track_buffer": 30,
        "min_distance": 4.0,
        "min_frames": 1,
        "max_error": 0.0,
        "abs_error": 0,
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "cost_ms_per_s": 200.0,
        "max_cameras": 5.0,
        "err l entry": 0,
    }
    row.update(values)
    return row


def test_recommend_cheapest_within_target():
    results = pd.DataFrame(
        [
            _row(detection_fps=10.0, cost_ms_per_s=400.0, max_error=0.0),
            _row(detection_fps=5.0, cost_ms_per_s=200.0, max_error=0.08, f1=0.9),
            _row(
                detection_fps=5.0, cost_ms_per_s=201.0, max_error=0.05, f1=0.95, tracker="botsort"
            ),
            _row(detection_fps=2.0, cost_ms_per_s=80.0, max_error=0.3),
        ]
    )
    rec = recommend(results, target=0.10)
    assert rec.meets_target
    # 200 and 201 ms cost the same once measurement noise is rounded off: the better F1 wins.
    assert rec.settings["tracker"] == "botsort" and rec.settings["detection_fps"] == 5.0
    text = rec.as_text()
    assert "ZVPANEL_TRACKER=botsort" in text and "detection_fps=5" in text
    assert "3 of 4 combinations" in text


def test_recommend_most_accurate_when_none_meets_the_target():
    results = pd.DataFrame(
        [_row(max_error=0.4, cost_ms_per_s=50.0), _row(max_error=0.2, detection_fps=10.0)]
    )
    rec = recommend(results, target=0.10)
    assert not rec.meets_target
    assert rec.settings["detection_fps"] == 10.0
    assert "No combination" in str(rec)
    with pytest.raises(ValueError, match="empty"):
        recommend(results.iloc[0:0])
