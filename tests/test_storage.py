"""Storage on both backends (a real SQLite file in tmp_path, a real PostgreSQL server
started by the session fixture): schema, users, stores, cameras, calibrations, events,
the event writer, chart queries, retention and the start-up bootstrap.

The ``db`` and ``db_target`` fixtures run a test once per backend; tests of SQLite's own
behaviour (the file, WAL) take ``db_path``."""

from __future__ import annotations

import logging
import re
import socket
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from argon2 import PasswordHasher

from zvpanel.app import App
from zvpanel.calibration import parse_calibration
from zvpanel.config import load_settings
from zvpanel.counting import CrossingEvent
from zvpanel.errors import ConfigError, NotFoundError
from zvpanel.storage import (
    DEMO_CALIBRATION,
    MAX_RETENTION_DAYS,
    SCHEMA_VERSION,
    ConflictError,
    Database,
    EventFilter,
    EventRow,
    EventWriter,
    InvalidValueError,
    binned_counts,
    bootstrap,
    events_frame,
    latest_event_id,
    occupancy,
    per_camera,
    utc_text,
)
from zvpanel.storage import schema as schema_module
from zvpanel.storage.retention import RetentionJob

UTC = timezone.utc
T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
VIDEO = Path(__file__).resolve().parents[1] / "data" / "vtest.avi"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "zvpanel.db"


@pytest.fixture
def camera(db: Database):
    store = db.create_store("Main street", "Europe/Paris")
    return db.create_camera(store.id, "Door", str(VIDEO))


def crossing(direction: str, track_id: int = 1, frame: int = 0, line: str = "door"):
    return CrossingEvent(line, track_id, direction, frame, 0.9, (10.0, 20.0))


def add_events(db: Database, camera, items: list[tuple[datetime, str]]) -> None:
    db.insert_events(
        EventRow(camera.store_id, camera.id, "door", i, d, utc_text(t), i, 0.8)
        for i, (t, d) in enumerate(items)
    )


def settings_for(tmp_path: Path, **overrides):
    values = dict(
        db_path=tmp_path / "boot.db",
        dev_mode=False,
        demo=False,
        admin_username=None,
        admin_password=None,
        sample_video=VIDEO,
    )
    values.update(overrides)
    return load_settings(**values)


# --------------------------------------------------------------------------- schema
def test_open_creates_file_wal_and_schema(db_path: Path, fast_hasher):
    db = Database(db_path, password_hasher=fast_hasher)
    assert db_path.is_file() and db.dialect == "sqlite"
    other = sqlite3.connect(db_path)
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in other.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        indexes = {r[0] for r in other.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    finally:
        other.close()
    assert {"users", "stores", "cameras", "calibrations", "counting_lines", "events"} <= tables
    assert {"events_store_ts", "events_camera_ts"} <= indexes
    assert db._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    db.close()


def test_reopen_is_idempotent_and_keeps_data(db_target, fast_hasher):
    with Database(db_target, password_hasher=fast_hasher) as first:
        first.create_store("A", "UTC")
    for _ in range(2):
        with Database(db_target, password_hasher=fast_hasher) as again:
            assert [s.name for s in again.list_stores()] == ["A"]
            assert again._backend.schema_version(again._conn) == SCHEMA_VERSION
            assert schema_module.migrate(again._conn, again._backend) == SCHEMA_VERSION


def test_a_later_migration_upgrades_an_existing_database(db_target, fast_hasher, monkeypatch):
    with Database(db_target, password_hasher=fast_hasher) as db:
        db.create_store("Kept", "UTC")
    later = ("ALTER TABLE stores ADD COLUMN note TEXT NOT NULL DEFAULT 'none'",)
    monkeypatch.setattr(schema_module, "MIGRATIONS", (*schema_module.MIGRATIONS, later))
    monkeypatch.setattr(schema_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with Database(db_target, password_hasher=fast_hasher) as db:
        assert db._backend.schema_version(db._conn) == SCHEMA_VERSION + 1
        row = db._conn.execute("SELECT name, note FROM stores").fetchone()
        assert tuple(row) == ("Kept", "none")


def test_newer_database_is_refused(db_target, fast_hasher):
    with Database(db_target, password_hasher=fast_hasher) as db:
        db._backend.set_schema_version(db._conn, SCHEMA_VERSION + 5)
    with pytest.raises(ConfigError, match="newer"):
        Database(db_target, password_hasher=fast_hasher)


def test_postgres_writer_reconnects_after_the_server_drops_it(postgres, fast_hasher):
    with Database(postgres.new_database(), password_hasher=fast_hasher) as db:
        assert db.dialect == "postgresql" and "127.0.0.1" in db.location
        db.create_store("Before", "UTC")
        with psycopg.connect(postgres.url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (db._conn.raw.info.backend_pid,))
        db.create_store("After", "UTC")
        assert [s.name for s in db.list_stores()] == ["After", "Before"]


def test_postgres_writer_logs_one_line_per_outage(postgres, fast_hasher, caplog):
    """Writes retried through an outage (the engine's writer tries every batch) log that
    the connection was lost once, and once that it is back: not a line per write."""
    caplog.set_level(logging.INFO, logger="zvpanel.storage.database")
    with Database(postgres.new_database(), password_hasher=fast_hasher) as db:
        db.create_store("Before", "UTC")
        postgres.stop()
        try:
            for attempt in range(3):
                with pytest.raises(Exception):  # noqa: B017 (the driver's or ours: either names it)
                    db.create_store(f"During {attempt}", "UTC")
        finally:
            postgres.start()
        db.create_store("After", "UTC")
        assert [s.name for s in db.list_stores()] == ["After", "Before"]
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in said] == [logging.WARNING, logging.INFO], said
    assert "writer connection lost (" in said[0][1] and "reconnecting" in said[0][1]
    assert "writer connection back" in said[1][1]


def test_postgres_serial_writes_of_two_processes_take_turns(postgres, fast_hasher):
    """Like SQLite's write lock: a check-then-write (the last admin) of one process waits
    for another process's write transaction; event inserts do not."""
    url = postgres.new_database()
    with (
        Database(url, password_hasher=fast_hasher) as first,
        Database(url, password_hasher=fast_hasher) as second,
        psycopg.connect(postgres.url(), autocommit=True) as watcher,
    ):
        first.create_user("ann", "password-1", is_admin=True)
        store = first.create_store("Shop", "UTC")
        camera = first.create_camera(store.id, "Door", "0")
        other_pid = second._conn.raw.info.backend_pid

        def waiting_on_lock() -> bool:
            row = watcher.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (other_pid,)
            ).fetchone()
            return row is not None and row[0] == "Lock"

        with first._write() as conn:  # one process in a serial write...
            conn.execute("UPDATE users SET is_admin = 1 WHERE username = 'ann'")
            add_events(second, camera, [(T0, "entry")])  # ...events still go in
            waiter = threading.Thread(target=second.create_user, args=("bob", "password-2"))
            waiter.start()
            for _ in range(400):  # the other process's serial write waits for the lock
                if waiting_on_lock():
                    break
                threading.Event().wait(0.05)
            assert waiting_on_lock() and waiter.is_alive()
        waiter.join()
        assert [u.username for u in first.list_users()] == ["ann", "bob"]
        assert first.count_events() == {"entry": 1, "exit": 0}


