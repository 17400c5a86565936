"""Events: inserting crossings, reading them back, and rolling old ones into hourly totals.

Retention
    With a retention period (``ZVPANEL_RETENTION_DAYS``), raw events older than it are
    rolled up into ``hourly_line_totals`` (store, camera, line, UTC hour: entries and
    exits) and deleted, in one transaction. Every count here and in
    :mod:`zvpanel.storage.queries` adds those totals to the raw events that remain, so
    totals, charts and binned CSV of old periods add up exactly as before. What is lost
    is the detail inside an hour: the track ids, the exact times (an old hour is counted
    at its start, so in a zone whose offset is not whole hours it lands in the local hour
    holding that start) and the raw-events CSV of those days.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ..config import MAX_RETENTION_DAYS
from ..errors import InvalidValueError
from .fleet import superseded
from .values import Event, EventCrop, EventRow, check_crops, event_from_row, utc_text

__all__ = ["EventMethods", "RollUp", "event_filter", "MAX_RETENTION_DAYS"]

_HOUR_TEXT = "substr(ts_utc, 1, 13) || ':00:00.000000Z'"


@dataclass(frozen=True)
class RollUp:
    """What one retention run did: raw events rolled up (and deleted), and zone events of
    stays that ended (deleted: they are not rolled up), before ``cutoff``."""

    events: int
    cutoff: datetime
    zone_events: int = 0


class EventMethods:
    """The event methods of :class:`~zvpanel.storage.database.Database`."""

    def insert_events(
        self, rows: Iterable[EventRow | tuple], crops: Iterable[EventCrop | tuple] = ()
    ) -> int:
        """Insert event rows, and the crops of some of them (:mod:`.review`), in one
        transaction (the :class:`EventWriter` and the nodes' forwarders call this). A row
        or crop whose ``uid`` is already stored is skipped, so a batch sent again after a
        crash is stored once. A node's event counted while another node held the camera's
        lease goes to ``superseded_events`` instead, without its crop
        (see :mod:`zvpanel.storage.fleet`)."""
        rows = [EventRow(*row) for row in rows]
        crops = check_crops(crops)
        if not rows:
            return 0
        with self._write(serial=False) as conn:
            aside = superseded(conn, rows)
            conn.executemany(
                "INSERT INTO events (store_id, camera_id, line_id, track_id, direction, ts_utc, "
                "frame_index, confidence, uid, node) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (uid) DO NOTHING",
                [r for r in rows if r.uid not in aside],
            )
            if aside:
                conn.executemany(
                    "INSERT INTO superseded_events (uid, camera_id, node, ts_utc, held_by) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (uid) DO NOTHING",
                    [(r.uid, r.camera_id, r.node, r.ts_utc, aside[r.uid]) for r in rows
                     if r.uid in aside],
                )  # fmt: skip
            kept = [c for c in crops if c.uid not in aside]
            if kept:
                conn.executemany(
                    "INSERT INTO event_crops (uid, camera_id, ts_utc, jpeg) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (uid) DO NOTHING",
                    kept,
                )
        return len(rows)

    def events(
        self,
        store_id: int | None = None,
        camera_id: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Raw events in time order, filtered; ``start`` inclusive, ``end`` exclusive.

        Rolled-up events (see retention) are not here; :meth:`count_events` counts them.
        """
        sql, params = event_filter(store_id, camera_id, start, end)
        sql = "SELECT * FROM events" + sql + " ORDER BY ts_utc, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [event_from_row(r) for r in self._all(sql, tuple(params))]

    def count_events(
        self,
        store_id: int | None = None,
        camera_id: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> dict[str, int]:
        """``{"entry": n, "exit": m}`` for the filter, rolled-up hours included (an hour
        counts when its start is in the window)."""
        raw, params = event_filter(store_id, camera_id, start, end)
        rolled, rolled_params = event_filter(store_id, camera_id, start, end, ts="hour_utc")
        row = self._one(
            "SELECT "
            "(SELECT count(*) FROM events" + raw + " AND direction = 'entry') + "
            "(SELECT coalesce(sum(entries), 0) FROM hourly_line_totals" + rolled + ") AS entry, "
            "(SELECT count(*) FROM events" + raw + " AND direction = 'exit') + "
            "(SELECT coalesce(sum(exits), 0) FROM hourly_line_totals" + rolled + ") AS exit",
            (*params, *rolled_params, *params, *rolled_params),
        )
        return {"entry": int(row["entry"]), "exit": int(row["exit"])}

    def roll_up_events(self, before: datetime) -> RollUp:
        """Roll raw events older than ``before`` (taken down to its UTC hour, so an hour is
        never split) into ``hourly_line_totals`` and delete them, in one transaction.

        Totals of an hour rolled up twice (events written late) are added together. Zone
        events of stays that ended before the cutoff are deleted in the same transaction.
        """
        cutoff = before.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
        cutoff_text = utc_text(cutoff)
        with self._write() as conn:
            # WHERE before GROUP BY: SQLite needs it to parse an upsert after a SELECT.
            conn.execute(
                "INSERT INTO hourly_line_totals (store_id, camera_id, line_id, hour_utc, "
                f"entries, exits) SELECT store_id, camera_id, line_id, {_HOUR_TEXT}, "
                "sum(CASE WHEN direction = 'entry' THEN 1 ELSE 0 END), "
                "sum(CASE WHEN direction = 'exit' THEN 1 ELSE 0 END) "
                f"FROM events WHERE ts_utc < ? GROUP BY store_id, camera_id, line_id, {_HOUR_TEXT} "
                "ON CONFLICT (camera_id, line_id, hour_utc) DO UPDATE SET "
                "entries = hourly_line_totals.entries + excluded.entries, "
                "exits = hourly_line_totals.exits + excluded.exits",
                (cutoff_text,),
            )
            deleted = conn.execute("DELETE FROM events WHERE ts_utc < ?", (cutoff_text,)).rowcount
            zones = self._delete_zone_events_before(conn, cutoff_text)
        return RollUp(events=deleted, cutoff=cutoff, zone_events=zones)

    def apply_retention(self, days: int, now: datetime | None = None) -> RollUp:
        """Roll up raw events older than ``days`` days before ``now`` (default: now)."""
        if (
            isinstance(days, bool)
            or not isinstance(days, int)
            or not 1 <= days <= MAX_RETENTION_DAYS
        ):
            raise InvalidValueError(
                f"retention days {days!r} must be a whole number from 1 to {MAX_RETENTION_DAYS}"
            )
        now = datetime.now(timezone.utc) if now is None else now
        return self.roll_up_events(now - timedelta(days=days))


def event_filter(
    store_id: int | None,
    camera_id: int | None,
    start: datetime | None,
    end: datetime | None,
    after_id: int | None = None,
    alias: str = "",
    ts: str = "ts_utc",
) -> tuple[str, list]:
    """`` WHERE ...`` and its parameters; ``alias`` prefixes the columns, ``ts`` names the
    time column (``hour_utc`` for the rolled-up totals). Always a WHERE clause (``TRUE``
    when nothing filters), so callers may append `` AND ...``."""
    p = f"{alias}." if alias else ""
    clauses, params = ["TRUE"], []
    for clause, value in (
        (f"{p}store_id = ?", store_id),
        (f"{p}camera_id = ?", camera_id),
        (f"{p}{ts} >= ?", None if start is None else utc_text(start)),
        (f"{p}{ts} < ?", None if end is None else utc_text(end)),
        (f"{p}id > ?", None if after_id is None else int(after_id)),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return " WHERE " + " AND ".join(clauses), params
