"""The store overview in a real browser: Debian's Chromium against the README's real
``panel serve`` (``serving.START_ARGS``), on a database seeded with a store's events.

Logging in from the site's root lands on the overview, which shows the stores table
(names as text, a sparkline per store) and the chosen store's heat map; a viewer limited
to one store sees only that one. Screenshots go beside the other browser tests' ones.
"""

from __future__ import annotations

import os
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest
from serving import REPO_ROOT, panel_server

from zvpanel.storage import Database, EventRow, utc_text

pytestmark = [pytest.mark.ui, pytest.mark.model]

PAGE_TIMEOUT_MS = 60_000
VIEWPORT = {"width": 1400, "height": 1100}
VIDEO = REPO_ROOT / "data" / "vtest.avi"
STORE_NAME = "<b>Corner</b> shop"
ZONE = ZoneInfo("Europe/Paris")


def _seed(path: Path) -> None:
    """A store with 3 entries today and, on the same weekday of each of the 4 weeks
    before, 6 entries an hour before the local time of day (so all before "now")."""
    local_now = datetime.now(timezone.utc).astimezone(ZONE)
    today = local_now.date()
    just_now = max(datetime.combine(today, time.min, ZONE), local_now - timedelta(minutes=10))
    clock = (local_now - timedelta(hours=1)).time() if local_now.hour >= 1 else time.min
    times = [just_now] * 3
    for week in range(1, 5):
        times += [datetime.combine(today - timedelta(weeks=week), clock, ZONE)] * 6
    db = Database(path)
    try:
        store = db.create_store(STORE_NAME, "Europe/Paris")
        camera = db.create_camera(store.id, "Door", str(VIDEO))
        db.insert_events(
            EventRow(store.id, camera.id, "door", i, "entry", utc_text(t), i, 0.9)
            for i, t in enumerate(times)
        )
        db.create_user("boss", "admin-password", is_admin=True)  # no dev admin: users exist
        db.create_user("vera", "viewer-password")
        db.set_user_stores("vera", [store.id])
    finally:
        db.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_path: str):
    folder = tmp_path_factory.mktemp("overview")
    _seed(folder / "zvpanel.db")
    with panel_server(folder, model_path) as running:
        yield running


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = Path(
        os.environ.get("ZVPANEL_SCREENSHOT_DIR") or REPO_ROOT / "artifacts" / "screenshots"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _log_in_at_root(browser, url: str, username: str, password: str):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(url + "/")
    page.wait_for_url("**/login**")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login")
    page.wait_for_url(url + "/")  # panel serve --index overview: the root is the overview
    page.locator(".zv-overview-stores").wait_for()
    return context, page


def _store_cells(page) -> list[str]:
    cells = page.locator('.zv-overview-stores .tabulator-cell[tabulator-field="store"]')
    cells.first.wait_for()
    return cells.all_inner_texts()


def test_login_lands_on_the_overview_with_table_and_heat_map(browser, server, shots):
    context, page = _log_in_at_root(browser, server.url, "boss", "admin-password")
    assert STORE_NAME in _store_cells(page)  # the name as text, not as bold markup
    row = page.locator(".zv-overview-stores .tabulator-row", has_text=STORE_NAME)
    assert row.locator('[tabulator-field="today"]').inner_text() == "3"
    assert row.locator('[tabulator-field="last week"]').inner_text() == "6"
    assert row.locator('[tabulator-field="4-week mean"]').inner_text() == "6.0"
    assert row.locator("svg.zv-spark").count() == 1
    assert page.locator(".zv-overview-stores b").count() == 0
    row.locator('[tabulator-field="store"]').click()  # choose it for the heat map
    heat = page.locator(".zv-heat canvas").first
    heat.wait_for()
    page.wait_for_timeout(1000)  # let Bokeh paint the chosen store's cells
    pixels = cv2.imdecode(np.frombuffer(heat.screenshot(), np.uint8), cv2.IMREAD_COLOR)
    # The Blues colour map's darkest cells (the busy hour) are dark blue: B high, R low.
    dark_blue = (pixels[..., 0] > 80) & (pixels[..., 2] < 40)
    assert dark_blue.sum() > 50, "the heat map shows no busy hour"
    page.screenshot(path=str(shots / "overview-admin.png"), full_page=True)
    context.close()


def test_a_viewer_lands_on_an_overview_of_their_store_only(browser, server, shots):
    context, page = _log_in_at_root(browser, server.url, "vera", "viewer-password")
    assert _store_cells(page) == [STORE_NAME]  # not the demo store
    page.screenshot(path=str(shots / "overview-viewer.png"), full_page=True)
    context.close()
