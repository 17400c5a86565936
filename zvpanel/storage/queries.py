"""Read-only queries behind the analytics charts and downloads.

The charts' numbers are aggregated by the database (hour and day bins in a store's time
zone, per-camera totals), over the raw events and the hourly totals that retention left
in their place, so old periods add up exactly as before they were rolled up. Only the
raw-events download (:func:`events_frame`) and the occupancy curve read single events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal

import numpy as np
import pandas as pd

from .database import Database, InvalidValueError, validate_timezone
from .events import event_filter

__all__ = [
    "EVENT_COLUMNS",
    "EventFilter",
    "events_frame",
    "binned_counts",
    "occupancy",
    "per_camera",
    "latest_event_id",
]

#: Columns of :func:`events_frame`, in order.
EVENT_COLUMNS = [
    "id",
    "store_id",
    "camera_id",
    "camera_name",
    "line_id",
    "track_id",
    "direction",
    "timestamp",
    "frame_index",
    "confidence",
]
_FREQS = ("h", "D")
#: The start of the quarter hour holding ``ts``, in the stored UTC text form.
_QUARTER = (
    "substr(ts, 1, 14) || CASE WHEN substr(ts, 15, 2) < '15' THEN '00' "
    "WHEN substr(ts, 15, 2) < '30' THEN '15' WHEN substr(ts, 15, 2) < '45' THEN '30' "
    "ELSE '45' END || ':00.000000Z'"
)
_ENTRY = "CASE WHEN direction = 'entry' THEN 1 ELSE 0 END"
_EXIT = "CASE WHEN direction = 'exit' THEN 1 ELSE 0 END"


@dataclass(frozen=True)
class EventFilter:
    """Which events a query counts: a store, a camera, a UTC [start, end) window."""

    store_id: int | None = None
    camera_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None


def _counted(f: EventFilter) -> tuple[str, list]:
    """A subquery of (ts, seq, camera_id, entries, exits): one row per raw event (``seq``
    its id), plus one per rolled-up hour and line (counted at the hour's start, seq 0)."""
    raw, params = event_filter(f.store_id, f.camera_id, f.start, f.end)
    rolled, rolled_params = event_filter(f.store_id, f.camera_id, f.start, f.end, ts="hour_utc")
    sql = (
        f"(SELECT ts_utc AS ts, id AS seq, camera_id, {_ENTRY} AS entries, {_EXIT} AS exits "
        f"FROM events{raw} UNION ALL SELECT hour_utc AS ts, 0 AS seq, camera_id, entries, exits "
        f"FROM hourly_line_totals{rolled}) AS counted"
    )
    return sql, [*params, *rolled_params]


def events_frame(
    db: Database,
    store_id: int | None = None,
    camera_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    after_id: int | None = None,
) -> pd.DataFrame:
    """Raw events in time order; ``start`` inclusive, ``end`` exclusive (aware datetimes).

    ``after_id`` returns only events newer than an id already seen. Events of archived
    cameras are included: they still count. Events rolled up by retention are not here.
    """
    where, params = event_filter(store_id, camera_id, start, end, after_id, alias="e")
    sql = (
        "SELECT e.id, e.store_id, e.camera_id, c.name AS camera_name, e.line_id, e.track_id, "
        "e.direction, e.ts_utc AS timestamp, e.frame_index, e.confidence "
        "FROM events e JOIN cameras c ON c.id = e.camera_id" + where + " ORDER BY e.ts_utc, e.id"
    )
    with db.reader() as conn:
        rows = conn.all(sql, params)
    df = pd.DataFrame([tuple(r) for r in rows], columns=EVENT_COLUMNS)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, format="%Y-%m-%dT%H:%M:%S.%fZ")
    return df


def latest_event_id(db: Database, f: EventFilter = EventFilter()) -> int:
    """The newest raw event id for the filter (0 if none): live pages poll it."""
    where, params = event_filter(f.store_id, f.camera_id, f.start, f.end)
    with db.reader() as conn:
        row = conn.one("SELECT coalesce(max(id), 0) AS newest FROM events" + where, params)
    return int(row["newest"])


