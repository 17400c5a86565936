"""Zones in a real browser: Debian's Chromium (Playwright) against a real ``panel serve``
(the README's start command) counting vtest.avi with a zone on the walkway, set while it
runs. The live page shows the zone's occupancy change and draws the zone over the video;
the analytics page lists the zone's stays. Screenshots: ``zones-*.png`` in
``ZVPANEL_SCREENSHOT_DIR`` (default ``artifacts/screenshots``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from serving import login, panel_server
from test_zone_counting import WALKWAY

from zvpanel.calibration import parse_calibration
from zvpanel.storage.database import Database

pytestmark = [pytest.mark.ui, pytest.mark.model]

REPO_ROOT = Path(__file__).resolve().parent.parent
VIEWPORT = {"width": 1400, "height": 1000}
#: Waits for something the page must show (seconds; 2 busy cores).
WAIT_S = 120


def screenshots() -> Path:
    folder = Path(
        os.environ.get("ZVPANEL_SCREENSHOT_DIR") or REPO_ROOT / "artifacts" / "screenshots"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def add_walkway(db_path: Path) -> int:
    """Give the demo camera the walkway zone (as the CLI would); its id."""
    db = Database(db_path)
    try:
        camera = next(c for c in db.list_cameras() if c.name == "Demo camera")
        current = db.get_calibration(camera.id)
        db.set_calibration(
            camera.id, parse_calibration(current.model_dump() | {"zones": [WALKWAY]})
        )
        return camera.id
    finally:
        db.close()


def stays(db_path: Path, camera_id: int) -> int:
    db = Database(db_path)
    try:
        return sum(e.kind == "leave" for e in db.zone_events(camera_id=camera_id))
    finally:
        db.close()


def violet(image: np.ndarray) -> np.ndarray:
    """Pixels of the zone colour (#c850c8) in a BGR screenshot."""
    b, g, r = (image[..., i].astype(int) for i in range(3))
    return (abs(r - 200) < 40) & (g < 120) & (abs(b - 200) < 40)


def test_live_page_shows_zone_occupancy_and_analytics_its_stays(browser, tmp_path, model_path):
    with panel_server(tmp_path, model_path) as server:
        camera_id = add_walkway(server.db)
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        page.set_default_timeout(WAIT_S * 1000)
        login(page, server.url)
        page.wait_for_url("**/live")

        zone = page.locator('.zv-zone[data-zone="walkway"] .zv-occupancy').first
        zone.wait_for()  # the engine applied the new calibration without a restart
        seen, deadline = set(), time.monotonic() + WAIT_S
        while len(seen) < 3:  # people walk in and out: the number moves
            assert time.monotonic() < deadline, f"occupancy stuck at {seen} for {WAIT_S}s"
            seen.add(int(zone.inner_text()))
            time.sleep(0.3)
        assert max(seen) > 0
        canvas = page.locator("canvas.zv-stream").first
        shot = cv2.imdecode(np.frombuffer(canvas.screenshot(), np.uint8), cv2.IMREAD_COLOR)
        # The zone is drawn over the video: its left edge at x = 100 of 768.
        x = round(shot.shape[1] * 100 / 768)
        assert violet(shot[:, x - 3 : x + 4]).any(axis=1).sum() > 5, "no zone over the video"
        page.screenshot(path=str(screenshots() / "zones-01-live.png"))

        deadline = time.monotonic() + WAIT_S
        while stays(server.db, camera_id) < 2:
            assert time.monotonic() < deadline, "no stay in the walkway stored"
            time.sleep(1.0)
        page.goto(server.url + "/analytics")
        row = page.locator('table.zv-zones tr[data-zone="walkway"]')
        row.wait_for()
        assert int(row.locator(".zv-stays").inner_text()) >= 2
        assert row.locator(".zv-median").inner_text().endswith(" s")
        # One camera: its zones' occupancy and dwell charts replace the note.
        page.locator("select").nth(1).select_option(label="Demo camera")
        page.get_by_text("Choose a camera to see its zones").wait_for(state="detached")
        time.sleep(2.0)  # let the charts draw for the screenshot
        page.screenshot(path=str(screenshots() / "zones-02-analytics.png"), full_page=True)
        context.close()
