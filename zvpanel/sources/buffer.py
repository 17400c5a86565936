"""A one-slot, thread-safe buffer that always holds the newest decoded frame."""

from __future__ import annotations

import threading

from .frame import Frame

__all__ = ["LatestFrame"]


class LatestFrame:
    """The newest :class:`Frame` and its sequence number (1, 2, 3, ... per ``put``).

    The producer never blocks and nothing queues: each ``put`` replaces the previous
    frame. A consumer remembers the last sequence number it got; the difference to the
    next one it gets, minus one, is how many frames it skipped.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seq = 0
        self._frame: Frame | None = None

    def put(self, frame: Frame) -> int:
        """Replace the held frame, wake every waiting consumer; returns its sequence number."""
        with self._cond:
            self._seq += 1
            self._frame = frame
            self._cond.notify_all()
            return self._seq

    @property
    def seq(self) -> int:
        """Sequence number of the newest frame (0 before the first ``put``)."""
        with self._cond:
            return self._seq

    def latest(self) -> tuple[int, Frame] | None:
        """The newest ``(seq, frame)`` without waiting, or None if nothing was put yet."""
        with self._cond:
            if self._frame is None:
                return None
            return self._seq, self._frame

    def wait_newer(self, after_seq: int, timeout: float | None) -> tuple[int, Frame] | None:
        """Wait up to ``timeout`` seconds (None: for ever) for a frame newer than ``after_seq``.

        Returns the newest ``(seq, frame)`` — possibly several puts after ``after_seq`` —
        or None on timeout.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._seq > after_seq, timeout):
                return None
            assert self._frame is not None  # seq > 0 implies a frame was put
            return self._seq, self._frame
