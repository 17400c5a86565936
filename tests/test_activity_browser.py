"""Real browser: the analytics page of a real ``panel serve`` counting vtest.avi with the
real model shows the demo camera's heat map (over its snapshot) from the heat grid its
engine recorded; then, with the camera switched off, the page shades the hours it was
down and the overview flags the store."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from serving import login, panel_server

from zvpanel.storage import Database
from zvpanel.storage.coverage import heat_grid

pytestmark = [pytest.mark.ui, pytest.mark.model]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
#: Waits for something the page or the engine must do (generous: the machine is shared).
PAGE_TIMEOUT_MS = 60_000
RECORD_WAIT_S = 120
#: The engine writes its cameras' activity this often in this test (default 60 s).
FLUSH_SECONDS = "2"

#: The figures of the page whose title is given, and the glyph types each one draws.
FIGURE_GLYPHS = """(title) => {
    const found = [];
    const walk = (view) => {
        const model = view.model;
        if (model.type === "Figure" && model.title && model.title.text === title) {
            found.push(model.renderers.map((r) => (r.glyph ? r.glyph.type : r.type)));
        }
        for (const child of view.child_views || []) walk(child);
    };
    for (const view of Object.values(Bokeh.index)) walk(view);
    return found;
}"""


def _switch_off_demo_camera(db_path: Path) -> None:
    db = Database(db_path)
    try:
        camera = next(c for c in db.list_cameras() if c.name == "Demo camera")
        db.set_enabled(camera.id, False)
    finally:
        db.close()


def _last_status(db_path: Path) -> tuple[str, str | None]:
    db = Database(db_path)
    try:
        camera = next(c for c in db.list_cameras() if c.name == "Demo camera")
        last = db.status_changes(camera.id)[-1]
        return last.state, last.reason
    finally:
        db.close()


def _recorded_heat(db_path: Path) -> int:
    db = Database(db_path)
    try:
        camera = next(c for c in db.list_cameras() if c.name == "Demo camera")
        now = datetime.now(timezone.utc)
        return int(heat_grid(db, camera.id, now - timedelta(hours=2), now).sum())
    finally:
        db.close()


def test_analytics_page_shows_the_recorded_heat_map(browser, tmp_path: Path, model_path: str):
    env = {"ZVPANEL_ACTIVITY_FLUSH_SECONDS": FLUSH_SECONDS}
    with panel_server(tmp_path, model_path, env=env) as server:
        deadline = time.monotonic() + RECORD_WAIT_S
        while _recorded_heat(server.db) < 20:
            assert time.monotonic() < deadline, "the engine recorded no heat grid"
            time.sleep(1.0)
        context = browser.new_context(viewport={"width": 1400, "height": 1600})
        page = context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        try:
            login(page, server.url)
            page.wait_for_url("**/live")
            page.goto(server.url + "/analytics")
            page.locator("#zv-total-entries").wait_for()
            cameras = page.locator("select", has=page.locator("option", has_text="All cameras"))
            cameras.select_option(label="Demo camera")
            caption = page.locator("#zv-heat-visits")
            caption.wait_for()
            assert int(caption.get_attribute("data-visits")) >= 20
            assert int(caption.get_attribute("data-cells")) >= 5
            page.wait_for_function(f"() => ({FIGURE_GLYPHS})('Where people walk').length > 0")
            (glyphs,) = page.evaluate(FIGURE_GLYPHS, "Where people walk")
            # The snapshot (RGB image) and the heat grid over it (colour-mapped image).
            assert sorted(glyphs) == ["Image", "ImageRGBA"], glyphs
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "activity-heatmap.png"), full_page=True)

            # The camera switched off: once its "stopped" is recorded, the time since is
            # not covered, and the page says so (a redraw: the day bins).
            _switch_off_demo_camera(server.db)
            deadline = time.monotonic() + RECORD_WAIT_S
            while _last_status(server.db) != ("stopped", "disabled"):
                assert time.monotonic() < deadline, "the camera's stop was not recorded"
                time.sleep(1.0)
            # The downtime grows: redraw (switching bins) until it is judged.
            gaps = page.locator("#zv-coverage-gaps")
            for bins in ["By day", "By hour"] * 15:
                page.get_by_role("button", name=bins).click()
                time.sleep(2.0)
                if gaps.count():
                    break
            assert "partly covered" in gaps.inner_text()
            page.screenshot(path=str(SCREENSHOTS / "activity-camera-down.png"), full_page=True)

            # The overview flags the store, naming the camera.
            page.goto(server.url + "/overview")
            flag = page.locator(".zv-gaps").first
            flag.wait_for()
            assert int(flag.get_attribute("data-gap-hours")) >= 1
            assert "Demo camera" in flag.inner_text()
            page.screenshot(path=str(SCREENSHOTS / "activity-overview-gaps.png"), full_page=True)
        finally:
            context.close()
