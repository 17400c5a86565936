"""One camera's person tracker: ByteTrack (numpy) or Ultralytics' BoT-SORT on :class:`Detections`."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace
from typing import Any, get_args

import numpy as np
import yaml

from ..config import TrackerKind
from ..detection.yolo import configure_ultralytics
from ..detections import Detections
from ..errors import ConfigError
from .bytetrack import ByteTracker

__all__ = [
    "PersonTracker",
    "TrackerKind",
    "TRACKER_KINDS",
    "REFERENCE_FPS",
    "DEFAULT_OVERRIDES",
    "DEFAULT_IOU_BUFFER",
    "MAX_BOX_PAD",
]

TRACKER_KINDS: tuple[str, ...] = get_args(TrackerKind)
#: Ultralytics' ``track_buffer`` counts frames of a 30 fps video (its trackers scale
#: ``max_time_lost = frame_rate / 30 * track_buffer``); ours is scaled the same way to the
#: camera's real detection rate, so a lost track is kept for the same *time* at any rate.
REFERENCE_FPS = 30.0
#: zvpanel's changes to the YAML defaults shipped with Ultralytics, tuned on vtest.avi against
#: its ground truth (benchmarks/accuracy.py). Fusing the detection score into the match cost
#: made tracks break at 5 detections/s (a weak detection of a moving person no longer
#: matched). Shop cameras are fixed, so BoT-SORT's global motion compensation only costs
#: time; it is switched off.
DEFAULT_OVERRIDES: dict[str, dict[str, Any]] = {
    "bytetrack": {"fuse_score": False},
    "botsort": {"fuse_score": False, "gmc_method": "none"},
}
#: Buffered IoU (Yang et al., "Hard to track objects with irregular motions and similar
#: appearances? Make it easier by buffering the matching space", 2023): the tracker matches
#: boxes enlarged on each side by this many box sizes per second between two updates. At a
#: few detections per second a walking person moves about a body width between frames, so
#: plain boxes no longer overlap their track's prediction and the track breaks (a broken
#: track misses the crossing). 3.0 pads by 0.3 box at 10/s, 0.6 at 5/s.
DEFAULT_IOU_BUFFER = 3.0
#: The padding never exceeds this many box sizes per side (below 2 detections/s).
MAX_BOX_PAD = 1.5


def _tracker_yaml(kind: str) -> Path:
    """Ultralytics' own ``cfg/trackers/<kind>.yaml``, found without importing Ultralytics
    (which imports torch)."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the ultralytics package is not installed; its tracker settings are")
    return Path(spec.submodule_search_locations[0]) / "cfg" / "trackers" / f"{kind}.yaml"


def _tracker_args(kind: str, overrides: dict[str, Any]) -> SimpleNamespace:
    if kind not in TRACKER_KINDS:
        raise ConfigError(f"tracker {kind!r} is not one of {', '.join(TRACKER_KINDS)}")
    values = dict(yaml.safe_load(_tracker_yaml(kind).read_text()))
    unknown = sorted(set(overrides) - set(values))
    if unknown:
        raise ConfigError(
            f"unknown {kind} tracker setting(s) {unknown}; known: {', '.join(sorted(values))}"
        )
    values.update(DEFAULT_OVERRIDES[kind])
    values.update(overrides)
    values["with_reid"] = False  # no ReID model can be downloaded; appearance is not needed
    return SimpleNamespace(**values)


def _new_tracker(kind: str, args: SimpleNamespace):
    """ByteTrack in numpy (no torch: see :mod:`.bytetrack`); BoT-SORT from Ultralytics."""
    if kind == "bytetrack":
        return ByteTracker(
            track_high_thresh=args.track_high_thresh,
            track_low_thresh=args.track_low_thresh,
            new_track_thresh=args.new_track_thresh,
            match_thresh=args.match_thresh,
            fuse_score=args.fuse_score,
            track_buffer=args.track_buffer,
        )
    configure_ultralytics()  # before the first import of ultralytics
    from ultralytics.trackers import BOTSORT

    return BOTSORT(args=args)


