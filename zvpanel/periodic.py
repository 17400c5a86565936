"""Background jobs that do one step every few seconds on a daemon thread until stopped.

The retention roll-up, the occupancy alerts, the store reports, a node's forwarder, leases
and heartbeat all have this shape; they differ only in their step and in what a failed
step logs, so the thread, its stop event and the join live here once.
"""

from __future__ import annotations

import logging
import threading
from typing import Self

from .errors import OutageLog, one_line

__all__ = ["PeriodicJob"]


class PeriodicJob:
    """Calls :meth:`run_once` at :meth:`start` time and then every ``interval`` seconds,
    on a daemon thread named ``thread_name``, until :meth:`stop`. A step that raises is
    logged with ``failure`` and its traceback (by the subclass's module logger), once until
    a step works again, and the next interval tries again: an outage of the database must
    not end the job, nor write a traceback every interval. Subclasses with another rhythm
    override :meth:`_loop`, waiting on ``self._stop`` so that :meth:`stop` ends them at
    once."""

    thread_name = "zvpanel-job"
    failure = "a background job failed"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the thread to end and wait for the step under way."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def run_once(self) -> object:
        raise NotImplementedError

    def _loop(self) -> None:
        outage = OutageLog(logging.getLogger(type(self).__module__))
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as error:  # top of the thread loop: try again at the next interval
                outage.failed(
                    "%s (%s); trying again every %g s", self.failure, one_line(error),
                    self.interval, exc_info=True,
                )  # fmt: skip
            else:
                outage.ended("%s: works again", self.thread_name)
            self._stop.wait(self.interval)
