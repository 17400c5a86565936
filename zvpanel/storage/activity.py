"""What cameras did, besides counting: status changes, online time and where people walked.

Written by :class:`~zvpanel.engine.recorder.ActivityRecorder` (directly, or through a
node's outbox and forwarder) and read by :mod:`zvpanel.storage.coverage`.

Every write here may be repeated safely: a status change carries a ``uid`` (kept once),
and online seconds and heat grids are the running totals of one ``run`` (a process),
stored as the larger of what is there and what comes, so a batch sent again, or late,
never counts twice nor takes anything back.

A heat grid is one row per camera, hour and run: its counts packed as text
(:func:`encode_grid`, a few hundred bytes), not a row per cell, so a year of hours of a
camera is 8,760 small rows.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

import numpy as np

from ..errors import InvalidValueError
from .values import utc_text

__all__ = [
    "ActivityMethods",
    "CoverageRow",
    "HeatRow",
    "StatusChangeRow",
    "encode_grid",
    "decode_grid",
    "QUARTER_SECONDS",
    "HEAT_COLUMNS",
    "HEAT_ROWS",
]

#: Online time is kept per UTC quarter hour: every time zone's local hours and days are
#: whole quarters, so hour and day bins of any zone add quarters up exactly.
QUARTER_SECONDS = 900
#: The heat grid over a camera's frame: columns x rows (16:9 cells on a 16:9 frame).
HEAT_COLUMNS = 32
HEAT_ROWS = 18


class StatusChangeRow(NamedTuple):
    uid: str
    store_id: int
    camera_id: int
    ts_utc: str
    state: str
    reason: str | None
    #: The node whose engine saw it (None: the dashboard process's own engine).
    node: str | None = None


class CoverageRow(NamedTuple):
    store_id: int
    camera_id: int
    quarter_utc: str  # the quarter hour's start, stored UTC text
    run: str
    online_s: float  # the run's total in that quarter so far


class HeatRow(NamedTuple):
    camera_id: int
    hour_utc: str  # the UTC hour's start, stored UTC text
    run: str
    grid_w: int
    grid_h: int
    visits: int  # the run's total in that hour so far (the sum of the cells)
    cells: str  # encode_grid() of the run's (grid_h, grid_w) counts so far

    @classmethod
    def of(cls, camera_id: int, hour_utc: str, run: str, grid: np.ndarray) -> HeatRow:
        grid_h, grid_w = grid.shape
        return cls(camera_id, hour_utc, run, grid_w, grid_h, int(grid.sum()), encode_grid(grid))


def encode_grid(grid: np.ndarray) -> str:
    """Counts (rows x columns, at most 2**32 - 1 each) as compact text: zlib, base64."""
    return base64.b64encode(zlib.compress(grid.astype("<u4").tobytes())).decode("ascii")


def decode_grid(text: str, grid_w: int, grid_h: int) -> np.ndarray:
    try:
        raw = zlib.decompress(base64.b64decode(text))
        return np.frombuffer(raw, dtype="<u4").reshape(grid_h, grid_w).astype(np.int64)
    except (ValueError, zlib.error) as error:
        raise InvalidValueError(
            f"heat grid cells {text[:20]!r}... are not a grid: {error}"
        ) from None


def _larger(table: str, column: str) -> str:
    return (
        f"{column} = CASE WHEN excluded.{column} > {table}.{column} "
        f"THEN excluded.{column} ELSE {table}.{column} END"
    )


class ActivityMethods:
    """The activity methods of :class:`~zvpanel.storage.database.Database`."""

    def record_activity(
        self,
        changes: Iterable[StatusChangeRow | tuple] = (),
        coverage: Iterable[CoverageRow | tuple] = (),
        heat: Iterable[HeatRow | tuple] = (),
    ) -> None:
        """Store status changes, online seconds and heat visits in one transaction."""
        changes = [StatusChangeRow(*r) for r in changes]
        coverage = [CoverageRow(*r) for r in coverage]
        heat = [HeatRow(*r) for r in heat]
        if not (changes or coverage or heat):
            return
        with self._write(serial=False) as conn:
            if changes:
                conn.executemany(
                    "INSERT INTO camera_status_changes (uid, store_id, camera_id, ts_utc, "
                    "state, reason, node) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (uid) DO NOTHING",
                    changes,
                )
            if coverage:
                conn.executemany(
                    "INSERT INTO camera_coverage (store_id, camera_id, quarter_utc, run, "
                    "online_s) VALUES (?, ?, ?, ?, ?) ON CONFLICT (camera_id, quarter_utc, run) "
                    "DO UPDATE SET " + _larger("camera_coverage", "online_s"),
                    coverage,
                )
            if heat:
                # A run's newer grid holds its older one: the one with more visits wins.
                conn.executemany(
                    "INSERT INTO heat_grids (camera_id, hour_utc, run, grid_w, grid_h, visits, "
                    "cells) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (camera_id, hour_utc, run) "
                    "DO UPDATE SET grid_w = excluded.grid_w, grid_h = excluded.grid_h, "
                    "visits = excluded.visits, cells = excluded.cells "
                    "WHERE excluded.visits > heat_grids.visits",
                    heat,
                )

    def status_changes(
        self, camera_id: int, start: datetime | None = None, end: datetime | None = None
    ) -> list[StatusChangeRow]:
        """A camera's recorded status changes in time order; ``start`` inclusive."""
        sql = "SELECT * FROM camera_status_changes WHERE camera_id = ?"
        params: list = [int(camera_id)]
        if start is not None:
            sql += " AND ts_utc >= ?"
            params.append(utc_text(start))
        if end is not None:
            sql += " AND ts_utc < ?"
            params.append(utc_text(end))
        rows = self._all(sql + " ORDER BY ts_utc, id", tuple(params))
        return [StatusChangeRow(*(r[name] for name in StatusChangeRow._fields)) for r in rows]
