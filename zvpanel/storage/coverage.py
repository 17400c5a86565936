"""How much of each hour or day a camera (or a store) was counting, and the heat grid.

Coverage
    A camera is covered while its engine credits it online time
    (:class:`~zvpanel.engine.recorder.ActivityRecorder`: at each status change and every
    :data:`~zvpanel.engine.recorder.FLUSH_SECONDS` while online). A process that dies
    leaves no "offline" row; it simply stops crediting, so its cameras count as not
    covered from its last flush on. Before a camera's first recorded status change
    (zvpanel without this record, or a camera never run) its coverage is unknown (NaN),
    not zero: old charts are drawn as they always were.

    A bin's share is the camera's online seconds over the bin's known, elapsed seconds
    (the hour under way counts up to now). A store's share is the mean over its expected
    cameras: enabled and not deleted, or credited with time in the window. The database
    adds up the quarter hours into local hours and days, like the event counts
    (:mod:`zvpanel.storage.queries`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timezone
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from .activity import HEAT_COLUMNS, HEAT_ROWS, QUARTER_SECONDS, decode_grid
from .database import (
    Database,
    InvalidValueError,
    Store,
    parse_utc,
    utc_text,
    validate_timezone,
)
from .queries import EventFilter, _bin_index

__all__ = [
    "COVERED_SHARE",
    "camera_coverage",
    "coverage_share",
    "StoreGaps",
    "store_gaps",
    "heat_grid",
    "latest_status_change",
]

#: Engines write online time every flush interval: the last this many intervals before now
#: are not judged yet (their time may still be on its way), or the hour under way would
#: always look partly covered.
LAG_FLUSHES = 2
#: A bin at least this share covered counts as covered (a reconnect of a few seconds
#: in an hour does not make its count doubtful).
COVERED_SHARE = 0.98
_QUARTER = pd.Timedelta(seconds=QUARTER_SECONDS)


def _window(
    f: EventFilter, now: datetime | None, flush_seconds: float
) -> tuple[pd.Timestamp, pd.Timestamp]:
    if f.start is None or f.end is None:
        raise InvalidValueError("coverage needs a window: give the filter's start and end")
    now = datetime.now(timezone.utc) if now is None else now
    judged = pd.Timestamp(now) - pd.Timedelta(seconds=LAG_FLUSHES * flush_seconds)
    start = pd.Timestamp(f.start).tz_convert("UTC").floor(_QUARTER)
    return start, min(pd.Timestamp(f.end), judged).tz_convert("UTC")


@dataclass(frozen=True)
class _Quarters:
    """Every quarter hour of [start, end): its start (epoch seconds) and its bin's number;
    ``keys`` the bins' keys in order, as SQL gives them (Backend.hour_bin / local_day)."""

    starts: np.ndarray
    bins: np.ndarray
    keys: list[str]
    end: float

    @classmethod
    def of(cls, start: pd.Timestamp, end: pd.Timestamp, freq: str, tz: str) -> _Quarters:
        quarters = pd.date_range(start, end, freq=_QUARTER, inclusive="left")
        local = quarters.tz_convert(tz)
        if freq == "h":  # the UTC start of the local hour
            keys = (quarters - pd.to_timedelta(local.minute, unit="m")).strftime(
                "%Y-%m-%dT%H:%M:%S"
            )
        else:
            keys = local.strftime("%Y-%m-%d")
        bins, unique = pd.factorize(np.asarray(keys))
        starts = quarters.as_unit("ns").asi8 / 1e9  # epoch seconds, whatever the unit
        return cls(starts, bins, list(unique), end.timestamp())

    def shares(self, online: dict[str, float], since: float | None) -> np.ndarray:
        """One camera's share of each bin: online seconds over the seconds after its first
        record (``since``; None: unknown, NaN) and before the end."""
        if since is None:
            return np.full(len(self.keys), np.nan)
        upper = np.minimum(self.starts + QUARTER_SECONDS, self.end)
        known = np.clip(upper - np.maximum(self.starts, since), 0, None)
        length = np.bincount(self.bins, weights=known, minlength=len(self.keys))
        credited = np.array([online.get(key, 0.0) for key in self.keys])
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(length > 0, np.minimum(credited / length, 1.0), np.nan)


def _expected_cameras(
    db: Database, store_ids: list[int], start: str, end: str
) -> dict[int, list[int]]:
    """Per store: its enabled cameras, and any credited with time in [start, end)."""
    stores = {store_id: set() for store_id in store_ids}
    marks = ", ".join("?" * len(store_ids))
    with db.reader() as conn:
        rows = conn.all(
            f"SELECT id, store_id FROM cameras WHERE store_id IN ({marks}) AND enabled = 1 "
            "AND deleted_at IS NULL UNION SELECT DISTINCT camera_id, store_id FROM "
            f"camera_coverage WHERE store_id IN ({marks}) AND quarter_utc >= ? AND quarter_utc < ?",
            [*store_ids, *store_ids, start, end],
        )
    for camera_id, store_id in rows:
        stores[int(store_id)].add(int(camera_id))
    return {store_id: sorted(cameras) for store_id, cameras in stores.items()}


