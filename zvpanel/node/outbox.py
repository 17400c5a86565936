"""A node's outbox: every event is written to a local SQLite file before it is forwarded.

The camera worker's :meth:`Outbox.submit` commits the frame's events locally (WAL,
``synchronous=NORMAL``: durable through a crash of the process) before the worker takes
the next frame, so the central database being down, or the link, costs nothing but
backlog. :class:`Forwarder` sends the oldest unforwarded rows in batches with
``ON CONFLICT (uid) DO NOTHING`` and only then marks them forwarded: a ``kill -9``
between the two sends the batch again and the central database keeps each event once.
Forwarded rows stay :data:`KEEP_FORWARDED_SECONDS` as the node's own record of what it
counted, then are pruned.
"""

from __future__ import annotations

import fcntl
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

from ..counting import CrossingEvent, ZoneEvent
from ..errors import ConfigError
from ..periodic import PeriodicJob
from ..storage import Database, EventCrop, EventRow, utc_text
from ..storage.values import new_event_uid, now_text
from ..storage.writer import zone_event_row
from ..storage.zones import ZoneEventRow

__all__ = [
    "Outbox",
    "Forwarder",
    "FORWARD_BATCH",
    "FORWARD_INTERVAL_SECONDS",
    "CATCH_UP_PAUSE_SECONDS",
]

log = logging.getLogger(__name__)

