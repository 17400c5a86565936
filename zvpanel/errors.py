"""One shallow exception hierarchy: every error a user can cause names what is wrong."""

from __future__ import annotations

__all__ = [
    "ZvpanelError",
    "ConfigError",
    "CalibrationError",
    "SourceError",
    "ModelError",
    "NotFoundError",
    "InvalidValueError",
    "ConflictError",
    "GroundTruthError",
    "AuthError",
    "one_line",
]


class ZvpanelError(Exception):
    """Base class of every error zvpanel raises on purpose."""


class ConfigError(ZvpanelError):
    """A setting is missing or invalid; the message names it and how to fix it."""


class CalibrationError(ZvpanelError, ValueError):
    """A calibration does not fit its camera (line outside the frame, ROI too small, ...)."""


class SourceError(ZvpanelError):
    """A video source cannot be opened or read."""


class ModelError(ZvpanelError):
    """The detection model is missing or fails to load."""


class NotFoundError(ZvpanelError, LookupError):
    """A store, camera, user or calibration does not exist."""


class InvalidValueError(ZvpanelError, ValueError):
    """A value given to the database is invalid (bad time zone, empty name, short password)."""


class ConflictError(ZvpanelError):
    """The change clashes with what is stored (duplicate name, store that still has cameras)."""


class GroundTruthError(ZvpanelError, ValueError):
    """A ground-truth file cannot be read."""


class AuthError(ZvpanelError):
    """Wrong credentials, or a missing, invalid or expired token."""


def one_line(error: BaseException) -> str:
    """An error for a log line: its first line (a driver's may add hints on more), or
    its type when it says nothing."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
