"""Occupancy limits, their alert state and the record of every raise and clear.

A limit belongs to a store (``camera_id`` 0, ``zone_id`` ``""``) or to one zone of a
camera. Its ``exceeded`` flag is shared by every process on the database: the process
whose conditional update flips it (``UPDATE ... WHERE exceeded = <old>``) records the
transition and owns its webhook, so dashboards running side by side (fleet mode) fire
each crossing once; the others' updates change no row and they do nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from ..errors import InvalidValueError, NotFoundError
from .values import check_name, now_text, parse_utc

__all__ = [
    "AlertMethods",
    "AlertTransition",
    "OccupancyLimit",
    "MAX_PEOPLE_LIMIT",
    "MAX_WEBHOOK_URL_LENGTH",
    "validate_webhook_url",
    "webhook_label",
]

#: The largest occupancy limit accepted (a stadium, not a typo of a few more zeros).
MAX_PEOPLE_LIMIT = 100_000
MAX_WEBHOOK_URL_LENGTH = 2000
WebhookOutcome = Literal["none", "pending", "sent", "failed"]


@dataclass(frozen=True)
class OccupancyLimit:
    """A store's (or a zone's) occupancy limit and whether it is exceeded now.

    Raised above ``max_people``; cleared at ``max_people - hysteresis`` or below.
    """

    store_id: int
    max_people: int
    hysteresis: int = 0
    webhook_url: str | None = None
    camera_id: int = 0
    zone_id: str = ""
    exceeded: bool = False
    changed_at: datetime | None = None

    @property
    def is_zone(self) -> bool:
        return self.zone_id != ""

    @property
    def clear_at(self) -> int:
        """The occupancy at or below which an exceeded limit clears."""
        return max(0, self.max_people - self.hysteresis)


@dataclass(frozen=True)
class AlertTransition:
    """One raise (``exceeded``) or clear (``cleared``) of a limit."""

    id: int
    store_id: int
    camera_id: int
    zone_id: str
    kind: Literal["exceeded", "cleared"]
    occupancy: int
    max_people: int
    at: datetime
    webhook: WebhookOutcome
    attempts: int


def validate_webhook_url(url: str | None) -> str | None:
    """An http(s) URL with a host (or None/empty: no webhook); raise naming the field."""
    if url is None or not url.strip():
        return None
    if len(url) > MAX_WEBHOOK_URL_LENGTH:
        raise InvalidValueError(f"webhook_url is longer than {MAX_WEBHOOK_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        # Named by its label only: the URL itself may carry a token.
        raise InvalidValueError(
            f"webhook_url {webhook_label(url)!r} is not an http:// or https:// URL with a host"
        )
    if any(ord(c) < 33 for c in url):
        raise InvalidValueError(f"webhook_url {webhook_label(url)!r} contains spaces or controls")
    return url


def webhook_label(url: str) -> str:
    """What pages and logs show of a webhook URL: scheme and host only.

    Webhook URLs often are the secret (Slack's and Teams' carry it in the path), so
    neither the path, the query nor a password is ever shown.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(invalid URL)"
    return f"{parts.scheme or '?'}://{host}{port}/…"


def _limit_from_row(row) -> OccupancyLimit:
    return OccupancyLimit(
        store_id=row["store_id"],
        max_people=row["max_people"],
        hysteresis=row["hysteresis"],
        webhook_url=row["webhook_url"],
        camera_id=row["camera_id"],
        zone_id=row["zone_id"],
        exceeded=bool(row["exceeded"]),
        changed_at=None if row["changed_at"] is None else parse_utc(row["changed_at"]),
    )


def _transition_from_row(row) -> AlertTransition:
    return AlertTransition(
        id=row["id"],
        store_id=row["store_id"],
        camera_id=row["camera_id"],
        zone_id=row["zone_id"],
        kind=row["kind"],
        occupancy=row["occupancy"],
        max_people=row["max_people"],
        at=parse_utc(row["at"]),
        webhook=row["webhook"],
        attempts=row["attempts"],
    )


def _check_limit(max_people: int, hysteresis: int) -> None:
    if isinstance(max_people, bool) or not isinstance(max_people, int):
        raise InvalidValueError(f"max_people {max_people!r} is not a whole number")
    if not 1 <= max_people <= MAX_PEOPLE_LIMIT:
        raise InvalidValueError(f"max_people {max_people} is not between 1 and {MAX_PEOPLE_LIMIT}")
    if isinstance(hysteresis, bool) or not isinstance(hysteresis, int):
        raise InvalidValueError(f"hysteresis {hysteresis!r} is not a whole number")
    if not 0 <= hysteresis < max_people:
        raise InvalidValueError(
            f"hysteresis {hysteresis} is not between 0 and max_people - 1 ({max_people - 1})"
        )


_KEY = "store_id = ? AND camera_id = ? AND zone_id = ?"


