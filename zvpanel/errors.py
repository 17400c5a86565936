"""One shallow exception hierarchy: every error a user can cause names what is wrong."""

from __future__ import annotations

import logging

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
    "OutageLog",
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


class OutageLog:
    """What a loop that retries (a poll, a renewal, a write) logs while a service is down:
    one warning when it starts failing and one info line when it works again, not a line
    per attempt.

        outage = OutageLog(log)
        try:
            beat()
        except Exception as error:
            outage.failed("heartbeat failed (%s)", one_line(error))
        else:
            outage.ended("heartbeats written again")
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self.down = False

    def failed(self, message: str, *args: object, exc_info: bool = False) -> None:
        """An attempt failed: logged as a warning (with the traceback if ``exc_info``)
        only if the one before worked."""
        if not self.down:  # the record names the caller's line, not this one
            self._log.warning(message, *args, exc_info=True if exc_info else None, stacklevel=2)
        self.down = True

    def ended(self, message: str | None = None, *args: object) -> None:
        """An attempt worked: ``message`` logged as info only if the one before failed
        (none: the caller says it worked its own way)."""
        if self.down and message is not None:
            self._log.info(message, *args, stacklevel=2)
        self.down = False
