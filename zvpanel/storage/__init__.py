"""Storage on SQLite or PostgreSQL: schema and migrations, the database, the event writer,
chart queries, retention.

See :mod:`zvpanel.storage.database` for the one-writer rule,
:mod:`zvpanel.storage.configuration` for what deleting does (a deleted camera is
archived; its events stay and keep counting) and :mod:`zvpanel.storage.events` for
retention.
"""

from __future__ import annotations

from .bootstrap import DEMO_CALIBRATION, BootstrapResult, bootstrap
from .coverage import (
    COVERED_SHARE,
    StoreGaps,
    camera_coverage,
    coverage_share,
    heat_grid,
    store_gaps,
)
from .database import (
    BUSY_TIMEOUT_SECONDS,
    MIN_PASSWORD_LENGTH,
    Camera,
    Change,
    ConflictError,
    Database,
    Event,
    EventRow,
    InvalidValueError,
    Store,
    User,
    parse_utc,
    utc_text,
    validate_timezone,
)
from .events import MAX_RETENTION_DAYS, RollUp
from .queries import (
    EventFilter,
    binned_counts,
    events_frame,
    latest_event_id,
    occupancy,
    per_camera,
)
from .retention import RETENTION_INTERVAL_SECONDS, RetentionJob
from .review import Review, ReviewedEvent
from .review_counts import REVIEWED_COLUMNS, reviewed_counts
from .schema import SCHEMA_VERSION
from .values import EventCrop
from .writer import EVENT_QUEUE_SIZE, EventWriter, WriterStats

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
    "SCHEMA_VERSION",
    "EventWriter",
    "WriterStats",
    "EVENT_QUEUE_SIZE",
    "EventFilter",
    "events_frame",
    "latest_event_id",
    "RollUp",
    "RetentionJob",
    "RETENTION_INTERVAL_SECONDS",
    "MAX_RETENTION_DAYS",
    "binned_counts",
    "occupancy",
    "per_camera",
    "camera_coverage",
    "coverage_share",
    "store_gaps",
    "StoreGaps",
    "COVERED_SHARE",
    "heat_grid",
    "bootstrap",
    "BootstrapResult",
    "DEMO_CALIBRATION",
    "EventCrop",
    "Review",
    "ReviewedEvent",
    "reviewed_counts",
    "REVIEWED_COLUMNS",
]