def camera_coverage(
    db: Database,
    freq: Literal["h", "D"],
    tz: str,
    f: EventFilter,
    now: datetime | None = None,
    flush_seconds: float = 0.0,
) -> pd.DataFrame:
    """The share (0..1) of each local hour or day each camera was online.

    ``f`` needs a store (or a camera) and a window; bins run from its start to its end or
    ``now``, whichever is first, less :data:`LAG_FLUSHES` x ``flush_seconds`` (the
    engines' ``ZVPANEL_ACTIVITY_FLUSH_SECONDS``). Index: bin starts in ``tz`` (as in
    :func:`~zvpanel.storage.queries.binned_counts`); one column per camera id; NaN where
    the camera's coverage is unknown (before its first recorded status change).
    """
    if freq not in ("h", "D"):
        raise InvalidValueError(f"freq {freq!r} is not one of ('h', 'D')")
    validate_timezone(tz)
    if f.store_id is None and f.camera_id is None:
        raise InvalidValueError("coverage needs a store_id or a camera_id")
    start, end = _window(f, now, flush_seconds)
    if end <= start:
        return pd.DataFrame(index=pd.DatetimeIndex([], tz=tz, name="timestamp"))
    first, last = utc_text(start.to_pydatetime()), utc_text(end.to_pydatetime())
    if f.camera_id is not None:
        cameras = [int(f.camera_id)]
    else:
        cameras = _expected_cameras(db, [f.store_id], first, last)[f.store_id]
    return _coverage_frame(
        _Quarters.of(start, end, freq, tz),
        cameras,
        _online_seconds(db, freq, tz, cameras, first, last),
        _first_records(db, cameras),
        freq,
        tz,
    )


def _coverage_frame(
    quarters: _Quarters,
    cameras: list[int],
    online: dict[int, dict[str, float]],
    firsts: dict[int, float],
    freq: str,
    tz: str,
) -> pd.DataFrame:
    columns = {c: quarters.shares(online.get(c, {}), firsts.get(c)) for c in cameras}
    out = pd.DataFrame(columns, index=_bin_index(quarters.keys, freq, tz), dtype=float)
    out.index.name = "timestamp"
    return out


def _online_seconds(
    db: Database, freq: str, tz: str, cameras: list[int], first: str, last: str
) -> dict[int, dict[str, float]]:
    """Per camera: online seconds per bin key, summed by the database. Two processes
    credited in the same quarter (a camera moving between nodes) add up to a quarter."""
    if not cameras:
        return {}
    bin_sql = db.hour_bin_sql("quarter_utc") if freq == "h" else db.local_day_sql("quarter_utc")
    marks = ", ".join("?" * len(cameras))
    sql = (
        f"SELECT camera_id, {bin_sql} AS bin, sum(online_s) AS online_s FROM "
        f"(SELECT camera_id, quarter_utc, CASE WHEN sum(online_s) > {QUARTER_SECONDS} "
        f"THEN {QUARTER_SECONDS} ELSE sum(online_s) END AS online_s FROM camera_coverage "
        f"WHERE camera_id IN ({marks}) AND quarter_utc >= ? AND quarter_utc < ? "
        "GROUP BY camera_id, quarter_utc) AS quarters GROUP BY camera_id, bin"
    )
    params = [tz] * bin_sql.count("?") + cameras + [first, last]
    with db.reader() as conn:
        rows = conn.all(sql, params)
    out: dict[int, dict[str, float]] = {}
    for r in rows:
        out.setdefault(int(r["camera_id"]), {})[str(r["bin"])] = float(r["online_s"])
    return out


def _first_records(db: Database, cameras: list[int]) -> dict[int, float]:
    """Per camera: the time (epoch seconds) of its first recorded status change."""
    if not cameras:
        return {}
    marks = ", ".join("?" * len(cameras))
    with db.reader() as conn:
        rows = conn.all(
            "SELECT camera_id, min(ts_utc) AS first FROM camera_status_changes "
            f"WHERE camera_id IN ({marks}) GROUP BY camera_id",
            cameras,
        )
    return {int(r["camera_id"]): parse_utc(r["first"]).timestamp() for r in rows}


