"""Admin commands: ``init``, ``user``, ``store``, ``camera``, ``calibrate`` and
``retention``.

Each opens the database named by the settings (``ZVPANEL_DATABASE_URL``, else
``ZVPANEL_DB_PATH``), which creates and migrates it if needed. They are safe to run while a server uses the same database.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..calibration import Calibration, parse_calibration
from ..config import load_settings
from ..errors import CalibrationError, SourceError, ZvpanelError
from ..storage import Database, InvalidValueError, bootstrap
from ..storage.schema import SCHEMA_VERSION
from .lines import (
    ANCHORS,
    add_line_arguments,
    add_zone_arguments,
    lines_from_args,
    number,
    zones_from_args,
)

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the admin commands to the ``zvpanel`` parser's sub-commands."""
    _init_command(sub)
    _user_commands(sub)
    _store_commands(sub)
    _camera_commands(sub)
    _calibrate_command(sub)
    _retention_commands(sub)


def _open_db() -> Database:
    return Database(load_settings().database)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


# --------------------------------------------------------------------------- init
def _init_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init",
        help="create or migrate the database, then add the first admin / demo store",
        description="Create or migrate the database (ZVPANEL_DATABASE_URL or ZVPANEL_DB_PATH) "
        "and run the start-up "
        "bootstrap: the admin from ZVPANEL_ADMIN_USERNAME/PASSWORD, admin/admin in dev mode, "
        "the demo store and camera when ZVPANEL_DEMO is on.",
    )
    p.set_defaults(func=_init)


def _init(args: argparse.Namespace) -> int:
    settings = load_settings()
    with Database(settings.database) as db:
        result = bootstrap(db, settings)
        print(f"database {db.location} (schema version {SCHEMA_VERSION})")
        if result.admin:
            print(f"created admin user {result.admin!r}")
        if result.store_id is not None:
            print(f"created demo store {result.store_id} with demo camera {result.camera_id}")
        if not db.count_users():
            print("no user yet: add one with 'zvpanel user add NAME --admin'")
    return 0


# --------------------------------------------------------------------------- users
def _user_commands(sub: argparse._SubParsersAction) -> None:
    user = sub.add_parser(
        "user", help="add users, list them, make admins, reset passwords, disable them"
    )
    cmds = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")

    p = cmds.add_parser("add", help="add a user (asks for the password)")
    p.add_argument("name")
    p.add_argument("--admin", action="store_true", help="may change stores, cameras and users")
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    p.set_defaults(func=_user_add)

    p = cmds.add_parser("list", help="list users")
    p.set_defaults(func=_user_list)

    p = cmds.add_parser("set-admin", help="make a user an admin (or not, with --off)")
    p.add_argument("name")
    p.add_argument("--off", action="store_true", help="remove the admin flag")
    p.set_defaults(func=_user_set_admin)

    p = cmds.add_parser(
        "passwd", help="set a user's password (asks for it); the user's old tokens stop working"
    )
    p.add_argument("name")
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    p.set_defaults(func=_user_passwd)

    p = cmds.add_parser(
        "disable", help="stop a user logging in and end its sessions (users are never deleted)"
    )
    p.add_argument("name")
    p.set_defaults(func=_user_disable, disabled=True)

    p = cmds.add_parser("enable", help="let a disabled user log in again")
    p.add_argument("name")
    p.set_defaults(func=_user_disable, disabled=False)

    p = cmds.add_parser(
        "stores",
        help="limit a viewer to some stores (or show its stores)",
        description="A viewer limited to stores sees only their cameras and events, on every "
        "page, feed and stream; a viewer with no stores sees every store; admins see all. "
        "Without --store or --all, show the user's stores.",
    )
    p.add_argument("name")
    choice = p.add_mutually_exclusive_group()
    choice.add_argument(
        "--store", type=int, action="append", metavar="STORE_ID", help="a store (repeatable)"
    )
    choice.add_argument("--all", action="store_true", help="lift the limit: every store")
    p.set_defaults(func=_user_stores)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise InvalidValueError("no password on standard input")
        return password
    password = getpass.getpass(f"Password for {args.name}: ")
    if getpass.getpass("Repeat it: ") != password:
        raise InvalidValueError("the two passwords differ; nothing changed")
    return password


def _user_add(args: argparse.Namespace) -> int:
    password = _read_password(args)
    with _open_db() as db:
        user = db.create_user(args.name, password, is_admin=args.admin)
    print(f"created {'admin' if user.is_admin else 'user'} {user.username!r}")
    return 0


