"""The review page in a real browser (Debian's Chromium, Playwright) against the README's
real ``panel serve`` counting the demo camera with the real model: log in, see the crops
of real crossings, mark one wrong, see the line's reviewed precision change."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

import pytest
from serving import login, panel_server

from zvpanel.storage.database import Database

pytestmark = [pytest.mark.ui, pytest.mark.model]

#: Waits for something the page must show (milliseconds).
PAGE_TIMEOUT_MS = 60_000
#: How long the demo camera may take to count a crossing (and store its crop).
CROSSING_WAIT_S = 180
REPO_ROOT = Path(__file__).resolve().parent.parent


def wait_for_crop(db_path: Path) -> tuple[str, str]:
    """Wait until a crossing with a crop is stored; its uid and its store's local date."""
    deadline = time.monotonic() + CROSSING_WAIT_S
    while time.monotonic() < deadline:
        db = Database(db_path)
        try:
            for event in db.events():
                if db.event_crop(event.uid) is not None:
                    store = db.get_store(event.store_id)
                    return event.uid, datetime.now(store.tz).date().isoformat()
        finally:
            db.close()
        time.sleep(1.0)
    raise AssertionError(f"no crossing with a crop in {CROSSING_WAIT_S} s")


def test_review_a_crossing_in_the_browser(browser, tmp_path: Path, model_path: str):
    with panel_server(tmp_path, model_path) as server:
        _, today = wait_for_crop(server.db)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        login(page, server.url)
        page.goto(server.url + "/review")

        crops = page.locator(".zv-crop img")
        crops.first.wait_for()
        width = crops.first.evaluate("img => img.naturalWidth")
        assert 16 <= width <= 160  # a decoded JPEG of at most ZVPANEL_CROPS_SIZE
        row = page.locator(f"#zv-day-{today}")
        assert row.locator(".zv-precision").inner_text() == "100.0%"
        assert row.locator(".zv-wrong").inner_text() == "0"

        page.locator(".zv-mark-wrong button").first.click()
        page.locator(".zv-verdict", has_text="wrong").first.wait_for()
        deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
        while row.locator(".zv-wrong").inner_text() != "1":
            assert time.monotonic() < deadline, "the verdict never reached the table"
            time.sleep(0.2)
        raw = int(row.locator(".zv-raw").inner_text())
        shown = row.locator(".zv-precision").inner_text()
        # Counting goes on: the table may have been drawn with more crossings since.
        assert shown != "100.0%" and float(shown.rstrip("%")) >= 100 * (1 - 1 / raw) - 0.05
        screenshots = Path(
            os.environ.get("ZVPANEL_SCREENSHOT_DIR") or REPO_ROOT / "artifacts" / "screenshots"
        )
        screenshots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshots / "review.png"), full_page=True)
        context.close()

        db = Database(server.db)
        try:
            (review,) = db.reviews()
            assert review.verdict == "wrong" and review.reviewer == "admin"
            assert any(e.uid == review.event_uid for e in db.events())  # the event stays
        finally:
            db.close()
