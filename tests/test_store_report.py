"""Store reports: files for a seeded database (numbers equal the storage queries), the
``zvpanel report`` command, mail to a real aiosmtpd server on 127.0.0.1, the schedule
(each period once across processes)."""

from __future__ import annotations

import email
import html
import re
import threading
from datetime import date, datetime, timedelta, timezone
from email import policy
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from test_report import _document, _titles

from zvpanel.cli import main
from zvpanel.config import load_settings
from zvpanel.storage import Database, EventFilter, EventRow, binned_counts, per_camera, utc_text
from zvpanel.storage.review_counts import reviewed_counts
from zvpanel.store_report import ReportJob, ReportPeriod, mail_report, write_store_report

PARIS = ZoneInfo("Europe/Paris")
DAY = date(2026, 11, 27)  # a Friday


@pytest.fixture
def seeded(db):
    """A Paris store with two cameras (one named like a spreadsheet formula) and events on
    DAY, the evening before (local) and the next Monday."""
    store = db.create_store("Main <street>", "Europe/Paris")
    door = db.create_camera(store.id, "Door", "data/vtest.avi")
    side = db.create_camera(store.id, "=HYPERLINK(1)", "data/vtest.avi")
    rows = []
    start = datetime.combine(DAY, datetime.min.time(), PARIS) + timedelta(hours=8)
    for i in range(90):  # 08:00-18:30 local
        camera = door if i % 4 else side
        direction = "exit" if i % 3 == 0 else "entry"
        rows.append((camera, direction, start + timedelta(minutes=7 * i)))
    rows.append((door, "entry", start - timedelta(hours=9)))  # 23:00 the day before
    rows.append((door, "entry", start + timedelta(days=3)))  # next Monday
    db.insert_events(
        EventRow(store.id, c.id, "door", i, d, utc_text(t), i, 0.9, f"uid-{i}")
        for i, (c, d, t) in enumerate(rows)
    )
    return store, door, side


def read_csv(path) -> pd.DataFrame:
    return pd.read_csv(path)


def test_daily_report_matches_the_storage_queries(db, seeded, tmp_path):
    store, door, side = seeded
    period = ReportPeriod.day(DAY)
    files = write_store_report(db, store.id, period, tmp_path)
    where = EventFilter(store.id, None, *_bounds(period))
    hourly = binned_counts(db, "h", "Europe/Paris", where)
    cameras = per_camera(db, where)

    counts = read_csv(files.counts_csv)
    assert counts["entries"].tolist() == hourly["entries"].tolist()
    assert counts["exits"].tolist() == hourly["exits"].tolist()
    assert counts["timestamp"].iloc[0] == "2026-11-27 08:00:00+01:00"
    assert (files.entries, files.exits) == (60, 30)
    by_camera = read_csv(files.cameras_csv)
    assert by_camera["entries"].tolist() == cameras["entries"].tolist()
    # A name that a spreadsheet would run is written inert, as on the analytics page.
    assert "'=HYPERLINK(1)" in by_camera["camera_name"].tolist()

    page = files.html.read_text()
    assert files.html == tmp_path / f"store{store.id}" / "daily-2026-11-27.html"
    assert "<title>Main &lt;street&gt;: daily report for Friday 2026-11-27</title>" in page
    assert not re.search(r'<(script|link)[^>]+(src|href)="https?://', page)  # offline
    doc = _document(page)
    [summary, reviewed_html] = _div_texts(doc)
    assert summary.startswith("<h1>Main &lt;street&gt;: daily report for Friday 2026-11-27")
    assert "Entries <b>60</b> · exits <b>30</b>" in summary
    titles = _titles(doc)
    assert "Entries and exits per hour (Europe/Paris)" in titles
    assert "Entries and exits per camera" in titles
    assert "Occupancy through the day (entries - exits)" in titles
    assert "No count of this period was reviewed" in reviewed_html


