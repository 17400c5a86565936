"""The schema, as one list of migrations for SQLite and PostgreSQL.

Migration ``n`` (1-based) brings a database from version ``n - 1`` to ``n``. To change
the schema, append a new tuple of statements to :data:`MIGRATIONS`; never edit one that
has shipped. Statements are written in SQLite's dialect; the PostgreSQL backend maps
the column types (:meth:`~zvpanel.storage.backend.PostgresBackend.ddl`). The version is
``PRAGMA user_version`` in SQLite and the table ``zvpanel_schema`` in PostgreSQL.
All pending migrations run in one write transaction (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: an advisory lock), so two processes opening a fresh database at once cannot
both migrate it, and a failed migration leaves the database as it was.

Times are TEXT in one fixed-width ISO-8601 UTC form (``2026-01-31T09:05:00.000000Z``,
see :func:`zvpanel.storage.database.utc_text`), so comparing strings compares times.
"""

from __future__ import annotations

from ..errors import ConfigError
from .backend import Backend, Connection

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate"]

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

# Event retention: raw events older than the retention period are rolled up into these
# hourly totals per line (``hour_utc`` is the UTC hour start, in the stored time form)
# and deleted; charts and CSV add the totals to the raw events that remain.
_V3 = (
    """
    CREATE TABLE hourly_line_totals (
        store_id  INTEGER NOT NULL REFERENCES stores (id),
        camera_id INTEGER NOT NULL REFERENCES cameras (id),
        line_id   TEXT NOT NULL,
        hour_utc  TEXT NOT NULL,
        entries   INTEGER NOT NULL CHECK (entries >= 0),
        exits     INTEGER NOT NULL CHECK (exits >= 0),
        PRIMARY KEY (camera_id, line_id, hour_utc)
    )
    """,
    "CREATE INDEX hourly_line_totals_store_hour ON hourly_line_totals (store_id, hour_utc)",
)

# Fleet mode (zvpanel.node). ``events.uid``: a UUIDv7 given when the event is counted,
# so a node can forward a batch again after a crash and ``ON CONFLICT (uid) DO NOTHING``
# keeps it once (NULL for events older than v4); ``events.node``: the node that counted
# it (NULL for the dashboard process's own engine). A camera assigned to a node or a pool
# is run there, not by the dashboards' engine. ``camera_leases``: which node of its pool
# runs a pool camera, until ``expires_at`` (seconds since the epoch, in the database's
# clock). ``nodes``: each node's heartbeat.
_V4 = (
    "ALTER TABLE events ADD COLUMN uid TEXT",
    "ALTER TABLE events ADD COLUMN node TEXT",
    "CREATE UNIQUE INDEX events_uid ON events (uid)",
    """
    CREATE TABLE camera_assignments (
        camera_id INTEGER PRIMARY KEY REFERENCES cameras (id) ON DELETE CASCADE,
        node      TEXT,
        pool      TEXT,
        CHECK ((node IS NULL) <> (pool IS NULL))
    )
    """,
    """
    CREATE TABLE camera_leases (
        camera_id  INTEGER PRIMARY KEY REFERENCES cameras (id) ON DELETE CASCADE,
        node       TEXT NOT NULL,
        expires_at REAL NOT NULL
    )
    """,
    """
    CREATE TABLE nodes (
        name             TEXT PRIMARY KEY,
        pool             TEXT,
        started_at       TEXT NOT NULL,
        heartbeat_at     TEXT NOT NULL,
        cameras          TEXT NOT NULL,
        rates            TEXT NOT NULL,
        hardware_limited INTEGER NOT NULL CHECK (hardware_limited IN (0, 1)),
        backlog          INTEGER NOT NULL
    )
    """,
)

# Zones (issue 13): polygon zones of a camera's calibration (``points``: JSON list of
# [x, y] pixel vertices; ``queue``: the zone is a queue) and the enter/leave events of
# tracks in them, stored like crossings (``uid``/``node`` as for ``events``, so nodes
# forward them through the same outbox). ``dwell_s``: seconds the track was inside, on
# ``leave`` only.
_V5 = (
    """
    CREATE TABLE calibration_zones (
        camera_id INTEGER NOT NULL REFERENCES calibrations (camera_id) ON DELETE CASCADE,
        zone_id   TEXT NOT NULL,
        points    TEXT NOT NULL,
        queue     INTEGER NOT NULL DEFAULT 0 CHECK (queue IN (0, 1)),
        position  INTEGER NOT NULL,
        PRIMARY KEY (camera_id, zone_id)
    )
    """,
    """
    CREATE TABLE zone_events (
        id          INTEGER PRIMARY KEY,
        store_id    INTEGER NOT NULL REFERENCES stores (id),
        camera_id   INTEGER NOT NULL REFERENCES cameras (id),
        zone_id     TEXT NOT NULL,
        track_id    INTEGER NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('enter', 'leave')),
        ts_utc      TEXT NOT NULL,
        frame_index INTEGER NOT NULL,
        dwell_s     REAL CHECK ((kind = 'leave') = (dwell_s IS NOT NULL)),
        uid         TEXT,
        node        TEXT
    )
    """,
    "CREATE UNIQUE INDEX zone_events_uid ON zone_events (uid)",
    "CREATE INDEX zone_events_camera_ts ON zone_events (camera_id, ts_utc)",
    "CREATE INDEX zone_events_store_ts ON zone_events (store_id, ts_utc)",
    # Retention pairs each enter with its track's leave (zvpanel.storage.zones).
    "CREATE INDEX zone_events_track ON zone_events (camera_id, zone_id, track_id, ts_utc)",
)

