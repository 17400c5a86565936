"""YOLO person detection on real vtest.avi frames with the real model (ZVPANEL_MODEL)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from zvpanel.detection import YoloDetector, crop_box
from zvpanel.errors import CalibrationError, ConfigError, ModelError
from zvpanel.sources import iter_frames

#: Boxes found in a crop and on the full frame may differ a little (different letterbox
#: scale); mapped back correctly they agree to within this many pixels.
MAP_TOLERANCE_PX = 6.0


@pytest.fixture(scope="module")
def detector(model_path: str) -> YoloDetector:
    return YoloDetector(model_path)


@pytest.fixture(scope="module")
def frames(video_path: Path) -> list[np.ndarray]:
    return [frame.image for frame in iter_frames(video_path, max_frames=60)]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


# -- no model needed -----------------------------------------------------------------


def test_crop_box_covers_the_roi_in_whole_pixels_and_clips_to_the_frame():
    assert crop_box(None, 768, 576) == (0, 0, 768, 576)
    assert crop_box((10.4, 20.6, 100.2, 200.9), 768, 576) == (10, 20, 101, 201)
    assert crop_box((-5, -3, 900, 700), 768, 576) == (0, 0, 768, 576)
    with pytest.raises(CalibrationError, match="does not overlap"):
        crop_box((800, 600, 900, 700), 768, 576)


def test_missing_model_names_the_path_and_the_setting(tmp_path: Path):
    missing = tmp_path / "nope" / "yolo.pt"
    with pytest.raises(ModelError) as info:
        YoloDetector(str(missing))
    assert str(missing) in str(info.value)
    assert "ZVPANEL_MODEL" in str(info.value)


def test_model_that_fails_to_load_names_the_path_and_the_setting(tmp_path: Path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not an onnx model")
    with pytest.raises(ModelError) as info:
        YoloDetector(str(broken))
    assert str(broken) in str(info.value)
    assert "ZVPANEL_MODEL" in str(info.value)


def test_confidence_out_of_range_is_refused(model_path: str):
    with pytest.raises(ValueError, match="confidence"):
        YoloDetector(model_path, confidence=1.5)


# -- the real model --------------------------------------------------------------------


@pytest.mark.model
def test_unknown_class_lists_the_model_classes(model_path: str):
    with pytest.raises(ConfigError) as info:
        YoloDetector(model_path, classes=("person", "unicorn"))
    message = str(info.value)
    assert "unicorn" in message and "bicycle" in message and "person" in message


@pytest.mark.model
def test_people_are_found_with_real_confidences_inside_the_frame(detector, frames):
    image = frames[0]
    height, width = image.shape[:2]
    dets = detector.detect(image)
    assert len(dets) >= 3  # three people walk in the first frame of vtest.avi
    assert np.all(dets.confidence > 0) and np.all(dets.confidence <= 1)
    assert len(np.unique(dets.confidence)) > 1  # real scores, not a constant
    assert np.all(dets.confidence >= detector.confidence)
    assert set(dets.class_id.tolist()) == {0} and detector.labels == ("person",)
    assert np.all(dets.tracker_id == -1)
    x1, y1, x2, y2 = dets.xyxy.T
    assert np.all((x1 >= 0) & (y1 >= 0) & (x2 <= width) & (y2 <= height))
    assert np.all((x2 > x1) & (y2 > y1))
    # People in this scene are upright: taller than wide.
    assert np.all((y2 - y1) > (x2 - x1))


@pytest.mark.model
def test_roi_boxes_are_mapped_back_to_full_frame_pixels(detector, frames):
    image = frames[0]
    full = detector.detect(image)
    target = full.xyxy[np.argmax(full.confidence)]
    # An ROI around that person with an odd, fractional offset from the frame's corner.
    roi = (target[0] - 83.7, target[1] - 61.2, target[2] + 97.1, target[3] + 55.9)
    cropped = detector.detect(image, roi)
    assert len(cropped) >= 1
    best = max(cropped.xyxy, key=lambda box: _iou(box, target))
    assert np.abs(best - target).max() <= MAP_TOLERANCE_PX, (best, target)
    # Every box lies inside the (pixel-rounded) ROI: nothing from outside it.
    x1, y1, x2, y2 = crop_box(roi, image.shape[1], image.shape[0])
    assert np.all(cropped.xyxy[:, 0] >= x1) and np.all(cropped.xyxy[:, 2] <= x2)
    assert np.all(cropped.xyxy[:, 1] >= y1) and np.all(cropped.xyxy[:, 3] <= y2)


@pytest.mark.model
def test_an_roi_without_people_finds_nobody(detector, frames):
    # The lawn at the bottom left of vtest.avi is empty.
    assert len(detector.detect(frames[0], (0, 420, 300, 576))) == 0


@pytest.mark.model
def test_one_detector_shared_by_threads_gives_the_same_boxes(detector, frames):
    expected = [detector.detect(image).xyxy for image in frames[:8]]
    results: dict[tuple[int, int], np.ndarray] = {}

    def work(worker: int) -> None:
        for i, image in enumerate(frames[:8]):
            results[(worker, i)] = detector.detect(image).xyxy

    threads = [threading.Thread(target=work, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for (_, i), boxes in results.items():
        np.testing.assert_allclose(boxes, expected[i], atol=1e-3)


@pytest.mark.model
def test_from_settings_uses_the_configured_model_classes_and_threshold(settings):
    detector = YoloDetector.from_settings(settings)
    assert detector.model_path == settings.model
    assert detector.labels == tuple(settings.person_classes)
    assert detector.confidence == settings.confidence
    assert detector.imgsz == settings.imgsz
