"""Person detection with Ultralytics YOLO: one model, person classes only, full-frame pixels."""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..detections import Detections
from ..errors import CalibrationError, ConfigError, ModelError
from .openvino import OpenVinoRunner, is_openvino_model, letterbox

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["YoloDetector", "configure_ultralytics", "crop_box", "MODEL_SETTING"]

log = logging.getLogger(__name__)

#: The environment variable that chooses the weights (named in every model error).
MODEL_SETTING = "ZVPANEL_MODEL"
#: Ultralytics reads these once, when it is first imported. A server must never pip-install
#: packages at run time, probe the network at import, send telemetry, or log to stdout (which
#: would break ``zvpanel count --json``). A value already set in the environment wins.
ULTRALYTICS_ENV = {
    "YOLO_AUTOINSTALL": "false",
    "YOLO_OFFLINE": "true",
    "YOLO_VERBOSE": "false",
}
#: Sub-directory of the data directory where Ultralytics keeps its settings file.
ULTRALYTICS_CONFIG_SUBDIR = "ultralytics"


def configure_ultralytics(config_dir: Path | str | None = None) -> None:
    """Set Ultralytics' environment defaults; call before anything imports ``ultralytics``.

    Its settings file goes to ``config_dir`` (default: a per-user temporary directory)
    instead of ``~/.config``.
    """
    if config_dir is None:
        config_dir = Path(tempfile.gettempdir()) / f"zvpanel-ultralytics-{os.getuid()}"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    for name, value in ULTRALYTICS_ENV.items():
        os.environ.setdefault(name, value)
    if "ultralytics" in sys.modules:
        log.debug("ultralytics was imported before configure_ultralytics(); its env is as it was")


