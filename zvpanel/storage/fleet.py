"""Fleet mode in the database: camera assignments, pool leases and node heartbeats.

A camera assigned to nobody is run by the dashboard process's own engine (the embedded
mode). A camera assigned to a node is run by that ``zvpanel node``; one assigned to a
pool is run by whichever live node of the pool holds its lease. A lease is one row per
camera with an expiry in the database's clock: a node renews the leases it holds, and
another node may take one only once it has expired, in one atomic upsert, so two nodes
never hold the same camera.

Overlap settled by camera and time
    A node keeps counting the pool cameras it held while it cannot reach the database
    (see :mod:`zvpanel.node.leases`), so a node cut from the database alone counts a
    camera that another node took meanwhile. ``lease_terms`` records who held each pool
    camera's lease when (in the database's clock; a term ends at its last renewed
    expiry, or when it is given back). An event forwarded by a node whose time lies in
    another node's term is superseded: it goes to ``superseded_events``, not ``events``,
    so charts count that crossing once, from the node that held the camera. Dropping it
    at insert, rather than flagging it in ``events``, keeps every count query as it is;
    the side table still says what was set aside and why (``held_by``). In a whole
    database outage nobody can take a lease, so every event of the holder is kept.

Clock skew
    Event times are the node's clock, terms the database's. A node whose clock is off by
    ``s`` seconds may have its crossings of the ``s`` seconds around a handover counted
    twice (clock behind) or by neither node (clock ahead). Nodes are expected to run NTP
    (skew well under a second, less than one frame at the detection rates used), which is
    the bound accepted here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ..errors import InvalidValueError
from .backend import Connection
from .values import EventRow, check_name, now_text, parse_utc

__all__ = ["Assignment", "FleetMethods", "LeaseTerm", "NodeBeat", "NodeInfo", "superseded"]


@dataclass(frozen=True)
class Assignment:
    """Where a camera runs: on one node, or on one live node of a pool."""

    camera_id: int
    node: str | None = None
    pool: str | None = None


@dataclass(frozen=True)
class LeaseTerm:
    """A holder's time with a pool camera's lease, in seconds since the epoch (database
    clock)."""

    camera_id: int
    holder: str  # NAME@token of the node process
    node: str  # NAME, as its events carry it
    started_at: float
    ended_at: float


@dataclass(frozen=True)
class NodeBeat:
    """What a node reports at each heartbeat."""

    name: str
    pool: str | None
    started_at: str  # stored UTC text
    cameras: tuple[int, ...]  # cameras it runs now
    rates: dict[int, float]  # camera id -> detections per second
    hardware_limited: bool  # some camera cannot reach its detection rate
    backlog: int  # events in its outbox not yet forwarded


@dataclass(frozen=True)
class NodeInfo:
    name: str
    pool: str | None
    started_at: datetime
    heartbeat_at: datetime
    cameras: tuple[int, ...]
    rates: dict[int, float]
    hardware_limited: bool
    backlog: int


class FleetMethods:
    """The fleet methods of :class:`~zvpanel.storage.database.Database`."""

    # ------------------------------------------------------------------ assignments
    def assign_camera(
        self, camera_id: int, *, node: str | None = None, pool: str | None = None
    ) -> Assignment | None:
        """Run the camera on ``node``, or on a node of ``pool``; neither: back on the
        dashboards' own engine. A configuration change: engines pick it up."""
        if node is not None and pool is not None:
            raise InvalidValueError(
                f"camera {camera_id}: give a node ({node!r}) or a pool ({pool!r}), not both"
            )
        for value, what in ((node, "node name"), (pool, "pool name")):
            if value is not None:
                check_name(value, what)
        self._active_camera(camera_id)  # raises NotFoundError naming it
        with self._write(config=True) as conn:
            conn.execute("DELETE FROM camera_assignments WHERE camera_id = ?", (camera_id,))
            if node is not None or pool is not None:
                conn.execute(
                    "INSERT INTO camera_assignments (camera_id, node, pool) VALUES (?, ?, ?)",
                    (camera_id, node, pool),
                )
            # A lease taken under the old assignment must not outlive it.
            conn.execute("DELETE FROM camera_leases WHERE camera_id = ?", (camera_id,))
            self._end_terms(conn, "camera_id", camera_id)
        self._notify("camera", camera_id)
        return self.camera_assignment(camera_id)

    def camera_assignment(self, camera_id: int) -> Assignment | None:
        row = self._one("SELECT * FROM camera_assignments WHERE camera_id = ?", (camera_id,))
        return None if row is None else Assignment(row["camera_id"], row["node"], row["pool"])

    def camera_assignments(self) -> dict[int, Assignment]:
        rows = self._all("SELECT * FROM camera_assignments")
        return {r["camera_id"]: Assignment(r["camera_id"], r["node"], r["pool"]) for r in rows}

    # ------------------------------------------------------------------ leases
    def claim_lease(self, camera_id: int, node: str, seconds: float) -> bool:
        """Take or renew ``node``'s lease on a pool camera for ``seconds``; False if
        another holder has a lease that has not expired. ``node`` names the holder: a
        node process passes its name and an instance token (``NAME@token``)."""
        now = self._backend.epoch_now
        with self._write(serial=False) as conn:
            # The upsert locks the lease row: terms of one camera change one at a time.
            claimed = conn.all(
                "INSERT INTO camera_leases (camera_id, node, expires_at) "
                f"VALUES (?, ?, {now} + ?) ON CONFLICT (camera_id) DO UPDATE "
                "SET node = excluded.node, expires_at = excluded.expires_at "
                f"WHERE camera_leases.node = excluded.node OR camera_leases.expires_at < {now} "
                "RETURNING expires_at",
                (camera_id, node, float(seconds)),
            )
            if not claimed:
                return False
            _extend_term(conn, camera_id, node, float(claimed[0][0]), float(seconds))
            return True

    def release_leases(self, node: str) -> None:
        """Give up every lease of ``node`` (a node stopping cleanly): its cameras move
        to another node of the pool at once, not when the leases expire."""
        with self._write(serial=False) as conn:
            conn.execute("DELETE FROM camera_leases WHERE node = ?", (node,))
            self._end_terms(conn, "holder", node)

    def _end_terms(self, conn: Connection, column: str, value: object) -> None:
        """End now the terms still running of a camera or holder (``column``)."""
        now = self._backend.epoch_now
        conn.execute(
            f"UPDATE lease_terms SET ended_at = {now} "
            f"WHERE {column} = ? AND ended_at > {now} AND started_at <= {now}",
            (value,),
        )

    def lease_terms(self, camera_id: int) -> list[LeaseTerm]:
        """Who held the camera's lease when, oldest first."""
        rows = self._all(
            "SELECT camera_id, holder, node, started_at, ended_at FROM lease_terms "
            "WHERE camera_id = ? ORDER BY id",
            (camera_id,),
        )
        return [LeaseTerm(*r) for r in rows]

    def superseded_events(self, camera_id: int | None = None) -> dict[str, str]:
        """uid -> the node that held the camera, of the events set aside (see above)."""
        sql, params = "SELECT uid, held_by FROM superseded_events", ()
        if camera_id is not None:
            sql, params = sql + " WHERE camera_id = ?", (camera_id,)
        return {r[0]: r[1] for r in self._all(sql, params)}

    def lease_holders(self) -> dict[int, str]:
        """Camera id -> the node holding an unexpired lease on it."""
        rows = self._all(
            f"SELECT camera_id, node FROM camera_leases WHERE expires_at >= {self._backend.epoch_now}"
        )
        return {r["camera_id"]: r["node"] for r in rows}

    # ------------------------------------------------------------------ heartbeats
    def heartbeat(self, beat: NodeBeat) -> None:
        check_name(beat.name, "node name")
        values = (
            beat.name,
            beat.pool,
            beat.started_at,
            now_text(),
            json.dumps(sorted(beat.cameras)),
            json.dumps({str(k): round(v, 3) for k, v in sorted(beat.rates.items())}),
            int(beat.hardware_limited),
            int(beat.backlog),
        )
        with self._write(serial=False) as conn:
            conn.execute(
                "INSERT INTO nodes (name, pool, started_at, heartbeat_at, cameras, rates, "
                "hardware_limited, backlog) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET pool = excluded.pool, "
                "started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, "
                "cameras = excluded.cameras, rates = excluded.rates, "
                "hardware_limited = excluded.hardware_limited, backlog = excluded.backlog",
                values,
            )

    def list_nodes(self) -> list[NodeInfo]:
        rows = self._all("SELECT * FROM nodes ORDER BY name")
        return [
            NodeInfo(
                r["name"],
                r["pool"],
                parse_utc(r["started_at"]),
                parse_utc(r["heartbeat_at"]),
                tuple(json.loads(r["cameras"])),
                {int(k): float(v) for k, v in json.loads(r["rates"]).items()},
                bool(r["hardware_limited"]),
                int(r["backlog"]),
            )
            for r in rows
        ]


