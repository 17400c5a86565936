"""Store overview build time on a year of events for 50 stores.

    flock /work/notes/bench.lock .venv/bin/python benchmarks/overview.py \
        [--stores 50] [--days 365] [--retention-days 90] [--postgres] [--keep DB [--reuse]]

Seeds a real database (a SQLite file, or with ``--postgres`` a PostgreSQL server started
like the tests start theirs) with ``--days`` of synthetic traffic ending now, for
``--stores`` stores in six time zones, 4 cameras each: every store gets a base of
200-2000 entries a day, a weekday factor (Saturday busiest, Sunday quietest), opening
hours 9:00-20:00 local with a midday and an evening peak, and an exit for every entry
about 5-60 minutes later. Days older than ``--retention-days`` are stored as retention
leaves them (hourly totals per camera and line, exactly what ``roll_up_events`` writes,
seeded directly rather than inserted raw and rolled up, which would take most of the
run), the rest as raw events; then the product's retention (``apply_retention``) runs
once over the boundary. ``--retention-days 0`` keeps every event raw (the default
setting, ``ZVPANEL_RETENTION_DAYS`` unset; about 40 million rows for 50 stores).

It prints the seeding figures and the overview build time, cold (first build after the
database was opened) and warm (median and max of ``--repeats`` more): the stores table's
queries with every window counted, and with whole past days reused as the page does
(:class:`zvpanel.storage.overview.PastDays`: its cold build fills it), the cameras' last
events, one store's heat map, and the whole page view
(:class:`zvpanel.ui.overview.OverviewView`: all of the above, the gaps column and its Panel
objects).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import date, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' PostgreSQL starter, reused as it is

from zvpanel.config import load_settings  # noqa: E402
from zvpanel.engine import ResultHub  # noqa: E402
from zvpanel.storage import Database, utc_text  # noqa: E402
from zvpanel.storage.overview import (  # noqa: E402
    PastDays,
    last_event_times,
    store_days,
    weekly_heat,
)

ZONES = (
    "Europe/Paris",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Australia/Sydney",
)
CAMERAS_PER_STORE = 4
DAILY_ENTRIES = (200, 2000)
#: Share of a week's traffic per weekday, Monday first (mean 1).
WEEKDAY_FACTOR = np.array([0.85, 0.85, 0.9, 0.95, 1.15, 1.5, 0.8])
OPEN_HOUR, CLOSE_HOUR = 9, 20
#: Minutes a visitor stays (uniform).
STAY_MINUTES = (5, 60)
#: Raw events inserted per transaction while seeding.
INSERT_BATCH = 200_000
SEED = 13


def opening_profile() -> np.ndarray:
    """Share of a day's entries per minute of the day: open 9-20, peaks at 12:30 and 17:30."""
    minutes = np.arange(24 * 60)
    profile = np.exp(-(((minutes - 750) / 90.0) ** 2)) + 1.2 * np.exp(
        -(((minutes - 1050) / 100.0) ** 2)
    )
    profile += 0.3
    profile[(minutes < OPEN_HOUR * 60) | (minutes >= CLOSE_HOUR * 60)] = 0
    return profile / profile.sum()


# ---------------------------------------------------------------------- seeding
def create_stores(db: Database, count: int) -> list:
    stores = []
    for n in range(count):
        store = db.create_store(f"Store {n + 1:02d}", ZONES[n % len(ZONES)])
        for c in range(CAMERAS_PER_STORE):
            db.create_camera(store.id, f"Door {c + 1}", f"rtsp://cam-{n}-{c}.invalid/stream")
        stores.append(store)
    return stores


def day_visits(rng, store, day: date, base: int, profile: np.ndarray):
    """(entry times, exit times, camera index per visitor) of one local day, UTC seconds."""
    count = rng.poisson(base * WEEKDAY_FACTOR[day.weekday()])
    minute = rng.choice(len(profile), size=count, p=profile)
    seconds = minute * 60 + rng.uniform(0, 60, size=count)
    midnight = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(store.timezone))
    start = midnight.timestamp()  # local wall-clock seconds; a DST day is off by an hour
    entries = start + seconds
    exits = entries + rng.uniform(*STAY_MINUTES, size=count) * 60
    return entries, exits, rng.integers(0, CAMERAS_PER_STORE, size=count)


def store_events(rng, store, days: int, now: datetime, profile: np.ndarray):
    """(UTC seconds, is exit, camera index) of every event of a store up to ``now``."""
    base = int(rng.integers(*DAILY_ENTRIES))
    today = now.astimezone(ZoneInfo(store.timezone)).date()
    parts = [
        day_visits(rng, store, today - timedelta(days=back), base, profile)
        for back in range(days, -1, -1)
    ]
    entries, exits, cams = (np.concatenate(column) for column in zip(*parts, strict=True))
    times = np.concatenate([entries, exits])
    is_exit = np.concatenate([np.zeros(len(entries), bool), np.ones(len(exits), bool)])
    keep = times < now.timestamp()
    return times[keep], is_exit[keep], np.concatenate([cams, cams])[keep]


def utc_texts(seconds: np.ndarray) -> np.ndarray:
    """The stored time text of each UTC time (``utc_text``, vectorised)."""
    micro = (seconds * 1e6).astype("int64").astype("datetime64[us]")
    return np.char.add(np.datetime_as_string(micro, unit="us"), "Z")