class AlertMethods:
    """The occupancy-limit and alert methods of :class:`~zvpanel.storage.database.Database`."""

    def set_occupancy_limit(
        self,
        store_id: int,
        max_people: int,
        hysteresis: int = 0,
        webhook_url: str | None = None,
        *,
        camera_id: int = 0,
        zone_id: str = "",
    ) -> OccupancyLimit:
        """Create or change the limit of a store (or of ``zone_id`` of ``camera_id``).

        Changing a limit keeps its state: the next evaluation raises or clears it
        against the new numbers.
        """
        _check_limit(max_people, hysteresis)
        webhook_url = validate_webhook_url(webhook_url)
        self.get_store(store_id)  # raises NotFoundError naming it
        if zone_id:
            check_name(zone_id, "zone id")
            if self.get_camera(camera_id).store_id != store_id:
                raise InvalidValueError(f"camera {camera_id} is not in store {store_id}")
        elif camera_id:
            raise InvalidValueError(f"camera_id {camera_id} given without a zone_id")
        with self._write() as conn:
            conn.execute(
                "INSERT INTO occupancy_limits (store_id, camera_id, zone_id, max_people, "
                "hysteresis, webhook_url) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (store_id, camera_id, zone_id) DO UPDATE SET "
                "max_people = excluded.max_people, hysteresis = excluded.hysteresis, "
                "webhook_url = excluded.webhook_url",
                (store_id, camera_id, zone_id, max_people, hysteresis, webhook_url),
            )
        return self.occupancy_limit(store_id, camera_id=camera_id, zone_id=zone_id)

    def occupancy_limit(
        self, store_id: int, *, camera_id: int = 0, zone_id: str = ""
    ) -> OccupancyLimit:
        row = self._one(
            f"SELECT * FROM occupancy_limits WHERE {_KEY}", (store_id, camera_id, zone_id)
        )
        if row is None:
            where = f"zone {zone_id!r} of camera {camera_id}" if zone_id else f"store {store_id}"
            raise NotFoundError(f"no occupancy limit for {where}")
        return _limit_from_row(row)

    def occupancy_limits(self, store_id: int | None = None) -> list[OccupancyLimit]:
        """Every limit (of one store), the store's own first, then its zones."""
        where, params = ("", ()) if store_id is None else (" WHERE store_id = ?", (store_id,))
        rows = self._all(
            f"SELECT * FROM occupancy_limits{where} ORDER BY store_id, camera_id, zone_id", params
        )
        return [_limit_from_row(r) for r in rows]

    def remove_occupancy_limit(
        self, store_id: int, *, camera_id: int = 0, zone_id: str = ""
    ) -> None:
        self.occupancy_limit(store_id, camera_id=camera_id, zone_id=zone_id)  # NotFoundError
        with self._write() as conn:
            conn.execute(
                f"DELETE FROM occupancy_limits WHERE {_KEY}", (store_id, camera_id, zone_id)
            )

    def record_alert_transition(
        self, limit: OccupancyLimit, exceeded: bool, occupancy: int
    ) -> AlertTransition | None:
        """Flip ``limit`` to ``exceeded`` and record it, if its state is still the opposite.

        None when the state already was ``exceeded`` (another process recorded this
        crossing first): the caller then sends nothing. The transition's webhook is
        ``pending`` when the limit has a URL, else ``none``.
        """
        now = now_text()
        key = (limit.store_id, limit.camera_id, limit.zone_id)
        with self._write() as conn:
            flipped = conn.execute(
                f"UPDATE occupancy_limits SET exceeded = ?, changed_at = ? WHERE {_KEY} "
                "AND exceeded = ?",
                (int(exceeded), now, *key, int(not exceeded)),
            ).rowcount
            if flipped != 1:
                return None
            row = conn.one(
                "INSERT INTO alert_transitions (store_id, camera_id, zone_id, kind, occupancy, "
                "max_people, at, webhook) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                (
                    *key,
                    "exceeded" if exceeded else "cleared",
                    occupancy,
                    limit.max_people,
                    now,
                    "pending" if limit.webhook_url else "none",
                ),
            )
        return _transition_from_row(row)

    def finish_webhook(self, transition_id: int, sent: bool, attempts: int) -> None:
        """Record what became of a transition's webhook after ``attempts`` tries."""
        with self._write(serial=False) as conn:
            conn.execute(
                "UPDATE alert_transitions SET webhook = ?, attempts = ? WHERE id = ?",
                ("sent" if sent else "failed", attempts, transition_id),
            )

    def alert_transitions(
        self, store_id: int | None = None, limit: int = 100
    ) -> list[AlertTransition]:
        """The newest ``limit`` transitions (of one store), newest first."""
        where, params = ("", ()) if store_id is None else (" WHERE store_id = ?", (store_id,))
        rows = self._all(
            f"SELECT * FROM alert_transitions{where} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [_transition_from_row(r) for r in rows]
