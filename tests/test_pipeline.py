"""CountingPipeline, FrameSampler and annotate: the real model on the first frames of vtest.avi."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zvpanel.annotate import annotate, entry_arrow
from zvpanel.calibration import CountingLine, parse_calibration
from zvpanel.detection import YoloDetector
from zvpanel.detections import Detections
from zvpanel.evaluation import read_mot_gt, true_crossings
from zvpanel.pipeline import CountingPipeline, FrameSampler, run_offline, tracker_factory
from zvpanel.sources import iter_frames
from zvpanel.tracking import PersonTracker

VERTICAL = {"id": "door", "x1": 345.6, "y1": 0, "x2": 345.6, "y2": 576}


@pytest.fixture(scope="module")
def detector(model_path: str) -> YoloDetector:
    return YoloDetector(model_path)


# -- FrameSampler -----------------------------------------------------------------------


def taken(sampler: FrameSampler, frames: int, source_fps: float) -> list[int]:
    return [i for i in range(frames) if sampler.take(i / source_fps)]


@pytest.mark.parametrize(
    ("detection_fps", "source_fps", "expected"),
    [
        (5.0, 10.0, [0, 2, 4, 6, 8, 10]),
        (10.0, 10.0, list(range(12))),
        (30.0, 10.0, list(range(12))),  # never more than every frame
        (2.0, 10.0, [0, 5, 10]),
        (3.0, 10.0, [0, 3, 7, 10]),  # the frame nearest each due time, no drift
        (5.0, 25.0, [0, 5, 10]),
    ],
)
def test_sampler_takes_frames_at_the_detection_rate(detection_fps, source_fps, expected):
    sampler = FrameSampler(detection_fps, source_fps)
    assert taken(sampler, 12, source_fps) == expected
    assert sampler.rate == min(detection_fps, source_fps)


def test_sampler_rate_holds_over_a_long_file_and_restarts_when_it_loops():
    sampler = FrameSampler(5.0, 10.0)
    assert len(taken(sampler, 795, 10.0)) == 398
    assert sampler.take(0.0)  # a looping file starts again at 0
    assert not sampler.take(0.1) and sampler.take(0.2)


def test_sampler_refuses_a_zero_rate():
    with pytest.raises(ValueError, match="detection_fps"):
        FrameSampler(0, 10)


# -- the pipeline -------------------------------------------------------------------------


@pytest.mark.model
def test_pipeline_counts_the_first_60_frames_like_the_ground_truth(
    detector, video_path: Path, gt_path: Path
):
    calibration = parse_calibration({"lines": [VERTICAL], "detection_fps": 5.0})
    pipeline = CountingPipeline(calibration, detector, tracker_factory("bytetrack"))
    outputs = []
    sampler = FrameSampler(calibration.detection_fps, 10.0)
    run = run_offline(
        iter_frames(video_path, max_frames=60),
        pipeline,
        sampler,
        lambda frame, out: outputs.append((frame.index, out)),
    )
    assert (run.frames, run.processed) == (60, 30)
    assert [i for i, _ in outputs] == list(range(0, 60, 2))
    assert pipeline.tracker.frame_rate == 5.0
    for _, out in outputs:
        assert np.all(out.detections.tracker_id >= 1)  # only confirmed tracks come out
        assert np.all((out.detections.confidence > 0) & (out.detections.confidence <= 1))
    # The ground truth has one entry in these frames (frame 12); so does the pipeline.
    truth = true_crossings(read_mot_gt(gt_path), CountingLine(**VERTICAL), max_frames=60)
    assert [(e.direction, e.frame_index) for e in truth] == [("entry", 12)]
    assert run.counts == {"door": {"entries": 1, "exits": 0}}
    (event,) = run.events
    assert event.direction == "entry" and abs(event.frame_index - 12) <= 4
    assert outputs[-1][1].counts == run.counts


class _Scripted:
    """A detector replaying fixed boxes: the pipeline's counting is under test, not YOLO."""

    labels = ("person",)

    def __init__(self, boxes_per_frame: list[list[tuple]]):
        self.boxes = boxes_per_frame
        self.calls: list[tuple | None] = []

    def detect(self, image, roi=None) -> Detections:
        self.calls.append(roi)
        boxes = self.boxes[int(image[0, 0, 0])]
        return Detections(
            xyxy=np.array(boxes, dtype=float).reshape(-1, 4),
            confidence=np.full(len(boxes), 0.8),
            class_id=np.zeros(len(boxes)),
        )


def _frames(n: int):
    from datetime import datetime, timezone

    from zvpanel.sources import Frame

    for i in range(n):
        image = np.full((576, 768, 3), i, dtype=np.uint8)  # the pixel tells the frame index
        yield Frame(image, i, i / 10.0, datetime.now(timezone.utc))


def test_set_calibration_keeps_counts_and_tracks():
    # One person walks right across x=300 twice as fast as needed; then the line moves.
    boxes = [[(200 + 20 * k, 200, 230 + 20 * k, 280)] for k in range(20)]
    detector = _Scripted(boxes)
    line = {"id": "door", "x1": 300, "y1": 0, "x2": 300, "y2": 576}
    calibration = parse_calibration({"lines": [line], "detection_fps": 10.0})
    pipeline = CountingPipeline(calibration, detector, PersonTracker(10.0))
    frames = list(_frames(20))
    for frame in frames[:10]:
        pipeline.process(frame)
    assert pipeline.counts() == {"door": {"entries": 1, "exits": 0}}
    tracker = pipeline.tracker
    moved = parse_calibration(
        {
            "lines": [{**line, "x1": 500, "x2": 500}, {**line, "id": "new", "x1": 10, "x2": 10}],
            "roi": [0, 0, 768, 576],
            "detection_fps": 5.0,
        }
    )
    pipeline.set_calibration(moved)
    assert pipeline.tracker is tracker and tracker.frame_rate == 5.0
    assert pipeline.counts() == {
        "door": {"entries": 1, "exits": 0},
        "new": {"entries": 0, "exits": 0},
    }
    for frame in frames[10:]:
        pipeline.process(frame)
    # The same person (same track) crosses the moved line at x=500: a second entry.
    assert pipeline.counts()["door"] == {"entries": 2, "exits": 0}
    assert detector.calls[-1] == (0, 0, 768, 576)


# -- annotate -----------------------------------------------------------------------------


def test_entry_arrow_points_to_the_entry_side():
    down = CountingLine(x1=100, y1=0, x2=100, y2=200)  # leftToRight: entering = going right
    (sx, sy), (tx, ty) = entry_arrow(down)
    assert (sx, sy) == (100, 100) and tx > sx and ty == sy
    (_, _), (tx, _) = entry_arrow(down.model_copy(update={"orientation": "rightToLeft"}))
    assert tx < 100


def test_annotate_draws_on_a_copy(video_path: Path):
    image = next(iter(iter_frames(video_path, max_frames=1))).image
    before = image.copy()
    calibration = parse_calibration({"lines": [VERTICAL], "roi": [50, 50, 700, 520]})
    dets = Detections(xyxy=[[500, 150, 530, 230]], confidence=[0.87], class_id=[0], tracker_id=[7])
    out = annotate(image, dets, calibration, {"door": {"entries": 3, "exits": 1}})
    np.testing.assert_array_equal(image, before)
    assert out.shape == image.shape and out.dtype == image.dtype
    changed = np.any(out != image, axis=2)
    assert changed[150, 500:531].any()  # the box's top edge
    assert changed[50, 60:690].all()  # the ROI's top edge
    assert changed[300, 345]  # the counting line
    assert not changed[560:, :40].any()  # far from everything: untouched
