"""Line crossing and zones: tracked boxes in, entry/exit and enter/leave events out.
Pure: no I/O, no clocks."""

from .feet import FeetEstimator
from .line_counter import CrossingEvent, LineCounter, MultiLineCounter
from .zone_counter import ZONE_LOST_AFTER_S, MultiZoneCounter, ZoneCounter, ZoneEvent

__all__ = [
    "CrossingEvent",
    "LineCounter",
    "MultiLineCounter",
    "FeetEstimator",
    "ZoneEvent",
    "ZoneCounter",
    "MultiZoneCounter",
    "ZONE_LOST_AFTER_S",
]
