"""The two storage engines behind :class:`~zvpanel.storage.database.Database`.

Every query in zvpanel is written once, in the SQL both engines speak, with ``?``
placeholders; a :class:`Connection` translates them for psycopg (``%s``). What differs
lives here and only here: how to connect, how a write transaction starts, how the schema
version is kept, and the two time-zone expressions the chart queries need.

SQLite (a file path, the default)
    WAL mode; one writer connection per process; readers open a short-lived connection
    each (they never wait for the writer). The local-time bins are Python functions
    registered on each connection.
PostgreSQL (``postgresql://...``)
    psycopg 3 connections in autocommit mode with explicit ``BEGIN``; the writer is one
    connection per process, like SQLite's; readers borrow from a small pool of idle
    read-only connections. Local-time bins use ``AT TIME ZONE`` (``timezone()``).
"""

from __future__ import annotations

import queue
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from ..config import POSTGRES_SCHEMES, is_postgres_url
from ..display import mask_source

__all__ = [
    "BUSY_TIMEOUT_SECONDS",
    "POSTGRES_SCHEMES",
    "Backend",
    "Connection",
    "PostgresBackend",
    "SqliteBackend",
    "is_postgres_url",
    "open_backend",
]

#: How long a write waits for another process's write lock before failing.
BUSY_TIMEOUT_SECONDS = 10.0
#: Idle PostgreSQL reader connections kept for reuse (more are opened when needed).
POSTGRES_IDLE_READERS = 4
POSTGRES_CONNECT_TIMEOUT_SECONDS = 10
#: The stored UTC text of a time (see :func:`zvpanel.storage.values.utc_text`).
_UTC_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class Connection:
    """One database connection with the ``?`` placeholder style on both engines."""

    def __init__(self, raw: Any, postgres: bool) -> None:
        self.raw = raw
        self._postgres = postgres

    def _sql(self, sql: str) -> str:
        # psycopg treats % as the start of a placeholder: escape it, then translate ?.
        return sql.replace("%", "%%").replace("?", "%s") if self._postgres else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns the driver's cursor (rows by name and by index)."""
        return self.raw.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self._postgres:
            with self.raw.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
        else:
            self.raw.executemany(sql, rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.execute(sql, params).fetchall()

    def close(self) -> None:
        self.raw.close()


class Backend(Protocol):
    """What :class:`Database` needs from a storage engine."""

    #: The driver's errors for a broken constraint (UNIQUE, FOREIGN KEY, CHECK).
    integrity_errors: tuple[type[Exception], ...]
    #: The driver's errors for a database that cannot be opened or reached.
    operational_errors: tuple[type[Exception], ...]
    #: Where the data is, safe to show (no password).
    location: str

    def connect_writer(self) -> Connection: ...
    def begin(self, conn: Connection, serial: bool = True) -> None: ...
    def broken(self, conn: Connection) -> bool: ...
    def reader(self) -> Any: ...  # a context manager yielding a Connection
    def schema_version(self, conn: Connection) -> int: ...
    def lock_schema(self, conn: Connection) -> None: ...
    def set_schema_version(self, conn: Connection, version: int) -> None: ...
    def ddl(self, statement: str) -> str: ...
    def hour_bin(self, column: str) -> str: ...
    def local_day(self, column: str) -> str: ...
    def close(self) -> None: ...

    #: SQL for now, in seconds since the epoch, by the database's clock (leases expire by
    #: it, so nodes whose clocks disagree still agree on who holds a camera).
    epoch_now: str


def open_backend(target: str | Path) -> SqliteBackend | PostgresBackend:
    """A PostgreSQL backend for a ``postgresql://`` URL, else SQLite for a file path."""
    if is_postgres_url(target):
        return PostgresBackend(str(target))
    return SqliteBackend(Path(target))


# --------------------------------------------------------------------------- SQLite
@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


# Cached: chart queries bin quarter hours, the same few thousand values for every camera.
@lru_cache(maxsize=16384)
def _sqlite_hour_bin(ts_utc: str, tz: str) -> str:
    """The UTC start of the local hour (of zone ``tz``) holding ``ts_utc``.

    Computed from the local minutes and seconds, so that an hour repeated when clocks go
    back stays two bins, and a zone half an hour off UTC gets its own local hours.
    """
    when = datetime.strptime(ts_utc, _UTC_FORMAT).replace(tzinfo=timezone.utc)
    local = when.astimezone(_zone(tz))
    into_hour = timedelta(
        minutes=local.minute, seconds=local.second, microseconds=local.microsecond
    )
    return (when - into_hour).strftime("%Y-%m-%dT%H:%M:%S")


@lru_cache(maxsize=16384)
def _sqlite_local_day(ts_utc: str, tz: str) -> str:
    when = datetime.strptime(ts_utc, _UTC_FORMAT).replace(tzinfo=timezone.utc)
    return when.astimezone(_zone(tz)).date().isoformat()


class SqliteBackend:
    """A SQLite file in WAL mode; the schema version is ``PRAGMA user_version``."""

    integrity_errors = (sqlite3.IntegrityError,)
    operational_errors = (sqlite3.Error, OSError)
    epoch_now = "((julianday('now') - 2440587.5) * 86400.0)"

    def __init__(self, path: Path) -> None:
        self.path = Path(path).expanduser().resolve()
        self.location = str(self.path)

    def _connect(self, **kwargs: Any) -> Connection:
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in begin()).
        raw = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, **kwargs
        )
        raw.row_factory = sqlite3.Row
        raw.create_function("zv_hour_bin", 2, _sqlite_hour_bin, deterministic=True)
        raw.create_function("zv_local_day", 2, _sqlite_local_day, deterministic=True)
        return Connection(raw, postgres=False)

    def connect_writer(self) -> Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect(check_same_thread=False)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            # NORMAL is durable across application crashes in WAL mode and much faster.
            conn.execute("PRAGMA synchronous = NORMAL")
            mode = conn.one("PRAGMA journal_mode = WAL")[0]
            if mode.lower() != "wal":
                raise sqlite3.OperationalError(f"SQLite refused WAL mode ({mode})")
        except BaseException:
            conn.close()
            raise
        return conn

    def begin(self, conn: Connection, serial: bool = True) -> None:
        # IMMEDIATE takes the write lock now: other processes wait (BUSY_TIMEOUT_SECONDS).
        # Every SQLite write is serial: the file has one writer at a time.
        conn.execute("BEGIN IMMEDIATE")

    def broken(self, conn: Connection) -> bool:
        return False

    @contextmanager
    def reader(self) -> Iterator[Connection]:
        conn = self._connect()
        try:
            conn.execute("PRAGMA query_only = ON")
            yield conn
        finally:
            conn.close()

    def schema_version(self, conn: Connection) -> int:
        return int(conn.one("PRAGMA user_version")[0])

    def lock_schema(self, conn: Connection) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the write lock."""

    def set_schema_version(self, conn: Connection, version: int) -> None:
        # PRAGMA does not take parameters; the value is our own integer.
        conn.execute(f"PRAGMA user_version = {int(version):d}")

    def ddl(self, statement: str) -> str:
        return statement

    def hour_bin(self, column: str) -> str:
        return f"zv_hour_bin({column}, ?)"

    def local_day(self, column: str) -> str:
        return f"zv_local_day({column}, ?)"

    def close(self) -> None:
        """Nothing pooled: readers close themselves."""


# --------------------------------------------------------------------------- PostgreSQL
class _Row(tuple):
    """A row readable by index and by column name, like :class:`sqlite3.Row`."""

    _names: tuple[str, ...] = ()

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return super().__getitem__(self._names.index(key))
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> Any:
    names = tuple(column.name for column in cursor.description or ())
    row_type = type("Row", (_Row,), {"_names": names})
    return lambda values: row_type(values)


#: SQLite types -> PostgreSQL types, for the shipped migrations (written in SQLite's
#: dialect). SQLite's INTEGER and REAL are 8 bytes; PostgreSQL's are 4.
_PG_TYPES = (
    # A rowid alias (an INTEGER PRIMARY KEY that references nothing) numbers itself.
    (
        re.compile(r"\bINTEGER PRIMARY KEY\b(?! REFERENCES)"),
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    ),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
)
_TS = "CAST({column} AS timestamptz)"
#: Arbitrary constants naming zvpanel's advisory locks (migrations; serial writes).
_MIGRATION_LOCK = 0x7A7670616E656C
_WRITE_LOCK = 0x7A7670616E6557


class PostgresBackend:
    """A PostgreSQL database; the schema version is the one row of ``zvpanel_schema``."""

    # clock_timestamp(), not now(): now() is the start of the transaction.
    epoch_now = "CAST(extract(epoch FROM clock_timestamp()) AS DOUBLE PRECISION)"

    def __init__(self, url: str) -> None:
        import psycopg  # only needed (and imported) for PostgreSQL

        self._psycopg = psycopg
        self.url = url
        self.location = mask_source(url)
        self.integrity_errors = (psycopg.IntegrityError,)
        self.operational_errors = (psycopg.OperationalError,)
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue()
        self._closed = threading.Event()

    def _connect(self) -> Connection:
        raw = self._psycopg.connect(
            self.url,
            autocommit=True,
            row_factory=_row_factory,
            connect_timeout=POSTGRES_CONNECT_TIMEOUT_SECONDS,
        )
        return Connection(raw, postgres=True)

    def connect_writer(self) -> Connection:
        return self._connect()

    def begin(self, conn: Connection, serial: bool = True) -> None:
        conn.execute("BEGIN")
        if serial:
            # One serial writer at a time across processes, like SQLite's write lock:
            # checks such as "the last admin" read, then write, under it.
            conn.execute("SELECT pg_advisory_xact_lock(?)", (_WRITE_LOCK,))

    def broken(self, conn: Connection) -> bool:
        return bool(conn.raw.broken or conn.raw.closed)

    @contextmanager
    def reader(self) -> Iterator[Connection]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._connect()
            conn.execute("SET default_transaction_read_only = on")
        try:
            yield conn
        finally:
            if self.broken(conn):
                conn.close()
                self._drop_idle()  # a server restart cut them all
            elif self._closed.is_set():
                conn.close()
            elif self._idle.qsize() < POSTGRES_IDLE_READERS:
                self._idle.put(conn)
            else:
                conn.close()

    def schema_version(self, conn: Connection) -> int:
        conn.execute("CREATE TABLE IF NOT EXISTS zvpanel_schema (version INTEGER NOT NULL)")
        row = conn.one("SELECT version FROM zvpanel_schema")
        return 0 if row is None else int(row[0])

    def lock_schema(self, conn: Connection) -> None:
        """Serialise migrations between processes (held until the transaction ends)."""
        conn.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))

    def set_schema_version(self, conn: Connection, version: int) -> None:
        conn.execute("DELETE FROM zvpanel_schema")
        conn.execute("INSERT INTO zvpanel_schema (version) VALUES (?)", (int(version),))

    def ddl(self, statement: str) -> str:
        for pattern, replacement in _PG_TYPES:
            statement = pattern.sub(replacement, statement)
        return statement

    def hour_bin(self, column: str) -> str:
        # ts + (local hour start - local time): the UTC start of the local hour, which
        # keeps a repeated hour (clocks going back) as two bins.
        ts = _TS.format(column=column)
        local = f"timezone(?, {ts})"
        start = f"{ts} + (date_trunc('hour', {local}) - {local})"
        return f"to_char(timezone('UTC', {start}), 'YYYY-MM-DD\"T\"HH24:MI:SS')"

    def local_day(self, column: str) -> str:
        return f"to_char(timezone(?, {_TS.format(column=column)}), 'YYYY-MM-DD')"

    def close(self) -> None:
        self._closed.set()
        self._drop_idle()

    def _drop_idle(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