def test_unreachable_postgres_is_a_config_error_without_the_password(fast_hasher):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # a port nothing listens on
        url = f"postgresql://zv:s3cret-pw@127.0.0.1:{s.getsockname()[1]}/zvpanel"
        with pytest.raises(ConfigError, match="ZVPANEL_DATABASE_URL") as info:
            Database(url, password_hasher=fast_hasher)
    assert "s3cret-pw" not in str(info.value) and "zv:***@127.0.0.1" in str(info.value)


def test_a_password_in_the_database_urls_query_is_masked_too(postgres, fast_hasher):
    """PostgreSQL also takes ``?password=``: what messages and logs show must not have it."""
    url = f"{postgres.new_database()}?password=s3cret-query"  # trust auth: any password
    with Database(url, password_hasher=fast_hasher) as db:
        shown = repr(db)
    assert "s3cret-query" not in shown and "password=***" in shown


def test_closed_database_refuses_writes(db_target, fast_hasher):
    db = Database(db_target, password_hasher=fast_hasher)
    db.close()
    with pytest.raises(Exception, match="closed"):
        db.create_store("X", "UTC")


def test_unusable_path_is_a_config_error_naming_it(tmp_path: Path, fast_hasher):
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("this is not a database " * 100)
    with pytest.raises(ConfigError, match="notes.txt.*ZVPANEL_DB_PATH"):
        Database(not_a_db, password_hasher=fast_hasher)
    with pytest.raises(ConfigError, match="ZVPANEL_DB_PATH"):
        Database(tmp_path, password_hasher=fast_hasher)  # a directory


def test_concurrent_writes_and_reads_from_threads(db: Database):
    errors: list[BaseException] = []

    def add_stores(worker: int) -> None:
        try:
            for i in range(15):
                db.create_store(f"store-{worker}-{i}", "UTC")
                db.list_stores()
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=add_stores, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(db.list_stores()) == 60


# --------------------------------------------------------------------------- users
def test_passwords_are_hashed_with_argon2id_and_authenticate(db_target):
    with Database(db_target) as db:  # the default hasher and its costs
        user = db.create_user("alice", "correct horse", is_admin=True)
        assert user.username == "alice" and user.is_admin
        assert not hasattr(user, "password_hash")
        stored = db._conn.execute("SELECT password_hash FROM users").fetchone()[0]
        assert stored.startswith("$argon2id$") and "correct horse" not in stored
        assert db.authenticate("alice", "correct horse") == user
        assert db.authenticate("alice", "wrong password") is None
        assert db.authenticate("nobody", "correct horse") is None