def test_report_shows_raw_and_reviewed_counts(db, seeded, tmp_path):
    store, door, side = seeded
    db.review_event("uid-1", "wrong", "rita")  # a Door entry
    db.review_event("uid-2", "double", "rita")  # a Door entry
    when = datetime.combine(DAY, datetime.min.time(), PARIS) + timedelta(hours=12)
    db.add_missed(door.id, "door", "exit", when, "rita")
    period = ReportPeriod.day(DAY)
    files = write_store_report(db, store.id, period, tmp_path)
    expected = reviewed_counts(db, "Europe/Paris", EventFilter(store.id, None, *_bounds(period)))
    table = read_csv(files.reviewed_csv)
    assert table["raw"].tolist() == expected["raw"].tolist()
    assert table["reviewed"].tolist() == expected["reviewed"].tolist()
    door_rows = table[table["camera_name"] == "Door"].set_index("direction")
    assert door_rows.loc["entry", "raw"] - door_rows.loc["entry", "reviewed"] == 2
    assert door_rows.loc["exit", "reviewed"] - door_rows.loc["exit", "raw"] == 1
    assert "'=HYPERLINK(1)" in table["camera_name"].tolist()
    [_, reviewed_html] = _div_texts(_document(files.html.read_text()))
    assert "<td>Door</td><td>door</td><td>entry</td>" in reviewed_html
    assert "<td>=HYPERLINK(1)</td>" in reviewed_html


