"""The database: SQLite (a file, the default) or PostgreSQL (``postgresql://...``).

:class:`Database` is assembled from one module per subject: users and logins
(:mod:`.users`), configuration (:mod:`.configuration`: stores, cameras, calibrations,
user stores), events (:mod:`.events`, with retention) and fleet mode (:mod:`.fleet`:
camera assignments, pool leases, node heartbeats); the engine-specific parts are
in :mod:`.backend`. The same migrations (:mod:`.schema`) create and upgrade both.

One writer
    Every write in this process goes through one connection, guarded by a lock, in one
    transaction (SQLite: ``BEGIN IMMEDIATE``). Reads use their own connections
    (:meth:`Database.reader`), so readers never wait for the writer (SQLite in WAL mode)
    and the object is safe to share between the engine's threads, Tornado and Panel
    sessions. Other processes (the ``zvpanel`` CLI while a server runs) may write too;
    SQLite serialises them and waits up to :data:`BUSY_TIMEOUT_SECONDS`.

Deleting never loses what was recorded: see :mod:`.configuration` (cameras are
archived, stores with events kept) and :mod:`.users` (users are disabled, not deleted).

Noticing changes
    :meth:`Database.subscribe` calls listeners after changes made through this object;
    :meth:`Database.config_revision` grows with every store, camera or calibration
    change made by any process, for pollers (the engine applies a calibration saved
    from the CLI without a restart); :meth:`Database.users_revision` likewise for
    changes that end a user's tokens.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

from ..errors import (
    ConfigError,
    ConflictError,
    InvalidValueError,
    OutageLog,
    ZvpanelError,
    one_line,
)
from .activity import ActivityMethods
from .alerts import AlertMethods
from .backend import BUSY_TIMEOUT_SECONDS, Connection, SqliteBackend, open_backend
from .configuration import ConfigurationMethods
from .events import EventMethods
from .fleet import FleetMethods
from .reports import ReportMethods
from .review import ReviewMethods
from .schema import migrate
from .users import UserMethods
from .values import (
    MAX_NAME_LENGTH,
    MIN_PASSWORD_LENGTH,
    Camera,
    Change,
    Event,
    EventRow,
    Row,
    Store,
    User,
    parse_utc,
    utc_text,
    validate_timezone,
)
from .zones import ZoneMethods

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

_CONFIG_REVISION_KEY = "config_revision"
_USERS_REVISION_KEY = "users_revision"


def _bump_revision(conn: Connection, key: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) "
        "DO UPDATE SET value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)",
        (key,),
    )


class Database(
    UserMethods,
    ConfigurationMethods,
    EventMethods,
    FleetMethods,
    AlertMethods,
    ReportMethods,
    ActivityMethods,
    ZoneMethods,
    ReviewMethods,
):
    """A zvpanel database, created and migrated when opened.

    ``target``: a SQLite file path, or a ``postgresql://`` URL
    (``ZVPANEL_DATABASE_URL``).
    """

    def __init__(self, target: str | Path, *, password_hasher: PasswordHasher | None = None):
        self._backend = open_backend(target)
        #: The SQLite file (None for PostgreSQL).
        self.path: Path | None = (
            self._backend.path if isinstance(self._backend, SqliteBackend) else None
        )
        self._integrity = self._backend.integrity_errors
        self._hasher = password_hasher or PasswordHasher()
        self._dummy_hash: str | None = None
        self._lock = threading.RLock()
        self._writer_outage = OutageLog(log)  # one line per outage, not one per write
        self._listeners: list[Callable[[Change], None]] = []
        self._conn: Connection | None = None
        try:
            self._conn = self._backend.connect_writer()
            migrate(self._conn, self._backend)
        except self._backend.operational_errors as error:
            self.close()
            raise ConfigError(
                f"cannot open the database {self.location}: {error}. Check "
                "ZVPANEL_DATABASE_URL (or ZVPANEL_DB_PATH) points at a writable location "
                "and at a zvpanel database."
            ) from None
        except BaseException:
            self.close()
            raise

    @property
    def location(self) -> str:
        """Where the data is (a file path, or the URL without its password)."""
        return self._backend.location

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return "sqlite" if self.path is not None else "postgresql"

    def hour_bin_sql(self, column: str) -> str:
        """SQL for the UTC start (text) of the local hour holding ``column``; each ``?`` in
        it takes the time zone name."""
        return self._backend.hour_bin(column)

    def local_day_sql(self, column: str) -> str:
        """SQL for the local date (``YYYY-MM-DD``) of ``column``; each ``?`` takes the zone."""
        return self._backend.local_day(column)

    def __repr__(self) -> str:
        return f"Database({self.location!r})"

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._backend.close()

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _write(
        self, config: bool = False, users: bool = False, serial: bool = True
    ) -> Iterator[Connection]:
        """A write transaction on the one writer connection.

        ``config=True`` marks a change to stores, cameras or calibrations: it bumps
        :meth:`config_revision` in the same transaction. ``users=True`` marks a change
        that ends a user's tokens: it bumps :meth:`users_revision`. ``serial=False``
        (plain event inserts) lets PostgreSQL run it beside other processes' writes;
        every other write checks before it changes (the last admin, a store's events), so
        it runs alone, as every SQLite write does.
        """
        with self._lock:
            conn = self._begin(serial)
            try:
                yield conn
                if config:
                    _bump_revision(conn, _CONFIG_REVISION_KEY)
                if users:
                    _bump_revision(conn, _USERS_REVISION_KEY)
            except BaseException:
                if not self._backend.broken(conn):
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _begin(self, serial: bool) -> Connection:
        """Begin on the writer connection, opening a new one if the server dropped it
        (a PostgreSQL restart): nothing was written yet, so beginning again is safe."""
        if self._conn is None:
            raise ZvpanelError(f"{self!r} is closed")
        try:
            self._backend.begin(self._conn, serial)
        except self._backend.operational_errors as error:
            if not self._backend.broken(self._conn):
                raise
            self._writer_outage.failed(
                "database %s: writer connection lost (%s); reconnecting",
                self.location,
                one_line(error),
            )
            self._conn.close()
            self._conn = self._backend.connect_writer()
            self._backend.begin(self._conn, serial)
            self._writer_outage.ended("database %s: writer connection back", self.location)
        return self._conn

    @contextmanager
    def reader(self) -> Iterator[Connection]:
        """A read-only connection for this thread (rows readable by column name).

        Its ``execute`` takes ``?`` placeholders on both backends.
        """
        with self._backend.reader() as conn:
            yield conn

    def _one(self, sql: str, params: tuple = ()) -> Row | None:
        return self._read(lambda conn: conn.one(sql, params))

    def _all(self, sql: str, params: tuple = ()) -> list[Row]:
        return self._read(lambda conn: conn.all(sql, params))

    def _read(self, query: Callable[[Connection], Any]) -> Any:
        """Run a read; once more on a new connection if the server had dropped the pooled
        one (a PostgreSQL restart): a read has no effect, so repeating it is safe."""
        used: Connection | None = None
        try:
            with self.reader() as used:
                return query(used)
        except self._backend.operational_errors:
            if used is None or not self._backend.broken(used):
                raise
        with self.reader() as conn:
            return query(conn)

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
