"""Which scheduled store reports were written: one row per store, period kind and first
day, claimed by the one process that writes it (several dashboards write each once)."""

from __future__ import annotations

from datetime import date

from .values import now_text

__all__ = ["ReportMethods"]


class ReportMethods:
    """The report-claim methods of :class:`~zvpanel.storage.database.Database`."""

    def claim_report(self, store_id: int, period: str, first_day: date) -> bool:
        """Claim the report of ``store_id`` for the ``period`` ('day' or 'week') starting
        ``first_day``; False if a process (this one included) claimed it before."""
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO report_runs (store_id, period, first_day, claimed_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (store_id, period, first_day) DO NOTHING",
                (store_id, period, first_day.isoformat(), now_text()),
            )
            return cursor.rowcount == 1

    def release_report(self, store_id: int, period: str, first_day: date) -> None:
        """Give a claim back (its report failed): the next check tries again."""
        with self._write() as conn:
            conn.execute(
                "DELETE FROM report_runs WHERE store_id = ? AND period = ? AND first_day = ?",
                (store_id, period, first_day.isoformat()),
            )
