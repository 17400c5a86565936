"""Rectangular and overlapped OpenVINO inference (issue 14): geometry, boxes, threads, settings."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from zvpanel.config import Settings
from zvpanel.detection import YoloDetector
from zvpanel.detection.openvino import letterbox, reshape_detect_head
from zvpanel.sources import iter_frames

#: A box found on a frame and on the same frame placed in a bigger canvas is found at a
#: different scale; mapped back correctly the two agree to within this many pixels.
MAP_TOLERANCE_PX = 6.0
#: Camera threads run at once in the overlapped test, and frames each of them detects.
CAMERAS = 4
FRAMES_PER_CAMERA = 6


@pytest.fixture(scope="module")
def frames(video_path: Path) -> list[np.ndarray]:
    return [frame.image for frame in iter_frames(video_path, max_frames=CAMERAS * 10)]


@pytest.fixture(scope="module")
def rect_detector(model_path: str) -> YoloDetector:
    return YoloDetector(model_path, rect=True, requests=1)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


def _boxes_agree(found: np.ndarray, expected: np.ndarray, tolerance: float) -> None:
    assert len(found) == len(expected), (found, expected)
    for box in expected:
        nearest = np.abs(found - box).max(axis=1).min()
        assert nearest <= tolerance, (box, found)


# -- geometry, no model -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "width", "rect", "expected"),
    [
        (576, 768, True, (480, 640)),  # 4:3
        (1080, 1920, True, (384, 640)),  # 16:9: 360 rounded up to a multiple of 32
        (720, 1280, True, (384, 640)),
        (1080, 1920, False, (640, 640)),  # the square of today
        (300, 200, True, (640, 448)),  # a portrait ROI crop, scaled up as Ultralytics does
    ],
)
def test_letterbox_gives_the_minimum_rectangle_and_boxes_map_back(height, width, rect, expected):
    from ultralytics.utils import ops

    image = np.zeros((height, width, 3), np.uint8)
    known = np.array([[width * 0.25, height * 0.3, width * 0.6, height * 0.9]])
    x1, y1, x2, y2 = known[0].astype(int)
    image[y1:y2, x1:x2] = 255
    padded = letterbox(image, 640, rect)
    assert padded.shape[:2] == expected
    ys, xs = np.nonzero(padded[..., 0] > 127)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    mapped = ops.scale_boxes(padded.shape[:2], found, image.shape)
    pixel = max(height, width) / 640  # one network pixel, in frame pixels
    np.testing.assert_allclose(mapped, known, atol=pixel + 1)


# -- the real model -------------------------------------------------------------------------


def test_square_runner_gives_exactly_ultralytics_boxes(model_path: str, frames):
    """The OpenVINO runner reuses Ultralytics' letterbox, NMS and scaling: same boxes."""
    today = YoloDetector(model_path, rect=False, requests=1)  # Ultralytics' predictor
    runner = YoloDetector(model_path, rect=False, requests=0)
    for image in frames[:3]:
        a, b = today.detect(image), runner.detect(image)
        assert len(a) > 0
        np.testing.assert_allclose(b.xyxy, a.xyxy, atol=1e-3)
        np.testing.assert_allclose(b.confidence, a.confidence, atol=1e-4)


def test_rect_boxes_map_back_to_the_frame(model_path: str, rect_detector, frames):
    """4:3 at 640x480 finds the square's people at the same places."""
    square = YoloDetector(model_path, rect=False, requests=1)
    for image in frames[:3]:
        expected = square.detect(image).xyxy
        _boxes_agree(rect_detector.detect(image).xyxy, expected, MAP_TOLERANCE_PX)
    assert rect_detector.input_shape(576, 768) == (480, 640)


def test_a_16_9_frame_is_reshaped_and_its_boxes_land_where_the_people_are(rect_detector, frames):
    """The frame pasted into a 16:9 canvas (grey sides, as letterboxing pads): the network
    runs at 640x384 and the boxes, shifted back by the paste offset, are the frame's own."""
    image = frames[0]
    height, width = image.shape[:2]
    canvas_width = height * 16 // 9
    left = (canvas_width - width) // 3  # off-centre, so a wrong x offset would show
    canvas = np.full((height, canvas_width, 3), 114, np.uint8)
    canvas[:, left : left + width] = image
    assert rect_detector.input_shape(height, canvas_width) == (384, 640)
    expected = rect_detector.detect(image)
    found = rect_detector.detect(canvas).shifted(-left, 0)
    assert len(expected) > 2
    matched = [max(_iou(box, other) for other in found.xyxy) for box in expected.xyxy]
    assert min(matched) > 0.8, matched


def test_overlapped_detector_gives_each_camera_its_own_detections(model_path: str, frames):
    """Several camera threads at once on one detector (4:3 frames and 16:9 crops of them),
    each gets exactly the detections the one-at-a-time detector finds on its frames."""
    serial = YoloDetector(model_path, rect=True, requests=1)
    overlapped = YoloDetector(model_path, rect=True, requests=0)
    cameras = [[frames[i + CAMERAS * k] for k in range(FRAMES_PER_CAMERA)] for i in range(CAMERAS)]
    cameras[1] = [image[:432] for image in cameras[1]]  # 768x432: a 16:9 camera
    expected = [[serial.detect(image) for image in images] for images in cameras]
    got: list[list] = [[] for _ in cameras]
    start = threading.Barrier(CAMERAS)

    def camera(index: int) -> None:
        start.wait()
        for image in cameras[index]:
            got[index].append(overlapped.detect(image))

    threads = [threading.Thread(target=camera, args=(i,)) for i in range(CAMERAS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for mine, theirs in zip(got, expected, strict=True):
        assert len(mine) == FRAMES_PER_CAMERA
        for a, b in zip(mine, theirs, strict=True):
            np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.5)


def test_settings_switch_rect_and_overlap_off(settings: Settings):
    on = YoloDetector.from_settings(settings)
    assert (on.rect, on.requests) == (True, 0)
    assert on.input_shape(576, 768) == (480, 640)
    off = YoloDetector.from_settings(
        settings.model_copy(update={"rect_inference": False, "inference_requests": 1})
    )
    assert (off.rect, off.requests) == (False, 1)
    assert off.input_shape(576, 768) == (640, 640)
    with pytest.raises(ValueError, match="requests=-1"):
        YoloDetector(settings.model, requests=-1)


def test_a_model_without_a_yolov8_head_is_not_reshaped_and_says_why():
    import openvino as ov
    import openvino.opset13 as opset

    image = opset.parameter([1, 3, 640, 640], ov.Type.f32)
    model = ov.Model([opset.relu(image)], [image], "not-yolo")
    with pytest.raises(ValueError, match="'not-yolo': found 0 of the 5"):
        reshape_detect_head(model, 480, 640)
