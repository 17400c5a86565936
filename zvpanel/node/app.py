"""A node: the engine without dashboards, for the cameras assigned to it.

``zvpanel node --name NAME [--pool POOL]`` runs :class:`NodeApp`: the central database
(``ZVPANEL_DATABASE_URL``, normally PostgreSQL), a local hub, the node's SQLite
:class:`~zvpanel.node.outbox.Outbox` in place of the event writer and its forwarder,
the detector, the :class:`~zvpanel.node.leases.Leases` saying which cameras it runs, the
engine and the heartbeat. It creates no users or demo cameras: the dashboards do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ..app import App
from ..config import Settings
from ..periodic import PeriodicJob
from ..storage import Database
from ..storage.fleet import NodeBeat
from ..storage.values import check_name, now_text
from .leases import Leases
from .outbox import CATCH_UP_PAUSE_SECONDS, FORWARD_BATCH, Forwarder, Outbox

__all__ = ["NodeApp", "HEARTBEAT_SECONDS"]

log = logging.getLogger(__name__)

#: How often a node writes its heartbeat (cameras, rates, backlog) to the database.
HEARTBEAT_SECONDS = 2.0


class Heartbeat(PeriodicJob):
    """Writes ``beat()`` (the node's cameras, rates and backlog) to the database every
    :data:`HEARTBEAT_SECONDS`; a database outage is logged once, like the other jobs'."""

    thread_name = "zvpanel-heartbeat"

    def __init__(self, db: Database, beat: Callable[[], NodeBeat], node: str) -> None:
        super().__init__(HEARTBEAT_SECONDS)
        self.db = db
        self.beat = beat
        self.failure = f"node {node}: heartbeat failed"

    def run_once(self) -> None:
        self.db.heartbeat(self.beat())


class NodeApp(App):
    """The steps of a node; ``start()`` lists them, ``stop()`` undoes them in reverse."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        *,
        pool: str | None = None,
        outbox: str | Path | None = None,
        forward_batch: int = FORWARD_BATCH,
        catch_up_pause: float = CATCH_UP_PAUSE_SECONDS,
    ) -> None:
        super().__init__(settings)
        self.name = check_name(name, "node name")
        self.pool = None if pool is None else check_name(pool, "pool name")
        self.outbox_path = Path(outbox or settings.data_dir / f"outbox-{name}.db")
        self.forward_batch = forward_batch
        self.catch_up_pause = catch_up_pause
        self.outbox: Outbox | None = None
        self.leases: Leases | None = None
        self.forwarder: Forwarder | None = None
        self.started_at = now_text()
        self.heartbeat: Heartbeat | None = None

    def start(self) -> NodeApp:
        try:
            self.start_database()
            self.start_hub()
            self.start_outbox()
            self.start_forwarder()  # the backlog of a restart drains while the model loads
            self.start_detector()
            self.start_recorder()
            self.start_leases()
            self.start_engine()
            self.start_heartbeat()
            self.start_bus(feed=False)  # publish its cameras; it serves no dashboard
        except BaseException:
            self.stop()
            raise
        self.started = True
        log.info("node %s started (database %s)", self.name, self.db.location)
        return self

    def stop(self) -> None:
        self.stop_bus()
        self.stop_heartbeat()
        self.stop_engine()  # no new events
        self.stop_recorder()  # its last records go to the outbox, forwarded below
        self.stop_leases()
        self.stop_forwarder()
        self.stop_outbox()
        self.stop_database()
        self.started = False

    # ------------------------------------------------------------------ steps
    def start_outbox(self) -> None:
        """Events go to the local outbox first (the engine's event sink)."""
        self.outbox = Outbox(self.outbox_path, self.name)
        self.writer = self.outbox  # type: ignore[assignment]

    def start_recorder(self) -> None:
        """Camera activity (status changes, online time, heat) goes through the outbox too,
        so it reaches the central database after an outage like the events."""
        super().start_recorder(sink=self.outbox, node=self.name)

    def start_leases(self) -> None:
        self.leases = Leases(self.db, self.name, self.pool, self._reload).start()

    def runs_camera(self, camera_id: int) -> bool:
        return self.leases is not None and self.leases.runs(camera_id)

    def start_forwarder(self) -> None:
        self.forwarder = Forwarder(
            self.outbox, self.db, self.forward_batch, self.catch_up_pause
        ).start()

    def start_heartbeat(self) -> None:
        self.heartbeat = Heartbeat(self.db, self.beat, self.name).start()

    def stop_heartbeat(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat = None

    def stop_leases(self) -> None:
        if self.leases is not None:
            self.leases.stop()
            self.leases = None

    def stop_forwarder(self) -> None:
        """One last forward of what the engine wrote, then stop (the rest waits locally)."""
        if self.forwarder is not None:
            self.forwarder.stop()
            try:
                while self.forwarder.forward_once() == self.forwarder.batch:
                    pass
            except Exception:  # the database is down: the outbox keeps them for next start
                log.warning(
                    "node %s: %d event(s) stay in the outbox", self.name, self.outbox.backlog()
                )
            self.forwarder = None

    def stop_outbox(self) -> None:
        if self.outbox is not None:
            self.outbox.close()
            self.outbox = self.writer = None

    # ------------------------------------------------------------------ internals
    def _reload(self, camera_id: int) -> None:
        if self.engine is not None:
            self.engine.request_reload(camera_id)

    def beat(self) -> NodeBeat:
        statuses = self.engine.statuses()
        cameras = tuple(self.engine.camera_ids)
        running = [statuses[c] for c in cameras if c in statuses]
        return NodeBeat(
            name=self.name,
            pool=self.pool,
            started_at=self.started_at,
            cameras=cameras,
            rates={s.camera_id: s.actual_fps for s in running},
            hardware_limited=any(s.hardware_limited for s in running),
            backlog=self.outbox.backlog(),
        )
