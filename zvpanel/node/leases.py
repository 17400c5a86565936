"""Which cameras a node runs: those assigned to it, and the pool cameras it holds a lease on.

Every :data:`RENEW_SECONDS` the node reads the assignments and claims (or renews) a lease
of :data:`LEASE_SECONDS` on each camera of its pool; a lease is free for another node
once it expired in the database's clock (:meth:`~zvpanel.storage.Database.claim_lease`).

Through outages
    A node that cannot reach the database keeps running the pool cameras it holds,
    counting into its outbox: it cannot tell a database outage (nobody can take its
    leases, so stopping would only lose crossings) from a cut in its own link. In the
    second case another node of the pool takes the camera once the lease expired, within
    LEASE_SECONDS + RENEW_SECONDS (+ starting its stream), as when a node is killed; both
    count it until the cut node reaches the database again, finds the lease taken and
    stops the camera. The database keeps one copy of each crossing: the events a node
    counted while another node held the lease are set aside when they are forwarded
    (:mod:`zvpanel.storage.fleet`), so two nodes never count one camera at once as far as
    recorded counts go.

Holders first after an outage
    A node that could not reach the database waits :data:`RECONNECT_GRACE_SECONDS` once
    it can again before it claims cameras it does not hold: after a database outage every
    lease has expired, and the nodes that held them renew first instead of racing the
    others for them (which would move the cameras for nothing).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable

from ..errors import OutageLog, one_line
from ..periodic import PeriodicJob
from ..storage import Database
from ..storage.fleet import Assignment

__all__ = ["Leases", "LEASE_SECONDS", "RENEW_SECONDS", "RECONNECT_GRACE_SECONDS"]

log = logging.getLogger(__name__)

#: How long a lease lasts without renewal (a dead node's cameras wait this long at most).
LEASE_SECONDS = 15.0
#: How often leases are renewed and free ones claimed.
RENEW_SECONDS = 3.0
#: After reaching the database again, a node claims no new camera for this long (two
#: renewals: the holders of the expired leases renew theirs first).
RECONNECT_GRACE_SECONDS = 2 * RENEW_SECONDS


class Leases(PeriodicJob):
    """The cameras node ``name`` (of ``pool``, if any) may run; :meth:`runs` answers
    without the database, from what the database said last. Renewed every
    ``RENEW_SECONDS`` on its own thread."""

    thread_name = "zvpanel-leases"

    def __init__(
        self,
        db: Database,
        name: str,
        pool: str | None,
        on_change: Callable[[int], None] = lambda camera_id: None,
    ) -> None:
        self.db = db
        self.name = name
        #: Who holds the leases: this process, not just its name, so that a second node
        #: started by mistake under the same name cannot run the same cameras.
        self.holder = f"{name}@{secrets.token_hex(4)}"
        self.pool = pool
        self.on_change = on_change
        self._assigned: dict[int, Assignment] = {}
        self._held: set[int] = set()  # pool cameras whose lease this node holds
        self._running: set[int] = set()  # what on_change last told
        self._unreachable = False  # the last refresh failed
        self._claims_from = 0.0  # monotonic time from which new cameras may be claimed
        self._lock = threading.Lock()
        super().__init__(RENEW_SECONDS)

    def start(self) -> Leases:
        self.refresh()  # the cameras are known before the engine starts
        return super().start()

    def stop(self) -> None:
        """Stop renewing and give the leases back (the pool's other nodes take over now)."""
        super().stop()
        with self._lock:
            self._held.clear()
        try:
            self.db.release_leases(self.holder)
        except Exception:  # the database may be the reason we stop; the leases expire anyway
            log.warning(
                "node %s: could not release its leases; they expire by themselves", self.name
            )

    def runs(self, camera_id: int) -> bool:
        """Whether this node should run the camera now."""
        with self._lock:
            assignment = self._assigned.get(camera_id)
            if assignment is None:
                return False
            if assignment.node is not None:
                return assignment.node == self.name
            return camera_id in self._held

    def held(self) -> list[int]:
        with self._lock:
            return sorted(self._held)

    def refresh(self) -> None:
        """Read the assignments, renew or claim this pool's leases, let go of those
        another node took. The database being down changes nothing."""
        try:
            assigned = self.db.camera_assignments()
            if self._unreachable:
                self._unreachable = False
                self._claims_from = time.monotonic() + RECONNECT_GRACE_SECONDS
            with self._lock:
                self._assigned = assigned
            self._claim_pool_cameras(assigned)
        except Exception:
            self._unreachable = True
            raise
        finally:
            # Tell the engine what changed, also when the refresh failed half-way.
            running = {c for c in self._known() if self.runs(c)}
            changed, self._running = running ^ self._running, running
            for camera_id in sorted(changed):
                self.on_change(camera_id)

    def _known(self) -> set[int]:
        with self._lock:
            return set(self._assigned) | self._held

    def _claim_pool_cameras(self, assigned: dict[int, Assignment]) -> None:
        for camera_id, assignment in assigned.items():
            if self.pool is None or assignment.pool != self.pool:
                continue
            if camera_id not in self._held and time.monotonic() < self._claims_from:
                continue  # the holders renew first after an outage
            if self.db.claim_lease(camera_id, self.holder, LEASE_SECONDS):
                with self._lock:
                    self._held.add(camera_id)
            elif camera_id in self._held:  # taken while this node could not renew
                log.warning(
                    "node %s: another node of pool %s took camera %d; stopping it",
                    self.name, self.pool, camera_id,
                )  # fmt: skip
                with self._lock:
                    self._held.discard(camera_id)
        with self._lock:  # cameras no longer in this pool
            self._held = {c for c in self._held if assigned.get(c, Assignment(c)).pool == self.pool}

    def _loop(self) -> None:
        outage = OutageLog(log)  # one line per outage, not one per renewal
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception as error:  # top of the thread loop: the database may be down
                outage.failed(
                    "node %s: cannot renew leases (%s); it keeps running cameras %s",
                    self.name, one_line(error), self.held(),
                )  # fmt: skip
                continue
            outage.ended("node %s: database reachable again; leases renewed", self.name)
