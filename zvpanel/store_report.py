"""Daily and weekly store reports: an HTML page with the analytics charts, plus CSV files,
written to a folder, optionally mailed; on demand (``zvpanel report``) or on a schedule.

The charts are the analytics page's own (:class:`~zvpanel.ui.analytics.AnalyticsView`,
so a report shows what the page shows for the same dates, downtime shading included),
saved as a standalone page that opens offline (:func:`zvpanel.report.save_standalone`).
The CSV files (counts per hour or day, per camera, and raw next to reviewed counts from
the review page's verdicts) go through :func:`~zvpanel.display.csv_frame` like the page's
downloads.

Schedule
    :class:`ReportJob` runs in each dashboard process when ``ZVPANEL_REPORTS_DIR`` is set.
    Every :data:`REPORT_CHECK_SECONDS` it looks for each store's last finished day and
    week (finished :data:`REPORT_DELAY` ago, so a node's late backlog is in), claims the
    period in the database (``report_runs``: one process wins, so several dashboards
    write and mail it once), writes it and mails it. A failed report gives its claim back
    and is tried again at the next check.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Literal

import holoviews as hv
import pandas as pd

from .config import Settings, load_settings
from .display import csv_frame, html_text
from .periodic import PeriodicJob
from .report import save_standalone
from .storage import Database, EventFilter, Store
from .storage.review_counts import reviewed_counts

__all__ = [
    "ReportPeriod",
    "ReportFiles",
    "ReportJob",
    "write_store_report",
    "mail_report",
    "REPORT_CHECK_SECONDS",
    "REPORT_DELAY",
]

log = logging.getLogger(__name__)

#: How often a dashboard process looks for a finished day or week to report.
REPORT_CHECK_SECONDS = 600.0
#: How long after a day or week ends its report is written (late node backlogs land first).
REPORT_DELAY = timedelta(hours=1)
#: Seconds to wait for the SMTP server.
SMTP_TIMEOUT_SECONDS = 30.0
PeriodKind = Literal["day", "week"]


@dataclass(frozen=True)
class ReportPeriod:
    """A local day, or a week from Monday to Sunday, in a store's time zone."""

    kind: PeriodKind
    first: date

    @classmethod
    def day(cls, day: date) -> ReportPeriod:
        return cls("day", day)

    @classmethod
    def week_of(cls, day: date) -> ReportPeriod:
        """The week (Monday to Sunday) holding ``day``."""
        return cls("week", day - timedelta(days=day.weekday()))

    @property
    def last(self) -> date:
        return self.first + timedelta(days=6 if self.kind == "week" else 0)

    @property
    def name(self) -> str:
        """File name stem: ``daily-2026-11-28`` or ``weekly-2026-11-23``."""
        return f"{'daily' if self.kind == 'day' else 'weekly'}-{self.first.isoformat()}"

    def end(self, store: Store) -> datetime:
        """When the period is over: the local midnight after its last day."""
        return datetime.combine(self.last + timedelta(days=1), time.min, store.tz)

    def title(self, store: Store) -> str:
        if self.kind == "day":
            return f"{store.name}: daily report for {self.first:%A %Y-%m-%d}"
        return f"{store.name}: weekly report for {self.first} to {self.last}"


@dataclass(frozen=True)
class ReportFiles:
    """What one report wrote, and its headline numbers."""

    html: Path
    counts_csv: Path
    cameras_csv: Path
    reviewed_csv: Path
    entries: int
    exits: int
    peak_occupancy: int

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.html, self.counts_csv, self.cameras_csv, self.reviewed_csv)


class _Dashboard:
    """What the analytics view needs of an App: the database and the settings."""

    hub = None

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings


def _analytics(db: Database, settings: Settings, store: Store, period: ReportPeriod):
    """The analytics view on ``store`` over ``period``: hours for a day, days for a week."""
    from .ui.analytics import AnalyticsView  # Panel and HoloViews: only when reporting

    view = AnalyticsView(_Dashboard(db, settings))
    view.store_select.value = store.id
    view.date_range.value = (period.first, period.last)
    view.bin = "h" if period.kind == "day" else "D"
    view.update()
    return view