def test_user_management(db: Database):
    db.create_user("admin1", "password-1", is_admin=True)
    bob = db.create_user("bob", "password-2")
    assert not bob.is_admin
    assert [u.username for u in db.list_users()] == ["admin1", "bob"]
    assert db.get_user("bob") == bob
    with pytest.raises(ConflictError, match="'bob' already exists"):
        db.create_user("bob", "password-3")
    with pytest.raises(InvalidValueError, match="too short"):
        db.create_user("carol", "short")
    with pytest.raises(InvalidValueError, match="username"):
        db.create_user(" spaced ", "password-4")
    with pytest.raises(NotFoundError, match="'zed'"):
        db.get_user("zed")

    db.reset_password("bob", "new-password")
    assert db.authenticate("bob", "password-2") is None
    assert db.authenticate("bob", "new-password") is not None

    assert db.set_admin("bob").is_admin
    assert not db.set_admin("admin1", False).is_admin
    with pytest.raises(ConflictError, match="only admin"):
        db.set_admin("bob", False)
    assert db.get_user("bob").is_admin


def test_authenticate_rehashes_old_parameters(db_target, fast_hasher):
    with Database(db_target, password_hasher=fast_hasher) as db:
        db.create_user("dave", "password-1")
    stronger = PasswordHasher(time_cost=2, memory_cost=16 * 1024, parallelism=1)
    with Database(db_target, password_hasher=stronger) as db:
        assert db.authenticate("dave", "password-1") is not None
        stored = db._conn.execute("SELECT password_hash FROM users").fetchone()[0]
        assert "m=16384,t=2" in stored
        assert db.authenticate("dave", "password-1") is not None


# --------------------------------------------------------------------------- stores
def test_store_round_trip_and_updates(db: Database):
    store = db.create_store("Main street", "Europe/Paris")
    assert db.get_store(store.id) == store
    assert store.tz.key == "Europe/Paris"
    with pytest.raises(ConflictError, match="'Main street'"):
        db.create_store("Main street", "UTC")
    updated = db.update_store(store.id, name="High street", timezone="America/New_York")
    assert (updated.name, updated.timezone) == ("High street", "America/New_York")
    other = db.create_store("Airport", "UTC")
    assert [s.name for s in db.list_stores()] == ["Airport", "High street"]
    db.delete_store(other.id)
    with pytest.raises(NotFoundError, match=f"id {other.id}"):
        db.get_store(other.id)


@pytest.mark.parametrize("bad", ["Mars/Olympus", "", "Europe/../etc", "utc+2"])
def test_bad_timezone_is_a_value_error_naming_it(db: Database, bad: str):
    with pytest.raises(ValueError, match="timezone") as info:
        db.create_store("Shop", bad)
    assert isinstance(info.value, InvalidValueError)
    assert repr(bad) in str(info.value)
    store = db.create_store("Shop", "UTC")
    with pytest.raises(InvalidValueError, match=re.escape(repr(bad))):
        db.update_store(store.id, timezone=bad)


# --------------------------------------------------------------------------- cameras
def test_camera_round_trip(db: Database):
    store = db.create_store("S", "UTC")
    other = db.create_store("T", "UTC")
    cam = db.create_camera(store.id, "Door", "rtsp://cam/1")
    assert db.get_camera(cam.id) == cam
    assert cam.enabled and not cam.archived and cam.store_id == store.id
    with pytest.raises(ConflictError, match="'Door'"):
        db.create_camera(store.id, "Door", "rtsp://cam/2")
    same_name = db.create_camera(other.id, "Door", "0", enabled=False)
    assert not same_name.enabled
    with pytest.raises(NotFoundError, match="store with id 999"):
        db.create_camera(999, "X", "0")
    with pytest.raises(InvalidValueError, match="source"):
        db.create_camera(store.id, "Empty", "  ")

    cam = db.update_camera(cam.id, name="Front door", source="rtsp://cam/9")
    assert (cam.name, cam.source) == ("Front door", "rtsp://cam/9")
    assert not db.set_enabled(cam.id, False).enabled
    assert db.set_enabled(cam.id, True).enabled
    assert [c.id for c in db.list_cameras()] == [cam.id, same_name.id]
    assert [c.id for c in db.list_cameras(store_id=other.id)] == [same_name.id]


def test_calibration_round_trip(db: Database, camera):
    assert db.get_calibration(camera.id) is None
    calibration = parse_calibration(
        {
            "roi": [10, 20, 700, 560],
            "lines": [
                {"id": "door", "x1": 100, "y1": 50, "x2": 100.5, "y2": 500},
                {
                    "id": "aisle",
                    "x1": 50,
                    "y1": 300,
                    "x2": 650,
                    "y2": 310.25,
                    "orientation": "rightToLeft",
                },
            ],
            "detection_fps": 7.5,
            "anchor": "center",
            "min_distance": 6.0,
            "min_frames": 2,
        }
    )
    db.set_calibration(camera.id, calibration)
    assert db.get_calibration(camera.id) == calibration
    assert db.calibration_updated_at(camera.id) is not None

    simpler = parse_calibration({"lines": [{"id": "only", "x1": 0, "y1": 0, "x2": 0, "y2": 100}]})
    db.set_calibration(camera.id, simpler)
    assert db.get_calibration(camera.id) == simpler
    with pytest.raises(InvalidValueError, match="Calibration"):
        db.set_calibration(camera.id, {"lines": []})  # type: ignore[arg-type]


