"""``zvpanel report STORE --day D``: a store's daily (or weekly) report, on demand."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from ..config import load_settings
from ..errors import ConfigError
from ..storage import Database
from .alerts import find_store

__all__ = ["register"]

#: Where reports go without --out or ZVPANEL_REPORTS_DIR.
DEFAULT_FOLDER = Path("reports")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write a store's daily or weekly report (HTML with charts, plus CSV)",
        description=(
            "Writes STORE's report for the day D (or, with --week, the Monday-to-Sunday week "
            "holding D) into --out (default ZVPANEL_REPORTS_DIR, else ./reports), under "
            "store<ID>/. With --mail it is also sent to ZVPANEL_SMTP_TO."
        ),
    )
    p.add_argument("store", metavar="STORE", help="store id or name")
    p.add_argument("--day", required=True, type=_day, metavar="YYYY-MM-DD", help="local day")
    p.add_argument("--week", action="store_true", help="the week holding --day instead")
    p.add_argument("--out", type=Path, default=None, help="folder to write into")
    p.add_argument("--mail", action="store_true", help="also mail it (ZVPANEL_SMTP_*)")
    p.set_defaults(func=_report)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-28") from None


def _report(args: argparse.Namespace) -> int:
    from ..store_report import ReportPeriod, mail_report, write_store_report

    settings = load_settings()
    if args.mail and settings.smtp_host is None:
        raise ConfigError("--mail needs ZVPANEL_SMTP_HOST, ZVPANEL_SMTP_FROM and ZVPANEL_SMTP_TO")
    folder = args.out or (
        settings.resolve(settings.reports_dir) if settings.reports_dir else DEFAULT_FOLDER
    )
    period = ReportPeriod.week_of(args.day) if args.week else ReportPeriod.day(args.day)
    with Database(settings.database) as db:
        store = find_store(db, args.store)
        files = write_store_report(db, store.id, period, folder, settings)
    if args.mail:
        mail_report(settings, store, period, files)
    print(
        f"{period.title(store)}: entries {files.entries}, exits {files.exits}, most inside "
        f"{files.peak_occupancy}"
    )
    for path in files.paths:
        print(f"  {path}")
    return 0
