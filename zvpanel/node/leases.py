"""Which cameras a node runs: those assigned to it, and the pool cameras it holds a lease on.

Every :data:`RENEW_SECONDS` the node reads the assignments and claims (or renews) a lease
of :data:`LEASE_SECONDS` on each camera of its pool; a lease is free for another node
once it expired in the database's clock (:meth:`~zvpanel.storage.Database.claim_lease`).

Never two at once
    A node that cannot renew (it lost the database, or the link) stops running the camera
    once :data:`LEASE_SECONDS` minus :data:`FENCE_MARGIN_SECONDS` have passed on its own
    monotonic clock since it *sent* its last successful renewal. The database set that
    lease's expiry at least that late, so the node stops before another node can take
    the camera. A node killed outright holds nothing. Either way the camera moves within
    LEASE_SECONDS + RENEW_SECONDS (+ starting its stream) to another live node of the pool.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable

from ..storage import Database
from ..storage.fleet import Assignment

__all__ = ["Leases", "LEASE_SECONDS", "RENEW_SECONDS", "FENCE_MARGIN_SECONDS"]

log = logging.getLogger(__name__)

#: How long a lease lasts without renewal (a dead node's cameras wait this long at most).
LEASE_SECONDS = 15.0
#: How often leases are renewed and free ones claimed.
RENEW_SECONDS = 3.0
#: A node stops a camera this long before its unrenewed lease expires (time to stop it).
FENCE_MARGIN_SECONDS = 5.0


class Leases:
    """The cameras node ``name`` (of ``pool``, if any) may run; :meth:`runs` answers
    without the database, so an engine can stop a camera while the database is down."""

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
        self._valid_until: dict[int, float] = {}  # pool camera -> monotonic fence time
        self._running: set[int] = set()  # what on_change last told
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="zvpanel-leases", daemon=True)

    def start(self) -> Leases:
        self.refresh()  # the cameras are known before the engine starts
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop renewing and give the leases back (the pool's other nodes take over now)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            self._valid_until.clear()
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
            return time.monotonic() < self._valid_until.get(camera_id, 0.0)

    def held(self) -> list[int]:
        with self._lock:
            now = time.monotonic()
            return sorted(c for c, until in self._valid_until.items() if now < until)

    def refresh(self) -> None:
        """Read the assignments, renew or claim this pool's leases, fence expired ones."""
        try:
            assigned = self.db.camera_assignments()
            with self._lock:
                self._assigned = assigned
            self._claim_pool_cameras(assigned)
        finally:
            # Also when the database is down: a fenced camera is stopped all the same.
            running = {c for c in self._known() if self.runs(c)}
            changed, self._running = running ^ self._running, running
            for camera_id in sorted(changed):
                self.on_change(camera_id)

    def _known(self) -> set[int]:
        with self._lock:
            return set(self._assigned) | set(self._valid_until)

    def _claim_pool_cameras(self, assigned: dict[int, Assignment]) -> None:
        for camera_id, assignment in assigned.items():
            if self.pool is None or assignment.pool != self.pool:
                continue
            sent = time.monotonic()
            if self.db.claim_lease(camera_id, self.holder, LEASE_SECONDS):
                until = sent + LEASE_SECONDS - FENCE_MARGIN_SECONDS
                with self._lock:
                    self._valid_until[camera_id] = until
            else:
                with self._lock:
                    self._valid_until.pop(camera_id, None)
        with self._lock:  # cameras no longer in this pool
            for camera_id in list(self._valid_until):
                if assigned.get(camera_id, Assignment(camera_id)).pool != self.pool:
                    del self._valid_until[camera_id]

    def _loop(self) -> None:
        while not self._stop.wait(RENEW_SECONDS):
            try:
                self.refresh()
            except Exception as error:  # top of the thread loop: the database may be down
                log.warning("node %s: could not renew leases: %s", self.name, error)
