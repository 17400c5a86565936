"""Read-only pandas queries behind the analytics charts.

:func:`events_frame` reads events into a DataFrame (UTC, tz-aware ``timestamp``); the
other functions are pure transformations of that frame, in a store's time zone, so a
chart can re-bin without going back to the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd

from .database import Database, InvalidValueError, _event_filter, validate_timezone

__all__ = ["EVENT_COLUMNS", "events_frame", "binned_counts", "occupancy", "per_camera"]

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


def events_frame(
    db: Database,
    store_id: int | None = None,
    camera_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    after_id: int | None = None,
) -> pd.DataFrame:
    """Events in time order; ``start`` inclusive, ``end`` exclusive (aware datetimes).

    ``after_id`` returns only events newer than an id already seen (for live charts).
    Events of archived cameras are included: they still count.
    """
    where, params = _event_filter(store_id, camera_id, start, end, after_id, alias="e")
    sql = (
        "SELECT e.id, e.store_id, e.camera_id, c.name AS camera_name, e.line_id, e.track_id, "
        "e.direction, e.ts_utc AS timestamp, e.frame_index, e.confidence "
        "FROM events e JOIN cameras c ON c.id = e.camera_id" + where + " ORDER BY e.ts_utc, e.id"
    )
    with db.reader() as conn:
        df = pd.read_sql_query(sql, conn, params=params)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, format="%Y-%m-%dT%H:%M:%S.%fZ")
    return df[EVENT_COLUMNS]


def _local_times(df: pd.DataFrame, tz: str) -> pd.DatetimeIndex:
    validate_timezone(tz)
    return pd.DatetimeIndex(df["timestamp"]).tz_convert(tz)


def binned_counts(df: pd.DataFrame, freq: Literal["h", "D"] = "h", tz: str = "UTC") -> pd.DataFrame:
    """Entries and exits per hour (``"h"``) or day (``"D"``) of the time zone ``tz``.

    Index: start of each bin (tz-aware, in ``tz``; days start at local midnight even
    across a daylight-saving change); bins without events between the first and last
    are present with zeros. Columns: ``entries``, ``exits``.
    """
    if freq not in _FREQS:
        raise InvalidValueError(f"freq {freq!r} is not one of {_FREQS}")
    index = _local_times(df, tz)
    counts = pd.DataFrame(
        {
            "entries": (df["direction"] == "entry").to_numpy(dtype=np.int64),
            "exits": (df["direction"] == "exit").to_numpy(dtype=np.int64),
        },
        index=index,
    )
    out = counts.resample(freq).sum().astype(np.int64)
    out.index.name = "timestamp"
    return out


def occupancy(df: pd.DataFrame, tz: str = "UTC") -> pd.DataFrame:
    """People inside after each event: entries minus exits, never below zero, from zero
    at each local midnight of ``tz``.

    Index: event time in ``tz``. Columns: ``occupancy``, ``date`` (the local day).
    An exit when nobody is counted inside (someone who entered before midnight, or
    an entry the camera missed) leaves it at zero instead of going negative.
    """
    index = _local_times(df, tz)
    delta = pd.Series(
        np.where(df["direction"].to_numpy() == "entry", 1, -1), index=index, dtype=np.int64
    ).sort_index(kind="stable")
    day = pd.Series(delta.index.date, index=delta.index)
    total = delta.groupby(day.to_numpy()).cumsum()
    # A running sum clamped at zero equals the plain running sum minus its lowest
    # negative point so far (the reflected walk), which pandas computes per day.
    lowest = total.groupby(day.to_numpy()).cummin().clip(upper=0)
    out = pd.DataFrame({"occupancy": (total - lowest).astype(np.int64), "date": day.to_numpy()})
    out.index.name = "timestamp"
    return out


def per_camera(df: pd.DataFrame) -> pd.DataFrame:
    """Entries and exits per camera: columns ``camera_id``, ``camera_name``, ``entries``,
    ``exits``, ordered by camera id."""
    counts = pd.DataFrame(
        {
            "camera_id": df["camera_id"].to_numpy(),
            "camera_name": df["camera_name"].to_numpy(),
            "entries": (df["direction"] == "entry").to_numpy(dtype=np.int64),
            "exits": (df["direction"] == "exit").to_numpy(dtype=np.int64),
        }
    )
    out = counts.groupby(["camera_id", "camera_name"], as_index=False)[["entries", "exits"]].sum()
    return out.sort_values("camera_id", ignore_index=True)
