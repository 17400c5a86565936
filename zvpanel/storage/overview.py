"""Queries behind the store overview: each store's day so far, compared with earlier weeks.

Every number is counted by the database, for all stores at once: the overview builds,
in Python, the UTC windows each store needs in its own time zone (today so far, the same
weekday of each of the last four weeks up to the same local time, each of the last 28
days, each hour of today) and counts the entries of all of them in one query
(:func:`entries_in_windows`), from the index ``events (store_id, direction, ts_utc)``
alone. Rolled-up hours (see retention in :mod:`zvpanel.storage.events`) are added like
the chart queries do: an hour counts when its start is in the window. The heat map of one
store counts its 672 local hours of the last four weeks the same way. Whole past days
may be reused for a while (:class:`PastDays`); today's windows are always counted.

"The same time of day" is the store's local wall-clock time: at 14:30 in Paris, last
week's number counts from last week's local midnight to 14:30 local time that day.
"""

from __future__ import annotations

import threading
import time as clock_time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import numpy as np
import pandas as pd

from .database import Database, InvalidValueError
from .values import Store, parse_utc, utc_text

__all__ = [
    "Window",
    "StoreDay",
    "PastDays",
    "PAST_DAY_SECONDS",
    "COMPARED_WEEKS",
    "TREND_DAYS",
    "entries_in_windows",
    "occupancy_now",
    "last_event_times",
    "store_days",
    "weekly_heat",
]

#: Weeks back the "usual" number averages over (the same weekday of each).
COMPARED_WEEKS = 4
#: Days of the sparkline and of the heat map (whole local days before today).
TREND_DAYS = 7 * COMPARED_WEEKS
#: Windows counted per query (four parameters each, well under both engines' limits).
WINDOWS_PER_QUERY = 1000
#: How long a whole past day's count is reused by :class:`PastDays` (seconds).
PAST_DAY_SECONDS = 600.0
_HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Window:
    """A UTC [start, end) window of one store (aware datetimes)."""

    store_id: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class StoreDay:
    """One row of the overview: a store's day so far next to earlier weeks."""

    store_id: int
    name: str
    timezone: str
    #: Entries since local midnight.
    today: int
    #: Entries on the same weekday last week, up to the same local time.
    last_week: int
    #: Mean of the same weekday of the last :data:`COMPARED_WEEKS` weeks, up to the same time.
    usual: float
    #: People inside now: today's entries minus exits, never below zero.
    occupancy: int
    #: Local start hour (0-23) of today's busiest hour so far, None before the first entry.
    peak_hour: int | None
    peak_entries: int
    #: Entries of each of the last :data:`TREND_DAYS` whole local days, oldest first.
    daily: tuple[int, ...]


def _check_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise InvalidValueError(f"now {now!r} must be timezone-aware")


def _midnight(day: date, store: Store) -> datetime:
    return datetime.combine(day, time.min, store.tz).astimezone(timezone.utc)


def _at(day: date, clock: time, store: Store) -> datetime:
    return datetime.combine(day, clock, store.tz).astimezone(timezone.utc)


def entries_in_windows(db: Database, windows: Sequence[Window]) -> list[int]:
    """Entries in each window, in order: raw events plus rolled-up hours starting in it."""
    counts: list[int] = []
    for first in range(0, len(windows), WINDOWS_PER_QUERY):
        chunk = windows[first : first + WINDOWS_PER_QUERY]
        counts.extend(_count_chunk(db, chunk, first))
    return counts


def _values(rows: int, columns: int) -> str:
    """``VALUES`` rows of typed parameters (PostgreSQL cannot infer a parameter's type)."""
    types = ("BIGINT", "BIGINT", "TEXT", "TEXT")[-columns:]
    row = "(" + ", ".join(f"CAST(? AS {t})" for t in types) + ")"
    return "VALUES " + ", ".join([row] * rows)


def _count_chunk(db: Database, windows: Sequence[Window], first: int) -> list[int]:
    sql = (
        f"WITH w (n, store_id, start_ts, end_ts) AS ({_values(len(windows), 4)}) "
        "SELECT w.n, (SELECT count(*) FROM events e WHERE e.store_id = w.store_id "
        "AND e.direction = 'entry' AND e.ts_utc >= w.start_ts AND e.ts_utc < w.end_ts) + "
        "(SELECT coalesce(sum(h.entries), 0) FROM hourly_line_totals h "
        "WHERE h.store_id = w.store_id AND h.hour_utc >= w.start_ts "
        "AND h.hour_utc < w.end_ts) AS entries FROM w ORDER BY w.n"
    )
    params: list = []
    for n, window in enumerate(windows, start=first):
        params += [n, window.store_id, utc_text(window.start), utc_text(window.end)]
    with db.reader() as conn:
        rows = conn.all(sql, params)
    return [int(r["entries"]) for r in rows]


