"""What a fresh database gets on start: the first admin and the demo store.

* ``ZVPANEL_ADMIN_USERNAME``/``ZVPANEL_ADMIN_PASSWORD`` set and that user missing: it is
  created as an admin (an existing user is left alone; its password is not reset).
* No user at all and ``ZVPANEL_DEV_MODE=1``: ``admin``/``admin`` is created, with a
  warning. Never outside development mode, where a database that still has it (made in
  development mode) is refused until that password is changed.
* ``ZVPANEL_DEMO`` on (the default), no store, and no demo created before in this
  database: "Demo store" (UTC) with "Demo camera" playing ``ZVPANEL_SAMPLE_VIDEO``,
  calibrated with :data:`DEMO_CALIBRATION`. Deleting the demo store later does not bring
  it back on the next start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..calibration import Calibration, parse_calibration
from ..config import ENV_PREFIX, Settings
from ..errors import ConfigError, NotFoundError
from .database import ConflictError, Database, InvalidValueError

__all__ = [
    "bootstrap",
    "BootstrapResult",
    "DEMO_CALIBRATION",
    "DEMO_STORE_NAME",
    "DEMO_CAMERA_NAME",
    "DEMO_TIMEZONE",
    "DEV_ADMIN_USERNAME",
]

log = logging.getLogger(__name__)

DEMO_STORE_NAME = "Demo store"
DEMO_CAMERA_NAME = "Demo camera"
DEMO_TIMEZONE = "UTC"
#: The demo camera's calibration for data/vtest.avi (768x576): a vertical line through
#: the crossroads, walking left to right counts as an entry.
DEMO_CALIBRATION: Calibration = parse_calibration(
    {
        "lines": [
            {
                "id": "door",
                "x1": 345.6,
                "y1": 0.0,
                "x2": 345.6,
                "y2": 576.0,
                "orientation": "leftToRight",
            }
        ],
        "detection_fps": 5.0,
    }
)
#: Development mode only; the password is the same word.
DEV_ADMIN_USERNAME = "admin"
_DEMO_DONE_KEY = "demo_created"


@dataclass(frozen=True)
class BootstrapResult:
    """What :func:`bootstrap` created (None: nothing of that kind)."""

    admin: str | None = None
    store_id: int | None = None
    camera_id: int | None = None


def bootstrap(db: Database, settings: Settings) -> BootstrapResult:
    """Create the first admin and the demo store if the settings ask for them."""
    _refuse_dev_password(db, settings)
    admin = _settings_admin(db, settings) or _dev_admin(db, settings)
    store_id, camera_id = _demo(db, settings) if settings.demo else (None, None)
    return BootstrapResult(admin, store_id, camera_id)


def _settings_admin(db: Database, settings: Settings) -> str | None:
    if settings.admin_username is None:  # the settings give both or neither
        return None
    username = settings.admin_username
    try:
        db.get_user(username)
        return None  # exists already: no Argon2 hash on every start
    except NotFoundError:
        pass
    try:
        db.create_user(username, settings.admin_password.get_secret_value(), is_admin=True)
    except InvalidValueError as error:
        raise ConfigError(
            f"{ENV_PREFIX}ADMIN_USERNAME/{ENV_PREFIX}ADMIN_PASSWORD: {error}"
        ) from None
    except ConflictError:
        return None  # another process created it a moment ago
    log.info("created admin user %r from the settings", username)
    return username


def _refuse_dev_password(db: Database, settings: Settings) -> None:
    """Outside development mode, the development admin's well-known password must be gone."""
    if settings.dev_mode or db.authenticate(DEV_ADMIN_USERNAME, DEV_ADMIN_USERNAME) is None:
        return
    raise ConfigError(
        f"user {DEV_ADMIN_USERNAME!r} still has the development password "
        f"{DEV_ADMIN_USERNAME!r} (this database was made with {ENV_PREFIX}DEV_MODE=1). "
        f"Set a real password with 'zvpanel user passwd {DEV_ADMIN_USERNAME}' (or disable "
        f"the user with 'zvpanel user disable {DEV_ADMIN_USERNAME}'), then start again."
    )


def _dev_admin(db: Database, settings: Settings) -> str | None:
    if not settings.dev_mode or db.count_users():
        return None
    try:
        # Bypasses the password length rule on purpose: development mode only.
        db._insert_user(DEV_ADMIN_USERNAME, DEV_ADMIN_USERNAME, is_admin=True)
    except ConflictError:
        return None
    log.warning(
        "development mode: created user %r with password %r; never use %sDEV_MODE in production",
        DEV_ADMIN_USERNAME,
        DEV_ADMIN_USERNAME,
        ENV_PREFIX,
    )
    return DEV_ADMIN_USERNAME


def _demo(db: Database, settings: Settings) -> tuple[int | None, int | None]:
    if db.list_stores() or db.get_meta(_DEMO_DONE_KEY):
        return None, None
    video = settings.sample_video_file
    if not video.is_file():
        log.warning(
            "demo camera: %s does not exist; set %sSAMPLE_VIDEO to a video file", video, ENV_PREFIX
        )
    try:
        store = db.create_store(DEMO_STORE_NAME, DEMO_TIMEZONE)
    except ConflictError:
        return None, None  # another process is creating it
    camera = db.create_camera(store.id, DEMO_CAMERA_NAME, str(video))
    db.set_calibration(camera.id, DEMO_CALIBRATION)
    db.set_meta(_DEMO_DONE_KEY, "1")
    log.info("created %r with %r on %s", DEMO_STORE_NAME, DEMO_CAMERA_NAME, video)
    return store.id, camera.id
