"""Small clocks: a sliding-window rate meter, a pacer, a moving mean.

The file sources pace decoding with :class:`Pacer`; the camera workers pace detection
with it and measure their rates with :class:`RateMeter`.

All take the time as an argument (``time.monotonic()`` seconds) so they are pure and
testable with made-up times.
"""

from __future__ import annotations

from collections import deque

__all__ = ["RateMeter", "Pacer", "MovingMean", "RATE_WINDOW_S"]

#: Seconds over which a camera's actual rate is measured.
RATE_WINDOW_S = 5.0


class RateMeter:
    """Events per second over the last ``window`` seconds."""

    def __init__(self, window: float = RATE_WINDOW_S) -> None:
        if window <= 0:
            raise ValueError(f"window={window!r} must be > 0 seconds")
        self.window = window
        self._times: deque[float] = deque()
        self._started: float | None = None

    def reset(self, now: float) -> None:
        self._times.clear()
        self._started = now

    def tick(self, now: float, count: int = 1) -> None:
        if self._started is None:
            self._started = now
        self._times.extend([now] * count)
        self._trim(now)

    def rate(self, now: float) -> float:
        """Events per second over the window (0.0 before two events were seen).

        Measured between the first and the last event in the window, so that regular
        ticks give their exact rate (counting ticks in a fixed window is off by up to one
        tick); once the gap since the last event is longer than the usual interval, the
        gap counts too, so a camera that stalls shows its rate falling.
        """
        self._trim(now)
        n = len(self._times)
        if n < 2:
            return n / self.window
        first, last = self._times[0], self._times[-1]
        interval = (last - first) / (n - 1)
        if interval <= 0:
            return n / self.window
        if now - last <= interval:
            return (n - 1) / (last - first)
        return n / (now - first)

    def full(self, now: float) -> bool:
        """True once the meter has watched a whole window (its rate means something)."""
        return self._started is not None and now - self._started >= self.window

    def _trim(self, now: float) -> None:
        horizon = now - self.window
        while self._times and self._times[0] <= horizon:
            self._times.popleft()


class Pacer:
    """Says when the next frame is due to keep ``fps`` frames per second of wall time.

    Due times advance by one period from the previous due time (not from when the work
    finished), so the rate does not drift; when the caller falls more than ``max_lag``
    seconds behind (default: one period) it starts afresh instead of bursting to catch up.
    """

    def __init__(self, fps: float, max_lag: float | None = None) -> None:
        self.set_fps(fps)
        self.max_lag = max_lag
        self._due: float | None = None

    def set_fps(self, fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"fps={fps!r} must be > 0")
        self.fps = fps
        self.period = 1.0 / fps

    def delay(self, now: float) -> float:
        """Seconds to wait before the next frame is due (0 when it is due now)."""
        return 0.0 if self._due is None else max(0.0, self._due - now)

    def taken(self, now: float) -> None:
        """Record that a frame was taken at ``now``."""
        max_lag = self.period if self.max_lag is None else self.max_lag
        if self._due is None or now - self._due > max_lag:
            self._due = now + self.period
        else:
            self._due += self.period


class MovingMean:
    """Exponential moving mean (``weight`` = share of the newest value)."""

    def __init__(self, weight: float = 0.1) -> None:
        if not 0 < weight <= 1:
            raise ValueError(f"weight={weight!r} must be in (0, 1]")
        self.weight = weight
        self.value = 0.0
        self._empty = True

    def add(self, value: float) -> float:
        if self._empty:
            self.value, self._empty = value, False
        else:
            self.value += self.weight * (value - self.value)
        return self.value
