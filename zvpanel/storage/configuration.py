"""Configuration: stores, cameras, calibrations, and the stores each viewer may see.

Every change here bumps :meth:`~zvpanel.storage.database.Database.config_revision` in its
transaction (user_stores changes end the user's tokens instead).

Deleting never loses what was recorded
    * Deleting a camera *archives* it: ``deleted_at`` is set and it is disabled, so it
      disappears from :meth:`list_cameras` (unless ``include_deleted``) and from the
      engine; its calibration and all its events stay. The events keep counting in their
      store's totals and charts, and :meth:`get_camera` still returns the archived camera
      (for its name). A new camera may reuse the name of an archived one.
    * A store with an active camera cannot be deleted (archive its cameras first), nor
      can a store with recorded events (raw or rolled up). A store whose cameras are all
      archived and have no events is deleted together with those cameras.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from ..calibration import Calibration, parse_calibration
from ..errors import ConflictError, InvalidValueError, NotFoundError
from .values import (
    Camera,
    Store,
    camera_from_row,
    check_name,
    now_text,
    parse_utc,
    store_from_row,
    validate_timezone,
)

__all__ = ["ConfigurationMethods"]


class ConfigurationMethods:
    """The store, camera, calibration and user-store methods of
    :class:`~zvpanel.storage.database.Database`."""

    # ------------------------------------------------------------------ stores
    def create_store(self, name: str, timezone: str = "UTC") -> Store:
        check_name(name, "store name")
        validate_timezone(timezone)
        try:
            with self._write(config=True) as conn:
                store_id = conn.one(
                    "INSERT INTO stores (name, timezone, created_at) VALUES (?, ?, ?) RETURNING id",
                    (name, timezone, now_text()),
                )[0]
        except self._integrity:
            raise ConflictError(f"a store named {name!r} already exists") from None
        self._notify("store", store_id)
        return self.get_store(store_id)

    def get_store(self, store_id: int) -> Store:
        row = self._one("SELECT * FROM stores WHERE id = ?", (store_id,))
        if row is None:
            raise NotFoundError(f"no store with id {store_id}")
        return store_from_row(row)

    def list_stores(self) -> list[Store]:
        return [store_from_row(r) for r in self._all("SELECT * FROM stores ORDER BY name, id")]

    def update_store(
        self, store_id: int, *, name: str | None = None, timezone: str | None = None
    ) -> Store:
        store = self.get_store(store_id)
        name = store.name if name is None else check_name(name, "store name")
        timezone = store.timezone if timezone is None else validate_timezone(timezone)
        try:
            with self._write(config=True) as conn:
                conn.execute(
                    "UPDATE stores SET name = ?, timezone = ? WHERE id = ?",
                    (name, timezone, store_id),
                )
        except self._integrity:
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
            # Rolled-up hours are recorded events too (see retention).
            events = conn.one(
                "SELECT (SELECT count(*) FROM events WHERE store_id = ?) + (SELECT "
                "count(*) FROM hourly_line_totals WHERE store_id = ?)",
                (store_id, store_id),
            )[0]
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
        check_name(name, "camera name")
        source = self._source(source)
        self.get_store(store_id)
        try:
            with self._write(config=True) as conn:
                camera_id = conn.one(
                    "INSERT INTO cameras (store_id, name, source, enabled, created_at) "
                    "VALUES (?, ?, ?, ?, ?) RETURNING id",
                    (store_id, name, source, int(enabled), now_text()),
                )[0]
        except self._integrity:
            raise ConflictError(f"store {store_id} already has a camera named {name!r}") from None
        self._notify("camera", camera_id)
        return self.get_camera(camera_id)

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
        return camera_from_row(row)

    def list_cameras(
        self, store_id: int | None = None, include_deleted: bool = False
    ) -> list[Camera]:
        sql, params = "SELECT * FROM cameras WHERE TRUE", []
        if store_id is not None:
            sql += " AND store_id = ?"
            params.append(store_id)
        if not include_deleted:
            sql += " AND deleted_at IS NULL"
        return [
            camera_from_row(r)
            for r in self._all(sql + " ORDER BY store_id, name, id", tuple(params))
        ]

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
        name = camera.name if name is None else check_name(name, "camera name")
        source = camera.source if source is None else self._source(source)
        enabled = camera.enabled if enabled is None else bool(enabled)
        try:
            with self._write(config=True) as conn:
                conn.execute(
                    "UPDATE cameras SET name = ?, source = ?, enabled = ? "
                    "WHERE id = ? AND deleted_at IS NULL",
                    (name, source, int(enabled), camera_id),
                )
        except self._integrity:
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
                (now_text(), camera_id),
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
            zones = conn.execute(
                "SELECT zone_id, points, queue FROM calibration_zones "
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
                "zones": [
                    {
                        "id": z["zone_id"],
                        "points": json.loads(z["points"]),
                        "queue": bool(z["queue"]),
                    }
                    for z in zones
                ],
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
                    now_text(),
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
            conn.execute("DELETE FROM calibration_zones WHERE camera_id = ?", (camera_id,))
            conn.executemany(
                "INSERT INTO calibration_zones (camera_id, zone_id, points, queue, position) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (camera_id, zone.id, json.dumps(zone.points), int(zone.queue), i)
                    for i, zone in enumerate(calibration.zones)
                ],
            )
        self._notify("calibration", camera_id)

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
                if (
                    conn.execute("SELECT 1 FROM stores WHERE id = ?", (store_id,)).fetchone()
                    is None
                ):
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
