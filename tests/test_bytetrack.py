"""zvpanel's numpy ByteTrack gives exactly Ultralytics' tracks on the real model's detections
of vtest.avi, and a tracking process no longer imports torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from zvpanel.tracking import PersonTracker
from zvpanel.tracking.bytetrack import ByteTracker
from zvpanel.tuning import DetectionCache

FRAMES = 200
pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def cache(video_path, model_path):
    # A low threshold, so the low-score (second) association has boxes to work on.
    cache = DetectionCache(video_path, model_path, max_frames=FRAMES, base_confidence=0.05)
    cache.run(640)
    return cache


def _inputs(cache: DetectionCache, rate: float, tracker: PersonTracker):
    """Each frame's rows as PersonTracker hands them to its tracker (padded boxes)."""
    for _, dets in cache.detections(cache.base_confidence, 640, rate):
        pad = (dets.xyxy[:, 2:4] - dets.xyxy[:, 0:2]) * tracker.box_pad
        xyxy = np.concatenate([dets.xyxy[:, 0:2] - pad, dets.xyxy[:, 2:4] + pad], axis=1)
        data = np.column_stack([xyxy, dets.confidence, dets.class_id]).astype(np.float32)
        yield data.reshape(-1, 6)


@pytest.mark.parametrize(
    ("rate", "overrides"),
    [
        (10.0, {}),
        (5.0, {}),
        (2.0, {"track_buffer": 10}),  # tracks lost and removed
        (5.0, {"fuse_score": True, "match_thresh": 0.6, "new_track_thresh": 0.4}),
    ],
)
def test_same_tracks_as_ultralytics(cache, rate, overrides):
    from ultralytics.engine.results import Boxes
    from ultralytics.trackers import BYTETracker

    ours = PersonTracker(rate, "bytetrack", **overrides)
    assert isinstance(ours._tracker, ByteTracker)
    theirs = BYTETracker(args=ours.args)
    theirs.max_frames_lost = ours.max_frames_lost
    ids = set()
    for data in _inputs(cache, rate, ours):
        expected = theirs.update(Boxes(data, (576, 768)))
        got = ours._tracker.update(data[:, :4], data[:, 4], data[:, 5])
        np.testing.assert_array_equal(got, expected)
        ids.update(got[:, 4].astype(int) if len(got) else [])
    assert len(ids) > 10  # people came and went: the comparison covered real tracking


def test_counting_process_does_not_import_torch(video_path, model_path):
    """Detection (OpenVINO) and tracking in a fresh process leave torch unimported."""
    code = (
        "import sys\n"
        "from zvpanel.detection import YoloDetector\n"
        "from zvpanel.sources import iter_frames\n"
        "from zvpanel.tracking import PersonTracker\n"
        f"detector = YoloDetector({str(model_path)!r})\n"
        "tracker = PersonTracker(5.0)\n"
        f"for frame in iter_frames({str(video_path)!r}, max_frames=5):\n"
        "    tracker.update(detector.detect(frame.image))\n"
        "print(sorted(m for m in ('torch', 'ultralytics') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
