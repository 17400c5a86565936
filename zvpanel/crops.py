"""A small JPEG of the person at each crossing, for the review of counts (``/review``).

The camera worker cuts the counted track's box, with a margin, out of the frame the
crossing was counted on, blurs the head when the privacy setting is on, scales it so its
longer side is at most ``size`` pixels and encodes it with the feeds' JPEG encoder
(:func:`zvpanel.web.jpeg.encode_jpeg`). The crop is stored with its event
(:meth:`zvpanel.storage.Database.insert_events`), keyed by the event's uid.

Why the head and not detected faces: opencv-python 5 (this project's OpenCV) no longer
ships the Haar cascade classifier, and its face detector (``FaceDetectorYN``) needs model
weights we do not ship. On the sample footage faces are also too small for a cascade:
the 32 people counted on ``data/vtest.avi`` are 66-148 pixels tall (faces 8-18 pixels);
OpenCV 4's ``haarcascade_frontalface_default`` found a face in none of their crops, and in
6 of 32 after scaling them up 4 times. Blurring the top of the person's box covers the
face whatever its size and pose, at the price of hiding the hair and shoulders too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .config import MAX_CROP_SIZE, MIN_CROP_SIZE
from .counting import CrossingEvent
from .detections import Detections

__all__ = [
    "CropSettings",
    "event_crop",
    "event_crops",
    "head_region",
    "padded_box",
    "CROP_PADDING",
    "CROP_QUALITY",
    "HEAD_SHARE",
    "MIN_CROP_SIZE",
    "MAX_CROP_SIZE",
]

#: Margin around the person's box, as a share of the box's width and height on each side.
CROP_PADDING = 0.15
#: JPEG quality of a crop (small files: a crop is looked at, not measured).
CROP_QUALITY = 75
#: The top share of the person's box blurred for privacy: the head of someone standing
#: is the top seventh; the rest covers a box that starts above the head or a bent person.
HEAD_SHARE = 0.25
#: Blocks across the head's width after pixelation: nobody is recognisable at that.
HEAD_BLOCKS = 4


@dataclass(frozen=True)
class CropSettings:
    """How crops are made: longer side at most ``size`` pixels, head blurred or not."""

    size: int = 160
    privacy_blur: bool = True
    quality: int = CROP_QUALITY

    def __post_init__(self) -> None:
        if not MIN_CROP_SIZE <= self.size <= MAX_CROP_SIZE:
            raise ValueError(
                f"crop size={self.size}: expected {MIN_CROP_SIZE}-{MAX_CROP_SIZE} pixels"
            )
        if not 1 <= self.quality <= 100:
            raise ValueError(f"crop quality={self.quality}: expected 1-100")

    @classmethod
    def from_settings(cls, settings: Any) -> CropSettings | None:
        """The crops ``ZVPANEL_CROPS*`` ask for, or None when crops are off."""
        if not settings.crops:
            return None
        return cls(size=settings.crops_size, privacy_blur=settings.crops_privacy_blur)


def padded_box(xyxy: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """``xyxy`` grown by :data:`CROP_PADDING` on each side, clipped to the image (ints)."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    dx, dy = (x2 - x1) * CROP_PADDING, (y2 - y1) * CROP_PADDING
    left, top = max(0, int(x1 - dx)), max(0, int(y1 - dy))
    right, bottom = min(width, int(np.ceil(x2 + dx))), min(height, int(np.ceil(y2 + dy)))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def head_region(xyxy: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """The top :data:`HEAD_SHARE` of the box (ints, clipped): what the privacy blur hides."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    head_bottom = y1 + (y2 - y1) * HEAD_SHARE
    left, top = max(0, int(x1)), max(0, int(y1))
    right, bottom = min(width, int(np.ceil(x2))), min(height, int(np.ceil(head_bottom)))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def _pixelate(image: np.ndarray, region: tuple[int, int, int, int]) -> None:
    """Replace ``region`` of ``image`` (in place) by :data:`HEAD_BLOCKS` blocks across."""
    x1, y1, x2, y2 = region
    part = image[y1:y2, x1:x2]
    h, w = part.shape[:2]
    blocks_x = max(1, min(HEAD_BLOCKS, w))
    blocks_y = max(1, min(h, round(HEAD_BLOCKS * h / max(w, 1))))
    small = cv2.resize(part, (blocks_x, blocks_y), interpolation=cv2.INTER_AREA)
    image[y1:y2, x1:x2] = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def event_crop(
    image: np.ndarray, xyxy: Sequence[float], settings: CropSettings, camera_id: int = -1
) -> bytes:
    """The JPEG of the person in box ``xyxy`` of the BGR ``image`` (which is not changed)."""
    from .web.jpeg import encode_jpeg  # the one JPEG path; web imports the engine

    height, width = image.shape[:2]
    left, top, right, bottom = padded_box(xyxy, width, height)
    crop = np.ascontiguousarray(image[top:bottom, left:right])  # a copy: frames are shared
    if settings.privacy_blur:
        x1, y1, x2, y2 = head_region(xyxy, width, height)
        _pixelate(crop, (x1 - left, y1 - top, x2 - left, y2 - top))
    h, w = crop.shape[:2]
    if max(h, w) > settings.size:
        scale = settings.size / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    return encode_jpeg(crop, settings.quality, camera_id).tobytes()


def event_crops(
    image: np.ndarray,
    detections: Detections,
    events: Sequence[CrossingEvent],
    settings: CropSettings,
    camera_id: int = -1,
) -> tuple[bytes | None, ...]:
    """One crop per event (in order), from its track's box in ``detections``; None for an
    event whose track has no box in this frame."""
    boxes = {int(t): detections.xyxy[i] for i, t in enumerate(detections.tracker_id.tolist())}
    return tuple(
        event_crop(image, boxes[e.track_id], settings, camera_id) if e.track_id in boxes else None
        for e in events
    )