def _extend_term(
    conn: Connection, camera_id: int, holder: str, expires_at: float, seconds: float
) -> None:
    """Carry a claimed lease into ``lease_terms``: a renewal (the camera's latest term
    is the holder's) extends that term, else the holder's term starts now."""
    latest = conn.one(
        "SELECT id, holder, started_at FROM lease_terms WHERE camera_id = ? "
        "ORDER BY id DESC LIMIT 1",
        (camera_id,),
    )
    if latest is not None and latest[1] == holder:
        ended = max(float(latest[2]), expires_at)  # an expired lease given (seconds < 0)
        conn.execute("UPDATE lease_terms SET ended_at = ? WHERE id = ?", (ended, latest[0]))
        return
    started = expires_at - max(seconds, 0.0)
    conn.execute(
        "INSERT INTO lease_terms (camera_id, holder, node, started_at, ended_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (camera_id, holder, holder.partition("@")[0], started, max(started, expires_at)),
    )


def superseded(conn: Connection, rows: Sequence[EventRow]) -> dict[str, str]:
    """uid -> holder, for the node events in ``rows`` that lie in another node's lease
    term of their camera (that node counted the camera then). Events of the dashboards'
    engine (no node) and cameras that were never in a pool have no terms to meet."""
    from_nodes = [r for r in rows if r.node is not None and r.uid is not None]
    if not from_nodes:
        return {}
    times = {r.uid: parse_utc(r.ts_utc).timestamp() for r in from_nodes}
    cameras = sorted({r.camera_id for r in from_nodes})
    terms = conn.all(
        "SELECT camera_id, holder, node, started_at, ended_at FROM lease_terms "
        f"WHERE camera_id IN ({', '.join('?' * len(cameras))}) "
        "AND ended_at > ? AND started_at <= ?",
        (*cameras, min(times.values()), max(times.values())),
    )
    found = {}
    for row in from_nodes:
        t = times[row.uid]
        for camera_id, holder, node, started, ended in terms:
            if camera_id == row.camera_id and node != row.node and started <= t < ended:
                found[row.uid] = holder
                break
    return found