def occupancy_now(db: Database, stores: Iterable[Store], now: datetime) -> dict[int, int]:
    """People inside each store at ``now``: today's (local) entries minus exits, never
    below zero at any step, exactly as :func:`zvpanel.storage.queries.occupancy` counts
    them (a rolled-up hour is its entries, then its exits, at its start)."""
    _check_aware(now)
    windows = [Window(s.id, _midnight(now.astimezone(s.tz).date(), s), now) for s in stores]
    if not windows:
        return {}
    match = "{t}.store_id = w.store_id AND {t}.{ts} >= w.start_ts AND {t}.{ts} < w.end_ts"
    raw = match.format(t="e", ts="ts_utc")
    rolled = match.format(t="h", ts="hour_utc")
    # The running sum clamped at zero ends at: net - min(0, lowest plain running sum).
    sql = (
        f"WITH w (store_id, start_ts, end_ts) AS ({_values(len(windows), 3)}), steps AS ("
        "SELECT e.store_id, e.ts_utc AS ts, e.id AS seq, 0 AS part, "
        "CASE WHEN e.direction = 'entry' THEN 1 ELSE -1 END AS step "
        f"FROM events e JOIN w ON {raw} "
        "UNION ALL SELECT h.store_id, h.hour_utc, 0, 0, h.entries "
        f"FROM hourly_line_totals h JOIN w ON {rolled} "
        "UNION ALL SELECT h.store_id, h.hour_utc, 0, 1, -h.exits "
        f"FROM hourly_line_totals h JOIN w ON {rolled}), "
        "running AS (SELECT store_id, step, sum(step) OVER (PARTITION BY store_id "
        "ORDER BY ts, seq, part ROWS UNBOUNDED PRECEDING) AS total FROM steps) "
        "SELECT store_id, sum(step) AS net, min(total) AS lowest FROM running GROUP BY store_id"
    )
    params: list = []
    for window in windows:
        params += [window.store_id, utc_text(window.start), utc_text(window.end)]
    with db.reader() as conn:
        rows = conn.all(sql, params)
    inside = {w.store_id: 0 for w in windows}
    for r in rows:
        inside[int(r["store_id"])] = int(r["net"]) - min(0, int(r["lowest"]))
    return inside


def last_event_times(db: Database, camera_ids: Iterable[int]) -> dict[int, datetime | None]:
    """Each camera's newest event time (UTC), or the start of its newest rolled-up hour
    when retention took all its raw events; None for a camera that never counted."""
    ids = [int(c) for c in camera_ids]
    if not ids:
        return {}
    # Correlated max() per camera: an index lookup each, never a scan of all events.
    sql = (
        "SELECT c.id, coalesce((SELECT max(e.ts_utc) FROM events e WHERE e.camera_id = c.id), "
        "(SELECT max(h.hour_utc) FROM hourly_line_totals h WHERE h.camera_id = c.id)) AS last "
        f"FROM cameras c WHERE c.id IN ({', '.join('?' * len(ids))})"
    )
    with db.reader() as conn:
        rows = conn.all(sql, ids)
    found = {int(r["id"]): r["last"] for r in rows}
    return {c: None if found.get(c) is None else parse_utc(found[c]) for c in ids}


@dataclass(frozen=True)
class _StoreWindows:
    """Where one store's windows sit in the list counted at once."""

    today: int
    weeks: tuple[int, ...]
    days: tuple[int, ...]
    hours: tuple[int, ...]
    hour_labels: tuple[int, ...]


def _store_windows(store: Store, now: datetime, windows: list[Window]) -> _StoreWindows:
    """Append the store's windows to ``windows``; return where they are."""
    local = now.astimezone(store.tz)
    today, clock = local.date(), local.time().replace(tzinfo=None)
    midnight = _midnight(today, store)

    def add(start: datetime, end: datetime) -> int:
        windows.append(Window(store.id, start, end))
        return len(windows) - 1

    at_today = add(midnight, now)
    week_days = [today - timedelta(weeks=k) for k in range(1, COMPARED_WEEKS + 1)]
    weeks = tuple(add(_midnight(d, store), _at(d, clock, store)) for d in week_days)
    trend_days = [today - timedelta(days=k) for k in range(TREND_DAYS, 0, -1)]
    days = tuple(
        add(_midnight(d, store), _midnight(d + timedelta(days=1), store)) for d in trend_days
    )
    starts = list(_hour_starts(midnight, now))
    hours = tuple(add(s, min(s + _HOUR, now)) for s in starts)
    labels = tuple(s.astimezone(store.tz).hour for s in starts)
    return _StoreWindows(at_today, weeks, days, hours, labels)