# Occupancy alerts and scheduled reports (issue 13 items 6 and 7).
# ``occupancy_limits``: a limit per store (camera_id 0, zone_id '') or per zone of a
# camera. The alert is raised when occupancy goes above ``max_people`` and cleared when
# it falls to ``max_people - hysteresis`` or below; ``exceeded`` is its state. The process
# whose ``UPDATE ... WHERE exceeded = <old>`` changes the state records the transition
# and sends the webhook, so several dashboard processes fire each crossing once.
# ``alert_transitions``: each raise and clear, with what became of its webhook.
# ``report_runs``: each scheduled report period, claimed by the one process that writes it.
_V6 = (
    """
    CREATE TABLE occupancy_limits (
        store_id    INTEGER NOT NULL REFERENCES stores (id) ON DELETE CASCADE,
        camera_id   INTEGER NOT NULL DEFAULT 0,
        zone_id     TEXT NOT NULL DEFAULT '',
        max_people  INTEGER NOT NULL CHECK (max_people > 0),
        hysteresis  INTEGER NOT NULL CHECK (hysteresis >= 0),
        webhook_url TEXT,
        exceeded    INTEGER NOT NULL DEFAULT 0 CHECK (exceeded IN (0, 1)),
        changed_at  TEXT,
        PRIMARY KEY (store_id, camera_id, zone_id)
    )
    """,
    """
    CREATE TABLE alert_transitions (
        id         INTEGER PRIMARY KEY,
        store_id   INTEGER NOT NULL REFERENCES stores (id) ON DELETE CASCADE,
        camera_id  INTEGER NOT NULL,
        zone_id    TEXT NOT NULL,
        kind       TEXT NOT NULL CHECK (kind IN ('exceeded', 'cleared')),
        occupancy  INTEGER NOT NULL,
        max_people INTEGER NOT NULL,
        at         TEXT NOT NULL,
        webhook    TEXT NOT NULL CHECK (webhook IN ('none', 'pending', 'sent', 'failed')),
        attempts   INTEGER NOT NULL DEFAULT 0
    )
    """,
    "CREATE INDEX alert_transitions_store_at ON alert_transitions (store_id, at)",
    """
    CREATE TABLE report_runs (
        store_id   INTEGER NOT NULL REFERENCES stores (id) ON DELETE CASCADE,
        period     TEXT NOT NULL CHECK (period IN ('day', 'week')),
        first_day  TEXT NOT NULL,
        claimed_at TEXT NOT NULL,
        PRIMARY KEY (store_id, period, first_day)
    )
    """,
)

# Review of counts (issue 13 item 5). ``event_crops``: a small JPEG around the person at
# each crossing, keyed by the event's uid; it goes when its event goes (retention rolls
# events up) or earlier, after ``ZVPANEL_CROPS_RETENTION_DAYS``. ``event_reviews``: a
# reviewer's verdict on an event (``wrong``, ``double``; one per event, a new verdict
# replaces it) or a crossing the counter missed (``missed``: no event). Reviews never
# change ``events``; each keeps the event's camera, line, direction and time, so the
# reviewed counts of a day survive the roll-up of its raw events.
_V7 = (
    """
    CREATE TABLE event_crops (
        uid       TEXT PRIMARY KEY REFERENCES events (uid) ON DELETE CASCADE,
        camera_id INTEGER NOT NULL REFERENCES cameras (id),
        ts_utc    TEXT NOT NULL,
        jpeg      BLOB NOT NULL
    )
    """,
    "CREATE INDEX event_crops_ts ON event_crops (ts_utc)",
    """
    CREATE TABLE event_reviews (
        id         INTEGER PRIMARY KEY,
        event_uid  TEXT,
        store_id   INTEGER NOT NULL REFERENCES stores (id),
        camera_id  INTEGER NOT NULL REFERENCES cameras (id),
        line_id    TEXT NOT NULL,
        direction  TEXT NOT NULL CHECK (direction IN ('entry', 'exit')),
        ts_utc     TEXT NOT NULL,
        verdict    TEXT NOT NULL CHECK (verdict IN ('wrong', 'double', 'missed')),
        reviewer   TEXT NOT NULL,
        created_at TEXT NOT NULL,
        CHECK ((verdict = 'missed') = (event_uid IS NULL))
    )
    """,
    "CREATE UNIQUE INDEX event_reviews_event ON event_reviews (event_uid)",
    "CREATE INDEX event_reviews_camera_ts ON event_reviews (camera_id, ts_utc)",
)