def _summary(store: Store, period: ReportPeriod, entries: int, exits: int, view) -> str:
    occupancy = view.data.occupancy
    peak = int(occupancy["occupancy"].max()) if len(occupancy) else 0
    peak_at = f" at {occupancy['occupancy'].idxmax():%a %H:%M}" if peak else ""
    counts = view.binned()
    busiest = ""
    if len(counts) and counts["entries"].max() > 0:
        when = counts["entries"].idxmax()
        label = f"{when:%H:00}" if period.kind == "day" else f"{when:%A %Y-%m-%d}"
        busiest = f"; busiest {'hour' if period.kind == 'day' else 'day'} {label}"
    return (
        f"<h1>{html_text(period.title(store))}</h1>"
        f"<p>Entries <b>{entries}</b> · exits <b>{exits}</b> · most people inside "
        f"<b>{peak}</b>{peak_at}{busiest}. Times in {html_text(store.timezone)}.</p>"
    )


def _reviewed(db: Database, store: Store, period: ReportPeriod, cameras: pd.DataFrame):
    """Raw and reviewed counts per day, camera, line and direction (see the review page),
    with each camera's name."""
    start = datetime.combine(period.first, time.min, store.tz)
    where = EventFilter(store_id=store.id, start=start, end=period.end(store))
    table = reviewed_counts(db, store.timezone, where)
    names = {c.id: c.name for c in db.list_cameras(store.id, include_deleted=True)}
    table.insert(2, "camera_name", [names.get(c, "?") for c in table["camera_id"]])
    return table


def _reviewed_html(table: pd.DataFrame) -> str:
    """Raw next to reviewed counts per camera, line and direction over the period."""
    if not (table[["wrong", "double", "missed"]].to_numpy().sum() if len(table) else 0):
        return "<h2>Reviewed counts</h2><p>No count of this period was reviewed.</p>"
    keys = ["camera_name", "line_id", "direction"]
    totals = table.groupby(keys, sort=True)[["raw", "reviewed"]].sum().reset_index()
    rows = "".join(
        f"<tr><td>{html_text(r.camera_name)}</td><td>{html_text(r.line_id)}</td>"
        f"<td>{r.direction}</td><td>{r.raw}</td><td>{r.reviewed}</td></tr>"
        for r in totals.itertuples()
    )
    return (
        "<h2>Reviewed counts</h2><table><tr><th>camera</th><th>line</th><th>direction</th>"
        f"<th>raw</th><th>reviewed</th></tr>{rows}</table>"
    )


def write_store_report(
    db: Database,
    store_id: int,
    period: ReportPeriod,
    folder: str | Path,
    settings: Settings | None = None,
) -> ReportFiles:
    """Write the report of ``store_id`` for ``period`` under ``folder/store<ID>/``
    (``settings``: the process's, by default read from the environment)."""
    from bokeh.models import Div

    store = db.get_store(store_id)
    view = _analytics(db, settings or load_settings(), store, period)
    counts, cameras = view.binned(), view.data.cameras
    entries, exits = int(counts["entries"].sum()), int(counts["exits"].sum())
    out = Path(folder) / f"store{store.id}"
    reviewed = _reviewed(db, store, period, cameras)
    models = [Div(text=_summary(store, period, entries, exits, view))]
    for chart in (view.timeline, view.occupancy_chart, view.camera_chart):
        models.append(hv.render(chart.object, backend="bokeh"))
    models.append(Div(text=_reviewed_html(reviewed)))
    html = save_standalone(models, out / f"{period.name}.html", period.title(store))
    counts_csv = out / f"{period.name}-counts.csv"
    counts_csv.write_text(csv_frame(counts).to_csv(index_label="timestamp"))
    cameras_csv = out / f"{period.name}-cameras.csv"
    cameras_csv.write_text(csv_frame(cameras).to_csv(index=False))
    reviewed_csv = out / f"{period.name}-reviewed.csv"
    reviewed_csv.write_text(csv_frame(reviewed).to_csv(index=False))
    peak = int(view.data.occupancy["occupancy"].max()) if len(view.data.occupancy) else 0
    return ReportFiles(html, counts_csv, cameras_csv, reviewed_csv, entries, exits, peak)


