"""Zone events: tracks entering and leaving a camera's zones, and what the zone charts read.

Stored like crossings (``uid`` + ``node``: written once however often a node's forwarder
sends them). Occupancy over time is the running sum of enters minus leaves of a zone:
the counter closes every stay it opened (a lost track leaves, the end of a video empties
the zone), so the sum comes back to zero instead of drifting.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from .events import event_filter
from .values import parse_utc

__all__ = [
    "ZoneEventRow",
    "ZoneEventRecord",
    "ZoneMethods",
    "DwellStats",
    "dwell_stats",
    "zone_occupancy",
    "DWELL_BIN_EDGES_S",
]

#: Edges (seconds) of the dwell histogram: short looks to long stays.
DWELL_BIN_EDGES_S = (0, 5, 10, 20, 30, 60, 120, 300, 600, 1800, float("inf"))


class ZoneEventRow(NamedTuple):
    """One zone event to insert; ``ts_utc`` from :func:`~zvpanel.storage.values.utc_text`."""

    store_id: int
    camera_id: int
    zone_id: str
    track_id: int
    kind: str  # "enter" | "leave"
    ts_utc: str
    frame_index: int
    dwell_s: float | None  # on leave only
    uid: str | None = None
    node: str | None = None


@dataclass(frozen=True)
class ZoneEventRecord:
    id: int
    store_id: int
    camera_id: int
    zone_id: str
    track_id: int
    kind: Literal["enter", "leave"]
    timestamp: datetime
    frame_index: int
    dwell_s: float | None
    uid: str | None
    node: str | None


class ZoneMethods:
    """The zone event methods of :class:`~zvpanel.storage.database.Database`."""

    def insert_zone_events(self, rows: Iterable[ZoneEventRow | tuple]) -> int:
        """Insert zone event rows in one transaction; a ``uid`` already stored is skipped."""
        rows = [ZoneEventRow(*row) for row in rows]
        if not rows:
            return 0
        with self._write(serial=False) as conn:
            conn.executemany(
                "INSERT INTO zone_events (store_id, camera_id, zone_id, track_id, kind, ts_utc, "
                "frame_index, dwell_s, uid, node) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (uid) DO NOTHING",
                rows,
            )
        return len(rows)

    def zone_events(
        self,
        store_id: int | None = None,
        camera_id: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        zone_id: str | None = None,
    ) -> list[ZoneEventRecord]:
        """Zone events in time order (enters before leaves at one time), filtered."""
        sql, params = event_filter(store_id, camera_id, start, end)
        if zone_id is not None:
            sql += " AND zone_id = ?"
            params.append(zone_id)
        rows = self._all(
            "SELECT * FROM zone_events" + sql + " ORDER BY ts_utc, kind, id", tuple(params)
        )
        return [
            ZoneEventRecord(
                r["id"],
                r["store_id"],
                r["camera_id"],
                r["zone_id"],
                r["track_id"],
                r["kind"],
                parse_utc(r["ts_utc"]),
                r["frame_index"],
                r["dwell_s"],
                r["uid"],
                r["node"],
            )
            for r in rows
        ]

    def latest_zone_event_id(self, camera_ids: list[int]) -> int:
        """The newest zone event's id among ``camera_ids`` (0: none), for pollers."""
        if not camera_ids:
            return 0
        marks = ", ".join("?" * len(camera_ids))
        row = self._one(
            f"SELECT coalesce(max(id), 0) AS id FROM zone_events WHERE camera_id IN ({marks})",
            tuple(int(c) for c in camera_ids),
        )
        return int(row["id"])

    def zone_occupancy_before(self, camera_id: int, zone_id: str, when: datetime) -> int:
        """People inside ``zone_id`` just before ``when`` (enters minus leaves, at least 0)."""
        sql, params = event_filter(None, camera_id, None, when)
        row = self._one(
            "SELECT coalesce(sum(CASE WHEN kind = 'enter' THEN 1 ELSE -1 END), 0) AS n "
            "FROM zone_events" + sql + " AND zone_id = ?",
            (*params, zone_id),
        )
        return max(0, int(row["n"]))

    def zone_dwells(
        self, camera_id: int, start: datetime | None = None, end: datetime | None = None
    ) -> dict[str, list[float]]:
        """Seconds each stay lasted, per zone id, for stays that ended in [start, end)."""
        sql, params = event_filter(None, camera_id, start, end)
        rows = self._all(
            "SELECT zone_id, dwell_s FROM zone_events" + sql + " AND kind = 'leave' "
            "ORDER BY zone_id, dwell_s",
            tuple(params),
        )
        dwells: dict[str, list[float]] = {}
        for r in rows:
            dwells.setdefault(r["zone_id"], []).append(float(r["dwell_s"]))
        return dwells

    def _delete_zone_events_before(self, conn, cutoff_text: str) -> int:
        """Retention (in the caller's transaction): delete the zone events of stays that
        ended before ``cutoff_text``: every leave before it, and each enter whose track left
        again before it. The enter of a stay still open at the cutoff stays with its leave,
        so enters minus leaves before any later time still count who was inside."""
        return conn.execute(
            "DELETE FROM zone_events WHERE ts_utc < ? AND (kind = 'leave' OR EXISTS ("
            "SELECT 1 FROM zone_events AS later WHERE later.camera_id = zone_events.camera_id "
            "AND later.zone_id = zone_events.zone_id AND later.track_id = zone_events.track_id "
            "AND later.kind = 'leave' AND later.ts_utc >= zone_events.ts_utc "
            "AND later.ts_utc < ?))",
            (cutoff_text, cutoff_text),
        ).rowcount


@dataclass(frozen=True)
class DwellStats:
    """How long stays in one zone lasted (seconds)."""

    stays: int
    median_s: float
    p90_s: float
    histogram: tuple[int, ...]  # stays per bin of DWELL_BIN_EDGES_S


def dwell_stats(dwells: list[float]) -> DwellStats:
    """Median, 90th percentile and histogram of some stays (zeros for none)."""
    if not dwells:
        return DwellStats(0, 0.0, 0.0, (0,) * (len(DWELL_BIN_EDGES_S) - 1))
    values = np.asarray(dwells, dtype=float)
    histogram, _ = np.histogram(values, bins=np.asarray(DWELL_BIN_EDGES_S))
    return DwellStats(
        len(values),
        float(np.median(values)),
        float(np.percentile(values, 90)),
        tuple(int(n) for n in histogram),
    )


def zone_occupancy(
    db: ZoneMethods, camera_id: int, zone_id: str, start: datetime, end: datetime
) -> pd.Series:
    """People inside a zone after each of its events in [start, end), starting from the
    number inside at ``start``; index: UTC event times (the first point is ``start``)."""
    base = db.zone_occupancy_before(camera_id, zone_id, start)
    events = db.zone_events(camera_id=camera_id, start=start, end=end, zone_id=zone_id)
    # Clamped at zero: a leave whose enter is not in the database (e.g. lost in a crash).
    running, n = [], base
    for event in events:
        n = max(0, n + (1 if event.kind == "enter" else -1))
        running.append(n)
    index = pd.DatetimeIndex([pd.Timestamp(start)] + [pd.Timestamp(e.timestamp) for e in events])
    return pd.Series([base, *running], index=index, name=zone_id, dtype=np.int64)