def seed(db: Database, stores: list, days: int, raw_days: int | None, now: datetime) -> dict:
    """Insert the synthetic traffic; returns what was written."""
    rng = np.random.default_rng(SEED)
    profile = opening_profile()
    cutoff = -np.inf if raw_days is None else (now - timedelta(days=raw_days)).timestamp()
    written = {"raw": 0, "hourly": 0, "entries": 0}
    for store in stores:
        cameras = np.array([c.id for c in db.list_cameras(store.id)])
        times, is_exit, cams = store_events(rng, store, days, now, profile)
        written["entries"] += int((~is_exit).sum())
        old = times < cutoff
        # Rolled up: per camera and UTC hour, entries and exits (what retention writes).
        key = np.stack([cams[old], (times[old] // 3600).astype(np.int64), is_exit[old]])
        hourly: dict[tuple, list[int]] = {}
        if key.size:
            groups, counts = np.unique(key, axis=1, return_counts=True)
            for (cam, hour, out), n in zip(groups.T, counts, strict=True):
                hour_text = utc_text(datetime.fromtimestamp(int(hour) * 3600, timezone.utc))
                hourly.setdefault((int(cameras[cam]), hour_text), [0, 0])[int(out)] = int(n)
        written["hourly"] += insert_hourly(db, store.id, hourly)
        new = ~old
        directions = np.where(is_exit[new], "exit", "entry")
        rows = [
            (store.id, int(cameras[c]), "door", 0, d, str(t), 0, 0.9, None, None)
            for c, d, t in zip(cams[new], directions, utc_texts(times[new]), strict=True)
        ]
        for first in range(0, len(rows), INSERT_BATCH):
            written["raw"] += db.insert_events(rows[first : first + INSERT_BATCH])
    return written


def insert_hourly(db: Database, store_id: int, hourly: dict[tuple, list[int]]) -> int:
    rows = [(store_id, c, "door", h, e, x) for (c, h), (e, x) in hourly.items()]
    if rows:
        with db._write(serial=False) as conn:  # the benchmark writes what retention would
            conn.executemany(
                "INSERT INTO hourly_line_totals (store_id, camera_id, line_id, hour_utc, "
                "entries, exits) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
    return len(rows)


# ---------------------------------------------------------------------- measuring
def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def measure(name: str, action: Callable[[], object], repeats: int) -> None:
    cold = timed(action)
    warm = [timed(action) for _ in range(repeats)]
    print(
        f"  {name:<34} cold {cold * 1000:8.1f} ms   warm median "
        f"{statistics.median(warm) * 1000:8.1f} ms, max {max(warm) * 1000:8.1f} ms"
    )


def overview_view(db: Database):
    from zvpanel.ui.overview import OverviewView  # imported before timing (Panel's start-up)

    app = SimpleNamespace(db=db, hub=ResultHub(), settings=load_settings())
    return OverviewView(app, None)


def run(target: str | Path, args: argparse.Namespace) -> None:
    now = datetime.now(timezone.utc)
    if not args.reuse:
        populate(target, args, now)
    measure_all(target, args, now)


def populate(target: str | Path, args: argparse.Namespace, now: datetime) -> None:
    with Database(target) as db:
        stores = create_stores(db, args.stores)
        raw_days = args.retention_days or None
        started = time.perf_counter()
        written = seed(db, stores, args.days, raw_days, now)
        seconds = time.perf_counter() - started
        rolled = db.apply_retention(raw_days, now=now).events if raw_days else 0
    if isinstance(target, str):  # PostgreSQL: what autovacuum does after a bulk load
        vacuum_analyze(target)
        print(
            f"seeded {args.stores} stores x {CAMERAS_PER_STORE} cameras, {args.days} days "
            f"({written['entries']:,} entries): {written['raw']:,} raw events, "
            f"{written['hourly']:,} hourly totals, in {seconds:.0f} s; retention then "
            f"rolled up {rolled:,} more"
        )


def vacuum_analyze(url: str) -> None:
    """Statistics for the planner and the visibility map for index-only scans, now rather
    than whenever autovacuum gets to the freshly loaded tables."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def measure_all(target: str | Path, args: argparse.Namespace, now: datetime) -> None:
    import zvpanel.ui.overview  # noqa: F401  (Panel and HoloViews load once per process)

    # A fresh Database object for the measurements: nothing cached by the seeding one.
    with Database(target) as db:
        stores = db.list_stores()
        cameras = [c.id for c in db.list_cameras()]
        print(f"overview of {len(stores)} stores ({db.dialect}, {db.location}):")
        measure("stores table, all counted", lambda: store_days(db, stores, now), args.repeats)
        past = PastDays()
        reused = partial(store_days, db, stores, now, past)
        measure("stores table, past days reused", reused, args.repeats)
        measure("cameras' last events", lambda: last_event_times(db, cameras), args.repeats)
        measure("heat map of one store", lambda: weekly_heat(db, stores[0], now), args.repeats)
        measure("whole page view (OverviewView)", lambda: overview_view(db), args.repeats)


def sqlite_target(args: argparse.Namespace, stack: ExitStack) -> Path:
    if args.keep:
        if not args.reuse:
            Path(args.keep).unlink(missing_ok=True)
        return Path(args.keep)
    folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="zv-overview-"))
    return Path(folder) / "overview.db"


def postgres_target(stack: ExitStack) -> str:
    from postgres import postgres_server

    server = stack.enter_context(postgres_server())
    return server.new_database()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", type=int, default=50)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument(
        "--retention-days", type=int, default=90, help="raw days kept (0: every event raw)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="warm builds measured")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--keep", help="SQLite file to write and keep (default: a temp file)")
    parser.add_argument(
        "--reuse", action="store_true", help="measure the --keep file as it is (no seeding)"
    )
    args = parser.parse_args()
    if args.reuse and not args.keep:
        parser.error("--reuse needs --keep FILE (a database seeded by an earlier run)")
    with ExitStack() as stack:
        target = postgres_target(stack) if args.postgres else sqlite_target(args, stack)
        run(target, args)


if __name__ == "__main__":
    main()