def mail_report(settings: Settings, store: Store, period: ReportPeriod, files: ReportFiles) -> None:
    """Mail the report's files to ``ZVPANEL_SMTP_TO`` (does nothing without a host)."""
    if settings.smtp_host is None:
        return
    message = EmailMessage()
    message["Subject"] = f"zvpanel {period.title(store)}"
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(settings.smtp_to)
    message.set_content(
        f"{period.title(store)}\n\nEntries {files.entries}, exits {files.exits}, most people "
        f"inside {files.peak_occupancy}.\nThe charts are in the attached HTML page.\n"
    )
    for path in files.paths:  # text in UTF-8 (Bokeh's inlined JavaScript is not ASCII)
        subtype = "html" if path.suffix == ".html" else "csv"
        message.add_attachment(path.read_text(), subtype=subtype, filename=path.name)
    with _smtp(settings) as smtp:
        smtp.send_message(message)
    log.info(
        "report %s of store %d mailed to %d recipient(s)",
        period.name,
        store.id,
        len(settings.smtp_to),
    )


def _smtp(settings: Settings) -> smtplib.SMTP:
    host, port = settings.smtp_host, settings.smtp_port
    if settings.smtp_security == "ssl":
        smtp = smtplib.SMTP_SSL(
            host, port, timeout=SMTP_TIMEOUT_SECONDS, context=ssl.create_default_context()
        )
    else:
        smtp = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_SECONDS)
        if settings.smtp_security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
    if settings.smtp_username and settings.smtp_password is not None:
        smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
    return smtp


def due_periods(store: Store, now: datetime) -> list[ReportPeriod]:
    """The store's latest day and week that ended at least :data:`REPORT_DELAY` ago."""
    local = (now - REPORT_DELAY).astimezone(store.tz)
    yesterday = local.date() - timedelta(days=1)
    last_week = ReportPeriod.week_of(local.date() - timedelta(days=7))
    return [ReportPeriod.day(yesterday), last_week]


class ReportJob(PeriodicJob):
    """A thread writing (and mailing) each store's finished days and weeks, once."""

    thread_name = "zvpanel-reports"
    #: The claim was given back, so the next interval tries again.
    failure = "reports: writing a store report failed"

    def __init__(
        self, db: Database, settings: Settings, interval: float = REPORT_CHECK_SECONDS
    ) -> None:
        if settings.reports_dir is None:
            raise ValueError("ReportJob needs ZVPANEL_REPORTS_DIR")
        super().__init__(interval)
        self.db = db
        self.settings = settings
        self.folder = settings.resolve(settings.reports_dir)

    def run_once(self, now: datetime | None = None) -> list[ReportFiles]:
        """Write the reports that are due and no process has claimed; what it wrote."""
        now = now or datetime.now(timezone.utc)
        written = []
        for store in self.db.list_stores():
            for period in due_periods(store, now):
                if not self.db.claim_report(store.id, period.kind, period.first):
                    continue
                try:
                    files = write_store_report(
                        self.db, store.id, period, self.folder, self.settings
                    )
                    mail_report(self.settings, store, period, files)
                except Exception:
                    self.db.release_report(store.id, period.kind, period.first)
                    raise
                log.info("report %s of store %d written to %s", period.name, store.id, files.html)
                written.append(files)
        return written


def safe_period_day(text: str) -> date:
    """``YYYY-MM-DD`` -> a date; ValueError naming the bad value."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text or ""):
        raise ValueError(f"--day {text!r} is not a date like 2026-11-28")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--day {text!r} is not a date like 2026-11-28") from None
