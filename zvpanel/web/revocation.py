"""Open sockets and streams end soon after their user's tokens stop working.

A connection's token is checked when it opens (:func:`~.auth.authenticate_request`). What
ends a token early -- a password change, a disabled user, a logout -- may happen in
another process (``zvpanel user passwd`` while the server runs), so one thread per server
process polls :meth:`~zvpanel.storage.Database.users_revision` (one small read) and, when
it moved, checks every open connection again with :func:`~.auth.check_user`. A connection
whose token no longer holds is ended on its own IOLoop (sockets close with 1008).

The thread does the SQLite reads, never an IOLoop; ``IOLoop.add_callback`` (the one
thread-safe entry into a loop) brings the end to the connection.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tornado.ioloop import IOLoop

from ..errors import AuthError, OutageLog, one_line
from .auth import Claims, check_user

__all__ = ["SessionWatch", "SESSION_WATCH", "Watched", "POLL_INTERVAL_S"]

log = logging.getLogger(__name__)

#: How often the users' revision is read (seconds): the longest a revoked token's open
#: connection lives on.
POLL_INTERVAL_S = 2.0


@dataclass(eq=False)
class Watched:
    """One open connection: whose token it holds, and how to end it (called with a reason)."""

    db: Any
    claims: Claims
    loop: IOLoop | None  # None: ``end`` is thread-safe and runs on the watch's thread
    end: Callable[[str], None]


class SessionWatch:
    """The open connections of a process, ended when their token stops working."""

    def __init__(self, poll_interval_s: float = POLL_INTERVAL_S) -> None:
        self.poll_interval_s = poll_interval_s
        self._lock = threading.Lock()
        self._watched: set[Watched] = set()
        # Connections added since the last check: checked once whatever the revision, so
        # a change between a connection's first check and its watch is not missed.
        self._fresh: set[Watched] = set()
        self._revisions: dict[Any, int] = {}  # database -> users_revision seen last
        self._thread: threading.Thread | None = None

    def watch(
        self, db: Any, claims: Claims, end: Callable[[str], None], *, on_loop: bool = True
    ) -> Watched:
        """Watch a connection opened on the current IOLoop; ``end(reason)`` runs there
        (``on_loop=False``: on the watch's thread, for an ``end`` that is thread-safe)."""
        entry = Watched(db, claims, IOLoop.current() if on_loop else None, end)
        with self._lock:
            self._watched.add(entry)
            self._fresh.add(entry)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="zvpanel-session-watch", daemon=True
                )
                self._thread.start()
        return entry

    def unwatch(self, entry: Watched) -> None:
        with self._lock:
            self._watched.discard(entry)
            self._fresh.discard(entry)

    def _run(self) -> None:
        outage = OutageLog(log)  # one traceback per outage of the database, not one a poll
        while True:  # as long as the process: a daemon thread
            time.sleep(self.poll_interval_s)
            try:
                self.check()
            except Exception as error:  # the watch must outlive one bad read
                outage.failed(
                    "checking the open connections' tokens failed (%s)", one_line(error),
                    exc_info=True,
                )  # fmt: skip
            else:
                outage.ended("checking the open connections' tokens works again")

    def check(self) -> None:
        """End the watched connections whose token no longer holds (one pass)."""
        with self._lock:
            entries = list(self._watched)
            fresh, self._fresh = self._fresh, set()
        by_db: dict[Any, list[Watched]] = {}
        for entry in entries:
            by_db.setdefault(entry.db, []).append(entry)
        for db, group in by_db.items():
            revision = db.users_revision()
            changed = self._revisions.get(db) != revision
            self._revisions[db] = revision
            for entry in group:
                if changed or entry in fresh:
                    self._check_entry(entry)
        for db in set(self._revisions) - set(by_db):
            del self._revisions[db]

    def _check_entry(self, entry: Watched) -> None:
        try:
            check_user(entry.db, entry.claims)
        except AuthError as error:
            self.unwatch(entry)
            if entry.loop is None:
                entry.end(str(error))
            else:
                entry.loop.add_callback(entry.end, str(error))


#: The one watch of a server process (every socket and stream route registers here).
SESSION_WATCH = SessionWatch()
