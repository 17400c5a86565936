"""The ``--line`` / ``--line-id`` / ``--orientation`` options of ``count``, ``eval`` and ``calibrate``."""

from __future__ import annotations

import argparse
from typing import Any, get_args

from ..calibration import Orientation
from ..errors import CalibrationError
from ..geometry import Anchor
from ..numbers import finite_float

__all__ = ["ORIENTATIONS", "ANCHORS", "add_line_arguments", "lines_from_args", "number"]

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
