"""OpenVINO inference without Ultralytics' predictor: any input shape, several requests at once.

Ultralytics runs an exported OpenVINO model at the one shape it was exported with (640x640)
and through one synchronous request. :class:`OpenVinoRunner` reads the same IR, reshapes a
copy of it to each input shape asked for (a 4:3 camera: 640x480, 16:9: 640x384, the
minimum rectangle Ultralytics' ``rect`` letterboxing gives a ``.pt`` model) and compiles it
with the THROUGHPUT hint, so that several camera threads each run their own infer request at
the same time. The letterboxing, non-maximum suppression and box scaling are Ultralytics' (8.4) own
steps, transcribed to numpy so that counting never imports torch (about 500 MB of resident
memory per process): the boxes are the ones its predictor gives for that input shape
(``tests/test_openvino.py`` compares them on real frames).
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .torch_order import descending_order

__all__ = ["OpenVinoRunner", "is_openvino_model", "letterbox", "MAX_SHAPES", "STRIDE"]

log = logging.getLogger(__name__)

#: The network's stride: every input side is a multiple of it.
STRIDE = 32
#: Distinct input shapes compiled at most (one per camera aspect ratio and ROI shape; each
#: costs a compile and its memory). Beyond it, frames use the square shape.
MAX_SHAPES = 8
#: Ultralytics' prediction defaults (``ultralytics/cfg/default.yaml``): NMS IoU, boxes kept.
NMS_IOU = 0.7
MAX_DETECTIONS = 300
#: Ultralytics' NMS: boxes considered at most, and the offset that keeps classes apart.
MAX_NMS = 30000
CLASS_OFFSET = 7680
#: Grey of the letterbox padding (Ultralytics' ``LetterBox`` default).
PAD_VALUE = 114
#: Strides of a YOLOv8 detection head's three levels, and the constants of its head that
#: depend on the input size (anchor centres twice, strides, two Reshape targets).
HEAD_STRIDES = (8, 16, 32)
HEAD_CONSTANTS = 5


def is_openvino_model(path: str | Path) -> bool:
    """A folder holding an OpenVINO IR (``*.xml``), or the ``.xml`` itself."""
    path = Path(path)
    return path.suffix == ".xml" or (path.is_dir() and any(path.glob("*.xml")))


def letterbox(image: np.ndarray, imgsz: int, rect: bool) -> np.ndarray:
    """``image`` scaled into ``imgsz`` and padded: to the square, or (``rect``) to the
    smallest multiple of :data:`STRIDE` around it, exactly as Ultralytics' ``LetterBox``
    (``auto=rect``, centred, scaled up too, linear interpolation)."""
    shape = image.shape[:2]
    r = min(imgsz / shape[0], imgsz / shape[1])
    new_unpad = max(round(shape[1] * r), 1), max(round(shape[0] * r), 1)
    dw, dh = imgsz - new_unpad[0], imgsz - new_unpad[1]
    if rect:
        dw, dh = np.mod(dw, STRIDE), np.mod(dh, STRIDE)
    dw, dh = dw / 2, dh / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    if shape[::-1] != new_unpad:
        image = cv2.resize(image, new_unpad, interpolation=cv2.INTER_LINEAR)
    if image.ndim == 2:
        image = image[..., None]
    h, w, c = image.shape
    if c == 3:
        return cv2.copyMakeBorder(
            image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3
        )
    padded = np.full((h + top + bottom, w + left + right, c), PAD_VALUE, dtype=image.dtype)
    padded[top : top + h, left : left + w] = image
    return padded


def non_max_suppression(
    output: np.ndarray, confidence: float, classes: list[int] | None
) -> np.ndarray:
    """Rows ``x1, y1, x2, y2, confidence, class`` (input pixels) from a YOLOv8 head's output
    ``[1, 4 + classes, anchors]``: Ultralytics' ``non_max_suppression`` (best class per
    box, class-aware, IoU :data:`NMS_IOU`, at most :data:`MAX_DETECTIONS`) in numpy.
    """
    pred = output[0]
    scores = pred[4:]
    x = pred.T[scores.max(0) > confidence]
    if not len(x):
        return np.zeros((0, 6), np.float32)
    xy, half = x[:, :2], x[:, 2:4] / 2
    best = x[:, 4:].argmax(1)
    conf = x[np.arange(len(x)), 4 + best]
    rows = np.concatenate(
        [xy - half, xy + half, conf[:, None], best[:, None].astype(np.float32)], axis=1
    )[conf > confidence]
    if classes is not None:
        rows = rows[np.isin(rows[:, 5], classes)]
    if len(rows) > MAX_NMS:
        rows = rows[descending_order(rows[:, 4])[:MAX_NMS]]
    keep = _greedy_nms(rows[:, :4] + rows[:, 5:6] * CLASS_OFFSET, rows[:, 4], NMS_IOU)
    return rows[keep[:MAX_DETECTIONS]]


def _greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept, best first (Ultralytics' ``TorchNMS.nms``, the same float32 steps)."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = descending_order(scores)  # equal scores in torch's order: it decides who stays
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = (np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])).clip(min=0)
        h = (np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])).clip(min=0)
        inter = w * h
        if inter.sum() == 0:
            order = rest
            continue
        order = rest[inter / (areas[i] + areas[rest] - inter) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def scale_boxes(rows: np.ndarray, input_shape: tuple[int, int], image_shape) -> np.ndarray:
    """Boxes of a letterboxed input mapped back to the image's pixels and clipped to it, in
    place (Ultralytics' ``scale_boxes``)."""
    gain = min(input_shape[0] / image_shape[0], input_shape[1] / image_shape[1])
    new_h, new_w = (max(round(side * gain), 1) for side in image_shape[:2])
    gain_y, gain_x = new_h / image_shape[0], new_w / image_shape[1]
    pad_x = round((input_shape[1] - new_w) / 2 - 0.1)
    pad_y = round((input_shape[0] - new_h) / 2 - 0.1)
    rows[:, [0, 2]] -= pad_x
    rows[:, [1, 3]] -= pad_y
    rows[:, [0, 2]] /= gain_x
    rows[:, [1, 3]] /= gain_y
    rows[:, [0, 2]] = rows[:, [0, 2]].clip(0, image_shape[1])
    rows[:, [1, 3]] = rows[:, [1, 3]].clip(0, image_shape[0])
    return rows


def anchor_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The detection head's anchor centres ``[1, 2, n]`` and strides ``[1, 1, n]`` for an
    input of ``height`` x ``width`` (Ultralytics' ``make_anchors``, grid offset 0.5)."""
    points, strides = [], []
    for stride in HEAD_STRIDES:
        ys, xs = np.meshgrid(
            np.arange(height // stride) + 0.5, np.arange(width // stride) + 0.5, indexing="ij"
        )
        points.append(np.stack((xs.ravel(), ys.ravel())))
        strides.append(np.full(xs.size, stride))
    return (
        np.concatenate(points, axis=1)[None].astype(np.float32),
        np.concatenate(strides)[None, None].astype(np.float32),
    )


def reshape_detect_head(model, height: int, width: int):
    """A static YOLOv8 detection IR reshaped to a ``height`` x ``width`` input.

    A static export bakes the anchor count of its input (8400 at 640x640) into the head: the
    anchor centres, their strides and two Reshape targets. Those constants are found by value
    and replaced by the ones of the new input, together with the input itself, and only then
    are the shapes propagated (``model.reshape`` would stop at the first old constant).
    Raises ``ValueError`` for a model whose head does not have them.
    """
    import openvino as ov
    import openvino.opset13 as opset

    old_h, old_w = (int(side) for side in model.input().get_shape()[2:])
    old_points, old_strides = anchor_grid(old_h, old_w)
    points, strides = anchor_grid(height, width)
    old_n = old_points.shape[2]
    replaced = 0
    for node in model.get_ordered_ops():
        if node.get_type_name() != "Constant":
            continue
        data = node.get_data()
        if data.shape == old_points.shape and np.array_equal(data, old_points):
            new = points
        elif data.shape == old_strides.shape and np.array_equal(data, old_strides):
            new = strides
        elif data.ndim == 1 and data.size <= 4 and data.dtype.kind == "i" and old_n in data:
            # -1: the Reshape infers the anchor count, valid before and after the reshape.
            new = np.where(data == old_n, -1, data).astype(data.dtype)
        else:
            continue
        node.output(0).replace(opset.constant(new).output(0))
        replaced += 1
    if replaced < HEAD_CONSTANTS:
        raise ValueError(
            f"model {model.get_friendly_name()!r}: found {replaced} of the "
            f"{HEAD_CONSTANTS} detection-head constants a reshape needs"
        )
    old_input = model.get_parameters()[0]
    new_input = opset.parameter([1, 3, height, width], old_input.get_element_type())
    new_input.output(0).get_tensor().set_names(old_input.output(0).get_names())
    old_input.output(0).replace(new_input.output(0))
    reshaped = ov.Model(model.get_results(), [new_input], model.get_friendly_name())
    reshaped.validate_nodes_and_infer_types()  # propagate the new shapes through the graph
    return reshaped


def _class_names(metadata: Path) -> dict[int, str]:
    import yaml

    names = (yaml.safe_load(metadata.read_text()) or {}).get("names") or {}
    return {int(class_id): str(name) for class_id, name in names.items()}


@dataclass
class _Shape:
    """One compiled input shape and its pool of idle infer requests."""

    compiled: object
    idle: queue.Queue


class OpenVinoRunner:
    """Runs one OpenVINO detection IR for many threads; ``__call__`` returns Ultralytics-style
    rows ``x1, y1, x2, y2, confidence, class`` in the pixels of the image given.

    ``requests`` infer requests per shape may run at once (0: OpenVINO's optimal number for
    the THROUGHPUT hint; 1: one at a time, as Ultralytics does).
    """

    def __init__(self, model: str | Path, imgsz: int, *, rect: bool, requests: int) -> None:
        import openvino as ov

        path = Path(model)
        self.xml = path if path.suffix == ".xml" else next(path.glob("*.xml"))
        self.imgsz, self.rect, self.requests = int(imgsz), bool(rect), int(requests)
        self._core = ov.Core()
        self._core.read_model(self.xml)  # a broken IR fails here, not on the first frame
        #: The model's class names, from the ``metadata.yaml`` Ultralytics exports beside it.
        self.names = _class_names(self.xml.with_name("metadata.yaml"))
        self._config = {"PERFORMANCE_HINT": "THROUGHPUT" if self.requests != 1 else "LATENCY"}
        self._shapes: dict[tuple[int, int], _Shape] = {}
        self._compile_lock = threading.Lock()

    def __call__(self, image: np.ndarray, confidence: float, classes: list[int]) -> np.ndarray:
        padded = self._input(image)
        blob = np.ascontiguousarray(padded[..., ::-1].transpose(2, 0, 1))[None]
        output = self._infer(blob.astype(np.float32) / 255.0)
        rows = non_max_suppression(output, confidence, classes)
        return scale_boxes(rows, padded.shape[:2], image.shape)

    def input_shape(self, height: int, width: int) -> tuple[int, int]:
        """The network input (height, width) an image of this size is fed at."""
        return letterbox(np.zeros((height, width, 1), np.uint8), self.imgsz, self.rect).shape[:2]

    def _input(self, image: np.ndarray) -> np.ndarray:
        padded = letterbox(image, self.imgsz, self.rect)
        key = padded.shape[:2]
        if not self.rect or key in self._shapes:
            return padded
        if len(self._shapes) >= MAX_SHAPES:
            # Too many shapes (ROIs of many sizes): the square one fits every image.
            return letterbox(image, self.imgsz, rect=False)
        try:
            self._shape(*key)
        except ValueError as error:  # a head this code cannot reshape: the square still works
            log.warning("%s; inferring at %dx%d squares instead", error, self.imgsz, self.imgsz)
            self.rect = False
            return letterbox(image, self.imgsz, rect=False)
        return padded

    def _infer(self, blob: np.ndarray) -> np.ndarray:
        shape = self._shape(blob.shape[2], blob.shape[3])
        request = shape.idle.get()  # waits while every request of this shape is busy
        try:
            # infer() releases the GIL: other cameras' requests run on the other cores.
            return request.infer({0: blob})[0]  # a copy (share_outputs=False)
        finally:
            shape.idle.put(request)

    def _shape(self, height: int, width: int) -> _Shape:
        key = (height, width)
        shape = self._shapes.get(key)
        if shape is None:
            with self._compile_lock:
                shape = self._shapes.get(key) or self._compile(key)
        return shape

    def _compile(self, key: tuple[int, int]) -> _Shape:
        model = self._core.read_model(self.xml)
        if tuple(model.input().get_shape())[2:] != key:
            model = reshape_detect_head(model, *key)
        compiled = self._core.compile_model(model, "CPU", self._config)
        count = self.requests or compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
        idle: queue.Queue = queue.Queue()
        for _ in range(max(1, int(count))):
            idle.put(compiled.create_infer_request())
        log.info("OpenVINO input %dx%d compiled with %d infer request(s)", key[1], key[0], count)
        self._shapes[key] = shape = _Shape(compiled, idle)
        return shape