def _user_list(args: argparse.Namespace) -> int:
    with _open_db() as db:
        users = db.list_users()
    _table(
        ("ID", "USERNAME", "ADMIN", "DISABLED", "CREATED (UTC)"),
        [
            (
                u.id,
                u.username,
                "yes" if u.is_admin else "no",
                "yes" if u.disabled else "no",
                f"{u.created_at:%Y-%m-%d %H:%M}",
            )
            for u in users
        ],
    )
    return 0


def _user_set_admin(args: argparse.Namespace) -> int:
    with _open_db() as db:
        user = db.set_admin(args.name, not args.off)
    print(f"{user.username!r} is {'now an admin' if user.is_admin else 'no longer an admin'}")
    return 0


def _user_passwd(args: argparse.Namespace) -> int:
    with _open_db() as db:
        db.get_user(args.name)  # say "no such user" before asking for a password
        db.reset_password(args.name, _read_password(args))
    print(f"password of {args.name!r} changed; its old sessions and tokens no longer work")
    return 0


def _user_disable(args: argparse.Namespace) -> int:
    with _open_db() as db:
        user = db.set_disabled(args.name, args.disabled)
    if user.disabled:
        print(f"{user.username!r} is disabled: it cannot log in and its sessions have ended")
    else:
        print(f"{user.username!r} is enabled: it can log in again")
    return 0


def _user_stores(args: argparse.Namespace) -> int:
    with _open_db() as db:
        if args.store or args.all:
            db.set_user_stores(args.name, args.store or [])
        ids = db.user_store_ids(args.name)
        names = {s.id: s.name for s in db.list_stores()}
        admin = db.get_user(args.name).is_admin
    if not ids:
        print(f"{args.name!r} may see every store")
    else:
        shown = ", ".join(f"{i} {names[i]!r}" for i in ids)
        print(f"{args.name!r} may see only store(s) {shown}")
    if admin:
        print("note: an admin sees every store whatever this list says")
    if args.store or args.all:
        print(f"{args.name!r} was logged out everywhere: the next login sees these stores")
    return 0


# --------------------------------------------------------------------------- stores
def _store_commands(sub: argparse._SubParsersAction) -> None:
    store = sub.add_parser("store", help="add and list stores")
    cmds = store.add_subparsers(dest="store_command", required=True, metavar="ACTION")

    p = cmds.add_parser("add", help="add a store")
    p.add_argument("name")
    p.add_argument(
        "--timezone", default="UTC", help="IANA time zone, e.g. Europe/Paris (default UTC)"
    )
    p.set_defaults(func=_store_add)

    p = cmds.add_parser("list", help="list stores")
    p.set_defaults(func=_store_list)


def _store_add(args: argparse.Namespace) -> int:
    with _open_db() as db:
        store = db.create_store(args.name, args.timezone)
    print(f"created store {store.id} {store.name!r} ({store.timezone})")
    return 0


def _store_list(args: argparse.Namespace) -> int:
    with _open_db() as db:
        stores = db.list_stores()
        rows = [(s.id, s.name, s.timezone, len(db.list_cameras(s.id))) for s in stores]
    _table(("ID", "NAME", "TIMEZONE", "CAMERAS"), rows)
    return 0


# --------------------------------------------------------------------------- cameras
def _camera_commands(sub: argparse._SubParsersAction) -> None:
    camera = sub.add_parser("camera", help="add, list, enable, disable and delete cameras")
    cmds = camera.add_subparsers(dest="camera_command", required=True, metavar="ACTION")

    p = cmds.add_parser(
        "add",
        help="add a camera (opens the source once to check it)",
        description="SOURCE is a video file, an rtsp/http(s) URL or a webcam index.",
    )
    p.add_argument("store_id", type=int, metavar="STORE_ID")
    p.add_argument("name")
    p.add_argument("source")
    p.add_argument("--no-probe", action="store_true", help="do not open the source first")
    p.add_argument("--disabled", action="store_true", help="add it switched off")
    p.set_defaults(func=_camera_add)

    p = cmds.add_parser("list", help="list cameras")
    p.add_argument("--store", type=int, metavar="STORE_ID", help="only this store's cameras")
    p.add_argument("--all", action="store_true", help="include deleted (archived) cameras")
    p.set_defaults(func=_camera_list)

    for action, func, text in (
        ("enable", _camera_enable, "switch a camera on"),
        ("disable", _camera_disable, "switch a camera off"),
        ("delete", _camera_delete, "delete (archive) a camera; its events are kept"),
    ):
        p = cmds.add_parser(action, help=text)
        p.add_argument("camera_id", type=int, metavar="ID")
        p.set_defaults(func=func)

    p = cmds.add_parser(
        "assign",
        help="run a camera on an engine node, on a pool of nodes, or (--none) in the dashboards",
    )
    p.add_argument("camera_id", type=int, metavar="ID")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--node", metavar="NAME", help="the node (zvpanel node --name NAME)")
    where.add_argument("--pool", metavar="POOL", help="any one live node of this pool")
    where.add_argument("--none", action="store_true", help="the dashboard process's engine")
    p.set_defaults(func=_camera_assign)