class PersonTracker:
    """Gives the people of consecutive detection frames stable ids (one instance per camera).

    ``frame_rate`` is the rate at which :meth:`update` is really called (the camera's
    detection rate), so that the time-based parameters mean the same time at any rate:
    ``track_buffer`` (counted in 30 fps frames, as in Ultralytics) and the buffered-IoU
    padding ``iou_buffer`` (box sizes per second). ``overrides`` are Ultralytics tracker
    settings (``track_buffer``, ``match_thresh``, ``track_high_thresh``, ...).
    """

    def __init__(
        self,
        frame_rate: float,
        kind: str = "bytetrack",
        *,
        iou_buffer: float = DEFAULT_IOU_BUFFER,
        **overrides: Any,
    ) -> None:
        if not frame_rate > 0:
            raise ValueError(f"frame_rate={frame_rate!r} must be > 0")
        if iou_buffer < 0:
            raise ValueError(f"iou_buffer={iou_buffer!r} must be >= 0")
        self.kind = kind
        self.args = _tracker_args(kind, overrides)
        self._tracker = _new_tracker(kind, self.args)
        self.iou_buffer = float(iou_buffer)
        self.frame_rate = float(frame_rate)
        self.box_pad = 0.0
        self.set_frame_rate(frame_rate)

    @property
    def max_frames_lost(self) -> int:
        """Updates a lost track is kept for before it is dropped (at the current rate)."""
        return self._tracker.max_frames_lost

    def set_frame_rate(self, frame_rate: float) -> None:
        """Adapt to a new detection rate without losing the current tracks."""
        if not frame_rate > 0:
            raise ValueError(f"frame_rate={frame_rate!r} must be > 0")
        self.frame_rate = float(frame_rate)
        frames = frame_rate / REFERENCE_FPS * self.args.track_buffer
        self._tracker.max_frames_lost = max(1, round(frames))
        self.box_pad = min(MAX_BOX_PAD, self.iou_buffer / frame_rate)

    def update(self, detections: Detections, image: np.ndarray | None = None) -> Detections:
        """The detections the tracker confirmed this frame, with ``tracker_id`` set.

        Boxes and confidences are the detector's own (not the Kalman filter's estimate).
        ``image`` is only used by BoT-SORT's motion compensation, which is off by default.
        """
        xyxy = detections.xyxy
        if self.box_pad > 0:
            # Only the tracker sees the padded boxes; the detections keep their own.
            pad = (xyxy[:, 2:4] - xyxy[:, 0:2]) * self.box_pad
            xyxy = np.concatenate([xyxy[:, 0:2] - pad, xyxy[:, 2:4] + pad], axis=1)
        data = np.column_stack([xyxy, detections.confidence, detections.class_id]).astype(
            np.float32
        )
        data = data.reshape(-1, 6)
        if isinstance(self._tracker, ByteTracker):
            tracks = self._tracker.update(data[:, :4], data[:, 4], data[:, 5])
        else:
            from ultralytics.engine.results import Boxes

            shape = image.shape[:2] if image is not None else (1, 1)
            tracks = self._tracker.update(Boxes(data, shape), image)
        if not len(tracks):
            return Detections.empty()
        rows = tracks[:, 7].astype(np.int64)  # index of the detection each track matched
        return Detections(
            xyxy=detections.xyxy[rows],
            confidence=detections.confidence[rows],
            class_id=detections.class_id[rows],
            tracker_id=tracks[:, 4].astype(np.int64),
        )

    def reset(self) -> None:
        """Forget every track; ids start again at 1."""
        self._tracker.reset()

    def __repr__(self) -> str:
        return f"PersonTracker(frame_rate={self.frame_rate:g}, kind={self.kind!r})"
