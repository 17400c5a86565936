"""Motion gating: skip the detector on a camera while nothing moves in its region of interest.

As Frigate does before it detects, each frame taken is shrunk to a small grey image and
compared with the one the detector last saw; if too few pixels changed, the detector is
not run and the people it found last are handed on again (nothing moved, so they are
still there: the tracker keeps their ids and no crossing can happen). The detector still
runs on every frame while anyone it last found stands near a counting line (a crossing may
be in progress), for a while after any motion (a slow walker between two changed frames),
and at least every :data:`MAX_GATED_S` seconds (so a stale picture cannot last).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from ..calibration import Calibration, CountingLine
from ..detections import Detections
from .yolo import crop_box

__all__ = ["MotionGate", "GatedDetector"]

#: Width of the small grey image compared (pixels); its height keeps the ROI's ratio.
SMALL_WIDTH = 160
#: Gaussian blur of the small image (odd kernel side): sensor noise is not motion.
BLUR_KERNEL = 5
#: A small pixel changed if its grey value moved by more than this (0-255).
PIXEL_THRESHOLD = 25
#: Motion if more than this share of the small image's pixels changed.
MIN_CHANGED_SHARE = 0.002
#: After motion, keep detecting every frame for this long (seconds).
KEEP_DETECTING_S = 2.0
#: Detect at least this often even when nothing moves (seconds).
MAX_GATED_S = 5.0
#: A person is near a line if its anchor (bottom centre) is within this many box heights.
NEAR_LINE_HEIGHTS = 1.0


class MotionGate:
    """Decides, frame by frame, whether one camera's detector must run.

    ``rate`` is the camera's detection rate (frames taken per second): the time limits are
    counted in frames taken, so the gate behaves the same live and on a file.
    """

    def __init__(self, lines: Sequence[CountingLine], rate: float) -> None:
        self.lines = tuple(lines)
        self.rate = float(rate)
        self._reference: np.ndarray | None = None  # the small grey image last detected on
        self._since_motion = math.inf  # frames taken since motion was last seen
        self._gated_run = 0  # frames gated in a row

    def must_detect(self, image: np.ndarray, last: Detections) -> bool:
        """True: run the detector on ``image`` (a camera frame, cropped to the ROI);
        ``last`` is what the detector found the last time it ran (frame pixels, as the lines)."""
        small = _small_grey(image)
        moved = self._moved(small)
        self._since_motion = 0 if moved else self._since_motion + 1
        detect = (
            moved
            or self._since_motion < KEEP_DETECTING_S * self.rate
            or self._gated_run + 1 > MAX_GATED_S * self.rate
            or self._near_a_line(last)
        )
        if detect:
            self._reference = small
            self._gated_run = 0
        else:
            self._gated_run += 1
        return detect

    def reset(self) -> None:
        self._reference, self._since_motion, self._gated_run = None, math.inf, 0

    def _moved(self, small: np.ndarray) -> bool:
        if self._reference is None or self._reference.shape != small.shape:
            return True
        changed = cv2.absdiff(small, self._reference) > PIXEL_THRESHOLD
        return bool(changed.mean() > MIN_CHANGED_SHARE)

    def _near_a_line(self, last: Detections) -> bool:
        if not self.lines or not len(last):
            return False
        x1, y1, x2, y2 = (last.xyxy[:, i] for i in range(4))
        anchors = np.stack(((x1 + x2) / 2, y2), axis=1)
        reach = NEAR_LINE_HEIGHTS * (y2 - y1)
        return any(bool((_distance(anchors, line) <= reach).any()) for line in self.lines)


class GatedDetector:
    """One camera's detector with motion gating in front (a ``Detector`` itself).

    When the gate says nothing moved, the inner detector's last detections are handed on.
    """

    def __init__(self, detector, calibration: Calibration) -> None:
        self.detector = detector
        self.labels = detector.labels
        self.gate = MotionGate(calibration.lines, calibration.detection_fps)
        self._last = Detections.empty()
        self.frames = 0
        self.gated = 0

    @property
    def gated_share(self) -> float:
        """Share of the frames taken that skipped the detector."""
        return self.gated / self.frames if self.frames else 0.0

    def set_calibration(self, calibration: Calibration) -> None:
        self.gate = MotionGate(calibration.lines, calibration.detection_fps)

    def detect(self, image: np.ndarray, roi=None) -> Detections:
        height, width = image.shape[:2]
        x1, y1, x2, y2 = crop_box(roi, width, height)
        self.frames += 1
        if self.gate.must_detect(image[y1:y2, x1:x2], self._last):
            try:
                self._last = self.detector.detect(image, roi)
            except Exception:
                self.gate.reset()  # the next frame is compared with nothing, so detected
                raise
        else:
            self.gated += 1
        return self._last


def _small_grey(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    size = (SMALL_WIDTH, max(1, round(height * SMALL_WIDTH / width)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    if small.ndim == 3:
        small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    return cv2.GaussianBlur(small, (BLUR_KERNEL, BLUR_KERNEL), 0)


def _distance(points: np.ndarray, line: CountingLine) -> np.ndarray:
    """Distance of each point to the line's segment (pixels)."""
    start, end = np.array(line.start), np.array(line.end)
    along = end - start
    length2 = float(along @ along) or 1.0
    t = np.clip(((points - start) @ along) / length2, 0.0, 1.0)
    return np.linalg.norm(points - (start + t[:, None] * along), axis=1)
