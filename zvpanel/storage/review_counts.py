"""Raw and reviewed counts per line and day, for the review page and the reports.

See :mod:`.review` for what a review is. Reviewed precision of a line and day:
``1 - (wrong + double) / raw``; reviewed count: ``raw - wrong - double + missed``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .events import event_filter
from .queries import _QUARTER, EventFilter
from .values import validate_timezone

__all__ = ["reviewed_counts", "precision", "REVIEWED_COLUMNS"]

#: Columns of :func:`reviewed_counts`, in order.
REVIEWED_COLUMNS = [
    "date",
    "camera_id",
    "line_id",
    "direction",
    "raw",
    "wrong",
    "double",
    "missed",
    "reviewed",
    "precision",
]


def precision(raw: int | np.ndarray, wrong: int | np.ndarray, double: int | np.ndarray):
    """``1 - (wrong + double) / raw``: NaN where nothing was counted."""
    raw = np.asarray(raw, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(raw > 0, 1.0 - (np.asarray(wrong) + np.asarray(double)) / raw, np.nan)


def reviewed_counts(
    db, tz: str = "UTC", f: EventFilter | None = None, line_id: str | None = None
) -> pd.DataFrame:
    """Raw and reviewed counts per local day of ``tz``, camera, line and direction.

    Columns: :data:`REVIEWED_COLUMNS`. ``raw``: what the counter counted (hours rolled up
    by retention included); ``wrong``, ``double``, ``missed``: reviews; ``reviewed``:
    ``raw - wrong - double + missed``; ``precision``: ``1 - (wrong + double) / raw`` (NaN
    when ``raw`` is 0). ``date`` is a ``datetime.date``. Only combinations with a count
    or a review are present. Reports use this for raw next to reviewed counts.
    """
    validate_timezone(tz)
    f = f or EventFilter()
    raw = _raw_counts(db, tz, f, line_id)
    reviews = _review_counts(db, tz, f, line_id)
    keys = ["date", "camera_id", "line_id", "direction"]
    out = pd.merge(raw, reviews, on=keys, how="outer").fillna(0)
    for column in ("raw", "wrong", "double", "missed"):
        out[column] = out[column].astype(np.int64)
    out["reviewed"] = out["raw"] - out["wrong"] - out["double"] + out["missed"]
    out["precision"] = precision(out["raw"], out["wrong"], out["double"])
    out["camera_id"] = out["camera_id"].astype(np.int64)
    return out.sort_values(keys, ignore_index=True)[REVIEWED_COLUMNS]


def _line_clause(where: str, params: list, line_id: str | None) -> tuple[str, list]:
    if line_id is None:
        return where, params
    return where + " AND line_id = ?", [*params, line_id]


def _raw_counts(db, tz: str, f: EventFilter, line_id: str | None) -> pd.DataFrame:
    raw, params = _line_clause(*event_filter(f.store_id, f.camera_id, f.start, f.end), line_id)
    rolled, rolled_params = _line_clause(
        *event_filter(f.store_id, f.camera_id, f.start, f.end, ts="hour_utc"), line_id
    )
    counted = (
        f"SELECT ts_utc AS ts, camera_id, line_id, direction, 1 AS n FROM events{raw} "
        f"UNION ALL SELECT hour_utc, camera_id, line_id, 'entry', entries "
        f"FROM hourly_line_totals{rolled} "
        f"UNION ALL SELECT hour_utc, camera_id, line_id, 'exit', exits "
        f"FROM hourly_line_totals{rolled}"
    )
    day = db.local_day_sql("ts")
    # Counted per quarter hour first: the time zone is worked out once per quarter.
    sql = (
        f"SELECT {day} AS day, camera_id, line_id, direction, sum(n) AS n FROM "
        f"(SELECT {_QUARTER} AS ts, camera_id, line_id, direction, sum(n) AS n "
        f"FROM ({counted}) AS counted GROUP BY {_QUARTER}, camera_id, line_id, direction) "
        # A rolled-up hour gives a row per direction, even with no exits: leave those out.
        "AS quarters GROUP BY day, camera_id, line_id, direction HAVING sum(n) > 0"
    )
    all_params = [tz, *params, *rolled_params, *rolled_params]
    with db.reader() as conn:
        rows = conn.all(sql, all_params)
    return _frame(rows, {"raw": lambda r: int(r["n"])})


def _review_counts(db, tz: str, f: EventFilter, line_id: str | None) -> pd.DataFrame:
    where, params = _line_clause(*event_filter(f.store_id, f.camera_id, f.start, f.end), line_id)
    day = db.local_day_sql("ts_utc")
    sql = (
        f"SELECT {day} AS day, camera_id, line_id, direction, "
        "sum(CASE WHEN verdict = 'wrong' THEN 1 ELSE 0 END) AS wrong, "
        "sum(CASE WHEN verdict = 'double' THEN 1 ELSE 0 END) AS double_, "
        "sum(CASE WHEN verdict = 'missed' THEN 1 ELSE 0 END) AS missed "
        f"FROM event_reviews{where} GROUP BY day, camera_id, line_id, direction"
    )
    with db.reader() as conn:
        rows = conn.all(sql, [tz, *params])
    return _frame(
        rows,
        {
            "wrong": lambda r: int(r["wrong"]),
            "double": lambda r: int(r["double_"]),
            "missed": lambda r: int(r["missed"]),
        },
    )


def _frame(rows: list, values: dict) -> pd.DataFrame:
    keys = ["date", "camera_id", "line_id", "direction"]
    records = [
        (
            pd.Timestamp(str(r["day"])).date(),
            int(r["camera_id"]),
            r["line_id"],
            r["direction"],
            *(get(r) for get in values.values()),
        )
        for r in rows
    ]
    return pd.DataFrame(records, columns=[*keys, *values])
