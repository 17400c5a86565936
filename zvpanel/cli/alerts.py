"""``zvpanel alert``: occupancy limits per store or zone (set, list, remove, history)."""

from __future__ import annotations

import argparse

from ..config import load_settings
from ..errors import NotFoundError
from ..storage import Database, Store
from ..storage.alerts import webhook_label

__all__ = ["register", "find_store"]


def register(sub: argparse._SubParsersAction) -> None:
    alert = sub.add_parser(
        "alert",
        help="occupancy limits: a banner and a webhook while too many people are inside",
    )
    cmds = alert.add_subparsers(dest="alert_command", required=True, metavar="ACTION")

    p = cmds.add_parser(
        "set",
        help="set the occupancy limit of a store (or of one zone)",
        description=(
            "Raised when more than MAX people are inside; cleared at MAX - HYSTERESIS or "
            "below. The webhook gets a JSON POST at each raise and clear."
        ),
    )
    _where_arguments(p)
    p.add_argument("--max", type=int, required=True, dest="max_people", help="most people allowed")
    p.add_argument("--hysteresis", type=int, default=0, help="clear only this many below MAX")
    p.add_argument("--webhook", default=None, help="http(s) URL to POST to (optional)")
    p.set_defaults(func=_set)

    p = cmds.add_parser("remove", help="remove a limit")
    _where_arguments(p)
    p.set_defaults(func=_remove)

    p = cmds.add_parser("list", help="list the limits and whether each is exceeded now")
    p.set_defaults(func=_list)

    p = cmds.add_parser("history", help="the latest raises and clears, newest first")
    p.add_argument("--store", default=None, help="only this store (id or name)")
    p.add_argument("--last", type=int, default=20, help="how many (default 20)")
    p.set_defaults(func=_history)


def _where_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", metavar="STORE", help="store id or name")
    p.add_argument("--camera", type=int, default=0, help="camera id of --zone")
    p.add_argument("--zone", default="", help="a zone id of --camera instead of the whole store")


def find_store(db: Database, ref: str) -> Store:
    """A store by id (digits) or by exact name; NotFoundError naming ``ref`` otherwise."""
    if ref.isascii() and ref.isdigit():
        return db.get_store(int(ref))
    for store in db.list_stores():
        if store.name == ref:
            return store
    raise NotFoundError(f"no store with id or name {ref!r} (see zvpanel store list)")


def _open_db() -> Database:
    return Database(load_settings().database)


def _set(args: argparse.Namespace) -> int:
    with _open_db() as db:
        store = find_store(db, args.store)
        limit = db.set_occupancy_limit(
            store.id,
            args.max_people,
            args.hysteresis,
            args.webhook,
            camera_id=args.camera,
            zone_id=args.zone,
        )
    hook = f", webhook {webhook_label(limit.webhook_url)}" if limit.webhook_url else ""
    print(
        f"store {store.id} {store.name!r}{_zone(limit)}: raised above {limit.max_people}, "
        f"cleared at {limit.clear_at} or below{hook}"
    )
    return 0


def _remove(args: argparse.Namespace) -> int:
    with _open_db() as db:
        store = find_store(db, args.store)
        db.remove_occupancy_limit(store.id, camera_id=args.camera, zone_id=args.zone)
    print(f"removed the limit of store {store.id} {store.name!r}")
    return 0


def _zone(limit) -> str:
    return f" zone {limit.zone_id!r} of camera {limit.camera_id}" if limit.is_zone else ""


def _list(args: argparse.Namespace) -> int:
    from .admin import _table

    with _open_db() as db:
        names = {s.id: s.name for s in db.list_stores()}
        rows = [
            (
                f"{names[x.store_id]}{_zone(x)}",
                x.max_people,
                x.clear_at,
                "EXCEEDED" if x.exceeded else "ok",
                webhook_label(x.webhook_url) if x.webhook_url else "-",
            )
            for x in db.occupancy_limits()
        ]
    _table(("WHERE", "MAX", "CLEAR AT", "STATE", "WEBHOOK"), rows)
    return 0


def _history(args: argparse.Namespace) -> int:
    from .admin import _table

    with _open_db() as db:
        store_id = None if args.store is None else find_store(db, args.store).id
        rows = [
            (
                t.at.isoformat(timespec="seconds"),
                t.store_id,
                t.zone_id or "-",
                t.kind,
                t.occupancy,
                t.max_people,
                f"{t.webhook} ({t.attempts})",
            )
            for t in db.alert_transitions(store_id, args.last)
        ]
    _table(("AT (UTC)", "STORE", "ZONE", "KIND", "PEOPLE", "MAX", "WEBHOOK (TRIES)"), rows)
    return 0