def _normalise_source(source: str) -> str:
    """A file path is stored absolute, so the server finds it whatever its directory."""
    from ..sources import source_kind

    if source_kind(source) == "file":
        return str(Path(source).expanduser().resolve())
    return source.strip()


def _camera_add(args: argparse.Namespace) -> int:
    source = _normalise_source(args.source)
    if not args.no_probe:
        from ..sources import probe_source

        try:
            info = probe_source(source)
        except SourceError as error:
            raise SourceError(f"{error}; camera not added (--no-probe adds it anyway)") from None
        print(f"source opened: {info.width}x{info.height}, {info.fps:g} fps ({info.kind})")
    with _open_db() as db:
        camera = db.create_camera(args.store_id, args.name, source, enabled=not args.disabled)
    state = "enabled" if camera.enabled else "disabled"
    print(f"created camera {camera.id} {camera.name!r} in store {camera.store_id} ({state})")
    if camera.enabled:
        print(f"it counts once calibrated: zvpanel calibrate {camera.id} --line X1 Y1 X2 Y2")
    return 0


def _camera_list(args: argparse.Namespace) -> int:
    from ..sources import describe_source

    with _open_db() as db:
        cameras = db.list_cameras(args.store, include_deleted=args.all)
        calibrated = {c.id: db.get_calibration(c.id) is not None for c in cameras}
    rows = []
    for c in cameras:
        state = "deleted" if c.archived else ("enabled" if c.enabled else "disabled")
        rows.append(
            (
                c.id,
                c.store_id,
                c.name,
                state,
                "yes" if calibrated[c.id] else "no",
                describe_source(c.source),
            )
        )
    _table(("ID", "STORE", "NAME", "STATE", "CALIBRATED", "SOURCE"), rows)
    return 0


def _camera_enable(args: argparse.Namespace) -> int:
    with _open_db() as db:
        camera = db.set_enabled(args.camera_id, True)
    print(f"camera {camera.id} {camera.name!r} enabled")
    return 0


def _camera_disable(args: argparse.Namespace) -> int:
    with _open_db() as db:
        camera = db.set_enabled(args.camera_id, False)
    print(f"camera {camera.id} {camera.name!r} disabled")
    return 0


def _camera_assign(args: argparse.Namespace) -> int:
    with _open_db() as db:
        assignment = db.assign_camera(args.camera_id, node=args.node, pool=args.pool)
    if assignment is None:
        print(f"camera {args.camera_id} runs in the dashboard process")
    elif assignment.node is not None:
        print(f"camera {args.camera_id} runs on node {assignment.node!r}")
    else:
        print(f"camera {args.camera_id} runs on one node of pool {assignment.pool!r}")
    return 0


def _camera_delete(args: argparse.Namespace) -> int:
    with _open_db() as db:
        camera = db.delete_camera(args.camera_id)
        kept = sum(db.count_events(camera_id=camera.id).values())
    print(f"camera {camera.id} {camera.name!r} deleted; its {kept} recorded event(s) are kept")
    return 0


# --------------------------------------------------------------------------- calibration
def _calibrate_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="set a camera's counting line(s), zones, ROI and detection rate (or show them)",
        description="Without --line or --zone, print the camera's calibration as JSON. With "
        "--line (repeatable), replace its lines; with --zone (repeatable), its zones; other "
        "options not given keep their current value. Orientation leftToRight: for a line "
        "drawn top to bottom, walking left to right on screen is an entry. Example zone: "
        "--zone till 100,300 300,300 300,450 100,450 --queue till",
    )
    p.add_argument("camera_id", type=int, metavar="CAMERA_ID")
    add_line_arguments(p, line_ids=True)
    add_zone_arguments(p)
    roi = p.add_mutually_exclusive_group()
    roi.add_argument(
        "--roi", nargs=4, type=number, metavar=("X1", "Y1", "X2", "Y2"), help="region of interest"
    )
    roi.add_argument("--no-roi", action="store_true", help="detect on the whole frame")
    p.add_argument("--fps", type=number, help="detections per second")
    p.add_argument("--anchor", choices=ANCHORS, help="point of a box that crosses the line")
    p.add_argument("--min-distance", type=number, help="pixels past the line before it counts")
    p.add_argument("--min-frames", type=int, help="detections past the line before it counts")
    p.add_argument(
        "--no-probe", action="store_true", help="do not open the source to check the frame size"
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="warn about lines near a frame edge, outside the ROI, along the main walking "
        "direction or crossed by few people (runs the model on the source's first frames)",
    )
    p.set_defaults(func=_calibrate)


