"""The one thread that writes events to SQLite.

Camera workers call :meth:`EventWriter.submit`, which never blocks: when the queue is
full the events are dropped, counted and logged (at most once per
:data:`DROP_LOG_INTERVAL_SECONDS`, with the running total) — counting must not stall
because the disk is slow. The thread takes everything queued (up to
:data:`MAX_BATCH_SUBMISSIONS`) and inserts it in one transaction. If a batch fails,
each submission is retried on its own so that one bad row does not lose the others;
failures are logged with the camera id and the thread carries on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ..counting import CrossingEvent, ZoneEvent
from .database import Database, EventRow, utc_text
from .values import EventCrop, new_event_uid
from .zones import ZoneEventRow

__all__ = [
    "EventWriter",
    "WriterStats",
    "EVENT_QUEUE_SIZE",
    "MAX_BATCH_SUBMISSIONS",
    "DROP_LOG_INTERVAL_SECONDS",
    "CLOSE_TIMEOUT_SECONDS",
]

log = logging.getLogger(__name__)

#: Submissions (one per processed frame with events) waiting for the writer. At 8
#: cameras x 5 frames/s this is minutes of backlog before anything is dropped.
EVENT_QUEUE_SIZE = 10_000
#: Submissions inserted in one transaction at most.
MAX_BATCH_SUBMISSIONS = 500
#: Drops are logged at most this often (with the running total), not once per frame.
DROP_LOG_INTERVAL_SECONDS = 5.0
#: How long close() waits for the queue to drain and the thread to end.
CLOSE_TIMEOUT_SECONDS = 10.0
#: How often the idle thread looks at the stop flag.
_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class WriterStats:
    submitted: int  # events accepted by submit()
    written: int  # events committed
    dropped: int  # events refused because the queue was full or the writer closed
    failed: int  # events whose insert raised (logged)
    queued: int  # submissions waiting


@dataclass(frozen=True)
class _Submission:
    seq: int
    camera_id: int
    rows: tuple[EventRow, ...]
    zone_rows: tuple[ZoneEventRow, ...] = ()
    crops: tuple[EventCrop, ...] = ()

    def __len__(self) -> int:
        return len(self.rows) + len(self.zone_rows)


class EventWriter:
    """Owns event inserts for one :class:`Database`; start it, submit, flush, close."""

    def __init__(
        self,
        db: Database,
        *,
        queue_size: int = EVENT_QUEUE_SIZE,
        max_batch: int = MAX_BATCH_SUBMISSIONS,
        start: bool = True,
    ):
        self.db = db
        self._queue: queue.Queue[_Submission] = queue.Queue(maxsize=queue_size)
        self._max_batch = max_batch
        self._cond = threading.Condition()
        self._seq = 0  # submissions accepted
        self._done = 0  # highest seq handled (written or failed); handled in order
        self._submitted = self._written = self._dropped = self._failed = 0
        self._last_drop_log = 0.0
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zvpanel-event-writer", daemon=True)
        if start:
            self.start()

    def start(self) -> None:
        if not self._thread.is_alive() and not self._closing.is_set():
            self._thread.start()

    # ------------------------------------------------------------------ producers
    def submit(
        self,
        store_id: int,
        camera_id: int,
        events: Sequence[CrossingEvent | ZoneEvent],
        timestamp: datetime | float,
        crops: Sequence[bytes | None] = (),
    ) -> bool:
        """Queue one frame's crossings and zone events (all stamped ``timestamp``); never
        blocks. Returns False if they were dropped (queue full or writer closed).

        ``crops``: the JPEG crop of each crossing, in the crossings' order (None where
        there is none), stored with it (:mod:`zvpanel.crops`).
        """
        if not events:
            return True
        ts = utc_text(timestamp)
        rows = tuple(
            EventRow(
                store_id,
                camera_id,
                e.line_id,
                int(e.track_id),
                e.direction,
                ts,
                int(e.frame_index),
                float(e.confidence),
                new_event_uid(),
            )
            for e in events
            if isinstance(e, CrossingEvent)
        )
        zone_rows = tuple(
            zone_event_row(store_id, camera_id, e, ts) for e in events if isinstance(e, ZoneEvent)
        )
        pictures = tuple(
            EventCrop(row.uid, camera_id, ts, jpeg)
            for row, jpeg in zip(rows, crops, strict=False)
            if jpeg is not None
        )
        n = len(rows) + len(zone_rows)
        with self._cond:
            if self._closing.is_set():
                return self._drop(camera_id, n, "the writer is closed")
            try:
                self._queue.put_nowait(
                    _Submission(self._seq + 1, camera_id, rows, zone_rows, pictures)
                )
            except queue.Full:
                return self._drop(camera_id, n, "the queue is full (disk too slow?)")
            self._seq += 1
            self._submitted += n
        return True

    def _drop(self, camera_id: int, n: int, why: str) -> bool:
        self._dropped += n
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL_SECONDS:
            self._last_drop_log = now
            log.error(
                "camera %s: dropped %d event(s) because %s; %d event(s) dropped in total",
                camera_id,
                n,
                why,
                self._dropped,
            )
        return False

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted before this call is written; False on timeout."""
        with self._cond:
            target = self._seq
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def stats(self) -> WriterStats:
        with self._cond:
            return WriterStats(
                self._submitted, self._written, self._dropped, self._failed, self._queue.qsize()
            )

    def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Stop accepting events, write what is queued, end the thread."""
        with self._cond:
            self._closing.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error(
                    "event writer did not finish within %.1f s; %d submission(s) unwritten",
                    timeout,
                    self._queue.qsize(),
                )

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if self._closing.is_set():
                    return
                continue
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(batch)
            except Exception:  # top of the thread loop: the writer must outlive a bad batch
                log.exception("event writer: batch of %d submission(s) failed", len(batch))
            finally:
                with self._cond:
                    self._done = batch[-1].seq
                    self._cond.notify_all()

    def _write(self, batch: list[_Submission]) -> None:
        written = failed = 0
        try:
            written = self._insert(batch)
        except Exception:
            log.warning("batch of %d submission(s) failed; retrying one by one", len(batch))
            for sub in batch:
                try:
                    written += self._insert([sub])
                except Exception:  # one camera's bad rows must not stop the others
                    failed += len(sub)
                    log.exception("camera %s: could not write %d event(s)", sub.camera_id, len(sub))
        with self._cond:
            self._written += written
            self._failed += failed

    def _insert(self, batch: list[_Submission]) -> int:
        # Each table's insert skips uids already stored, so retrying a half-written batch
        # (crossings in, zone events failed) writes nothing twice.
        written = self.db.insert_events(
            (row for s in batch for row in s.rows), (c for s in batch for c in s.crops)
        )
        return written + self.db.insert_zone_events(row for s in batch for row in s.zone_rows)


def zone_event_row(store_id: int, camera_id: int, event: ZoneEvent, ts: str) -> ZoneEventRow:
    """The row of one zone event counted on a frame stamped ``ts``, with a new UUIDv7."""
    return ZoneEventRow(
        store_id,
        camera_id,
        event.zone_id,
        int(event.track_id),
        event.kind,
        ts,
        int(event.frame_index),
        None if event.dwell_s is None else float(event.dwell_s),
        new_event_uid(),
    )
