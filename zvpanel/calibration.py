"""A camera's calibration: region of interest, counting lines, zones, detection rate, hysteresis."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import CalibrationError
from .geometry import Anchor, polygon_area, polygon_is_simple

__all__ = [
    "Orientation",
    "CountingLine",
    "Zone",
    "Calibration",
    "MIN_DETECTION_FPS",
    "MAX_DETECTION_FPS",
    "parse_calibration",
]

Orientation = Literal["leftToRight", "rightToLeft"]
MIN_DETECTION_FPS = 0.5
MAX_DETECTION_FPS = 30.0
#: A line shorter than this (pixels) cannot be crossed reliably.
MIN_LINE_LENGTH = 10.0
#: A zone is a polygon of this many vertices at least and at most.
MIN_ZONE_VERTICES = 3
MAX_ZONE_VERTICES = 64
#: A zone smaller than this (pixels²) cannot hold a person's anchor point reliably.
MIN_ZONE_AREA = 100.0
#: Lines and zones of a camera, together, at most (each one costs work per frame).
MAX_LINES_AND_ZONES = 64


class CountingLine(BaseModel):
    """A segment from (x1, y1) to (x2, y2) in image pixels, with the direction that is entry.

    Side of a point p: sign of ``(x2-x1)*(py-y1) - (y2-y1)*(px-x1)`` (y points down).
    ``leftToRight``: side +1 -> -1 is an entry, -1 -> +1 an exit; ``rightToLeft`` the reverse.
    For a line drawn top to bottom, ``leftToRight`` makes walking left-to-right an entry.
    """

    # NaN and infinity are no position or rate; refusing them here covers JSON, CLI and pages.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    id: str = Field("line-1", min_length=1, max_length=64, description="Name, unique per camera.")
    x1: float
    y1: float
    x2: float
    y2: float
    orientation: Orientation = "leftToRight"

    @property
    def start(self) -> tuple[float, float]:
        return (self.x1, self.y1)

    @property
    def end(self) -> tuple[float, float]:
        return (self.x2, self.y2)

    @property
    def length(self) -> float:
        return math.hypot(self.x2 - self.x1, self.y2 - self.y1)

    @property
    def entry_side(self) -> int:
        """The side (+1/-1) people come *to* when they enter."""
        return -1 if self.orientation == "leftToRight" else 1


class Zone(BaseModel):
    """A polygon in image pixels; a track is inside when its anchor point is.

    Zone ids share the namespace of the camera's line ids, so a name on the calibration
    page, in the feed's counts or in a chart means one thing.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    id: str = Field("zone-1", min_length=1, max_length=64, description="Name, unique per camera.")
    points: tuple[tuple[float, float], ...] = Field(
        ...,
        min_length=MIN_ZONE_VERTICES,
        max_length=MAX_ZONE_VERTICES,
        description="Vertices x, y in pixels, in drawing order; the polygon closes itself.",
    )
    queue: bool = Field(
        False, description="A queue: its occupancy is the queue length, dwell the waiting time."
    )

    @model_validator(mode="after")
    def _polygon_ok(self) -> Zone:
        area = polygon_area(self.points)
        if area < MIN_ZONE_AREA:
            raise ValueError(
                f"zone {self.id!r} has an area of {area:.0f} px²; it must be at least "
                f"{MIN_ZONE_AREA:.0f} px²"
            )
        if not polygon_is_simple(self.points):
            raise ValueError(f"zone {self.id!r}: its edges cross or touch each other")
        return self


