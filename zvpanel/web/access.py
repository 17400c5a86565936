"""What a user may see: the one place that decides it.

Every page (live, calibration, analytics, admin tables), every WebSocket route and the
MJPEG stream ask here, so no view filters on its own. The rule:

- an admin sees every store;
- a viewer limited to some stores (``zvpanel user stores NAME --store ID``, or the admin
  page's Users tab) sees only those stores, their cameras and their events;
- a viewer with no stores assigned sees every store: that was every viewer's view before
  store limits existed, so upgrading changes nothing for existing accounts (and a store
  that is some viewer's only one cannot be deleted, so a limit never silently lifts);
- a user that no longer exists, or is disabled, sees nothing.

A camera outside a user's stores is answered exactly like a camera that does not exist,
so a viewer cannot even learn that it does.
"""

from __future__ import annotations

from typing import Any

from ..errors import NotFoundError

__all__ = ["visible_store_ids", "visible_stores", "visible_cameras", "visible_camera"]


def visible_store_ids(db: Any, username: str | None) -> frozenset[int] | None:
    """The ids of the stores ``username`` may see, or None for every store.

    ``username`` None is a caller without a session (a script or test building a view);
    requests always pass the user of their verified token.
    """
    if username is None:
        return None
    try:
        user = db.get_user(username)
    except NotFoundError:
        return frozenset()
    if user.disabled:
        return frozenset()
    if user.is_admin:
        return None
    return frozenset(db.user_store_ids(username)) or None


def visible_stores(db: Any, username: str | None) -> list[Any]:
    """The stores ``username`` may see, in :meth:`Database.list_stores` order."""
    allowed = visible_store_ids(db, username)
    return [s for s in db.list_stores() if allowed is None or s.id in allowed]


def visible_cameras(db: Any, username: str | None, include_deleted: bool = False) -> list[Any]:
    """The cameras of the stores ``username`` may see (deleted ones only if asked)."""
    allowed = visible_store_ids(db, username)
    cameras = db.list_cameras(include_deleted=include_deleted)
    return [c for c in cameras if allowed is None or c.store_id in allowed]


def visible_camera(db: Any, username: str | None, camera_id: int) -> Any | None:
    """The camera if it exists, is not deleted and ``username`` may see it; else None."""
    try:
        camera = db.get_camera(camera_id)
    except (NotFoundError, OverflowError):  # OverflowError: beyond SQLite's 64-bit ids
        return None
    if camera.archived:
        return None
    allowed = visible_store_ids(db, username)
    return camera if allowed is None or camera.store_id in allowed else None
