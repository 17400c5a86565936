"""One shallow exception hierarchy: every error a user can cause names what is wrong."""

from __future__ import annotations

__all__ = [
    "ZvpanelError",
    "ConfigError",
    "CalibrationError",
    "SourceError",
    "ModelError",
    "NotFoundError",
    "AuthError",
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


class AuthError(ZvpanelError):
    """Wrong credentials, or a missing, invalid or expired token."""