class Calibration(BaseModel):
    """Everything the engine needs to count on one camera."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    roi: tuple[float, float, float, float] | None = Field(
        None, description="Region of interest x1, y1, x2, y2 in pixels; None = whole frame."
    )
    lines: tuple[CountingLine, ...] = Field(..., min_length=1, description="Counting lines.")
    zones: tuple[Zone, ...] = Field((), description="Zones (occupancy, dwell, queues).")
    detection_fps: float = Field(
        5.0,
        ge=MIN_DETECTION_FPS,
        le=MAX_DETECTION_FPS,
        description="Target detections per second of video.",
    )
    anchor: Anchor = Field("bottom_center", description="Point of a box that crosses the line.")
    min_distance: float = Field(
        4.0, ge=0.0, le=200.0, description="Hysteresis: pixels past the line before a side counts."
    )
    min_frames: int = Field(
        1, ge=1, le=30, description="Hysteresis: detections on the new side before it counts."
    )

    @field_validator("roi")
    @classmethod
    def _ordered_roi(cls, roi: tuple[float, float, float, float] | None):
        if roi is not None:
            x1, y1, x2, y2 = roi
            if x2 <= x1 or y2 <= y1:
                raise ValueError(f"roi {roi} must have x1 < x2 and y1 < y2")
        return roi

    @model_validator(mode="after")
    def _lines_ok(self) -> Calibration:
        ids = [line.id for line in self.lines] + [zone.id for zone in self.zones]
        if len(set(ids)) != len(ids):
            raise ValueError(f"line and zone ids must be unique together, got {ids}")
        if len(ids) > MAX_LINES_AND_ZONES:
            raise ValueError(
                f"{len(ids)} lines and zones; at most {MAX_LINES_AND_ZONES} per camera"
            )
        for line in self.lines:
            if line.length < MIN_LINE_LENGTH:
                raise ValueError(
                    f"line {line.id!r} is {line.length:.1f} px long; it must be at least "
                    f"{MIN_LINE_LENGTH:.0f} px"
                )
        return self

    def check_frame(self, width: int, height: int) -> None:
        """Raise :class:`CalibrationError` if the calibration does not fit a WxH frame."""
        problems: list[str] = []

        def inside(x: float, y: float) -> bool:
            return 0 <= x <= width and 0 <= y <= height

        for line in self.lines:
            for name, (x, y) in (("start", line.start), ("end", line.end)):
                if not inside(x, y):
                    problems.append(
                        f"line {line.id!r} {name} ({x:g}, {y:g}) is outside the {width}x{height} frame"
                    )
        for zone in self.zones:
            outside = [(x, y) for x, y in zone.points if not inside(x, y)]
            if outside:
                x, y = outside[0]
                problems.append(
                    f"zone {zone.id!r} vertex ({x:g}, {y:g}) is outside the {width}x{height} frame"
                )
        if self.roi is not None:
            x1, y1, x2, y2 = self.roi
            if not (inside(x1, y1) and inside(x2, y2)):
                problems.append(f"roi {self.roi} is outside the {width}x{height} frame")
            for line in self.lines:
                for name, (x, y) in (("start", line.start), ("end", line.end)):
                    if not (x1 <= x <= x2 and y1 <= y <= y2):
                        problems.append(
                            f"line {line.id!r} {name} ({x:g}, {y:g}) is outside the roi {self.roi}"
                        )
            # People are detected only inside the ROI: a zone reaching out of it would
            # look emptier than it is.
            for zone in self.zones:
                for x, y in zone.points:
                    if not (x1 <= x <= x2 and y1 <= y <= y2):
                        problems.append(
                            f"zone {zone.id!r} vertex ({x:g}, {y:g}) is outside the roi {self.roi}"
                        )
                        break
        if problems:
            raise CalibrationError("; ".join(problems))

    @classmethod
    def single_line(
        cls,
        x1: float,
        y1: float,
        x2: float,
        y2: float,
        orientation: Orientation = "leftToRight",
        **kwargs,
    ) -> Calibration:
        line = CountingLine(x1=x1, y1=y1, x2=x2, y2=y2, orientation=orientation)
        return parse_calibration({"lines": [line.model_dump()], **kwargs})


def parse_calibration(data: dict | str) -> Calibration:
    """Build a calibration from a dict or JSON text; raise CalibrationError naming each problem."""
    try:
        if isinstance(data, str):
            return Calibration.model_validate_json(data)
        return Calibration.model_validate(data)
    except ValidationError as error:
        raise CalibrationError("invalid calibration: " + _describe(error)) from None


def _describe(error: ValidationError) -> str:
    """Each problem as ``field: message (got value)``, innermost only: a bad line also
    makes pydantic say the line list is too short, which would only confuse."""
    items = error.errors()
    locs = [item["loc"] for item in items]
    parts = []
    for item in items:
        loc = item["loc"]
        if any(len(other) > len(loc) and other[: len(loc)] == loc for other in locs):
            continue
        where = ".".join(str(p) for p in loc) or "calibration"
        value = item.get("input")
        shown = "" if isinstance(value, dict | list | tuple) else f" (got {value!r})"
        parts.append(f"{where}: {item['msg']}{shown}")
    return "; ".join(parts)
