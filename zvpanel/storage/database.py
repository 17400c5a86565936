"""The SQLite database: users, stores, cameras, calibrations and events.

One writer
    Every write in this process goes through one connection, guarded by a lock, in a
    ``BEGIN IMMEDIATE`` transaction. Reads open their own short-lived connection
    (:meth:`Database.reader`), so readers never wait for the writer (WAL mode) and
    the object is safe to share between the engine's threads, Tornado and Panel
    sessions. Other processes (the ``zvpanel`` CLI while a server runs) may write too;
    SQLite serialises them and waits up to :data:`BUSY_TIMEOUT_SECONDS`.

Deleting never loses what was recorded
    * Deleting a camera *archives* it: ``deleted_at`` is set and it is disabled, so it
      disappears from :meth:`Database.list_cameras` (unless ``include_deleted``) and
      from the engine; its calibration and all its events stay. The events keep
      counting in their store's totals and charts, and :meth:`Database.get_camera`
      still returns the archived camera (for its name). A new camera may reuse the
      name of an archived one.
    * A store with an active camera cannot be deleted (archive its cameras first), nor
      can a store with recorded events. A store whose cameras are all archived and
      have no events is deleted together with those cameras.
    * Users are never deleted here, only disabled; the last admin cannot lose the admin
      flag nor be disabled.

Noticing changes
    :meth:`Database.subscribe` calls listeners after changes made through this object;
    :meth:`Database.config_revision` grows with every store, camera or calibration
    change made by any process, for pollers (the engine applies a calibration saved
    from the CLI without a restart).

Passwords are hashed with Argon2id (argon2-cffi's :class:`~argon2.PasswordHasher`,
its RFC 9106 defaults); hashes never leave this module.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..calibration import Calibration, parse_calibration
from ..errors import ConfigError, ConflictError, InvalidValueError, NotFoundError, ZvpanelError
from .schema import migrate

__all__ = [
    "Database",
    "User",
    "Store",
    "Camera",
    "Event",
    "EventRow",
    "Change",
    "InvalidValueError",
    "ConflictError",
    "utc_text",
    "parse_utc",
    "validate_timezone",
    "BUSY_TIMEOUT_SECONDS",
    "MIN_PASSWORD_LENGTH",
    "MAX_NAME_LENGTH",
]

log = logging.getLogger(__name__)

#: How long a write waits for another process's write lock before failing.
BUSY_TIMEOUT_SECONDS = 10.0
#: Shortest password accepted for a new user or a reset (the dev-mode admin is exempt).
MIN_PASSWORD_LENGTH = 8
#: Longest user, store or camera name.
MAX_NAME_LENGTH = 100
_CONFIG_REVISION_KEY = "config_revision"
_USERS_REVISION_KEY = "users_revision"
#: Fixed width, so that comparing the strings compares the times.
_UTC_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


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


def _now() -> str:
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


def _name(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValueError(f"{what} must not be empty")
    if value != value.strip():
        raise InvalidValueError(f"{what} {value!r} must not start or end with spaces")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidValueError(f"{what} {value[:20]!r}... is longer than {MAX_NAME_LENGTH}")
    if any(ord(c) < 32 for c in value):
        raise InvalidValueError(f"{what} {value!r} contains control characters")
    return value


def _bump_revision(conn: sqlite3.Connection, key: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) "
        "DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        (key,),
    )


def _check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidValueError(
            f"password is too short: use at least {MIN_PASSWORD_LENGTH} characters"
        )


def _user(row: sqlite3.Row) -> User:
    return User(
        row["id"],
        row["username"],
        bool(row["is_admin"]),
        parse_utc(row["created_at"]),
        bool(row["disabled"]),
        row["token_version"],
    )


def _store(row: sqlite3.Row) -> Store:
    return Store(row["id"], row["name"], row["timezone"], parse_utc(row["created_at"]))


def _camera(row: sqlite3.Row) -> Camera:
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


def _event(row: sqlite3.Row) -> Event:
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
    )


# --------------------------------------------------------------------------- database
class Database:
    """A zvpanel SQLite database file, created and migrated when opened."""

    def __init__(self, path: str | Path, *, password_hasher: PasswordHasher | None = None):
        self.path = Path(path).expanduser().resolve()
        self._hasher = password_hasher or PasswordHasher()
        self._dummy_hash: str | None = None
        self._lock = threading.RLock()
        self._listeners: list[Callable[[Change], None]] = []
        self._conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = self._connect()
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise ConfigError(f"database {self.path}: SQLite refused WAL mode ({mode})")
            migrate(self._conn)
        except (OSError, sqlite3.Error) as error:
            self.close()
            raise ConfigError(
                f"cannot open the database {self.path}: {error}. Check ZVPANEL_DB_PATH "
                "points at a writable location and at a zvpanel database."
            ) from None
        except BaseException:
            self.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in _write).
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        # NORMAL is durable across application crashes in WAL mode and much faster.
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r})"

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _write(self, config: bool = False, users: bool = False) -> Iterator[sqlite3.Connection]:
        """A write transaction on the one writer connection.

        ``config=True`` marks a change to stores, cameras or calibrations: it bumps
        :meth:`config_revision` in the same transaction. ``users=True`` marks a change
        that ends a user's tokens: it bumps :meth:`users_revision`.
        """
        with self._lock:
            if self._conn is None:
                raise ZvpanelError(f"{self!r} is closed")
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                if config:
                    _bump_revision(conn, _CONFIG_REVISION_KEY)
                if users:
                    _bump_revision(conn, _USERS_REVISION_KEY)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """A short-lived read-only connection for this thread (rows are ``sqlite3.Row``)."""
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA query_only = ON")
            yield conn
        finally:
            conn.close()

    def _one(self, sql: str, params: tuple = ()) -> sqlite3.Row | None:
        with self.reader() as conn:
            return conn.execute(sql, params).fetchone()

    def _all(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self.reader() as conn:
            return conn.execute(sql, params).fetchall()

    def subscribe(self, listener: Callable[[Change], None]) -> Callable[[], None]:
        """Call ``listener(Change)`` after each committed change made through this object.

        Listeners run in the thread that made the change and must be quick (the engine
        uses this to apply a new calibration without a restart). Returns an unsubscribe
        function.
        """
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _notify(self, kind: str, row_id: int) -> None:
        change = Change(kind, row_id)  # type: ignore[arg-type]
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(change)
            except Exception:  # one broken listener must not undo a committed change
                log.exception("listener %r failed on %s", listener, change)

    # ------------------------------------------------------------------ meta
    def config_revision(self) -> int:
        """A number that grows with every change to stores, cameras or calibrations, made
        by any process (the CLI included). Cheap to poll: the engine reloads when it moves.
        """
        value = self.get_meta(_CONFIG_REVISION_KEY)
        return 0 if value is None else int(value)

    def users_revision(self) -> int:
        """A number that grows whenever a user's tokens stop working (password changed,
        user disabled or enabled, logout), in any process. Cheap to poll: servers close
        the sockets of that user when it moves.
        """
        value = self.get_meta(_USERS_REVISION_KEY)
        return 0 if value is None else int(value)

    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else row["value"]

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # ------------------------------------------------------------------ users
    def create_user(self, username: str, password: str, is_admin: bool = False) -> User:
        _check_password(password)
        return self._insert_user(username, password, is_admin)

    def _insert_user(self, username: str, password: str, is_admin: bool) -> User:
        _name(username, "username")
        if not password:
            raise InvalidValueError("password must not be empty")
        password_hash = self._hasher.hash(password)  # slow on purpose: outside the lock
        try:
            with self._write() as conn:
                cur = conn.execute(
                    "INSERT INTO users (username, password_hash, is_admin, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (username, password_hash, int(is_admin), _now()),
                )
        except sqlite3.IntegrityError:
            raise ConflictError(f"user {username!r} already exists") from None
        self._notify("user", cur.lastrowid)
        return self.get_user(username)

    def get_user(self, username: str) -> User:
        row = self._one("SELECT * FROM users WHERE username = ?", (username,))
        if row is None:
            raise NotFoundError(f"no user named {username!r}")
        return _user(row)

    def list_users(self) -> list[User]:
        return [_user(r) for r in self._all("SELECT * FROM users ORDER BY username")]

    def count_users(self) -> int:
        return self._one("SELECT count(*) AS n FROM users")["n"]

    def authenticate(self, username: str, password: str) -> User | None:
        """The user if the password is right, else None (unknown users cost the same time)."""
        row = self._one("SELECT * FROM users WHERE username = ?", (username,))
        if row is None:
            # Verify against a dummy hash so that response time does not reveal which
            # user names exist.
            with suppress(VerificationError):
                self._hasher.verify(self._get_dummy_hash(), password)
            return None
        try:
            self._hasher.verify(row["password_hash"], password)
        except (VerificationError, InvalidHashError):
            return None
        if row["disabled"]:
            return None  # checked after the hash: a disabled user costs the same time
        if self._hasher.check_needs_rehash(row["password_hash"]):
            self._store_hash(row["id"], password)
        return _user(row)

    def _get_dummy_hash(self) -> str:
        with self._lock:
            if self._dummy_hash is None:
                self._dummy_hash = self._hasher.hash("zvpanel dummy password")
            return self._dummy_hash

    def _store_hash(self, user_id: int, password: str) -> None:
        password_hash = self._hasher.hash(password)
        with self._write() as conn:
            conn.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
            )

    def reset_password(self, username: str, password: str) -> None:
        """Set a new password; every token the user holds stops working."""
        _check_password(password)
        password_hash = self._hasher.hash(password)  # slow on purpose: outside the lock
        self._end_tokens(username, "password_hash = ?", (password_hash,))

    def set_disabled(self, username: str, disabled: bool = True) -> User:
        """Disable (or enable) a user; users are never deleted.

        A disabled user cannot log in and every token it holds is refused; enabling it
        again does not bring those tokens back. The last enabled admin cannot be disabled.
        """

        def keep_an_admin(conn: sqlite3.Connection, row: sqlite3.Row) -> None:
            if not (disabled and row["is_admin"] and not row["disabled"]):
                return
            admins = conn.execute(
                "SELECT count(*) FROM users WHERE is_admin = 1 AND disabled = 0"
            ).fetchone()[0]
            if admins <= 1:
                raise ConflictError(
                    f"{username!r} is the only enabled admin; make another user admin first"
                )

        return self._end_tokens(username, "disabled = ?", (int(disabled),), keep_an_admin)

    def end_sessions(self, username: str) -> User:
        """Make every token ``username`` holds stop working (Log out)."""
        return self._end_tokens(username)

    def _end_tokens(
        self,
        username: str,
        changes: str = "",
        params: tuple = (),
        check: Callable[[sqlite3.Connection, sqlite3.Row], None] | None = None,
    ) -> User:
        """Apply ``changes`` (SQL ``SET`` items) to a user and raise its token version.

        Tokens carry the version they were issued with, so every older token is refused.
        """
        with self._write(users=True) as conn:
            row = conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
            if row is None:
                raise NotFoundError(f"no user named {username!r}")
            if check is not None:
                check(conn, row)
            sets = f"{changes}, " if changes else ""
            conn.execute(
                f"UPDATE users SET {sets}token_version = token_version + 1 WHERE id = ?",
                (*params, row["id"]),
            )
        self._notify("user", row["id"])
        return self.get_user(username)

    def set_admin(self, username: str, is_admin: bool = True) -> User:
        with self._write() as conn:
            row = conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
            if row is None:
                raise NotFoundError(f"no user named {username!r}")
            if row["is_admin"] and not is_admin:
                admins = conn.execute("SELECT count(*) FROM users WHERE is_admin = 1").fetchone()[0]
                if admins <= 1:
                    raise ConflictError(
                        f"{username!r} is the only admin; make another user admin first"
                    )
            conn.execute("UPDATE users SET is_admin = ? WHERE id = ?", (int(is_admin), row["id"]))
        self._notify("user", row["id"])
        return self.get_user(username)

    # ------------------------------------------------------------------ user stores
    def user_store_ids(self, username: str) -> list[int]:
        """The stores ``username`` is limited to, by id (empty: not limited).

        What a user may see is decided in :mod:`zvpanel.web.access`, not here.
        """
        user = self.get_user(username)
        rows = self._all(
            "SELECT store_id FROM user_stores WHERE user_id = ? ORDER BY store_id", (user.id,)
        )
        return [row["store_id"] for row in rows]

    def set_user_stores(self, username: str, store_ids: Iterable[int]) -> list[int]:
        """Limit ``username`` to these stores; none lifts the limit. Returns the ids set.

        Like a password change, this ends the user's tokens: a page or socket opened with
        the old stores closes, and the next login sees the new ones.
        """
        ids = sorted({int(store_id) for store_id in store_ids})
        with self._write(users=True) as conn:
            row = conn.execute("SELECT id FROM users WHERE username = ?", (username,)).fetchone()
            if row is None:
                raise NotFoundError(f"no user named {username!r}")
            for store_id in ids:
                if conn.execute("SELECT 1 FROM stores WHERE id = ?", (store_id,)).fetchone() is None:
                    raise NotFoundError(f"no store with id {store_id}")
            conn.execute("DELETE FROM user_stores WHERE user_id = ?", (row["id"],))
            conn.executemany(
                "INSERT INTO user_stores (user_id, store_id) VALUES (?, ?)",
                [(row["id"], store_id) for store_id in ids],
            )
            conn.execute(
                "UPDATE users SET token_version = token_version + 1 WHERE id = ?", (row["id"],)
            )
        self._notify("user", row["id"])
        return ids

    # ------------------------------------------------------------------ stores
    def create_store(self, name: str, timezone: str = "UTC") -> Store:
        _name(name, "store name")
        validate_timezone(timezone)
        try:
            with self._write(config=True) as conn:
                cur = conn.execute(
                    "INSERT INTO stores (name, timezone, created_at) VALUES (?, ?, ?)",
                    (name, timezone, _now()),
                )
        except sqlite3.IntegrityError:
            raise ConflictError(f"a store named {name!r} already exists") from None
        self._notify("store", cur.lastrowid)
        return self.get_store(cur.lastrowid)

    def get_store(self, store_id: int) -> Store:
        row = self._one("SELECT * FROM stores WHERE id = ?", (store_id,))
        if row is None:
            raise NotFoundError(f"no store with id {store_id}")
        return _store(row)

    def list_stores(self) -> list[Store]:
        return [_store(r) for r in self._all("SELECT * FROM stores ORDER BY name, id")]

    def update_store(
        self, store_id: int, *, name: str | None = None, timezone: str | None = None
    ) -> Store:
        store = self.get_store(store_id)
        name = store.name if name is None else _name(name, "store name")
        timezone = store.timezone if timezone is None else validate_timezone(timezone)
        try:
            with self._write(config=True) as conn:
                conn.execute(
                    "UPDATE stores SET name = ?, timezone = ? WHERE id = ?",
                    (name, timezone, store_id),
                )
        except sqlite3.IntegrityError:
            raise ConflictError(f"a store named {name!r} already exists") from None
        self._notify("store", store_id)
        return self.get_store(store_id)

    def delete_store(self, store_id: int) -> None:
        """Delete a store that has no active camera and no recorded events (see module doc)."""
        with self._write(config=True) as conn:
            row = conn.execute("SELECT name FROM stores WHERE id = ?", (store_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no store with id {store_id}")
            active = conn.execute(
                "SELECT count(*) FROM cameras WHERE store_id = ? AND deleted_at IS NULL",
                (store_id,),
            ).fetchone()[0]
            if active:
                raise ConflictError(
                    f"store {store_id} ({row['name']!r}) still has {active} camera(s); "
                    "delete its cameras first"
                )
            events = conn.execute(
                "SELECT count(*) FROM events WHERE store_id = ?", (store_id,)
            ).fetchone()[0]
            if events:
                raise ConflictError(
                    f"store {store_id} ({row['name']!r}) has {events} recorded event(s); "
                    "a store with recorded events is kept so that they are not lost"
                )
            # A viewer limited to this store alone would see every store once it is gone.
            sole = conn.execute(
                "SELECT u.username FROM user_stores us JOIN users u ON u.id = us.user_id "
                "WHERE us.store_id = ? AND NOT EXISTS (SELECT 1 FROM user_stores o "
                "WHERE o.user_id = us.user_id AND o.store_id != us.store_id)",
                (store_id,),
            ).fetchall()
            if sole:
                names = ", ".join(repr(r["username"]) for r in sole)
                raise ConflictError(
                    f"store {store_id} ({row['name']!r}) is the only store {names} may see; "
                    "give them other stores first (zvpanel user stores NAME --store ID)"
                )
            # Archived cameras without events: nothing recorded goes with them.
            conn.execute("DELETE FROM cameras WHERE store_id = ?", (store_id,))
            conn.execute("DELETE FROM stores WHERE id = ?", (store_id,))
        self._notify("store", store_id)

    # ------------------------------------------------------------------ cameras
    def create_camera(self, store_id: int, name: str, source: str, enabled: bool = True) -> Camera:
        _name(name, "camera name")
        source = self._source(source)
        self.get_store(store_id)
        try:
            with self._write(config=True) as conn:
                cur = conn.execute(
                    "INSERT INTO cameras (store_id, name, source, enabled, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (store_id, name, source, int(enabled), _now()),
                )
        except sqlite3.IntegrityError:
            raise ConflictError(f"store {store_id} already has a camera named {name!r}") from None
        self._notify("camera", cur.lastrowid)
        return self.get_camera(cur.lastrowid)

    @staticmethod
    def _source(source: str | int) -> str:
        source = str(source).strip()
        if not source:
            raise InvalidValueError("camera source must not be empty")
        return source

    def get_camera(self, camera_id: int) -> Camera:
        """The camera, archived or not; NotFoundError if the id never existed."""
        row = self._one("SELECT * FROM cameras WHERE id = ?", (camera_id,))
        if row is None:
            raise NotFoundError(f"no camera with id {camera_id}")
        return _camera(row)

    def list_cameras(
        self, store_id: int | None = None, include_deleted: bool = False
    ) -> list[Camera]:
        sql, params = "SELECT * FROM cameras WHERE 1", []
        if store_id is not None:
            sql += " AND store_id = ?"
            params.append(store_id)
        if not include_deleted:
            sql += " AND deleted_at IS NULL"
        return [_camera(r) for r in self._all(sql + " ORDER BY store_id, name, id", tuple(params))]

    def _active_camera(self, camera_id: int) -> Camera:
        camera = self.get_camera(camera_id)
        if camera.archived:
            raise NotFoundError(f"camera {camera_id} ({camera.name!r}) is deleted")
        return camera

    def update_camera(
        self,
        camera_id: int,
        *,
        name: str | None = None,
        source: str | None = None,
        enabled: bool | None = None,
    ) -> Camera:
        camera = self._active_camera(camera_id)
        name = camera.name if name is None else _name(name, "camera name")
        source = camera.source if source is None else self._source(source)
        enabled = camera.enabled if enabled is None else bool(enabled)
        try:
            with self._write(config=True) as conn:
                conn.execute(
                    "UPDATE cameras SET name = ?, source = ?, enabled = ? "
                    "WHERE id = ? AND deleted_at IS NULL",
                    (name, source, int(enabled), camera_id),
                )
        except sqlite3.IntegrityError:
            raise ConflictError(
                f"store {camera.store_id} already has a camera named {name!r}"
            ) from None
        self._notify("camera", camera_id)
        return self.get_camera(camera_id)

    def set_enabled(self, camera_id: int, enabled: bool) -> Camera:
        return self.update_camera(camera_id, enabled=enabled)

    def delete_camera(self, camera_id: int) -> Camera:
        """Archive the camera: it leaves lists and the engine; its events stay."""
        self._active_camera(camera_id)
        with self._write(config=True) as conn:
            conn.execute(
                "UPDATE cameras SET deleted_at = ?, enabled = 0 WHERE id = ?",
                (_now(), camera_id),
            )
        self._notify("camera", camera_id)
        return self.get_camera(camera_id)

    # ------------------------------------------------------------------ calibrations
    def get_calibration(self, camera_id: int) -> Calibration | None:
        """The camera's calibration, or None if it has none (or the id is unknown)."""
        with self.reader() as conn:
            row = conn.execute(
                "SELECT * FROM calibrations WHERE camera_id = ?", (camera_id,)
            ).fetchone()
            if row is None:
                return None
            lines = conn.execute(
                "SELECT line_id AS id, x1, y1, x2, y2, orientation FROM counting_lines "
                "WHERE camera_id = ? ORDER BY position",
                (camera_id,),
            ).fetchall()
        roi = None
        if row["roi_x1"] is not None:
            roi = (row["roi_x1"], row["roi_y1"], row["roi_x2"], row["roi_y2"])
        return parse_calibration(
            {
                "roi": roi,
                "lines": [dict(line) for line in lines],
                "detection_fps": row["detection_fps"],
                "anchor": row["anchor"],
                "min_distance": row["min_distance"],
                "min_frames": row["min_frames"],
            }
        )

    def calibration_updated_at(self, camera_id: int) -> datetime | None:
        row = self._one("SELECT updated_at FROM calibrations WHERE camera_id = ?", (camera_id,))
        return None if row is None else parse_utc(row["updated_at"])

    def set_calibration(self, camera_id: int, calibration: Calibration) -> None:
        """Replace the camera's calibration (a validated :class:`Calibration`)."""
        if not isinstance(calibration, Calibration):
            raise InvalidValueError(
                f"calibration must be a zvpanel.calibration.Calibration, got {type(calibration).__name__}"
            )
        # Validated again: model_construct/model_copy skip validation, and SQLite would
        # store a NaN as NULL (an ROI silently lost) or refuse it with an IntegrityError.
        calibration = parse_calibration(calibration.model_dump())
        self._active_camera(camera_id)
        roi = calibration.roi or (None, None, None, None)
        with self._write(config=True) as conn:
            conn.execute(
                "INSERT INTO calibrations (camera_id, roi_x1, roi_y1, roi_x2, roi_y2, "
                "detection_fps, anchor, min_distance, min_frames, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (camera_id) DO UPDATE SET roi_x1 = excluded.roi_x1, "
                "roi_y1 = excluded.roi_y1, roi_x2 = excluded.roi_x2, roi_y2 = excluded.roi_y2, "
                "detection_fps = excluded.detection_fps, anchor = excluded.anchor, "
                "min_distance = excluded.min_distance, min_frames = excluded.min_frames, "
                "updated_at = excluded.updated_at",
                (
                    camera_id,
                    *roi,
                    calibration.detection_fps,
                    calibration.anchor,
                    calibration.min_distance,
                    calibration.min_frames,
                    _now(),
                ),
            )
            conn.execute("DELETE FROM counting_lines WHERE camera_id = ?", (camera_id,))
            conn.executemany(
                "INSERT INTO counting_lines (camera_id, line_id, x1, y1, x2, y2, orientation, "
                "position) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (camera_id, ln.id, ln.x1, ln.y1, ln.x2, ln.y2, ln.orientation, i)
                    for i, ln in enumerate(calibration.lines)
                ],
            )
        self._notify("calibration", camera_id)

    # ------------------------------------------------------------------ events
    def insert_events(self, rows: Iterable[EventRow | tuple]) -> int:
        """Insert event rows in one transaction (the :class:`EventWriter` calls this)."""
        rows = list(rows)
        if not rows:
            return 0
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO events (store_id, camera_id, line_id, track_id, direction, ts_utc, "
                "frame_index, confidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
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
        """Events in time order, filtered; ``start`` inclusive, ``end`` exclusive."""
        sql, params = _event_filter(store_id, camera_id, start, end)
        sql = "SELECT * FROM events" + sql + " ORDER BY ts_utc, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_event(r) for r in self._all(sql, tuple(params))]

    def count_events(
        self,
        store_id: int | None = None,
        camera_id: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> dict[str, int]:
        """``{"entry": n, "exit": m}`` for the filter (fast: uses the indexes)."""
        sql, params = _event_filter(store_id, camera_id, start, end)
        rows = self._all(
            "SELECT direction, count(*) AS n FROM events" + sql + " GROUP BY direction",
            tuple(params),
        )
        counts = {"entry": 0, "exit": 0}
        counts.update({r["direction"]: r["n"] for r in rows})
        return counts


def _event_filter(
    store_id: int | None,
    camera_id: int | None,
    start: datetime | None,
    end: datetime | None,
    after_id: int | None = None,
    alias: str = "",
) -> tuple[str, list]:
    """`` WHERE ...`` (or "") and its parameters; ``alias`` prefixes the events columns."""
    p = f"{alias}." if alias else ""
    clauses, params = [], []
    for clause, value in (
        (f"{p}store_id = ?", store_id),
        (f"{p}camera_id = ?", camera_id),
        (f"{p}ts_utc >= ?", None if start is None else utc_text(start)),
        (f"{p}ts_utc < ?", None if end is None else utc_text(end)),
        (f"{p}id > ?", None if after_id is None else int(after_id)),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
