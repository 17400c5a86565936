"""``zvpanel node``: run the engine for the cameras assigned to this node, without
dashboards; ``zvpanel nodes``: the nodes' last heartbeats."""

from __future__ import annotations

import argparse
import signal
import threading
from datetime import datetime, timezone

from ..config import load_settings
from ..errors import InvalidValueError
from ..storage import Database

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    from ..node.outbox import CATCH_UP_PAUSE_SECONDS, FORWARD_BATCH

    p = sub.add_parser(
        "node",
        help="run the engine for the cameras assigned to this node (fleet mode)",
        description="Counts the cameras assigned to NAME (zvpanel camera assign ID --node "
        "NAME) and, with --pool, one live node's share of the pool's cameras. Events go to a "
        "local outbox first and are forwarded to ZVPANEL_DATABASE_URL exactly once. Runs "
        "until SIGINT or SIGTERM.",
    )
    p.add_argument("--name", required=True, help="this node's name (unique in the fleet)")
    p.add_argument("--pool", help="the pool this node serves (failover between its nodes)")
    p.add_argument(
        "--outbox", help="the local SQLite outbox (default: the data folder, outbox-NAME.db)"
    )
    p.add_argument(
        "--forward-batch",
        type=int,
        default=FORWARD_BATCH,
        metavar="N",
        help=f"events forwarded in one transaction at most (default {FORWARD_BATCH})",
    )
    p.add_argument(
        "--catch-up-pause",
        type=float,
        default=CATCH_UP_PAUSE_SECONDS,
        metavar="SECONDS",
        help="pause between full batches while forwarding a backlog (default "
        f"{CATCH_UP_PAUSE_SECONDS:g}: spreads the load when many stores reconnect at once)",
    )
    p.set_defaults(func=_node)

    p = sub.add_parser("nodes", help="list engine nodes and their last heartbeat")
    p.set_defaults(func=_nodes)


def _node(args: argparse.Namespace) -> int:
    from ..node import NodeApp

    if args.forward_batch < 1:
        raise InvalidValueError(f"--forward-batch {args.forward_batch} must be at least 1")
    if args.catch_up_pause < 0:
        raise InvalidValueError(f"--catch-up-pause {args.catch_up_pause} must not be negative")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    app = NodeApp(
        load_settings(),
        args.name,
        pool=args.pool,
        outbox=args.outbox,
        forward_batch=args.forward_batch,
        catch_up_pause=args.catch_up_pause,
    )
    with app:
        print(f"node {app.name} running (database {app.db.location})", flush=True)
        stop.wait()
    return 0


def _nodes(args: argparse.Namespace) -> int:
    from .admin import _table

    with Database(load_settings().database) as db:
        nodes = db.list_nodes()
    now = datetime.now(timezone.utc)
    rows = [
        (
            n.name,
            n.pool or "-",
            f"{(now - n.heartbeat_at).total_seconds():.0f} s ago",
            ",".join(map(str, n.cameras)) or "-",
            " ".join(f"{c}:{r:.1f}/s" for c, r in n.rates.items()) or "-",
            "yes" if n.hardware_limited else "no",
            n.backlog,
        )
        for n in nodes
    ]
    _table(("NODE", "POOL", "HEARTBEAT", "CAMERAS", "RATES", "LIMITED", "BACKLOG"), rows)
    return 0
