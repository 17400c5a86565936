"""JPEG frames for the live feeds: encoded off the IOLoop, in one shared thread pool.

``/ws/live`` handlers ask :meth:`FrameEncoder.encode` for the newest result they are
about to send, so nothing is encoded while no client wants frames and a slow client never
causes the frames it skipped to be encoded; all clients that want the same variant of the
same frame share one encoding (one :class:`concurrent.futures.Future`). The video streams
(:mod:`.camera_stream`) encode with :func:`encode_jpeg` and :func:`render` on the camera's
thread instead.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from ..engine.result import FrameResult
from ..errors import ZvpanelError

__all__ = [
    "FrameVariant",
    "EncodedFrame",
    "FrameEncoder",
    "encode_jpeg",
    "render",
    "shared_encoder",
    "DEFAULT_QUALITY",
    "MIN_MAX_HEIGHT",
    "MAX_MAX_HEIGHT",
]

FrameKind = Literal["annotated", "raw"]
#: JPEG quality when a client does not ask for one.
DEFAULT_QUALITY = 80
#: Bounds of ``?max_height=`` (pixels); frames are only ever scaled down.
MIN_MAX_HEIGHT = 32
MAX_MAX_HEIGHT = 4320
#: Encoder threads. cv2 releases the GIL while encoding, so two use both cores when needed.
ENCODER_THREADS = 2
#: Results remembered per (camera, variant): the newest and the one before, for a client
#: that is one frame behind the others.
FRAMES_KEPT = 2


class EncodeError(ZvpanelError):
    """OpenCV could not encode a frame."""


@dataclass(frozen=True)
class FrameVariant:
    """What a client wants to see: annotated or raw, scaled to at most ``max_height``."""

    frames: FrameKind = "annotated"
    max_height: int | None = None
    quality: int = DEFAULT_QUALITY

    def __post_init__(self) -> None:
        if self.frames not in ("annotated", "raw"):
            raise ValueError(f"frames={self.frames!r}: expected 'annotated' or 'raw'")
        if self.max_height is not None and not MIN_MAX_HEIGHT <= self.max_height <= MAX_MAX_HEIGHT:
            raise ValueError(
                f"max_height={self.max_height}: expected {MIN_MAX_HEIGHT}-{MAX_MAX_HEIGHT} pixels"
            )
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality={self.quality}: expected 1-100")


@dataclass(frozen=True)
class EncodedFrame:
    jpeg: bytes
    width: int
    height: int


def encode_jpeg(image: np.ndarray, quality: int, camera_id: int) -> np.ndarray:
    """The JPEG bytes of a BGR image, as the uint8 array OpenCV returns (no copy)."""
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise EncodeError(f"camera {camera_id}: OpenCV could not encode frame as JPEG")
    return buffer


def render(result: FrameResult, variant: FrameVariant) -> EncodedFrame:
    """``result``'s frame as ``variant``: annotated or not, scaled down, JPEG-encoded."""
    image = result.frame.image
    if variant.frames == "annotated":
        from ..annotate import annotate  # the pipeline's drawing, imported where it is needed

        image = annotate(
            image,
            result.detections,
            result.calibration,
            result.counts,
            result.labels,
            result.zones,
        )
    height, width = image.shape[:2]
    if variant.max_height is not None and height > variant.max_height:
        width = max(1, round(width * variant.max_height / height))
        height = variant.max_height
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    buffer = encode_jpeg(image, variant.quality, result.camera_id)
    return EncodedFrame(buffer.tobytes(), width, height)


class FrameEncoder:
    """Encodes each (result, variant) at most once, in a thread pool; thread-safe."""

    def __init__(self, threads: int = ENCODER_THREADS) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="zvpanel-jpeg")
        self._lock = threading.Lock()
        self._cache: dict[tuple[int, FrameVariant], OrderedDict[int, tuple]] = {}
        self.encoded = 0  # how many encodings were started (for tests and benchmarks)

    def encode(self, result: FrameResult, variant: FrameVariant) -> Future[EncodedFrame]:
        """A future JPEG of ``result`` as ``variant``; shared by everyone asking the same."""
        key = (result.camera_id, variant)
        with self._lock:
            kept = self._cache.setdefault(key, OrderedDict())
            entry = kept.get(id(result))
            # id() alone could be reused by a new object; the stored result makes it exact.
            if entry is not None and entry[0] is result:
                return entry[1]
            future = self._pool.submit(render, result, variant)
            self.encoded += 1
            kept[id(result)] = (result, future)
            while len(kept) > FRAMES_KEPT:
                kept.popitem(last=False)
            return future

    def forget(self, camera_id: int) -> None:
        """Drop the frames kept for a camera (its last client left)."""
        with self._lock:
            for key in [k for k in self._cache if k[0] == camera_id]:
                del self._cache[key]

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


_shared: FrameEncoder | None = None
_shared_lock = threading.Lock()


def shared_encoder() -> FrameEncoder:
    """The process-wide encoder (its threads start on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = FrameEncoder()
        return _shared
