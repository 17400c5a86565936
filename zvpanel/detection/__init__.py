"""Person detection: Ultralytics YOLO, person classes only, boxes in full-frame pixels."""

from .motion import GatedDetector, MotionGate
from .yolo import MODEL_SETTING, YoloDetector, configure_ultralytics, crop_box

__all__ = [
    "GatedDetector",
    "MotionGate",
    "YoloDetector",
    "configure_ultralytics",
    "crop_box",
    "MODEL_SETTING",
]