def _new_calibration(args: argparse.Namespace, current: Calibration | None) -> Calibration:
    data: dict[str, Any] = current.model_dump() if current else {}
    if args.line:
        data["lines"] = lines_from_args(args)
    zones = zones_from_args(args)
    if zones is not None:
        data["zones"] = zones
    if args.roi:
        data["roi"] = tuple(args.roi)
    elif args.no_roi:
        data["roi"] = None
    for key, value in (
        ("detection_fps", args.fps),
        ("anchor", args.anchor),
        ("min_distance", args.min_distance),
        ("min_frames", args.min_frames),
    ):
        if value is not None:
            data[key] = value
    return parse_calibration(data)


def _check_frame(calibration: Calibration, source: str) -> None:
    from ..sources import probe_source

    try:
        info = probe_source(source)
    except SourceError as error:
        print(
            f"warning: could not open the source to check the frame size ({error}); "
            "saved without that check",
            file=sys.stderr,
        )
        return
    calibration.check_frame(info.width, info.height)
    print(f"fits the {info.width}x{info.height} frame")
    from ..calibration_check import check_calibration, format_warnings

    warnings = check_calibration(calibration, (info.width, info.height))
    if warnings:
        print(format_warnings(warnings))


def _check_footage(calibration: Calibration, source: str) -> None:
    from ..calibration_check import check_footage, format_warnings
    from ..config import load_settings

    warnings = check_footage(calibration, source, load_settings())
    print(format_warnings(warnings))


def _calibrate(args: argparse.Namespace) -> int:
    with _open_db() as db:
        camera = db.get_camera(args.camera_id)
        current = db.get_calibration(camera.id)
        if not (args.line or args.zone or args.no_zones):
            changes = (args.line_id, args.orientation, args.roi, args.no_roi, args.fps, args.anchor)
            if any(changes) or args.min_distance is not None or args.min_frames is not None:
                raise CalibrationError("give --line X1 Y1 X2 Y2 to change the calibration")
            if args.queue:
                raise CalibrationError("--queue names a --zone; give the zones with --zone")
            if current is None:
                print(f"camera {camera.id} {camera.name!r} has no calibration")
                return 1
            print(json.dumps(current.model_dump(mode="json"), indent=2))
            if args.check:
                _check_footage(current, camera.source)
            return 0
        if camera.archived:
            raise ZvpanelError(f"camera {camera.id} ({camera.name!r}) is deleted")
        calibration = _new_calibration(args, current)
        if not args.no_probe:
            _check_frame(calibration, camera.source)
        if args.check:
            _check_footage(calibration, camera.source)
        db.set_calibration(camera.id, calibration)
    names = ", ".join(line.id for line in calibration.lines)
    zones = ", ".join(z.id + (" (queue)" if z.queue else "") for z in calibration.zones)
    print(
        f"calibration of camera {camera.id} {camera.name!r} saved (lines: {names}"
        + (f"; zones: {zones})" if zones else ")")
    )
    return 0


# --------------------------------------------------------------------------- retention
def _retention_commands(sub: argparse._SubParsersAction) -> None:
    retention = sub.add_parser("retention", help="roll old raw events into hourly totals")
    cmds = retention.add_subparsers(dest="retention_command", required=True, metavar="ACTION")
    p = cmds.add_parser(
        "run",
        help="roll up raw events older than the retention period now",
        description="Roll raw events older than ZVPANEL_RETENTION_DAYS (or --days) into hourly "
        "totals per line and delete them; charts and binned CSV keep adding up. A server "
        "with ZVPANEL_RETENTION_DAYS set does this by itself every hour.",
    )
    p.add_argument("--days", type=int, help="retention period in days (default: the setting)")
    p.set_defaults(func=_retention_run)


def _retention_run(args: argparse.Namespace) -> int:
    settings = load_settings()
    days = settings.retention_days if args.days is None else args.days
    if days is None:
        print("no retention period: set ZVPANEL_RETENTION_DAYS or pass --days", file=sys.stderr)
        return 2
    with Database(settings.database) as db:
        done = db.apply_retention(days)
    cutoff = f"{done.cutoff:%Y-%m-%d %H:%M} UTC"
    print(
        f"rolled {done.events} raw event(s) before {cutoff} into hourly totals; deleted "
        f"{done.zone_events} zone event(s) of stays that ended before it"
    )
    return 0