def binned_counts(
    db: Database, freq: Literal["h", "D"] = "h", tz: str = "UTC", f: EventFilter = EventFilter()
) -> pd.DataFrame:
    """Entries and exits per hour (``"h"``) or day (``"D"``) of the time zone ``tz``.

    Index: start of each bin (tz-aware, in ``tz``; days start at local midnight even
    across a daylight-saving change, an hour repeated when clocks go back is two bins);
    bins without events between the first and last are present with zeros. Columns:
    ``entries``, ``exits``.
    """
    if freq not in _FREQS:
        raise InvalidValueError(f"freq {freq!r} is not one of {_FREQS}")
    validate_timezone(tz)
    bin_sql = db.hour_bin_sql("ts") if freq == "h" else db.local_day_sql("ts")
    counted, params = _counted(f)
    # Counted first per quarter hour by plain SQL, then binned: the time zone is worked
    # out once per quarter, not once per event (every zone's offset is whole quarters).
    sql = (
        f"SELECT {bin_sql} AS bin, sum(entries) AS entries, sum(exits) AS exits FROM "
        f"(SELECT {_QUARTER} AS ts, sum(entries) AS entries, sum(exits) AS exits "
        f"FROM {counted} GROUP BY {_QUARTER}) AS quarters GROUP BY bin ORDER BY bin"
    )
    with db.reader() as conn:
        rows = conn.all(sql, [tz] * bin_sql.count("?") + params)
    index = _bin_index([r["bin"] for r in rows], freq, tz)
    out = pd.DataFrame(
        {
            "entries": np.array([r["entries"] for r in rows], dtype=np.int64),
            "exits": np.array([r["exits"] for r in rows], dtype=np.int64),
        },
        index=index,
    )
    if len(out):
        out = out.reindex(_every_bin(index, freq, tz), fill_value=0)
    out.index.name = "timestamp"
    return out


def _bin_index(keys: list, freq: str, tz: str) -> pd.DatetimeIndex:
    """Bin keys from SQL (UTC hour starts, or local dates) -> tz-aware bin starts."""
    if freq == "h":
        return pd.DatetimeIndex(pd.to_datetime(keys, utc=True)).tz_convert(tz)
    midnights = pd.DatetimeIndex(
        [datetime.combine(pd.Timestamp(str(k)).date(), time.min) for k in keys]
    )
    return midnights.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")


def _every_bin(index: pd.DatetimeIndex, freq: str, tz: str) -> pd.DatetimeIndex:
    if freq == "h":
        return pd.date_range(index[0], index[-1], freq="h")
    days = pd.date_range(index[0].date(), index[-1].date(), freq="D")
    return days.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")


def per_camera(db: Database, f: EventFilter = EventFilter()) -> pd.DataFrame:
    """Entries and exits per camera: columns ``camera_id``, ``camera_name``, ``entries``,
    ``exits``, ordered by camera id (archived cameras included)."""
    counted, params = _counted(f)
    sql = (
        "SELECT counted.camera_id, c.name AS camera_name, sum(entries) AS entries, "
        f"sum(exits) AS exits FROM {counted} JOIN cameras c ON c.id = counted.camera_id "
        "GROUP BY counted.camera_id, c.name ORDER BY counted.camera_id"
    )
    with db.reader() as conn:
        rows = conn.all(sql, params)
    columns = ["camera_id", "camera_name", "entries", "exits"]
    out = pd.DataFrame([tuple(r) for r in rows], columns=columns)
    return out.astype({"camera_id": np.int64, "entries": np.int64, "exits": np.int64})


def occupancy(db: Database, tz: str = "UTC", f: EventFilter = EventFilter()) -> pd.DataFrame:
    """People inside after each event: entries minus exits, never below zero, from zero
    at each local midnight of ``tz``.

    Index: event time in ``tz``. Columns: ``occupancy``, ``date`` (the local day).
    An exit when nobody is counted inside (someone who entered before midnight, or
    an entry the camera missed) leaves it at zero instead of going negative. A rolled-up
    hour is one step at its start: its entries, then its exits.
    """
    validate_timezone(tz)
    counted, params = _counted(f)
    with db.reader() as conn:
        rows = conn.all(f"SELECT ts, entries, exits FROM {counted} ORDER BY ts, seq", params)
    times = pd.to_datetime([r["ts"] for r in rows], utc=True, format="%Y-%m-%dT%H:%M:%S.%fZ")
    # Entries first, then exits, within one row (a rolled-up hour).
    steps = np.array([[r["entries"], -r["exits"]] for r in rows], dtype=np.int64).reshape(-1, 2)
    index = pd.DatetimeIndex(np.repeat(times, 2)).tz_convert(tz)
    delta = pd.Series(steps.reshape(-1), index=index)
    delta = delta[steps.reshape(-1) != 0]  # a raw event is one step, not two
    day = pd.Series(delta.index.date, index=delta.index)
    total = delta.groupby(day.to_numpy()).cumsum()
    # A running sum clamped at zero equals the plain running sum minus its lowest
    # negative point so far (the reflected walk), which pandas computes per day.
    lowest = total.groupby(day.to_numpy()).cummin().clip(upper=0)
    out = pd.DataFrame({"occupancy": (total - lowest).astype(np.int64), "date": day.to_numpy()})
    out.index.name = "timestamp"
    return out
