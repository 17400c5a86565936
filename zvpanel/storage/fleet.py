"""Fleet mode in the database: camera assignments, pool leases and node heartbeats.

A camera assigned to nobody is run by the dashboard process's own engine (the embedded
mode). A camera assigned to a node is run by that ``zvpanel node``; one assigned to a
pool is run by whichever live node of the pool holds its lease. A lease is one row per
camera with an expiry in the database's clock: a node renews the leases it holds, and
another node may take one only once it has expired, in one atomic upsert, so two nodes
never hold the same camera (see :mod:`zvpanel.node.leases` for how a node stops running a
camera before its lease can expire).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from ..errors import InvalidValueError
from .values import check_name, now_text, parse_utc

__all__ = ["Assignment", "FleetMethods", "NodeBeat", "NodeInfo"]


@dataclass(frozen=True)
class Assignment:
    """Where a camera runs: on one node, or on one live node of a pool."""

    camera_id: int
    node: str | None = None
    pool: str | None = None


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
            cursor = conn.execute(
                "INSERT INTO camera_leases (camera_id, node, expires_at) "
                f"VALUES (?, ?, {now} + ?) ON CONFLICT (camera_id) DO UPDATE "
                "SET node = excluded.node, expires_at = excluded.expires_at "
                f"WHERE camera_leases.node = excluded.node OR camera_leases.expires_at < {now}",
                (camera_id, node, float(seconds)),
            )
            return cursor.rowcount == 1

    def release_leases(self, node: str) -> None:
        """Give up every lease of ``node`` (a node stopping cleanly): its cameras move
        to another node of the pool at once, not when the leases expire."""
        with self._write(serial=False) as conn:
            conn.execute("DELETE FROM camera_leases WHERE node = ?", (node,))

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