def test_config_revision_moves_with_config_changes_from_any_connection(db, db_target, camera):
    before = db.config_revision()
    db.set_calibration(camera.id, DEMO_CALIBRATION)
    assert db.config_revision() == before + 1
    db.insert_events(
        [EventRow(camera.store_id, camera.id, "door", 1, "entry", utc_text(T0), 0, 0.5)]
    )
    db.create_user("someone", "password-9")
    assert db.config_revision() == before + 1  # events and users are not configuration
    with Database(db_target, password_hasher=db._hasher) as other_process:
        other_process.set_enabled(camera.id, False)
    assert db.config_revision() == before + 2


def test_listeners_hear_committed_changes(db: Database, camera):
    heard = []
    unsubscribe = db.subscribe(heard.append)
    db.set_calibration(camera.id, DEMO_CALIBRATION)
    db.set_enabled(camera.id, False)
    unsubscribe()
    db.set_enabled(camera.id, True)
    assert [(c.kind, c.id) for c in heard] == [("calibration", camera.id), ("camera", camera.id)]


# --------------------------------------------------------------------------- deletion rule
def test_deleting_a_camera_archives_it_and_keeps_its_events(db: Database, camera):
    db.set_calibration(camera.id, DEMO_CALIBRATION)
    add_events(db, camera, [(T0, "entry"), (T0 + timedelta(minutes=1), "exit"), (T0, "entry")])
    archived = db.delete_camera(camera.id)
    assert archived.archived and not archived.enabled

    assert db.list_cameras() == []
    assert [c.id for c in db.list_cameras(include_deleted=True)] == [camera.id]
    assert db.get_camera(camera.id).name == "Door"
    assert db.count_events(store_id=camera.store_id) == {"entry": 2, "exit": 1}
    assert len(events_frame(db, store_id=camera.store_id)) == 3
    assert db.get_calibration(camera.id) == DEMO_CALIBRATION

    with pytest.raises(NotFoundError, match="deleted"):
        db.update_camera(camera.id, name="X")
    with pytest.raises(NotFoundError, match="deleted"):
        db.set_calibration(camera.id, DEMO_CALIBRATION)
    with pytest.raises(NotFoundError, match="deleted"):
        db.delete_camera(camera.id)
    # The name is free again for a new camera; the old events stay with the old one.
    new = db.create_camera(camera.store_id, "Door", "0")
    assert db.count_events(camera_id=new.id) == {"entry": 0, "exit": 0}
    assert db.count_events(camera_id=camera.id) == {"entry": 2, "exit": 1}


def test_store_with_cameras_or_events_cannot_be_deleted(db: Database, camera):
    with pytest.raises(ConflictError, match="still has 1 camera"):
        db.delete_store(camera.store_id)
    add_events(db, camera, [(T0, "entry")])
    db.delete_camera(camera.id)
    with pytest.raises(ConflictError, match="1 recorded event"):
        db.delete_store(camera.store_id)
    assert db.get_store(camera.store_id).name == "Main street"
    assert len(db.events(store_id=camera.store_id)) == 1

    # A store whose only camera was archived without ever recording goes, with it.
    empty = db.create_store("Empty", "UTC")
    unused = db.create_camera(empty.id, "Unused", "0")
    db.set_calibration(unused.id, DEMO_CALIBRATION)
    db.delete_camera(unused.id)
    db.delete_store(empty.id)
    with pytest.raises(NotFoundError):
        db.get_camera(unused.id)


