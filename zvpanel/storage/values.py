"""The values the database hands out, and the checks and conversions every part shares.

Times are stored as TEXT in one fixed-width ISO-8601 UTC form
(``2026-01-31T09:05:00.000000Z``, :func:`utc_text`) on both backends, so comparing the
strings compares the times and one query text serves SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from uuid6 import uuid7

from ..errors import InvalidValueError

__all__ = [
    "User",
    "Store",
    "Camera",
    "Event",
    "EventRow",
    "EventCrop",
    "check_crops",
    "MAX_CROP_BYTES",
    "new_event_uid",
    "Change",
    "utc_text",
    "parse_utc",
    "validate_timezone",
    "MIN_PASSWORD_LENGTH",
    "MAX_NAME_LENGTH",
    "now_text",
    "check_name",
    "check_password",
    "user_from_row",
    "store_from_row",
    "camera_from_row",
    "event_from_row",
]

#: Shortest password accepted for a new user or a reset (the dev-mode admin is exempt).
MIN_PASSWORD_LENGTH = 8
#: Longest user, store or camera name.
MAX_NAME_LENGTH = 100
#: Fixed width, so that comparing the strings compares the times.
_UTC_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

Row = Any  # a driver row, readable by column name (sqlite3.Row or the PostgreSQL row)


# --------------------------------------------------------------------------- values
@dataclass(frozen=True)
class User:
    id: int
    username: str
    is_admin: bool
    created_at: datetime
    #: A disabled user cannot log in, and every token it holds is refused.
    disabled: bool = False
    #: Written into each token; raised by a password change, a disable or a logout.
    token_version: int = 0


@dataclass(frozen=True)
class Store:
    id: int
    name: str
    timezone: str
    created_at: datetime

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Camera:
    id: int
    store_id: int
    name: str
    source: str
    enabled: bool
    created_at: datetime
    deleted_at: datetime | None = None

    @property
    def archived(self) -> bool:
        return self.deleted_at is not None


@dataclass(frozen=True)
class Event:
    id: int
    store_id: int
    camera_id: int
    line_id: str
    track_id: int
    direction: Literal["entry", "exit"]
    timestamp: datetime
    frame_index: int
    confidence: float
    uid: str | None = None
    node: str | None = None


class EventRow(NamedTuple):
    """One event to insert; ``ts_utc`` from :func:`utc_text`."""

    store_id: int
    camera_id: int
    line_id: str
    track_id: int
    direction: str
    ts_utc: str
    frame_index: int
    confidence: float
    #: A UUIDv7 (:func:`new_event_uid`): inserting the same event twice keeps it once.
    uid: str | None = None
    #: The engine node that counted it (None: the dashboard process's own engine).
    node: str | None = None


#: Largest crop stored (bytes): a crop is a thumbnail; anything bigger is a bug upstream.
MAX_CROP_BYTES = 256 * 1024


class EventCrop(NamedTuple):
    """The crop of one event (:mod:`zvpanel.crops`): the event's uid, camera and time
    (:func:`utc_text`), and the JPEG."""

    uid: str
    camera_id: int
    ts_utc: str
    jpeg: bytes


def check_crops(crops: Iterable[EventCrop | tuple]) -> list[EventCrop]:
    """The crops as :class:`EventCrop`, each a non-empty JPEG of at most MAX_CROP_BYTES."""
    checked = [EventCrop(*crop) for crop in crops]
    for crop in checked:
        if not isinstance(crop.jpeg, bytes) or not 0 < len(crop.jpeg) <= MAX_CROP_BYTES:
            size = len(crop.jpeg) if isinstance(crop.jpeg, bytes) else type(crop.jpeg).__name__
            raise InvalidValueError(
                f"crop of event {crop.uid}: {size} bytes; expected 1-{MAX_CROP_BYTES} bytes of JPEG"
            )
    return checked


def new_event_uid() -> str:
    """A globally unique, time-ordered event id (UUIDv7, RFC 9562): made where the event
    is counted, with no coordination, so a node's events keep their ids through its
    outbox and any number of forwarding attempts."""
    return str(uuid7())


@dataclass(frozen=True)
class Change:
    """What a listener hears after a committed change: ``kind`` and the row id."""

    kind: Literal["user", "store", "camera", "calibration"]
    id: int


# --------------------------------------------------------------------------- helpers
def utc_text(when: datetime | float) -> str:
    """A time zone-aware datetime or a POSIX timestamp -> the stored UTC text."""
    if isinstance(when, (int, float)):
        when = datetime.fromtimestamp(when, tz=timezone.utc)
    elif when.tzinfo is None or when.utcoffset() is None:
        raise InvalidValueError(f"timestamp {when.isoformat()} has no time zone; give UTC")
    return when.astimezone(timezone.utc).strftime(_UTC_FORMAT)


def parse_utc(text: str) -> datetime:
    return datetime.strptime(text, _UTC_FORMAT).replace(tzinfo=timezone.utc)


def now_text() -> str:
    """Now, as stored UTC text."""
    return utc_text(datetime.now(timezone.utc))


def validate_timezone(name: str) -> str:
    """Return ``name`` if it is an IANA time zone; raise :class:`InvalidValueError` naming it."""
    try:
        if not isinstance(name, str) or not name.strip():
            raise ValueError
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidValueError(
            f"timezone {name!r} is not a known IANA time zone (e.g. 'UTC', 'Europe/Paris', "
            "'America/New_York')"
        ) from None
    return name


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValueError(f"{what} must not be empty")
    if value != value.strip():
        raise InvalidValueError(f"{what} {value!r} must not start or end with spaces")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidValueError(f"{what} {value[:20]!r}... is longer than {MAX_NAME_LENGTH}")
    if any(ord(c) < 32 for c in value):
        raise InvalidValueError(f"{what} {value!r} contains control characters")
    return value


def check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidValueError(
            f"password is too short: use at least {MIN_PASSWORD_LENGTH} characters"
        )


def user_from_row(row: Row) -> User:
    return User(
        row["id"],
        row["username"],
        bool(row["is_admin"]),
        parse_utc(row["created_at"]),
        bool(row["disabled"]),
        row["token_version"],
    )


def store_from_row(row: Row) -> Store:
    return Store(row["id"], row["name"], row["timezone"], parse_utc(row["created_at"]))


def camera_from_row(row: Row) -> Camera:
    deleted = row["deleted_at"]
    return Camera(
        row["id"],
        row["store_id"],
        row["name"],
        row["source"],
        bool(row["enabled"]),
        parse_utc(row["created_at"]),
        parse_utc(deleted) if deleted else None,
    )


def event_from_row(row: Row) -> Event:
    return Event(
        row["id"],
        row["store_id"],
        row["camera_id"],
        row["line_id"],
        row["track_id"],
        row["direction"],
        parse_utc(row["ts_utc"]),
        row["frame_index"],
        row["confidence"],
        row["uid"],
        row["node"],
    )