# Downtime-aware charts and heat maps (issue 13 items 4 and 3).
# ``camera_status_changes``: each change of a camera's state or reason, as the engine
# running it saw it (``uid`` given when recorded, so a node's forwarder may send it twice).
# ``camera_coverage``: seconds a camera was online in each UTC quarter hour, per ``run``
# (a random id per engine process): a run writes its running total (not an increment),
# so writing it again is harmless and two processes never overwrite each other. A camera
# is covered only for time credited here; a process that dies stops being credited.
# A store deleted (it has no events) takes its cameras' records with it.
# ``heat_grids``: per camera, UTC hour and run, how often tracked people's anchor points
# entered each cell of a ``grid_w`` x ``grid_h`` grid over the frame: one row an hour,
# ``cells`` the counts packed (zvpanel.storage.activity.encode_grid), ``visits`` their sum.
_V8 = (
    """
    CREATE TABLE camera_status_changes (
        id        INTEGER PRIMARY KEY,
        uid       TEXT NOT NULL UNIQUE,
        store_id  INTEGER NOT NULL REFERENCES stores (id) ON DELETE CASCADE,
        camera_id INTEGER NOT NULL REFERENCES cameras (id) ON DELETE CASCADE,
        ts_utc    TEXT NOT NULL,
        state     TEXT NOT NULL,
        reason    TEXT,
        node      TEXT
    )
    """,
    "CREATE INDEX camera_status_changes_camera_ts ON camera_status_changes (camera_id, ts_utc)",
    """
    CREATE TABLE camera_coverage (
        store_id    INTEGER NOT NULL REFERENCES stores (id) ON DELETE CASCADE,
        camera_id   INTEGER NOT NULL REFERENCES cameras (id) ON DELETE CASCADE,
        quarter_utc TEXT NOT NULL,
        run         TEXT NOT NULL,
        online_s    REAL NOT NULL CHECK (online_s >= 0 AND online_s <= 900),
        PRIMARY KEY (camera_id, quarter_utc, run)
    )
    """,
    "CREATE INDEX camera_coverage_store_quarter ON camera_coverage (store_id, quarter_utc)",
    """
    CREATE TABLE heat_grids (
        camera_id INTEGER NOT NULL REFERENCES cameras (id) ON DELETE CASCADE,
        hour_utc  TEXT NOT NULL,
        run       TEXT NOT NULL,
        grid_w    INTEGER NOT NULL CHECK (grid_w > 0),
        grid_h    INTEGER NOT NULL CHECK (grid_h > 0),
        visits    INTEGER NOT NULL CHECK (visits >= 0),
        cells     TEXT NOT NULL,
        PRIMARY KEY (camera_id, hour_utc, run)
    )
    """,
)

# Store overview (issue 13 item 1): entries of a store in a time window, counted from
# the index alone (no table reads), for the windows of every store in one query.
_V9 = ("CREATE INDEX events_store_direction_ts ON events (store_id, direction, ts_utc)",)

# Pool cameras through outages (issue 12 items 3 and 5): a node that held a camera's
# lease keeps counting while it cannot reach the database. ``lease_terms``: who held each
# pool camera's lease when (``started_at`` .. ``ended_at``, seconds since the epoch in the
# database's clock; ``ended_at`` follows the renewals); a forwarded event that lies in
# another node's term is not stored in ``events`` but in ``superseded_events`` (that
# other node counted the camera then), so no crossing is counted twice.
_V10 = (
    """
    CREATE TABLE lease_terms (
        id         INTEGER PRIMARY KEY,
        camera_id  INTEGER NOT NULL REFERENCES cameras (id) ON DELETE CASCADE,
        holder     TEXT NOT NULL,
        node       TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at   REAL NOT NULL,
        CHECK (ended_at >= started_at)
    )
    """,
    "CREATE INDEX lease_terms_camera_end ON lease_terms (camera_id, ended_at)",
    """
    CREATE TABLE superseded_events (
        uid       TEXT PRIMARY KEY,
        camera_id INTEGER NOT NULL REFERENCES cameras (id) ON DELETE CASCADE,
        node      TEXT NOT NULL,
        ts_utc    TEXT NOT NULL,
        held_by   TEXT NOT NULL
    )
    """,
)

#: Migration n (1-based) takes the schema from version n-1 to n. Append only.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: Connection, backend: Backend) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`; return the version it had before.

    ``conn`` must be in autocommit mode: the transaction is explicit here.
    """
    if backend.schema_version(conn) == SCHEMA_VERSION:
        return SCHEMA_VERSION
    # Take the write lock first, then re-read the version: another process may have
    # migrated while we waited.
    backend.begin(conn, serial=True)
    try:
        backend.lock_schema(conn)
        before = backend.schema_version(conn)
        if before > SCHEMA_VERSION:
            raise ConfigError(
                f"the database has schema version {before}, newer than this zvpanel "
                f"understands ({SCHEMA_VERSION}); upgrade zvpanel or point "
                "ZVPANEL_DATABASE_URL (or ZVPANEL_DB_PATH) at another database"
            )
        for version in range(before + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                conn.execute(backend.ddl(statement))
        backend.set_schema_version(conn, SCHEMA_VERSION)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return before
