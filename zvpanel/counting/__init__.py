"""Line crossing: tracked boxes in, entry/exit events out. Pure: no I/O, no clocks."""

from .feet import FeetEstimator
from .line_counter import CrossingEvent, LineCounter, MultiLineCounter

__all__ = ["CrossingEvent", "LineCounter", "MultiLineCounter", "FeetEstimator"]