def _hour_starts(start: datetime, end: datetime) -> Iterator[datetime]:
    """The starts of the local hours from ``start`` (a local midnight) until ``end``.

    Local hours start every 60 minutes of UTC from local midnight (whole-hour and
    half-hour zones alike); a daylight-saving day simply has 23 or 25 of them.
    """
    while start < end:
        yield start
        start += _HOUR


class PastDays:
    """Entries of whole past days, counted once and reused for ``ttl`` seconds.

    A past day changes only when events reach the database late (a node forwarding its
    outbox after an outage), so the trend may lag that long behind them; today's numbers
    are always counted afresh. Thread-safe: one instance serves every session of a process.
    """

    def __init__(
        self, ttl: float = PAST_DAY_SECONDS, clock: Callable[[], float] = clock_time.monotonic
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, Window], tuple[float, int]] = {}

    def entries(self, db: Database, windows: Sequence[Window], past: Iterable[int]) -> list[int]:
        """:func:`entries_in_windows`, with the windows at indexes ``past`` (whole past
        days) taken from earlier counts while they are fresh."""
        now = self.clock()
        with self._lock:
            self._counts = {k: v for k, v in self._counts.items() if now - v[0] < self.ttl}
            known = {i: self._counts.get((db.location, windows[i])) for i in past}
        known = {i: hit[1] for i, hit in known.items() if hit is not None}
        todo = [i for i in range(len(windows)) if i not in known]
        counted = dict(zip(todo, entries_in_windows(db, [windows[i] for i in todo]), strict=True))
        with self._lock:
            for i in set(past) - known.keys():
                self._counts[(db.location, windows[i])] = (now, counted[i])
        return [known[i] if i in known else counted[i] for i in range(len(windows))]


def store_days(
    db: Database, stores: Sequence[Store], now: datetime, past_days: PastDays | None = None
) -> list[StoreDay]:
    """The overview row of each store, at ``now`` (aware), in ``stores`` order; whole past
    days are taken from ``past_days`` while fresh (None: everything counted now)."""
    _check_aware(now)
    windows: list[Window] = []
    placed = [_store_windows(s, now, windows) for s in stores]
    if past_days is None:
        counts = entries_in_windows(db, windows)
    else:
        counts = past_days.entries(db, windows, [i for at in placed for i in at.days])
    inside = occupancy_now(db, stores, now)
    rows = []
    for store, at in zip(stores, placed, strict=True):
        hourly = [counts[i] for i in at.hours]
        peak = int(np.argmax(hourly)) if hourly and max(hourly) > 0 else None
        weeks = [counts[i] for i in at.weeks]
        rows.append(
            StoreDay(
                store_id=store.id,
                name=store.name,
                timezone=store.timezone,
                today=counts[at.today],
                last_week=weeks[0],
                usual=sum(weeks) / len(weeks),
                occupancy=inside[store.id],
                peak_hour=None if peak is None else at.hour_labels[peak],
                peak_entries=0 if peak is None else hourly[peak],
                daily=tuple(counts[i] for i in at.days),
            )
        )
    return rows


def weekly_heat(db: Database, store: Store, now: datetime) -> pd.DataFrame:
    """Mean entries per local weekday (0 = Monday) and hour over the last
    :data:`TREND_DAYS` whole local days before ``now``'s day: 7 rows x 24 columns."""
    _check_aware(now)
    today = now.astimezone(store.tz).date()
    end = _midnight(today, store)
    starts = list(_hour_starts(_midnight(today - timedelta(days=TREND_DAYS), store), end))
    counts = entries_in_windows(db, [Window(store.id, s, s + _HOUR) for s in starts])
    grid = np.zeros((7, 24))
    for start, count in zip(starts, counts, strict=True):
        local = start.astimezone(store.tz)
        grid[local.weekday(), local.hour] += count
    return pd.DataFrame(grid / COMPARED_WEEKS, index=range(7), columns=range(24))
