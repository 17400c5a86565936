"""Person detection: Ultralytics YOLO, person classes only, boxes in full-frame pixels."""

from .yolo import MODEL_SETTING, YoloDetector, configure_ultralytics, crop_box

__all__ = ["YoloDetector", "configure_ultralytics", "crop_box", "MODEL_SETTING"]