#: Events sent to the central database in one transaction at most.
FORWARD_BATCH = 500
#: How often an idle forwarder looks for new events, and waits after a failed forward.
FORWARD_INTERVAL_SECONDS = 1.0
#: Pause between full batches while catching up (0: none). After an outage every store
#: forwards its backlog at once; a pause spreads that load on the central database.
CATCH_UP_PAUSE_SECONDS = 0.0
#: Forward failures are logged at most this often (an outage fails every second).
FAILURE_LOG_INTERVAL_SECONDS = 30.0
#: How long forwarded events stay in the outbox.
KEEP_FORWARDED_SECONDS = 24 * 3600.0
#: Camera activity batches (one per recorder flush) sent per forward at most.
ACTIVITY_BATCHES = 20
#: How often forwarded events past KEEP_FORWARDED_SECONDS are deleted.
PRUNE_INTERVAL_SECONDS = 600.0

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS outbox (
        seq          INTEGER PRIMARY KEY,
        uid          TEXT NOT NULL UNIQUE,
        store_id     INTEGER NOT NULL,
        camera_id    INTEGER NOT NULL,
        line_id      TEXT NOT NULL,
        track_id     INTEGER NOT NULL,
        direction    TEXT NOT NULL,
        ts_utc       TEXT NOT NULL,
        frame_index  INTEGER NOT NULL,
        confidence   REAL NOT NULL,
        forwarded_at TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq) WHERE forwarded_at IS NULL",
    # Camera activity (zvpanel.engine.recorder): one JSON batch per flush, forwarded in order.
    """
    CREATE TABLE IF NOT EXISTS activity (
        seq          INTEGER PRIMARY KEY,
        payload      TEXT NOT NULL,
        forwarded_at TEXT
    )
    """,
)
_COLUMNS = "store_id, camera_id, line_id, track_id, direction, ts_utc, frame_index, confidence"
# Zone enters/leaves (zvpanel.counting.ZoneEvent) wait beside the crossings, forwarded alike.
_ZONE_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS zone_outbox (
        seq          INTEGER PRIMARY KEY,
        uid          TEXT NOT NULL UNIQUE,
        store_id     INTEGER NOT NULL,
        camera_id    INTEGER NOT NULL,
        zone_id      TEXT NOT NULL,
        track_id     INTEGER NOT NULL,
        kind         TEXT NOT NULL,
        ts_utc       TEXT NOT NULL,
        frame_index  INTEGER NOT NULL,
        dwell_s      REAL,
        forwarded_at TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS zone_outbox_pending ON zone_outbox (seq) WHERE forwarded_at IS NULL",
)
_ZONE_COLUMNS = "store_id, camera_id, zone_id, track_id, kind, ts_utc, frame_index, dwell_s"
# Each crossing's crop (zvpanel.crops) waits with it and is forwarded in the same
# transaction; a crop is deleted here once its event is forwarded (the database keeps it).
_CROP_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS outbox_crops (
        uid       TEXT PRIMARY KEY,
        camera_id INTEGER NOT NULL,
        ts_utc    TEXT NOT NULL,
        jpeg      BLOB NOT NULL
    )
    """,
)


class Outbox:
    """The local event store of node ``node`` (an :class:`~zvpanel.engine.worker.EventSink`)."""

    def __init__(self, path: str | Path, node: str) -> None:
        self.path = Path(path).expanduser().resolve()
        self.node = node
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._owner = _lock_file(self.path.with_name(self.path.name + ".lock"), node)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        for statement in (*_SCHEMA, *_ZONE_SCHEMA, *_CROP_SCHEMA):
            self._conn.execute(statement)

    def submit(
        self,
        store_id: int,
        camera_id: int,
        events: Any,
        captured_at: Any,
        crops: Sequence[bytes | None] = (),
    ) -> bool:
        """Commit one frame's crossings and zone events locally, each with a new UUIDv7,
        and the crossings' crops (in the crossings' order, None where there is none)."""
        if not events:
            return True
        ts = utc_text(captured_at)
        rows = [
            (new_event_uid(), store_id, camera_id, e.line_id, int(e.track_id), e.direction,
             ts, int(e.frame_index), float(e.confidence))
            for e in events
            if isinstance(e, CrossingEvent)
        ]  # fmt: skip
        zone_rows = [
            (row.uid, *row[:8])
            for row in (
                zone_event_row(store_id, camera_id, e, ts)
                for e in events
                if isinstance(e, ZoneEvent)
            )
        ]
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                f"INSERT INTO outbox (uid, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
            self._conn.executemany(
                f"INSERT INTO zone_outbox (uid, {_ZONE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                zone_rows,
            )
            self._conn.executemany(
                "INSERT INTO outbox_crops (uid, camera_id, ts_utc, jpeg) VALUES (?, ?, ?, ?)",
                [(row[0], camera_id, ts, jpeg)
                 for row, jpeg in zip(rows, crops, strict=False) if jpeg is not None],
            )  # fmt: skip
            self._conn.execute("COMMIT")
        return True

    def pending_zone_events(self, limit: int) -> list[tuple[int, ZoneEventRow]]:
        """The oldest unforwarded zone events: (seq, row for the central database)."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT seq, {_ZONE_COLUMNS}, uid FROM zone_outbox WHERE forwarded_at IS NULL "
                "ORDER BY seq LIMIT ?",
                (int(limit),),
            ).fetchall()
        return [(r[0], ZoneEventRow(*r[1:], node=self.node)) for r in rows]

    def mark_zone_events_forwarded(self, seqs: Sequence[int]) -> None:
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "UPDATE zone_outbox SET forwarded_at = ? WHERE seq = ?",
                [(now_text(), seq) for seq in seqs],
            )
            self._conn.execute("COMMIT")

    def record_activity(self, changes: Any, coverage: Any, heat: Any) -> None:
        """Keep one batch of camera activity (an :class:`ActivitySink`) for the forwarder."""
        batch = {"changes": list(changes), "coverage": list(coverage), "heat": list(heat)}
        if not any(batch.values()):
            return
        with self._lock:
            self._conn.execute("INSERT INTO activity (payload) VALUES (?)", (json.dumps(batch),))

    def pending_activity(self, limit: int) -> list[tuple[int, dict[str, list]]]:
        """The oldest unforwarded activity batches: (seq, keyword arguments of
        :meth:`~zvpanel.storage.Database.record_activity`)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, payload FROM activity WHERE forwarded_at IS NULL ORDER BY seq LIMIT ?",
                (int(limit),),
            ).fetchall()
        return [(seq, json.loads(payload)) for seq, payload in rows]

    def mark_activity_forwarded(self, seq: int) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE activity SET forwarded_at = ? WHERE seq = ?", (now_text(), seq)
            )

    def pending(self, limit: int) -> list[tuple[int, EventRow]]:
        """The oldest unforwarded events: (seq, row for the central database)."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT seq, {_COLUMNS}, uid FROM outbox WHERE forwarded_at IS NULL "
                "ORDER BY seq LIMIT ?",
                (int(limit),),
            ).fetchall()
        return [(r[0], EventRow(*r[1:], node=self.node)) for r in rows]

    def crops(self, uids: Sequence[str]) -> list[EventCrop]:
        """The crops waiting with the events ``uids``."""
        with self._lock:
            return [
                EventCrop(*row)
                for uid in uids
                for row in self._conn.execute(
                    "SELECT uid, camera_id, ts_utc, jpeg FROM outbox_crops WHERE uid = ?", (uid,)
                )
            ]

    def mark_forwarded(self, seqs: Sequence[int]) -> None:
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "UPDATE outbox SET forwarded_at = ? WHERE seq = ?",
                [(now_text(), seq) for seq in seqs],
            )
            self._conn.executemany(
                "DELETE FROM outbox_crops WHERE uid = (SELECT uid FROM outbox WHERE seq = ?)",
                [(seq,) for seq in seqs],
            )
            self._conn.execute("COMMIT")

    def backlog(self) -> int:
        """Events not forwarded yet."""
        with self._lock:
            return self._conn.execute(
                "SELECT count(*) FROM outbox WHERE forwarded_at IS NULL"
            ).fetchone()[0]

    def prune(self, keep_seconds: float = KEEP_FORWARDED_SECONDS) -> int:
        cutoff = utc_text(datetime.now(timezone.utc) - timedelta(seconds=keep_seconds))
        with self._lock:
            self._conn.execute(
                "DELETE FROM activity WHERE forwarded_at IS NOT NULL AND forwarded_at < ?",
                (cutoff,),
            )
            self._conn.execute(
                "DELETE FROM zone_outbox WHERE forwarded_at IS NOT NULL AND forwarded_at < ?",
                (cutoff,),
            )
            return self._conn.execute(
                "DELETE FROM outbox WHERE forwarded_at IS NOT NULL AND forwarded_at < ?",
                (cutoff,),
            ).rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        self._owner.close()  # releases the lock