def _div_texts(doc: dict) -> list[str]:
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and node.get("name") == "Div":
                # Bokeh escapes the document it embeds in the page's script.
                found.append(html.unescape(node["attributes"]["text"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    return found


def _bounds(period: ReportPeriod) -> tuple[datetime, datetime]:
    start = datetime.combine(period.first, datetime.min.time(), PARIS)
    end = datetime.combine(period.last + timedelta(days=1), datetime.min.time(), PARIS)
    return start, end


def test_weekly_report_has_days(db, seeded, tmp_path):
    store, *_ = seeded
    period = ReportPeriod.week_of(DAY)
    assert (period.first, period.last) == (date(2026, 11, 23), date(2026, 11, 29))
    files = write_store_report(db, store.id, period, tmp_path)
    daily = binned_counts(db, "D", "Europe/Paris", EventFilter(store.id, None, *_bounds(period)))
    counts = read_csv(files.counts_csv)
    assert counts["entries"].tolist() == daily["entries"].tolist() == [1, 60]  # Thu, Fri
    assert files.html.name == "weekly-2026-11-23.html"
    assert "Entries and exits per day (Europe/Paris)" in _titles(_document(files.html.read_text()))


def test_report_command(db, db_target, seeded, tmp_path, monkeypatch, capsys):
    for name in ("ZVPANEL_DB_PATH", "ZVPANEL_DATABASE_URL", "ZVPANEL_REPORTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ZVPANEL_DATABASE_URL", str(db_target))
    store, *_ = seeded
    code = main(["report", "Main <street>", "--day", "2026-11-27", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "entries 60, exits 30" in out
    assert (tmp_path / f"store{store.id}" / "daily-2026-11-27-counts.csv").exists()
    monkeypatch.setenv("ZVPANEL_REPORTS_DIR", str(tmp_path / "env"))
    assert main(["report", str(store.id), "--day", "2026-11-27", "--week"]) == 0
    assert (tmp_path / "env" / f"store{store.id}" / "weekly-2026-11-23.html").exists()
    assert main(["report", "Nowhere", "--day", "2026-11-27"]) == 2
    assert "no store with id or name 'Nowhere'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "1", "--day", "27/11/2026"])
    assert "'27/11/2026' is not a date like 2026-11-28" in capsys.readouterr().err
    assert main(["report", "1", "--day", "2026-11-27", "--mail"]) == 2
    assert "--mail needs ZVPANEL_SMTP_HOST" in capsys.readouterr().err


class Inbox:
    """What a real aiosmtpd server on 127.0.0.1 received."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], email.message.EmailMessage]] = []
        self.got = threading.Event()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        self.got.set()
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def smtp_settings(port: int, tmp_path):
    return load_settings(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        smtp_from="counter@shop.example",
        smtp_to="manager@shop.example, owner@shop.example",
        reports_dir=tmp_path / "reports",
        dev_mode=True,
    )


def test_report_mail_reaches_a_real_smtp_server(db, seeded, tmp_path, smtp):
    inbox, port = smtp
    store, *_ = seeded
    period = ReportPeriod.day(DAY)
    files = write_store_report(db, store.id, period, tmp_path)
    mail_report(smtp_settings(port, tmp_path), store, period, files)
    [(sender, recipients, message)] = inbox.messages
    assert sender == "counter@shop.example"
    assert recipients == ["manager@shop.example", "owner@shop.example"]
    assert message["Subject"] == "zvpanel Main <street>: daily report for Friday 2026-11-27"
    # Text parts travel with CRLF line ends (SMTP); the content is otherwise the file's.
    attached = {
        part.get_filename(): part.get_content().replace("\r\n", "\n")
        for part in message.iter_attachments()
    }
    assert set(attached) == {p.name for p in files.paths}
    assert attached[files.counts_csv.name] == files.counts_csv.read_text()
    assert attached[files.html.name].rstrip() == files.html.read_text().rstrip()
    assert "Entries 60, exits 30" in message.get_body(("plain",)).get_content()


def test_schedule_writes_each_period_once_across_processes(db, db_target, seeded, tmp_path, smtp):
    """Two dashboards (two Database objects) run the job at the same moment: each finished
    day and week is written and mailed once; a failed report is tried again."""
    inbox, port = smtp
    store, *_ = seeded
    settings = smtp_settings(port, tmp_path)
    now = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)  # Saturday: Friday is over
    other = Database(db_target)
    try:
        first = ReportJob(db, settings).run_once(now)
        second = ReportJob(other, settings).run_once(now)
    finally:
        other.close()
    assert [f.html.name for f in first] == ["daily-2026-11-27.html", "weekly-2026-11-16.html"]
    assert second == []
    assert len(inbox.messages) == 2
    assert (first[0].entries, first[0].exits) == (60, 30)

    # Monday 00:30 local: Sunday's report is not due yet (the delay), last week's is.
    monday = datetime(2026, 11, 30, 0, 30, tzinfo=PARIS)
    due = ReportJob(db, settings).run_once(monday)
    assert [f.html.name for f in due] == ["daily-2026-11-28.html"]
    later = ReportJob(db, settings).run_once(monday + timedelta(hours=1))
    assert [f.html.name for f in later] == ["daily-2026-11-29.html", "weekly-2026-11-23.html"]


def test_a_failed_report_is_tried_again(db, seeded, tmp_path):
    store, *_ = seeded
    settings = load_settings(
        smtp_host="127.0.0.1",
        smtp_port=free_port(),  # nobody listens there
        smtp_security="none",
        smtp_from="counter@shop.example",
        smtp_to="manager@shop.example",
        reports_dir=tmp_path / "reports",
        dev_mode=True,
    )
    now = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)
    with pytest.raises(OSError):
        ReportJob(db, settings).run_once(now)
    assert db.claim_report(store.id, "day", DAY)  # the claim was given back


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_report_period_names():
    assert ReportPeriod.day(DAY).name == "daily-2026-11-27"
    assert ReportPeriod.week_of(date(2026, 11, 29)).first == date(2026, 11, 23)


@pytest.mark.ui
def test_report_renders_in_a_browser_without_network(db, seeded, tmp_path, render_offline):
    store, *_ = seeded
    files = write_store_report(db, store.id, ReportPeriod.day(DAY), tmp_path)
    shown = render_offline(files.html, viewport={"width": 1200, "height": 1400})
    assert shown.heading == "Main <street>: daily report for Friday 2026-11-27"
    assert shown.figures == 3 and shown.canvases >= shown.figures  # timeline, occupancy, cameras
    assert shown.errors == [] and shown.remote == []


def test_a_dashboard_process_writes_the_due_reports(tmp_path, monkeypatch):
    """App.start_reports with ZVPANEL_REPORTS_DIR: the job writes yesterday's and last
    week's reports of the store at once, and App.stop ends it."""
    import time

    from zvpanel.app import App
    from zvpanel.store_report import due_periods

    for name in ("ZVPANEL_DB_PATH", "ZVPANEL_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(
        db_path=tmp_path / "zvpanel.db", reports_dir=tmp_path / "reports", dev_mode=True
    )
    app = App(settings)
    try:
        app.start_database()
        app.start_bootstrap()
        [store] = app.db.list_stores()
        app.start_reports()
        periods = due_periods(store, datetime.now(timezone.utc))
        expected = [tmp_path / "reports" / f"store{store.id}" / f"{p.name}.html" for p in periods]
        deadline = time.monotonic() + 120
        while not all(path.exists() for path in expected):
            assert time.monotonic() < deadline, list((tmp_path / "reports").rglob("*"))
            time.sleep(0.2)
    finally:
        app.stop()
    assert app.reports is None