def crop_box(roi: Sequence[float] | None, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer crop ``x1, y1, x2, y2`` covering ``roi``, clipped to a ``width`` x ``height`` frame.

    The crop is the smallest pixel rectangle containing the ROI, so no part of it is lost.
    """
    if roi is None:
        return 0, 0, width, height
    x1, y1, x2, y2 = roi
    box = (
        max(0, math.floor(x1)),
        max(0, math.floor(y1)),
        min(width, math.ceil(x2)),
        min(height, math.ceil(y2)),
    )
    if box[2] <= box[0] or box[3] <= box[1]:
        raise CalibrationError(f"roi {tuple(roi)} does not overlap the {width}x{height} frame")
    return box


class YoloDetector:
    """Finds people in BGR images with one Ultralytics YOLO model.

    ``class_id`` in the returned :class:`Detections` indexes :attr:`labels` (the configured
    class names), not the model's own class list. One instance may be shared by several
    camera threads.

    An OpenVINO model runs through :class:`~.openvino.OpenVinoRunner`: with ``rect`` each
    image is fed at its own aspect ratio (640x480 for 4:3) instead of a 640x640 square, and
    up to ``requests`` images (0: as many as OpenVINO finds best) are inferred at once, so
    several cameras keep every core busy. With ``rect=False, requests=1``, and for other
    model formats, Ultralytics' predictor runs it, one call at a time under a lock (a
    ``.pt`` model letterboxes to the image's aspect ratio by itself).
    """

    def __init__(
        self,
        model: str | Path,
        classes: Sequence[str] = ("person",),
        confidence: float = 0.25,
        imgsz: int = 640,
        *,
        rect: bool = True,
        requests: int = 0,
        config_dir: Path | str | None = None,
    ) -> None:
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence={confidence!r} must be between 0 and 1")
        if requests < 0:
            raise ValueError(f"requests={requests!r} must be 0 (automatic) or more")
        configure_ultralytics(config_dir)
        self.model_path = str(model)
        self.confidence = float(confidence)
        self.imgsz = int(imgsz)
        self.rect, self.requests = bool(rect), int(requests)
        # Our runner needs no Ultralytics model: loading one would compile the IR again.
        self._runner = self._openvino_runner()
        self._model = None if self._runner is not None else _load_model(self.model_path)
        names = self._runner.names if self._runner is not None else dict(self._model.names)
        if not names:
            raise ModelError(
                f"model {self.model_path!r} has no class names; set {MODEL_SETTING} to a YOLO model"
            )
        self._names: dict[int, str] = names
        self.labels: tuple[str, ...] = tuple(classes)
        self._model_class_ids = _class_ids(names, self.labels, self.model_path)
        # Model class id -> index into self.labels (-1: a class we never ask for).
        self._to_label = np.full(max(names) + 1, -1, dtype=np.int32)
        for label_index, class_id in enumerate(self._model_class_ids):
            self._to_label[class_id] = label_index
        self._lock = threading.Lock()
        #: Ultralytics' timing of the last call, ms: preprocess, inference, postprocess.
        self.last_speed: dict[str, float] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> YoloDetector:
        """The detector the settings describe (model, person classes, confidence, inference size)."""
        return cls(
            settings.model,
            classes=settings.person_classes,
            confidence=settings.confidence,
            imgsz=settings.imgsz,
            rect=settings.rect_inference,
            requests=settings.inference_requests,
            config_dir=settings.data_dir / ULTRALYTICS_CONFIG_SUBDIR,
        )

    @property
    def model_classes(self) -> dict[int, str]:
        """The model's own class names."""
        return dict(self._names)

    def _openvino_runner(self) -> OpenVinoRunner | None:
        path = self.model_path
        if not (is_openvino_model(path) and (self.rect or self.requests != 1)):
            return None
        try:
            return OpenVinoRunner(path, self.imgsz, rect=self.rect, requests=self.requests)
        except Exception as error:  # any loader failure is the same user problem: a bad model
            raise ModelError(
                f"model {path!r} failed to load ({type(error).__name__}: {error}). "
                f"Set {MODEL_SETTING} to a working YOLO detection model."
            ) from error

    def warmup(self, width: int = 640, height: int = 480) -> None:
        """Run the model once so the first real frame does not pay for setting it up."""
        self.detect(np.zeros((height, width, 3), dtype=np.uint8))

    def input_shape(self, height: int, width: int) -> tuple[int, int]:
        """The network input (height, width) a ``width`` x ``height`` image is fed at."""
        if self._runner is not None:
            return self._runner.input_shape(height, width)
        # Ultralytics letterboxes a .pt model to the image's ratio, an export to its square.
        rect = Path(self.model_path).suffix == ".pt"
        return letterbox(np.zeros((height, width, 1), np.uint8), self.imgsz, rect).shape[:2]

    def predict(self, image: np.ndarray):
        """The raw Ultralytics result for one BGR image (inference, NMS, person classes only)."""
        with self._lock:
            if self._model is None:  # an OpenVINO model run by our runner until now
                self._model = _load_model(self.model_path)
            result = self._model.predict(
                image,
                classes=self._model_class_ids,
                conf=self.confidence,
                imgsz=self.imgsz,
                verbose=False,
            )[0]
            self.last_speed = dict(result.speed)
        return result

    def detect(self, image: np.ndarray, roi: Sequence[float] | None = None) -> Detections:
        """People in ``image`` (BGR, HxWx3); with ``roi``, only inside it. Boxes in frame pixels."""
        height, width = image.shape[:2]
        x1, y1, x2, y2 = crop_box(roi, width, height)
        crop = image if (x1, y1, x2, y2) == (0, 0, width, height) else image[y1:y2, x1:x2]
        data = self._rows(crop)
        if not len(data):
            return Detections.empty()
        labels = self._to_label[data[:, 5].astype(np.int64)]
        keep = labels >= 0  # the model was asked for these classes only; belt and braces
        detections = Detections(
            xyxy=data[keep, :4], confidence=data[keep, 4], class_id=labels[keep]
        )
        # Boxes are relative to the crop: its top-left corner is (x1, y1) in the frame.
        return detections.shifted(x1, y1) if (x1 or y1) else detections

    def _rows(self, image: np.ndarray) -> np.ndarray:
        """Boxes as rows ``x1, y1, x2, y2, confidence, model class`` in ``image`` pixels."""
        if self._runner is not None:
            return self._runner(image, self.confidence, self._model_class_ids)
        data = self.predict(image).boxes.data
        return data.cpu().numpy() if hasattr(data, "cpu") else np.asarray(data)

    def __repr__(self) -> str:
        return (
            f"YoloDetector({self.model_path!r}, classes={self.labels}, "
            f"confidence={self.confidence}, imgsz={self.imgsz}, rect={self.rect}, "
            f"requests={self.requests})"
        )


def _load_model(path: str):
    if not Path(path).exists() and (os.sep in path or path.startswith(".")):
        raise ModelError(
            f"model {path!r} does not exist. Set {MODEL_SETTING} to a .pt file, an .onnx "
            "file or an OpenVINO model folder (or pass --model)."
        )
    from ultralytics import YOLO  # heavy import (torch): only when a detector is built

    try:
        model = YOLO(path, task="detect")
        names = model.names  # OpenVINO/ONNX models read their metadata here
    except Exception as error:  # any loader failure is the same user problem: a bad model
        raise ModelError(
            f"model {path!r} failed to load ({type(error).__name__}: {error}). "
            f"Set {MODEL_SETTING} to a working YOLO detection model."
        ) from error
    if not names:
        raise ModelError(f"model {path!r} has no class names; set {MODEL_SETTING} to a YOLO model")
    return model


def _class_ids(names: dict[int, str], wanted: Sequence[str], path: str) -> list[int]:
    by_name = {name: class_id for class_id, name in names.items()}
    unknown = [name for name in wanted if name not in by_name]
    if unknown or not wanted:
        raise ConfigError(
            f"class(es) {unknown or list(wanted)} are not in model {path!r}; it knows: "
            + ", ".join(names[i] for i in sorted(names))
            + ". Fix ZVPANEL_PERSON_CLASSES."
        )
    return [by_name[name] for name in wanted]
