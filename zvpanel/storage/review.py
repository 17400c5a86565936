"""Review of counts: each event's crop, reviewers' verdicts, and raw vs reviewed counts.

Crops (``event_crops``)
    A small JPEG of the person at the crossing (:mod:`zvpanel.crops`; stored as
    :class:`~.values.EventCrop`), inserted with its
    event in the same transaction (:meth:`~.events.EventMethods.insert_events`), keyed by
    the event's uid. A crop goes with its event (retention's roll-up deletes both) or
    earlier, after the crops' own retention (:meth:`ReviewMethods.apply_crop_retention`).
Reviews (``event_reviews``)
    A verdict on a recorded event, ``wrong`` (nobody crossed, or not this way) or
    ``double`` (the same crossing counted again); one per event, a new verdict replaces
    the old. Or a crossing the counter ``missed``, with its camera, line, direction and
    time. Reviews never change ``events``: the raw counts stay what the counter counted,
    and :func:`~.review_counts.reviewed_counts` puts the two side by side.

Reviewed precision of a line and day: ``1 - (wrong + double) / raw``; reviewed count:
``raw - wrong - double + missed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

from ..config import MAX_RETENTION_DAYS
from ..errors import InvalidValueError, NotFoundError
from .events import event_filter
from .values import Event, Row, check_name, event_from_row, now_text, parse_utc, utc_text

__all__ = [
    "Review",
    "ReviewedEvent",
    "ReviewMethods",
    "EVENT_VERDICTS",
    "MISSED",
    "MAX_LISTED_EVENTS",
]

#: Verdicts on a recorded event.
EVENT_VERDICTS = ("wrong", "double")
#: The verdict of a crossing the counter missed (a review with no event).
MISSED = "missed"
Verdict = Literal["wrong", "double", "missed"]
_DIRECTIONS = ("entry", "exit")
#: Most events :meth:`ReviewMethods.line_events` returns at once.
MAX_LISTED_EVENTS = 500


@dataclass(frozen=True)
class Review:
    id: int
    event_uid: str | None  # None for a missed crossing
    store_id: int
    camera_id: int
    line_id: str
    direction: Literal["entry", "exit"]
    timestamp: datetime
    verdict: Verdict
    reviewer: str
    created_at: datetime


@dataclass(frozen=True)
class ReviewedEvent:
    """A recorded event with its verdict (None: not reviewed) and whether it has a crop."""

    event: Event
    verdict: Literal["wrong", "double"] | None
    has_crop: bool


def _review_from_row(row: Row) -> Review:
    return Review(
        row["id"],
        row["event_uid"],
        row["store_id"],
        row["camera_id"],
        row["line_id"],
        row["direction"],
        parse_utc(row["ts_utc"]),
        row["verdict"],
        row["reviewer"],
        parse_utc(row["created_at"]),
    )


class ReviewMethods:
    """The crop and review methods of :class:`~zvpanel.storage.database.Database`."""

    # ------------------------------------------------------------------ crops
    def event_crop(self, uid: str) -> bytes | None:
        """The JPEG of event ``uid``, or None (crops off, expired, or no box that frame)."""
        row = self._one("SELECT jpeg FROM event_crops WHERE uid = ?", (uid,))
        return None if row is None else bytes(row["jpeg"])

    def delete_crops(self, before: datetime) -> int:
        """Delete the crops of events counted before ``before``; how many went."""
        with self._write(serial=False) as conn:
            return conn.execute(
                "DELETE FROM event_crops WHERE ts_utc < ?", (utc_text(before),)
            ).rowcount

    def apply_crop_retention(self, days: int, now: datetime | None = None) -> int:
        """Delete crops older than ``days`` days before ``now`` (default: now)."""
        if (
            isinstance(days, bool)
            or not isinstance(days, int)
            or not 1 <= days <= MAX_RETENTION_DAYS
        ):
            raise InvalidValueError(
                f"crop retention days {days!r} must be a whole number from 1 to "
                f"{MAX_RETENTION_DAYS}"
            )
        now = datetime.now(timezone.utc) if now is None else now
        return self.delete_crops(now - timedelta(days=days))

    # ------------------------------------------------------------------ events to review
    def line_events(
        self,
        camera_id: int,
        line_id: str,
        start: datetime,
        end: datetime,
        limit: int = MAX_LISTED_EVENTS,
    ) -> list[ReviewedEvent]:
        """The newest ``limit`` raw events of a camera's line in [start, end), in time order,
        each with its verdict and whether a crop is stored."""
        if not 1 <= limit <= MAX_LISTED_EVENTS:
            raise InvalidValueError(f"limit {limit!r}: expected 1-{MAX_LISTED_EVENTS}")
        where, params = event_filter(None, camera_id, start, end, alias="e")
        rows = self._all(
            "SELECT e.*, r.verdict, (SELECT count(*) FROM event_crops c WHERE c.uid = e.uid) "
            "AS crops FROM events e LEFT JOIN event_reviews r ON r.event_uid = e.uid"
            + where
            + " AND e.line_id = ? ORDER BY e.ts_utc DESC, e.id DESC LIMIT ?",
            (*params, line_id, int(limit)),
        )
        return [
            ReviewedEvent(event_from_row(r), r["verdict"], bool(r["crops"])) for r in reversed(rows)
        ]

    # ------------------------------------------------------------------ reviews
    def review_event(self, uid: str, verdict: str, reviewer: str) -> Review:
        """Mark event ``uid`` ``wrong`` or ``double`` (replacing an earlier verdict)."""
        if verdict not in EVENT_VERDICTS:
            raise InvalidValueError(f"verdict {verdict!r}: expected one of {EVENT_VERDICTS}")
        check_name(reviewer, "reviewer")
        row = self._one("SELECT * FROM events WHERE uid = ?", (uid,))
        if row is None:
            raise NotFoundError(f"no event with uid {uid!r}")
        event = event_from_row(row)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO event_reviews (event_uid, store_id, camera_id, line_id, direction, "
                "ts_utc, verdict, reviewer, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (event_uid) DO UPDATE SET verdict = excluded.verdict, "
                "reviewer = excluded.reviewer, created_at = excluded.created_at",
                (uid, event.store_id, event.camera_id, event.line_id, event.direction,
                 row["ts_utc"], verdict, reviewer, now_text()),
            )  # fmt: skip
        return self._review_where("event_uid = ?", uid)

    def add_missed(
        self, camera_id: int, line_id: str, direction: str, when: datetime, reviewer: str
    ) -> Review:
        """Record a crossing the counter missed: ``direction`` over ``line_id`` at ``when``."""
        if direction not in _DIRECTIONS:
            raise InvalidValueError(f"direction {direction!r}: expected one of {_DIRECTIONS}")
        check_name(line_id, "line id")
        check_name(reviewer, "reviewer")
        camera = self.get_camera(camera_id)
        with self._write() as conn:
            row = conn.one(
                "INSERT INTO event_reviews (event_uid, store_id, camera_id, line_id, direction, "
                "ts_utc, verdict, reviewer, created_at) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?) "
                "RETURNING id",
                (camera.store_id, camera.id, line_id, direction, utc_text(when), MISSED,
                 reviewer, now_text()),
            )  # fmt: skip
        return self._review_where("id = ?", row["id"])

    def delete_review(self, review_id: int) -> bool:
        """Take a review back (a reviewer's mistake); False if there was none."""
        with self._write() as conn:
            return conn.execute("DELETE FROM event_reviews WHERE id = ?", (review_id,)).rowcount > 0

    def reviews(
        self,
        camera_id: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        line_id: str | None = None,
    ) -> list[Review]:
        """Reviews of events (and missed crossings) in [start, end), in time order."""
        where, params = event_filter(None, camera_id, start, end)
        if line_id is not None:
            where += " AND line_id = ?"
            params.append(line_id)
        rows = self._all(
            "SELECT * FROM event_reviews" + where + " ORDER BY ts_utc, id", tuple(params)
        )
        return [_review_from_row(r) for r in rows]

    def _review_where(self, clause: str, value: object) -> Review:
        return _review_from_row(self._one(f"SELECT * FROM event_reviews WHERE {clause}", (value,)))
