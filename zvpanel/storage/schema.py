"""The SQLite schema, as a list of migrations numbered by ``PRAGMA user_version``.

Migration ``n`` (1-based) brings a database from version ``n - 1`` to ``n``. To change
the schema, append a new tuple of statements to :data:`MIGRATIONS`; never edit one that
has shipped. All pending migrations run in one ``BEGIN IMMEDIATE`` transaction, so two
processes opening a fresh database at once cannot both migrate it, and a failed
migration leaves the database as it was.

Times are TEXT in one fixed-width ISO-8601 UTC form (``2026-01-31T09:05:00.000000Z``,
see :func:`zvpanel.storage.database.utc_text`), so comparing strings compares times.
"""

from __future__ import annotations

import sqlite3

from ..errors import ConfigError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate", "schema_version"]

_V1 = (
    """
    CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        is_admin      INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
        created_at    TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE stores (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        timezone   TEXT NOT NULL,
        created_at TEXT NOT NULL
    )
    """,
    # A deleted camera is archived (deleted_at set), never removed, because its events
    # reference it. Names are unique among a store's cameras that are not archived.
    """
    CREATE TABLE cameras (
        id         INTEGER PRIMARY KEY,
        store_id   INTEGER NOT NULL REFERENCES stores (id),
        name       TEXT NOT NULL,
        source     TEXT NOT NULL,
        enabled    INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
        created_at TEXT NOT NULL,
        deleted_at TEXT
    )
    """,
    """
    CREATE UNIQUE INDEX cameras_store_name ON cameras (store_id, name)
        WHERE deleted_at IS NULL
    """,
    """
    CREATE TABLE calibrations (
        camera_id     INTEGER PRIMARY KEY REFERENCES cameras (id) ON DELETE CASCADE,
        roi_x1        REAL,
        roi_y1        REAL,
        roi_x2        REAL,
        roi_y2        REAL,
        detection_fps REAL NOT NULL,
        anchor        TEXT NOT NULL,
        min_distance  REAL NOT NULL,
        min_frames    INTEGER NOT NULL,
        updated_at    TEXT NOT NULL,
        CHECK ((roi_x1 IS NULL) = (roi_y1 IS NULL)
           AND (roi_x1 IS NULL) = (roi_x2 IS NULL)
           AND (roi_x1 IS NULL) = (roi_y2 IS NULL))
    )
    """,
    """
    CREATE TABLE counting_lines (
        camera_id   INTEGER NOT NULL REFERENCES calibrations (camera_id) ON DELETE CASCADE,
        line_id     TEXT NOT NULL,
        x1          REAL NOT NULL,
        y1          REAL NOT NULL,
        x2          REAL NOT NULL,
        y2          REAL NOT NULL,
        orientation TEXT NOT NULL CHECK (orientation IN ('leftToRight', 'rightToLeft')),
        position    INTEGER NOT NULL,
        PRIMARY KEY (camera_id, line_id)
    )
    """,
    """
    CREATE TABLE events (
        id          INTEGER PRIMARY KEY,
        store_id    INTEGER NOT NULL REFERENCES stores (id),
        camera_id   INTEGER NOT NULL REFERENCES cameras (id),
        line_id     TEXT NOT NULL,
        track_id    INTEGER NOT NULL,
        direction   TEXT NOT NULL CHECK (direction IN ('entry', 'exit')),
        ts_utc      TEXT NOT NULL,
        frame_index INTEGER NOT NULL,
        confidence  REAL NOT NULL
    )
    """,
    "CREATE INDEX events_store_ts ON events (store_id, ts_utc)",
    "CREATE INDEX events_camera_ts ON events (camera_id, ts_utc)",
    # Small facts about the database itself (e.g. that the demo store was created once).
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )
    """,
)

# Logins that can end, and viewers limited to some stores.
# ``disabled``: the user can no longer log in and every token it holds is refused.
# ``token_version`` is written into each token; a password change, a disable or a logout
# raises it, which invalidates every token issued before.
# ``user_stores``: the stores a viewer may see; a viewer with no row sees every store.
_V2 = (
    "ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))",
    "ALTER TABLE users ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0",
    """
    CREATE TABLE user_stores (
        user_id  INTEGER NOT NULL REFERENCES users (id),
        store_id INTEGER NOT NULL REFERENCES stores (id) ON DELETE CASCADE,
        PRIMARY KEY (user_id, store_id)
    )
    """,
)

#: Migration n (1-based) takes the schema from version n-1 to n. Append only.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`; return the version it had before.

    ``conn`` must be in autocommit mode (``isolation_level=None``): the transaction is
    explicit here.
    """
    if schema_version(conn) == SCHEMA_VERSION:
        return SCHEMA_VERSION
    # IMMEDIATE takes the write lock first, then re-reads the version: another process
    # may have migrated while we waited.
    conn.execute("BEGIN IMMEDIATE")
    try:
        before = schema_version(conn)
        if before > SCHEMA_VERSION:
            raise ConfigError(
                f"the database has schema version {before}, newer than this zvpanel "
                f"understands ({SCHEMA_VERSION}); upgrade zvpanel or point ZVPANEL_DB_PATH "
                "at another file"
            )
        for version in range(before + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                conn.execute(statement)
        # PRAGMA does not take parameters; the value is our own integer.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return before
