"""PersonTracker: Ultralytics' ByteTrack/BoT-SORT on hand-made boxes and on real detections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zvpanel.detection import YoloDetector
from zvpanel.detections import Detections
from zvpanel.errors import ConfigError
from zvpanel.sources import iter_frames
from zvpanel.tracking import REFERENCE_FPS, PersonTracker


def people(*boxes: tuple[float, float, float, float], confidence: float = 0.9) -> Detections:
    return Detections(
        xyxy=np.array(boxes, dtype=float).reshape(-1, 4),
        confidence=np.full(len(boxes), confidence),
        class_id=np.zeros(len(boxes)),
    )


def walk(start_x: float, y: float, step: float, frames: int, size=(30.0, 80.0)):
    """Boxes of one person walking right by ``step`` px per frame."""
    w, h = size
    return [(start_x + k * step, y, start_x + k * step + w, y + h) for k in range(frames)]


@pytest.mark.parametrize("kind", ["bytetrack", "botsort"])
def test_two_people_keep_their_ids_and_confidences(kind):
    tracker = PersonTracker(10.0, kind)
    a, b = walk(100, 100, 5, 12), walk(600, 300, -5, 12)
    ids = []
    for k in range(12):
        dets = Detections(
            xyxy=np.array([a[k], b[k]]),
            confidence=np.array([0.9, 0.6]),
            class_id=np.zeros(2),
        )
        out = tracker.update(dets)
        assert len(out) == 2
        assert np.all(out.tracker_id >= 1)
        # Each row is one of the detector's own rows: box and confidence unchanged.
        for box, conf in zip(out.xyxy, out.confidence, strict=True):
            row = np.flatnonzero(np.all(np.isclose(dets.xyxy, box), axis=1))
            assert len(row) == 1 and np.isclose(dets.confidence[row[0]], conf)
        ids.append(
            {
                round(float(c), 1): int(t)
                for c, t in zip(out.confidence, out.tracker_id, strict=True)
            }
        )
    assert all(i == ids[0] for i in ids)
    assert len(set(ids[0].values())) == 2


def test_new_track_is_reported_once_confirmed():
    tracker = PersonTracker(10.0)
    assert len(tracker.update(people((100, 100, 130, 180)))) == 1  # first frame: confirmed at once
    second = walk(400, 100, 4, 3)
    out = tracker.update(people((102, 100, 132, 180), second[0]))
    assert len(out) == 1  # the newcomer needs a second sighting
    out = tracker.update(people((104, 100, 134, 180), second[1]))
    assert len(out) == 2 and len(set(out.tracker_id.tolist())) == 2


def test_empty_frames_are_fine_and_a_short_gap_keeps_the_id():
    tracker = PersonTracker(10.0)
    boxes = walk(100, 100, 5, 12)
    first = tracker.update(people(boxes[0])).tracker_id[0]
    tracker.update(people(boxes[1]))
    for _ in range(3):  # missed for 0.3 s, well inside the 1 s buffer
        assert len(tracker.update(Detections.empty())) == 0
    assert tracker.update(people(boxes[5])).tracker_id[0] == first


def test_lost_time_scales_with_the_detection_rate():
    assert PersonTracker(REFERENCE_FPS).max_frames_lost == 30  # Ultralytics' own default
    assert PersonTracker(10.0).max_frames_lost == 10  # the same second at 10/s
    assert PersonTracker(5.0).max_frames_lost == 5
    assert PersonTracker(5.0, track_buffer=60).max_frames_lost == 10
    tracker = PersonTracker(5.0)
    tracker.set_frame_rate(2.0)
    assert tracker.max_frames_lost == 2


def test_a_fast_walker_at_two_detections_per_second_keeps_one_id():
    # A body width (30 px) and more per update: plain boxes never overlap the prediction.
    boxes = walk(50, 200, 40, 10)
    buffered, plain = PersonTracker(2.0), PersonTracker(2.0, iou_buffer=0.0)
    buffered_ids, plain_ids = [], []
    for box in boxes:
        buffered_ids.extend(buffered.update(people(box)).tracker_id.tolist())
        plain_ids.extend(plain.update(people(box)).tracker_id.tolist())
    assert buffered_ids == [1] * len(boxes)
    # Why the buffer exists: without it the walker is lost after the first frame, and
    # each new sighting starts a track that is never confirmed.
    assert len(plain_ids) < len(boxes) // 2


def test_reset_forgets_tracks_and_restarts_ids():
    tracker = PersonTracker(10.0)
    boxes = walk(100, 100, 5, 3)
    for box in boxes:
        tracker.update(people(box))
    tracker.reset()
    assert tracker.update(people((500, 300, 530, 380))).tracker_id.tolist() == [1]


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="sort"):
        PersonTracker(10.0, "deepsort")
    with pytest.raises(ConfigError, match="match_treshold"):
        PersonTracker(10.0, match_treshold=0.5)
    with pytest.raises(ValueError, match="frame_rate"):
        PersonTracker(0)


@pytest.mark.model
def test_real_people_keep_their_ids_over_consecutive_frames(model_path: str, video_path: Path):
    detector = YoloDetector(model_path)
    tracker = PersonTracker(10.0)
    seen: list[set[int]] = []
    for frame in iter_frames(video_path, max_frames=20):
        tracked = tracker.update(detector.detect(frame.image))
        assert np.all(tracked.confidence >= detector.confidence)
        seen.append(set(tracked.tracker_id.tolist()))
    # The three people of the first frame walk on with the same ids (the detector may
    # miss one of them in a frame or two); nobody gets a string of new ids.
    assert len(seen[0]) == 3
    for track_id in seen[0]:
        assert sum(track_id in ids for ids in seen) >= len(seen) - 2
    assert len(set().union(*seen)) <= 6
