"""Video sources: files (looping), RTSP/HTTP streams (reconnecting) and webcams."""

from __future__ import annotations

from .buffer import LatestFrame
from .camera_source import (
    RECONNECT_INITIAL_S,
    RECONNECT_MAX_S,
    STOP_TIMEOUT_S,
    CameraSource,
    FrameReader,
    SourceState,
    SourceStatus,
)
from .capture import (
    FALLBACK_FPS,
    OPEN_TIMEOUT_S,
    READ_TIMEOUT_S,
    SECRET_MASK,
    SourceInfo,
    SourceKind,
    describe_source,
    iter_frames,
    mask_source,
    open_capture,
    parse_source,
    probe_source,
    source_kind,
)
from .frame import Frame

__all__ = [
    "RECONNECT_INITIAL_S",
    "RECONNECT_MAX_S",
    "STOP_TIMEOUT_S",
    "CameraSource",
    "FrameReader",
    "LatestFrame",
    "SourceState",
    "SourceStatus",
    "FALLBACK_FPS",
    "OPEN_TIMEOUT_S",
    "READ_TIMEOUT_S",
    "SECRET_MASK",
    "Frame",
    "SourceInfo",
    "SourceKind",
    "describe_source",
    "iter_frames",
    "mask_source",
    "open_capture",
    "parse_source",
    "probe_source",
    "source_kind",
]
