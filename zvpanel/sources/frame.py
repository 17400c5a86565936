"""A decoded frame and where it came from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

__all__ = ["Frame"]


@dataclass(frozen=True)
class Frame:
    """One decoded BGR image.

    ``index`` is the 0-based position of the frame in decoding order within the source
    (for a looping file it restarts at 0 on every pass, ``loop`` counts the passes);
    ``media_time`` is its position in seconds (index / file fps for files, seconds since
    the stream was opened for live sources); ``captured_at`` is the UTC wall clock time
    at which it was decoded.
    """

    image: np.ndarray
    index: int
    media_time: float
    captured_at: datetime
    loop: int = 0

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])