def latest_status_change(db: Database, f: EventFilter) -> int:
    """The newest status change id of the filter's store or camera (0 if none): pages
    poll it to redraw when a camera goes down or comes back."""
    sql, params = "SELECT coalesce(max(id), 0) AS newest FROM camera_status_changes", []
    for column, value in (("store_id", f.store_id), ("camera_id", f.camera_id)):
        if value is not None:
            sql += (" AND " if params else " WHERE ") + f"{column} = ?"
            params.append(int(value))
    with db.reader() as conn:
        return int(conn.one(sql, params)["newest"])


def coverage_share(per_camera: pd.DataFrame) -> pd.Series:
    """A store's share per bin: the mean over its cameras whose coverage is known."""
    return per_camera.mean(axis=1, skipna=True).rename("coverage")


@dataclass(frozen=True)
class StoreGaps:
    """A store's coverage over a window: ``coverage`` the mean share (NaN: unknown),
    ``gap_hours`` the local hours less than :data:`COVERED_SHARE` covered, and the
    cameras that had such hours."""

    store_id: int
    coverage: float
    gap_hours: int
    cameras_with_gaps: tuple[int, ...]

    @property
    def has_gaps(self) -> bool:
        return self.gap_hours > 0

    @classmethod
    def of(cls, store_id: int, cameras: list[int], shares: np.ndarray) -> StoreGaps:
        """From each camera's shares per hour (rows: ``cameras``; NaN: unknown)."""
        known = ~np.isnan(shares)
        gappy = known & (np.nan_to_num(shares, nan=1.0) < COVERED_SHARE)
        counted = known.sum(axis=0)  # the store's share per hour: mean of known cameras
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(counted > 0, np.nansum(shares, axis=0) / counted, np.nan)
        return cls(
            store_id=store_id,
            coverage=float(np.nanmean(share)) if (counted > 0).any() else float("nan"),
            gap_hours=int(np.sum(share < COVERED_SHARE)),
            cameras_with_gaps=tuple(
                c for c, g in zip(cameras, gappy.any(axis=1), strict=True) if g
            ),
        )


def store_gaps(
    db: Database,
    stores: Iterable[Store] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
    flush_seconds: float = 0.0,
) -> dict[int, StoreGaps]:
    """Per store (by id; every store unless ``stores``): its coverage over [start, end),
    by default its local day so far, for the overview.

    Hours are each store's local hours; ``now`` and ``flush_seconds`` as in
    :func:`camera_coverage`.
    """
    now = datetime.now(timezone.utc) if now is None else now
    by_zone: dict[str, list[Store]] = {}
    for store in db.list_stores() if stores is None else stores:
        by_zone.setdefault(store.timezone, []).append(store)
    out = {}
    for tz, zone_stores in by_zone.items():  # one local day: a few queries for all its stores
        midnight = datetime.combine(now.astimezone(ZoneInfo(tz)).date(), time.min, ZoneInfo(tz))
        first, last = _window(
            EventFilter(None, None, start or midnight, end or now), now, flush_seconds
        )
        for store in zone_stores:
            out[store.id] = StoreGaps.of(store.id, [], np.empty((0, 0)))
        if last <= first:
            continue
        window = utc_text(first.to_pydatetime()), utc_text(last.to_pydatetime())
        expected = _expected_cameras(db, [s.id for s in zone_stores], *window)
        cameras = sorted({c for ids in expected.values() for c in ids})
        online = _online_seconds(db, "h", tz, cameras, *window)
        firsts = _first_records(db, cameras)
        quarters = _Quarters.of(first, last, "h", tz)
        for store in zone_stores:
            ids = expected[store.id]
            shares = [quarters.shares(online.get(c, {}), firsts.get(c)) for c in ids]
            out[store.id] = StoreGaps.of(store.id, ids, np.array(shares).reshape(len(ids), -1))
    return out


def heat_grid(db: Database, camera_id: int, start: datetime, end: datetime) -> np.ndarray:
    """Visits per cell of the camera's heat grid over the hours starting in [start, end):
    shape (:data:`HEAT_ROWS`, :data:`HEAT_COLUMNS`), row 0 at the top of the frame. Grids
    of another size (written by another zvpanel version) are left out."""
    with db.reader() as conn:
        rows = conn.all(
            "SELECT grid_w, grid_h, cells FROM heat_grids WHERE camera_id = ? AND hour_utc >= ? "
            "AND hour_utc < ? AND grid_w = ? AND grid_h = ?",
            (int(camera_id), utc_text(start), utc_text(end), HEAT_COLUMNS, HEAT_ROWS),
        )
    grid = np.zeros((HEAT_ROWS, HEAT_COLUMNS), dtype=np.int64)
    for r in rows:
        grid += decode_grid(r["cells"], r["grid_w"], r["grid_h"])
    return grid
