"""The background engine: one worker thread per camera, results published on a hub."""

from __future__ import annotations

from ..rate import MovingMean, Pacer, RateMeter
from .engine import DISABLED, NOT_CALIBRATED, Engine
from .hub import Listener, ResultHub, Subscription
from .result import CameraStatus, FrameResult, SourceState
from .worker import HARDWARE_LIMITED_RATIO, CameraSpec, CameraWorker

__all__ = [
    "Engine",
    "CameraWorker",
    "CameraSpec",
    "ResultHub",
    "Subscription",
    "Listener",
    "CameraStatus",
    "FrameResult",
    "SourceState",
    "RateMeter",
    "Pacer",
    "MovingMean",
    "HARDWARE_LIMITED_RATIO",
    "NOT_CALIBRATED",
    "DISABLED",
]