def _lock_file(path: Path, node: str) -> IO[str]:
    """Hold an exclusive lock on ``path`` while the outbox is open (the kernel drops it
    when the process dies, ``kill -9`` included): two processes sharing an outbox would
    forward, and mark, each other's events."""
    owner = open(path, "a")  # noqa: SIM115 (kept open: the lock lives as long as it)
    try:
        fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner.close()
        raise ConfigError(
            f"node {node}: the outbox {path.with_suffix('')} is in use by another "
            "zvpanel node process; give each node its own --name and --outbox"
        ) from None
    return owner


class Forwarder(PeriodicJob):
    """The thread moving an :class:`Outbox` into the central :class:`Database`: a batch
    every ``FORWARD_INTERVAL_SECONDS``, or after ``catch_up_pause`` while more waits."""

    thread_name = "zvpanel-forwarder"

    def __init__(
        self,
        outbox: Outbox,
        db: Database,
        batch: int = FORWARD_BATCH,
        catch_up_pause: float = CATCH_UP_PAUSE_SECONDS,
    ) -> None:
        if batch < 1:
            raise ValueError(f"forward batch {batch!r} must be at least 1")
        if catch_up_pause < 0:
            raise ValueError(f"catch-up pause {catch_up_pause!r} must not be negative")
        super().__init__(FORWARD_INTERVAL_SECONDS)
        self.outbox = outbox
        self.db = db
        self.batch = batch
        self.catch_up_pause = catch_up_pause
        self.forwarded = 0
        self._last_failure_log = 0.0
        self._last_prune = 0.0

    def forward_once(self) -> int:
        """Send one batch; the number of events sent (0: nothing was waiting)."""
        self._forward_activity()
        self._forward_zone_events()
        pending = self.outbox.pending(self.batch)
        if not pending:
            return 0
        rows = [row for _, row in pending]
        self.db.insert_events(rows, self.outbox.crops([row.uid for row in rows]))
        # A crash here sends the batch again; the central uid index keeps it once.
        self.outbox.mark_forwarded([seq for seq, _ in pending])
        self.forwarded += len(pending)
        return len(pending)

    def _forward_zone_events(self) -> None:
        """One batch of zone events (a batch sent twice is stored once, by uid)."""
        pending = self.outbox.pending_zone_events(self.batch)
        if pending:
            self.db.insert_zone_events(row for _, row in pending)
            self.outbox.mark_zone_events_forwarded([seq for seq, _ in pending])

    def _forward_activity(self) -> None:
        """Camera activity batches, oldest first (a batch sent twice is stored once: status
        changes by uid, totals as the larger)."""
        for seq, batch in self.outbox.pending_activity(ACTIVITY_BATCHES):
            self.db.record_activity(**batch)
            self.outbox.mark_activity_forwarded(seq)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._prune_now_and_then()
                if self.forward_once() == self.batch:
                    self._stop.wait(self.catch_up_pause)  # more is waiting
                    continue
            except Exception as error:  # top of the thread loop: an outage must not end it
                self._log_failure(error)
            self._stop.wait(self.interval)

    def _prune_now_and_then(self) -> None:
        if time.monotonic() - self._last_prune >= PRUNE_INTERVAL_SECONDS:
            self._last_prune = time.monotonic()
            self.outbox.prune()

    def _log_failure(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._last_failure_log >= FAILURE_LOG_INTERVAL_SECONDS:
            self._last_failure_log = now
            log.warning(
                "forwarding to %s failed (%s); %d event(s) wait in the outbox",
                self.db.location,
                str(error).strip() or type(error).__name__,
                self.outbox.backlog(),
            )
