"""The OpenVINO runner's numpy letterbox, NMS and box scaling give exactly what Ultralytics'
own (torch) steps give, on the real model's output for frames of every test scene."""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from zvpanel.detection import YoloDetector
from zvpanel.detection.openvino import NMS_IOU, letterbox, non_max_suppression, scale_boxes
from zvpanel.detection.torch_order import descending_order
from zvpanel.sources import iter_frames

SHARED = Path(__file__).resolve().parents[2] / "shared"
SCENE_VIDEOS = (
    SHARED / "scenes" / "Venice-2" / "video.mp4",  # 1920x1080
    SHARED / "scenes" / "TUD-Stadtmitte" / "video.mp4",  # 640x480
)
#: Every this many frames of each clip, up to this many frames.
STEP, MAX_FRAMES = 10, 200
PERSON = [0]


def _frames(video_path: Path) -> list[np.ndarray]:
    videos = [video_path, *SCENE_VIDEOS]
    return [
        frame.image
        for video in videos
        for frame in iter_frames(video, max_frames=MAX_FRAMES)
        if frame.index % STEP == 0
    ]


def _ultralytics_rows(output: np.ndarray, input_shape, image_shape, confidence, classes):
    """Ultralytics' own NMS and scaling. Its ``non_max_suppression`` takes torchvision's
    kernel when some earlier import loaded torchvision and its own ``TorchNMS`` otherwise,
    and the two keep different boxes among equal scores; the runner follows ``TorchNMS``,
    so torchvision is hidden here whatever ran before in this process."""
    import torch
    from ultralytics.utils import nms, ops

    with mock.patch.dict(sys.modules):
        sys.modules.pop("torchvision", None)
        rows = nms.non_max_suppression(
            torch.from_numpy(output), confidence, NMS_IOU, classes, max_det=300
        )[0]
    rows[:, :4] = ops.scale_boxes(input_shape, rows[:, :4], image_shape)
    return rows.numpy()


@pytest.mark.parametrize(
    "shape",
    [(576, 768, 3), (1080, 1920, 3), (480, 640, 3), (300, 100, 3), (7, 900, 3), (50, 60, 1)],
)
@pytest.mark.parametrize("rect", [True, False])
def test_letterbox_is_ultralytics(shape, rect):
    from ultralytics.data.augment import LetterBox

    image = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    if shape[2] == 1:
        image = image[..., 0]
    expected = LetterBox(640, auto=rect, stride=32)(image=image.copy())
    np.testing.assert_array_equal(letterbox(image, 640, rect), expected)


@pytest.mark.model
@pytest.mark.parametrize("rect", [True, False])
def test_boxes_are_ultralytics_on_real_frames(model_path, video_path, rect):
    runner = YoloDetector(model_path, rect=rect)._runner
    assert runner is not None
    compared = 0
    for image in _frames(video_path):
        # Whole frames and a crop of another shape (an ROI), each inferred once.
        for picture in (image, image[: image.shape[0] * 2 // 3, image.shape[1] // 5 :]):
            padded = runner._input(picture)
            blob = np.ascontiguousarray(padded[..., ::-1].transpose(2, 0, 1))[None]
            output = runner._infer(blob.astype(np.float32) / 255.0)
            for confidence, classes in ((0.05, PERSON), (0.25, PERSON), (0.25, None)):
                expected = _ultralytics_rows(
                    output, padded.shape[:2], picture.shape, confidence, classes
                )
                got = scale_boxes(
                    non_max_suppression(output, confidence, classes),
                    padded.shape[:2],
                    picture.shape,
                )
                np.testing.assert_array_equal(got, expected)
                compared += len(got)
    assert compared > 1000  # many real boxes, not empty frames


def test_descending_order_is_torchs_with_ties():
    import torch

    rng = np.random.default_rng(14)
    for trial in range(600):
        n = int(rng.integers(1, 400))
        levels = int(rng.integers(1, 40))
        values = (rng.integers(0, levels, n) / levels).astype(np.float32)
        if trial % 5 == 0:
            values = np.sort(values)  # ascending runs: the worst pivots, down to the heapsort
        expected = torch.from_numpy(values).argsort(0, descending=True).numpy()
        np.testing.assert_array_equal(descending_order(values), expected)