# --------------------------------------------------------------------------- events + writer
def test_event_writer_two_threads_then_flush(db: Database, camera):
    other = db.create_camera(camera.store_id, "Back door", "1")
    per_thread, per_frame = 200, 3

    def produce(cam, start_track):
        for i in range(per_thread):
            events = [
                crossing("entry" if k % 2 else "exit", start_track + i, i) for k in range(per_frame)
            ]
            assert writer.submit(cam.store_id, cam.id, events, T0 + timedelta(seconds=i))

    with EventWriter(db) as writer:
        threads = [
            threading.Thread(target=produce, args=(camera, 0)),
            threading.Thread(target=produce, args=(other, 10_000)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert writer.flush(timeout=30)
        stats = writer.stats()
    total = 2 * per_thread * per_frame
    assert (stats.submitted, stats.written, stats.dropped, stats.failed) == (total, total, 0, 0)
    assert len(db.events(camera_id=camera.id)) == per_thread * per_frame
    assert len(db.events(camera_id=other.id)) == per_thread * per_frame
    first = db.events(camera_id=other.id, limit=1)[0]
    assert (first.line_id, first.track_id, first.timestamp, first.confidence) == (
        "door",
        10_000,
        T0,
        0.9,
    )


def test_event_writer_drops_when_full_and_never_blocks(db: Database, camera):
    writer = EventWriter(db, queue_size=2, start=False)
    results = [
        writer.submit(camera.store_id, camera.id, [crossing("entry", i)], T0) for i in range(5)
    ]
    assert results == [True, True, False, False, False]
    assert writer.stats().dropped == 3
    writer.start()
    assert writer.flush(timeout=10)
    writer.close()
    assert writer.stats().written == 2
    assert not writer.submit(camera.store_id, camera.id, [crossing("exit")], T0)
    assert len(db.events()) == 2


def test_event_writer_survives_a_bad_batch(db: Database, camera):
    writer = EventWriter(db, start=False)
    writer.submit(camera.store_id, camera.id, [crossing("entry", 1)], T0)
    writer.submit(camera.store_id, 999, [crossing("entry", 2)], T0)  # no such camera
    writer.submit(camera.store_id, camera.id, [crossing("exit", 3)], T0)
    writer.start()
    assert writer.flush(timeout=10)
    assert writer.stats().failed == 1
    writer.submit(camera.store_id, camera.id, [crossing("entry", 4)], T0)
    assert writer.flush(timeout=10)
    writer.close()
    assert [e.track_id for e in db.events()] == [1, 3, 4]


def test_naive_timestamps_are_refused(db: Database, camera):
    with EventWriter(db) as writer, pytest.raises(InvalidValueError, match="time zone"):
        writer.submit(camera.store_id, camera.id, [crossing("entry")], datetime(2026, 1, 1))
    assert utc_text(datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == (
        "2026-01-01T00:00:00.000000Z"
    )


def test_events_are_filtered_by_time_store_camera_and_id(db: Database, camera):
    other = db.create_camera(camera.store_id, "Back", "1")
    add_events(db, camera, [(T0 + timedelta(hours=h), "entry") for h in range(5)])
    add_events(db, other, [(T0, "exit")])
    assert len(db.events(store_id=camera.store_id)) == 6
    window = db.events(
        camera_id=camera.id, start=T0 + timedelta(hours=1), end=T0 + timedelta(hours=3)
    )
    assert [e.timestamp for e in window] == [T0 + timedelta(hours=1), T0 + timedelta(hours=2)]

    df = events_frame(db, camera_id=camera.id, start=T0 + timedelta(hours=3))
    assert str(df["timestamp"].dt.tz) == "UTC"
    assert list(df["timestamp"]) == [T0 + timedelta(hours=3), T0 + timedelta(hours=4)]
    assert set(df["camera_name"]) == {"Door"}
    newest = int(events_frame(db)["id"].max())
    assert latest_event_id(db) == newest
    add_events(db, other, [(T0, "entry")])
    fresh = events_frame(db, after_id=newest)
    assert list(fresh["direction"]) == ["entry"] and list(fresh["camera_id"]) == [other.id]
    assert latest_event_id(db, EventFilter(camera_id=camera.id)) < newest < latest_event_id(db)


# --------------------------------------------------------------------------- chart queries
def test_binned_counts_land_in_the_store_local_hour_and_day(db: Database, camera):
    tz = "America/New_York"  # UTC-5 in January
    add_events(
        db,
        camera,
        [
            (datetime(2026, 1, 15, 4, 59, tzinfo=UTC), "entry"),  # 14 Jan 23:59 local
            (datetime(2026, 1, 15, 5, 0, tzinfo=UTC), "entry"),  # 15 Jan 00:00 local
            (datetime(2026, 1, 15, 5, 30, tzinfo=UTC), "exit"),  # 15 Jan 00:30 local
            (datetime(2026, 1, 15, 7, 10, tzinfo=UTC), "entry"),  # 15 Jan 02:10 local
        ],
    )
    store = EventFilter(store_id=camera.store_id)
    hourly = binned_counts(db, "h", tz, store)
    local = lambda *a: pd.Timestamp(datetime(*a), tz=tz)  # noqa: E731
    assert list(hourly.index) == [
        local(2026, 1, 14, 23),
        *(local(2026, 1, 15, h) for h in range(3)),
    ]
    assert hourly["entries"].tolist() == [1, 1, 0, 1]
    assert hourly["exits"].tolist() == [0, 1, 0, 0]

    daily = binned_counts(db, "D", tz, store)
    assert list(daily.index) == [local(2026, 1, 14), local(2026, 1, 15)]
    assert daily.to_dict("list") == {"entries": [1, 2], "exits": [0, 1]}
    # In UTC the same events fall on one day.
    assert binned_counts(db, "D", "UTC", store).to_dict("list") == {"entries": [3], "exits": [1]}
    with pytest.raises(InvalidValueError, match="freq"):
        binned_counts(db, "min", tz)
    with pytest.raises(InvalidValueError, match="Nowhere/City"):
        binned_counts(db, "h", "Nowhere/City")


def test_hourly_bins_keep_the_repeated_hour_and_half_hour_zones(db: Database, camera):
    # Clocks go back in New York at 06:00 UTC on 2026-11-01: local 01:00-02:00 happens twice.
    add_events(
        db,
        camera,
        [
            (datetime(2026, 11, 1, 5, 10, tzinfo=UTC), "entry"),  # 01:10 EDT
            (datetime(2026, 11, 1, 6, 10, tzinfo=UTC), "exit"),  # 01:10 EST
        ],
    )
    hourly = binned_counts(db, "h", "America/New_York")
    assert [ts.strftime("%H:%M %z") for ts in hourly.index] == ["01:00 -0400", "01:00 -0500"]
    assert hourly.to_dict("list") == {"entries": [1, 0], "exits": [0, 1]}
    # India is UTC+05:30: its hours start at half past in UTC.
    kolkata = binned_counts(db, "h", "Asia/Kolkata")
    assert [ts.strftime("%H:%M") for ts in kolkata.index] == ["10:00", "11:00"]
    assert kolkata["entries"].tolist() == [1, 0]


def test_hourly_bins_in_a_quarter_hour_zone(db: Database, camera):
    # Nepal is UTC+05:45: counting per UTC quarter hour first must not move an event
    # across a local hour.
    times = [(5, 10), (5, 14), (5, 15), (5, 20), (6, 14)]  # local 10:55 10:59 11:00 11:05 11:59
    add_events(db, camera, [(datetime(2026, 1, 15, h, m, tzinfo=UTC), "entry") for h, m in times])
    hourly = binned_counts(db, "h", "Asia/Kathmandu")
    assert [ts.strftime("%H:%M") for ts in hourly.index] == ["10:00", "11:00"]
    assert hourly["entries"].tolist() == [2, 3]


def test_daily_bins_follow_local_midnight_across_daylight_saving(db: Database, camera):
    tz = "America/New_York"  # clocks go forward on 2026-03-08
    add_events(
        db,
        camera,
        [(datetime(2026, 3, d, 12, tzinfo=UTC), "entry") for d in (7, 8, 9)],
    )
    daily = binned_counts(db, "D", tz)
    assert [ts.strftime("%Y-%m-%d %H:%M %z") for ts in daily.index] == [
        "2026-03-07 00:00 -0500",
        "2026-03-08 00:00 -0500",
        "2026-03-09 00:00 -0400",
    ]
    assert daily["entries"].tolist() == [1, 1, 1]


def test_occupancy_never_negative_and_resets_each_local_day(db: Database, camera):
    tz = "Asia/Tokyo"  # UTC+9: local midnight is 15:00 UTC
    day1 = datetime(2026, 1, 15, 0, 0, tzinfo=UTC)  # 09:00 local on 15 Jan
    steps = ["exit", "entry", "entry", "exit", "exit", "exit", "entry", "entry", "entry"]
    items = [(day1 + timedelta(minutes=10 * i), d) for i, d in enumerate(steps)]
    day2 = datetime(2026, 1, 15, 15, 30, tzinfo=UTC)  # 00:30 local on 16 Jan
    items += [(day2, "exit"), (day2 + timedelta(minutes=5), "entry")]
    add_events(db, camera, items)

    occ = occupancy(db, tz)
    assert occ["occupancy"].tolist() == [0, 1, 2, 1, 0, 0, 1, 2, 3, 0, 1]
    assert (occ["occupancy"] >= 0).all()
    assert str(occ.index.tz) == tz
    assert [str(d) for d in occ["date"].unique()] == ["2026-01-15", "2026-01-16"]


def test_queries_on_no_events(db: Database, camera):
    df = events_frame(db)
    assert df.empty and list(df.columns)[:3] == ["id", "store_id", "camera_id"]
    assert binned_counts(db, "h", "Europe/Paris").empty
    assert binned_counts(db, "D", "Europe/Paris").empty
    assert occupancy(db, "Europe/Paris").empty
    assert per_camera(db).empty
    assert latest_event_id(db) == 0


def test_per_camera_includes_archived_cameras(db: Database, camera):
    back = db.create_camera(camera.store_id, "Back", "1")
    add_events(db, camera, [(T0, "entry"), (T0, "entry"), (T0, "exit")])
    add_events(db, back, [(T0, "exit")])
    db.delete_camera(camera.id)
    table = per_camera(db, EventFilter(store_id=camera.store_id))
    assert table.to_dict("records") == [
        {"camera_id": camera.id, "camera_name": "Door", "entries": 2, "exits": 1},
        {"camera_id": back.id, "camera_name": "Back", "entries": 0, "exits": 1},
    ]


# --------------------------------------------------------------------------- retention
def _chart_numbers(db: Database, store_id: int, tz: str) -> dict:
    where = EventFilter(store_id=store_id)
    return {
        "hourly": binned_counts(db, "h", tz, where).to_csv(),
        "daily": binned_counts(db, "D", tz, where).to_csv(),
        "cameras": per_camera(db, where).to_dict("records"),
        "counts": db.count_events(store_id=store_id),
        "day_window": db.count_events(
            store_id=store_id, start=T0 - timedelta(days=3), end=T0 - timedelta(days=2)
        ),
    }


def test_retention_rolls_old_events_into_hourly_totals_that_add_up(db: Database, camera):
    back = db.create_camera(camera.store_id, "Back", "1")
    tz = "America/New_York"
    old = [(T0 - timedelta(days=d, minutes=7 * i), "entry" if i % 3 else "exit")
           for d in (2, 3, 5) for i in range(20)]  # fmt: skip
    add_events(db, camera, old)
    add_events(db, back, [(T0 - timedelta(days=4, hours=h), "exit") for h in range(30)])
    add_events(db, camera, [(T0 - timedelta(minutes=m), "entry") for m in range(5)])  # recent
    before = _chart_numbers(db, camera.store_id, tz)

    done = db.apply_retention(1, now=T0 + timedelta(minutes=30))
    assert done.events == 60 + 30 and done.cutoff == T0 - timedelta(days=1)
    assert len(db.events()) == 5  # only the recent raw events remain
    assert _chart_numbers(db, camera.store_id, tz) == before
    with db.reader() as conn:
        hours = conn.one("SELECT count(*) AS n FROM hourly_line_totals")["n"]
    assert 0 < hours < 90

    # Events written late for an hour already rolled up are added to its totals.
    add_events(db, camera, [(T0 - timedelta(days=5), "entry")])
    assert db.apply_retention(1, now=T0 + timedelta(minutes=30)).events == 1
    after = _chart_numbers(db, camera.store_id, tz)
    assert after["counts"]["entry"] == before["counts"]["entry"] + 1
    assert db.apply_retention(1, now=T0).events == 0  # nothing more to roll up

    # A store whose events were all rolled up still has recorded events.
    db.delete_camera(camera.id)
    db.delete_camera(back.id)
    db.apply_retention(1, now=T0 + timedelta(days=3))
    assert db.events() == []
    with pytest.raises(ConflictError, match="recorded event"):
        db.delete_store(camera.store_id)


def test_retention_days_are_checked(db: Database):
    for bad in (0, -1, 1.5, True, MAX_RETENTION_DAYS + 1):
        with pytest.raises(InvalidValueError, match="retention days"):
            db.apply_retention(bad)


def test_occupancy_counts_a_rolled_up_hour_as_one_step(db: Database, camera):
    hour = datetime(2026, 1, 10, 9, tzinfo=UTC)
    add_events(db, camera, [(hour + timedelta(minutes=m), d) for m, d in
                            ((1, "entry"), (2, "entry"), (3, "exit"), (70, "exit"))])  # fmt: skip
    db.roll_up_events(hour + timedelta(hours=1))
    occ = occupancy(db, "UTC")
    assert occ["occupancy"].tolist() == [2, 1, 0]  # +2 at 09:00, -1 at 09:00, -1 at 10:10


def test_retention_job_runs_at_start(db: Database, camera):
    add_events(db, camera, [(datetime.now(UTC) - timedelta(days=10), "entry")])
    job = RetentionJob(db, days=2, interval=3600).start()
    try:
        for _ in range(200):
            if job.runs:
                break
            threading.Event().wait(0.05)
    finally:
        job.stop()
    assert job.runs == 1 and db.events() == []
    assert db.count_events() == {"entry": 1, "exit": 0}


def test_the_app_rolls_up_at_start_when_retention_is_set(tmp_path, fast_hasher):
    settings = settings_for(tmp_path, retention_days=2)
    with Database(settings.database, password_hasher=fast_hasher) as db:
        store = db.create_store("Shop", "UTC")
        camera = db.create_camera(store.id, "Door", "0")
        add_events(db, camera, [(datetime.now(UTC) - timedelta(days=3), "exit")])
    app = App(settings)
    try:
        app.start_database()
        app.start_retention()
        for _ in range(200):
            if app.retention.runs:
                break
            threading.Event().wait(0.05)
        assert app.retention.runs == 1
        assert app.db.events() == [] and app.db.count_events() == {"entry": 0, "exit": 1}
    finally:
        app.stop()
    plain = App(settings_for(tmp_path))  # event retention is off by default; crops have one
    try:
        plain.start_database()
        plain.start_retention()
        assert (plain.retention.days, plain.retention.crop_days) == (None, 30)
        assert plain.db.count_events() == {"entry": 0, "exit": 1}
    finally:
        plain.stop()


def test_a_version_2_sqlite_database_upgrades_keeping_everything(db_path: Path, fast_hasher):
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)  # the schema as zvpanel wrote it before retention
    for statement in (*schema_module.MIGRATIONS[0], *schema_module.MIGRATIONS[1]):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO users (username, password_hash, is_admin, created_at, token_version) "
        f"VALUES ('old', '{fast_hasher.hash('password-1')}', 1, '{utc_text(T0)}', 4)"
    )
    conn.execute(f"INSERT INTO stores VALUES (1, 'Old shop', 'UTC', '{utc_text(T0)}')")
    conn.execute(
        f"INSERT INTO cameras (id, store_id, name, source, created_at) "
        f"VALUES (1, 1, 'Door', '0', '{utc_text(T0)}')"
    )
    conn.execute(
        f"INSERT INTO events VALUES (1, 1, 1, 'door', 7, 'entry', '{utc_text(T0)}', 3, 0.5)"
    )
    conn.execute("INSERT INTO user_stores VALUES (1, 1)")
    conn.commit()
    conn.close()

    with Database(db_path, password_hasher=fast_hasher) as db:
        assert db._backend.schema_version(db._conn) == SCHEMA_VERSION  # every migration ran
        assert db.authenticate("old", "password-1").token_version == 4
        assert db.user_store_ids("old") == [1]
        assert [(c.name, c.store_id) for c in db.list_cameras()] == [("Door", 1)]
        (event,) = db.events()
        assert (event.track_id, event.timestamp, event.confidence) == (7, T0, 0.5)
        db.apply_retention(1, now=T0 + timedelta(days=2))
        assert db.count_events(store_id=1) == {"entry": 1, "exit": 0}


# --------------------------------------------------------------------------- bootstrap
def test_bootstrap_dev_mode_creates_admin_and_calibrated_demo(
    tmp_path, db_target, fast_hasher, caplog
):
    settings = settings_for(tmp_path, dev_mode=True, demo=True)
    with Database(db_target, password_hasher=fast_hasher) as db:
        result = bootstrap(db, settings)
        assert result.admin == "admin"
        assert "development mode" in caplog.text
        assert db.authenticate("admin", "admin").is_admin
        (store,) = db.list_stores()
        (cam,) = db.list_cameras()
        assert (store.name, store.timezone, cam.name) == ("Demo store", "UTC", "Demo camera")
        assert (result.store_id, result.camera_id) == (store.id, cam.id)
        assert Path(cam.source).is_absolute() and Path(cam.source) == VIDEO
        calibration = db.get_calibration(cam.id)
        assert calibration == DEMO_CALIBRATION
        assert calibration.lines[0].id == "door" and calibration.detection_fps == 5
        calibration.check_frame(768, 576)

        again = bootstrap(db, settings)
        assert (again.admin, again.store_id) == (None, None)
        assert len(db.list_users()) == 1 and len(db.list_stores()) == 1

        # A deleted demo store does not come back.
        db.delete_camera(cam.id)
        db.delete_store(store.id)
        assert bootstrap(db, settings).store_id is None
        assert db.list_stores() == []


def test_bootstrap_admin_from_settings(tmp_path, db_target, fast_hasher):
    settings = settings_for(tmp_path, admin_username="boss", admin_password="long-enough-pw")
    with Database(db_target, password_hasher=fast_hasher) as db:
        assert bootstrap(db, settings).admin == "boss"
        assert db.authenticate("boss", "long-enough-pw").is_admin
        db.reset_password("boss", "changed-later")
        assert bootstrap(db, settings).admin is None  # existing user left alone
        assert db.authenticate("boss", "changed-later") is not None
        assert db.list_stores() == []  # demo off


def test_bootstrap_outside_dev_mode_creates_no_default_admin(tmp_path, db_target, fast_hasher):
    settings = settings_for(tmp_path, demo=True)
    with Database(db_target, password_hasher=fast_hasher) as db:
        result = bootstrap(db, settings)
        assert result.admin is None and db.list_users() == []
        assert result.store_id is not None


def test_bootstrap_short_admin_password_names_the_setting(tmp_path, db_target, fast_hasher):
    settings = settings_for(tmp_path, admin_username="boss", admin_password="short")
    with (
        Database(db_target, password_hasher=fast_hasher) as db,
        pytest.raises(ConfigError, match="ZVPANEL_ADMIN_PASSWORD"),
    ):
        bootstrap(db, settings)


def test_settings_choose_the_backend(tmp_path, postgres, fast_hasher):
    assert settings_for(tmp_path).database == tmp_path / "boot.db"  # ZVPANEL_DB_PATH
    url = postgres.new_database()
    settings = settings_for(tmp_path, database_url=url)
    assert settings.database == url and "postgresql" not in repr(settings)
    with Database(settings.database, password_hasher=fast_hasher) as db:
        assert db.dialect == "postgresql"
    sqlite_url = settings_for(tmp_path, database_url=str(tmp_path / "other.db")).database
    with Database(sqlite_url, password_hasher=fast_hasher) as db:
        assert db.dialect == "sqlite" and db.path == tmp_path / "other.db"
