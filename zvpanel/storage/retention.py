"""The retention job: rolls old raw events into hourly totals and deletes old crops, now
and every hour.

The rolling up itself is :meth:`~zvpanel.storage.database.Database.apply_retention`
(see :mod:`zvpanel.storage.events`); ``zvpanel retention run`` does it on demand. Crops of
crossings (:mod:`zvpanel.storage.review`) have their own, usually shorter, retention.
"""

from __future__ import annotations

import logging

from ..periodic import PeriodicJob
from .database import Database

__all__ = ["RetentionJob", "RETENTION_INTERVAL_SECONDS"]

log = logging.getLogger(__name__)

#: How often a server rolls up events that have aged past the retention period.
RETENTION_INTERVAL_SECONDS = 3600.0


class RetentionJob(PeriodicJob):
    """A thread applying a retention of ``days`` to the events of ``db`` and of
    ``crop_days`` to their crops (None: keep them), at start and every ``interval``."""

    thread_name = "zvpanel-retention"
    failure = "retention: rolling up events or deleting crops failed"

    def __init__(
        self,
        db: Database,
        days: int | None,
        interval: float = RETENTION_INTERVAL_SECONDS,
        crop_days: int | None = None,
    ) -> None:
        super().__init__(interval)
        self.db = db
        self.days = days
        self.crop_days = crop_days
        self.runs = 0

    def run_once(self) -> None:
        if self.days is not None:
            done = self.db.apply_retention(self.days)
            if done.events:
                log.info("retention: rolled %d raw event(s) into hourly totals", done.events)
        if self.crop_days is not None:
            crops = self.db.apply_crop_retention(self.crop_days)
            if crops:
                log.info("retention: deleted %d crop(s) of old events", crops)
        self.runs += 1
