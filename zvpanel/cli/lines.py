"""The ``--line`` / ``--line-id`` / ``--orientation`` options of ``count``, ``eval`` and
``calibrate``, and the ``--zone`` / ``--queue`` / ``--no-zones`` options of ``calibrate``."""

from __future__ import annotations

import argparse
from typing import Any, get_args

from ..calibration import Orientation
from ..errors import CalibrationError
from ..geometry import Anchor
from ..numbers import finite_float

__all__ = [
    "ORIENTATIONS",
    "ANCHORS",
    "add_line_arguments",
    "lines_from_args",
    "add_zone_arguments",
    "zones_from_args",
    "number",
]

ORIENTATIONS: tuple[str, ...] = get_args(Orientation)
ANCHORS: tuple[str, ...] = get_args(Anchor)


def number(text: str) -> float:
    """argparse ``type=`` of every float option: NaN and infinity are usage errors."""
    try:
        return finite_float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_line_arguments(p: argparse.ArgumentParser, *, line_ids: bool = False) -> None:
    p.add_argument(
        "--line",
        nargs=4,
        type=number,
        action="append",
        metavar=("X1", "Y1", "X2", "Y2"),
        help="a counting line in pixels (repeat for several lines: line-1, line-2, ...)",
    )
    if line_ids:
        p.add_argument(
            "--line-id",
            action="append",
            metavar="ID",
            help="name of each line (default line-1, ...)",
        )
    p.add_argument(
        "--orientation",
        choices=ORIENTATIONS,
        action="append",
        help="which crossing is an entry: once for all lines, or once per --line "
        "(default leftToRight; for a line drawn top to bottom, leftToRight makes walking "
        "left to right on screen an entry)",
    )


def lines_from_args(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The lines ``--line`` (with ``--line-id`` and ``--orientation``) describe, as dicts."""
    n = len(args.line)
    ids = getattr(args, "line_id", None) or [f"line-{i + 1}" for i in range(n)]
    if len(ids) != n:
        raise CalibrationError(f"{len(ids)} --line-id for {n} --line; give one per line")
    orientations = args.orientation or ["leftToRight"]
    if len(orientations) == 1:
        orientations = orientations * n
    if len(orientations) != n:
        raise CalibrationError(
            f"{len(orientations)} --orientation for {n} --line; give one, or one per line"
        )
    return [
        {"id": i, "x1": x1, "y1": y1, "x2": x2, "y2": y2, "orientation": o}
        for i, (x1, y1, x2, y2), o in zip(ids, args.line, orientations, strict=True)
    ]


def add_zone_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--zone",
        nargs="+",
        action="append",
        metavar=("ID", "X,Y"),
        help="a polygon zone: its name, then 3 or more vertices X,Y in pixels (repeat for "
        "several zones; replaces the camera's zones)",
    )
    p.add_argument(
        "--queue",
        action="append",
        metavar="ID",
        help="mark the --zone named ID a queue: its occupancy is the queue length and the "
        "time inside the waiting time",
    )
    p.add_argument("--no-zones", action="store_true", help="remove the camera's zones")


def zones_from_args(args: argparse.Namespace) -> list[dict[str, Any]] | None:
    """The zones ``--zone`` (with ``--queue``) describe, as dicts; ``[]`` for
    ``--no-zones``; None when neither is given (the zones stay as they are)."""
    if args.no_zones:
        if args.zone or args.queue:
            raise CalibrationError("give either --no-zones or --zone/--queue, not both")
        return []
    if not args.zone:
        if args.queue:
            raise CalibrationError("--queue names a --zone; give the zones with --zone")
        return None
    zones = [
        {"id": zone_id, "points": [_vertex(zone_id, text) for text in vertices]}
        for zone_id, *vertices in args.zone
    ]
    ids = [zone["id"] for zone in zones]
    for queue in args.queue or []:
        if queue not in ids:
            raise CalibrationError(f"--queue {queue!r} is not a --zone (zones: {', '.join(ids)})")
    for zone in zones:
        zone["queue"] = zone["id"] in (args.queue or [])
    return zones


def _vertex(zone_id: str, text: str) -> tuple[float, float]:
    """One ``X,Y`` vertex of a ``--zone``."""
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError("expected X,Y")
        return (finite_float(parts[0]), finite_float(parts[1]))
    except ValueError as error:
        raise CalibrationError(
            f"--zone {zone_id!r}: vertex {text!r} is not X,Y ({error})"
        ) from None
