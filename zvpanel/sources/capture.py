"""Opening video sources with OpenCV: files, RTSP/HTTP streams and webcams.

One place decides what a source string means (:func:`parse_source`), how it is opened
(:func:`open_capture`, with timeouts for network streams) and what the error says when it
cannot be: every :class:`~zvpanel.errors.SourceError` names the source and the reason.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import cv2

from ..display import SECRET_MASK, mask_source
from ..errors import SourceError
from .frame import Frame

__all__ = [
    "TRUNCATED_RATIO",
    "SourceKind",
    "SourceInfo",
    "STREAM_SCHEMES",
    "OPEN_TIMEOUT_S",
    "READ_TIMEOUT_S",
    "FALLBACK_FPS",
    "parse_source",
    "source_kind",
    "describe_source",
    "mask_source",
    "SECRET_MASK",
    "open_capture",
    "capture_fps",
    "iter_frames",
    "probe_source",
]

SourceKind = Literal["file", "stream", "webcam"]

# URL schemes FFmpeg reads as network streams; anything else that is not a digit string
# is taken as a file path.
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https")


# A camera that does not answer must not block a thread for ever: FFmpeg gives up
# connecting after OPEN_TIMEOUT_S and a read that gets no data after READ_TIMEOUT_S.
OPEN_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 5.0

# Containers that report no frame rate (0) are timed as if they ran at this rate.
FALLBACK_FPS = 25.0
# A reported rate above this is a time-base artefact (e.g. 90000 from RTSP), not a rate.
MAX_PLAUSIBLE_FPS = 240.0

# A file that ends before this share of the frames its container announces is reported
# as truncated or damaged.
TRUNCATED_RATIO = 0.9

SourceSpec = str | int | os.PathLike

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceInfo:
    """What :func:`probe_source` learned by opening a source and decoding one frame."""

    width: int
    height: int
    fps: float  # nominal rate; FALLBACK_FPS for files that report none, 0.0 if unknown (live)
    kind: SourceKind
    frame_count: int | None = None  # files only, as the container reports it


def parse_source(source: SourceSpec) -> str | int:
    """Normalise a source: a string of digits is a webcam index, anything else a URL/path.

    >>> parse_source("0"), parse_source(" rtsp://cam/1 "), parse_source("data/vtest.avi")
    (0, 'rtsp://cam/1', 'data/vtest.avi')
    """
    if isinstance(source, bool):  # bool is an int subclass; True is no camera index
        raise SourceError(f"video source must be a path, URL or webcam index, got {source!r}")
    if isinstance(source, int):
        if source < 0:
            raise SourceError(f"webcam index must be >= 0, got {source}")
        return source
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        raise SourceError(f"video source must be a path, URL or webcam index, got {source!r}")
    text = source.strip()
    if not text:
        raise SourceError("video source is empty: give a file path, a stream URL or a webcam index")
    if text.isdigit():
        return int(text)
    return text


def source_kind(source: SourceSpec) -> SourceKind:
    """``"webcam"`` for an index, ``"stream"`` for rtsp/rtmp/http(s) URLs, else ``"file"``."""
    parsed = parse_source(source)
    if isinstance(parsed, int):
        return "webcam"
    scheme = urlsplit(parsed).scheme.lower()
    return "stream" if scheme in STREAM_SCHEMES else "file"


def describe_source(source: SourceSpec) -> str:
    """The source as shown in messages and logs, with any password in a URL masked."""
    parsed = parse_source(source)
    if isinstance(parsed, int):
        return f"webcam {parsed}"
    return mask_source(parsed)


def open_capture(
    source: SourceSpec,
    *,
    open_timeout_s: float = OPEN_TIMEOUT_S,
    read_timeout_s: float = READ_TIMEOUT_S,
) -> cv2.VideoCapture:
    """Open ``source`` and return the opened capture; the caller must ``release()`` it.

    Files and streams go through FFmpeg (streams with open/read timeouts); a webcam index
    through OpenCV's default camera backend. Raises :class:`SourceError` naming the source
    and why it cannot be opened.
    """
    parsed = parse_source(source)
    kind = source_kind(parsed)
    name = describe_source(parsed)
    if kind == "webcam":
        cap = cv2.VideoCapture(parsed)
        reason = "cannot open this camera (no such device, or it is busy)"
    elif kind == "stream":
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(read_timeout_s * 1000),
        ]
        cap = cv2.VideoCapture(parsed, cv2.CAP_FFMPEG, params)
        reason = f"cannot connect (no answer or refused within {open_timeout_s:g} s)"
    else:
        path = Path(parsed)
        if not path.exists():
            raise SourceError(f"cannot open video file {name!r}: no such file")
        if not path.is_file():
            raise SourceError(f"cannot open video file {name!r}: not a regular file")
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        reason = "not a video OpenCV can decode"
    if not cap.isOpened():
        cap.release()
        what = "video file" if kind == "file" else kind
        raise SourceError(f"cannot open {what} {name!r}: {reason}")
    return cap


def capture_fps(cap: cv2.VideoCapture, kind: SourceKind) -> float:
    """The nominal frame rate of an open capture.

    Files that report nothing plausible get FALLBACK_FPS (media time must advance);
    live sources get 0.0, meaning "unknown", because their frames come when they come.
    """
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    if 0.0 < fps <= MAX_PLAUSIBLE_FPS:
        return fps
    return FALLBACK_FPS if kind == "file" else 0.0


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _seek(cap: cv2.VideoCapture, start: int, kind: SourceKind) -> None:
    """Position the capture on frame ``start``: a real seek for files, skipping for live."""
    if start <= 0:
        return
    if kind == "file" and cap.set(cv2.CAP_PROP_POS_FRAMES, start):
        return
    for _ in range(start):
        if not cap.grab():
            return


def iter_frames(
    source: SourceSpec,
    *,
    start: int = 0,
    max_frames: int | None = None,
) -> Iterator[Frame]:
    """Decode ``source`` as fast as possible, for offline counting and evaluation.

    ``Frame.index`` is the 0-based decode index (``start`` for the first frame yielded);
    ``media_time`` is ``index / fps`` for files (container rate, FALLBACK_FPS if it has
    none) and seconds since opening for live sources. The capture is released when the
    source ends, when ``max_frames`` were yielded, or when the generator is closed early.
    Raises :class:`SourceError` if the source cannot be opened or yields no frame at all.
    """
    if start < 0:
        raise SourceError(f"start must be >= 0, got {start}")
    if max_frames is not None and max_frames < 0:
        raise SourceError(f"max_frames must be >= 0 or None, got {max_frames}")
    kind = source_kind(source)
    name = describe_source(source)
    cap = open_capture(source)
    try:
        fps = capture_fps(cap, kind)
        _seek(cap, start, kind)
        opened_at = time.monotonic()
        index = start
        produced = 0
        while max_frames is None or produced < max_frames:
            ok, image = cap.read()
            if not ok or image is None:
                break
            media_time = index / fps if kind == "file" else time.monotonic() - opened_at
            yield Frame(image=image, index=index, media_time=media_time, captured_at=_utc_now())
            index += 1
            produced += 1
        if produced == 0 and start == 0 and max_frames != 0:
            raise SourceError(f"video source {name!r} opened but returned no frame")
        announced = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if kind == "file" else 0
        ended = max_frames is None or produced < max_frames
        if ended and announced and index < announced * TRUNCATED_RATIO:
            log.warning(
                "video file %r ended after %d of %d frames (truncated or damaged)",
                name,
                index,
                announced,
            )
    finally:
        cap.release()


def probe_source(source: SourceSpec, timeout_s: float = OPEN_TIMEOUT_S) -> SourceInfo:
    """Open ``source`` once, decode one frame, release it, and say what it is.

    Used when an admin adds a camera: a wrong path, an unreachable camera or a file that
    is not a video is reported as a :class:`SourceError` with the reason.
    """
    kind = source_kind(source)
    name = describe_source(source)
    cap = open_capture(source, open_timeout_s=timeout_s, read_timeout_s=timeout_s)
    try:
        ok, image = cap.read()
        if not ok or image is None:
            raise SourceError(f"video source {name!r} opened but returned no frame")
        frame_count = None
        if kind == "file":
            reported = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            frame_count = reported if reported > 0 else None
        return SourceInfo(
            width=int(image.shape[1]),
            height=int(image.shape[0]),
            fps=capture_fps(cap, kind),
            kind=kind,
            frame_count=frame_count,
        )
    finally:
        cap.release()
