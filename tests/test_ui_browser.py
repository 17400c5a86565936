"""Real-browser tests: Debian's Chromium (Playwright) against a real ``panel serve``.

The server is started with the README's start command (``serving.START_ARGS``), on a free
127.0.0.1 port, with a fresh database (demo store + camera on data/vtest.avi), the real
model and development mode (admin/admin). Screenshots go to ``ZVPANEL_SCREENSHOT_DIR``
(default ``artifacts/screenshots``); the folder is printed at the end of the run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from serving import Server, login, panel_server

from zvpanel.storage.database import Database

pytestmark = [pytest.mark.ui, pytest.mark.model]

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Waits for something the page must show (milliseconds).
PAGE_TIMEOUT_MS = 60_000
#: How long the analytics page may take to show an event the engine has just recorded.
EVENT_WAIT_S = 120
VIEWPORT = {"width": 1400, "height": 1000}
#: How long the calibration page may take to draw the line it loaded (seconds, 2 busy cores).
LINE_WAIT_S = 60
#: How long the mouse is held for Bokeh's "press" gesture (its threshold is 300 ms).
PRESS_S = 0.6


@pytest.fixture(scope="module")
def screenshot_dir(request) -> Iterator[Path]:
    folder = Path(
        os.environ.get("ZVPANEL_SCREENSHOT_DIR") or REPO_ROOT / "artifacts" / "screenshots"
    )
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("[0-9][0-9]-*.png"):  # this module's pictures of an earlier run
        old.unlink()
    yield folder
    shots = sorted(p.name for p in folder.glob("*.png"))
    line = f"browser screenshots ({len(shots)}) saved in {folder.resolve()}: {', '.join(shots)}"
    # Printed past pytest's output capture, so every run shows where the pictures are.
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n{line}")


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_path: str) -> Iterator[Server]:
    """A real ``panel serve`` with the README's flags; yields its base URL and database."""
    with panel_server(tmp_path_factory.mktemp("server"), model_path) as running:
        yield running


@pytest.fixture(scope="module")
def page(browser, server):
    """One logged-in admin tab shared by the page tests (like a person clicking through)."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    login(page, server["url"])
    page.wait_for_url("**/live")
    yield page
    context.close()


def _png(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def _db_calibration(server):
    db = Database(server["db"])
    try:
        camera = next(c for c in db.list_cameras() if c.name == "Demo camera")
        return db.get_calibration(camera.id)
    finally:
        db.close()


# ---------------------------------------------------------------------- tests
def test_pages_require_login_and_wrong_password_is_refused(browser, server, screenshot_dir):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    for path in ("/live", "/calibrate", "/analytics", "/admin"):
        page.goto(server["url"] + path)
        assert "/login" in page.url, f"{path} was served without a login"
    response = page.request.get(server["url"] + "/stream/1.mjpg")
    assert response.status == 401  # the video stream checks the session itself
    login(page, server["url"], "admin", "wrong-password")
    page.wait_for_selector("#login-error")
    assert "Wrong username or password" in page.inner_text("#login-error")
    page.screenshot(path=str(screenshot_dir / "01-login-wrong-password.png"))
    context.close()


def test_live_image_changes_over_time(page, server, screenshot_dir):
    page.goto(server["url"] + "/live")
    image = page.locator("canvas.zv-stream").first
    image.wait_for()
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    while image.get_attribute("data-frame") is None:  # set when a frame is painted
        assert time.monotonic() < deadline, "the live image never showed a frame"
        time.sleep(0.5)
    assert image.evaluate("canvas => [canvas.width, canvas.height]") == [768, 576]
    page.locator('[data-state="online"]').first.wait_for()
    first_frame = int(image.get_attribute("data-frame"))
    first = _png(image.screenshot())
    time.sleep(2.0)
    second = _png(image.screenshot(path=str(screenshot_dir / "02-live.png")))
    assert int(image.get_attribute("data-frame")) != first_frame
    assert first.shape == second.shape
    changed = np.mean(np.abs(first.astype(np.int16) - second.astype(np.int16)) > 10)
    assert changed > 0.005, f"only {changed:.2%} of the pixels changed in 2 s"
    # The overlay is drawn in the browser: the demo's counting line, red at x = 345.6 of 768.
    x = round(second.shape[1] * 345.6 / 768)
    band = second[:, x - 3 : x + 4].astype(int)  # BGR
    red = (band[..., 2] > 180) & (band[..., 1] < 80) & (band[..., 0] < 80)
    assert red.any(axis=1).mean() > 0.5, "the counting line is not drawn over the video"
    status = page.locator(".zv-status").first.inner_text()
    assert "Detection rate" in status and "Entries" in status
    page.screenshot(path=str(screenshot_dir / "03-live-page.png"))


def test_new_events_reach_the_analytics_page(page, server, screenshot_dir):
    page.goto(server["url"] + "/analytics")
    total = page.locator("#zv-total-entries")
    total.wait_for()
    exits = page.locator("#zv-total-exits")
    before = int(total.inner_text()) + int(exits.inner_text())
    deadline = time.monotonic() + EVENT_WAIT_S
    while int(total.inner_text()) + int(exits.inner_text()) <= before:
        assert time.monotonic() < deadline, f"no new event on the page in {EVENT_WAIT_S}s"
        time.sleep(1.0)
    db = Database(server["db"])
    try:
        recorded = sum(db.count_events().values())
    finally:
        db.close()
    assert recorded >= int(total.inner_text()) + int(exits.inner_text()) > before
    time.sleep(2.0)  # the charts follow the totals in the same update; let them draw
    page.screenshot(path=str(screenshot_dir / "04-analytics.png"), full_page=True)


def test_drag_counting_line_and_save(page, server, screenshot_dir):
    before = _db_calibration(server)
    page.goto(server["url"] + "/calibrate")
    page.get_by_text("Valid:").first.wait_for()
    ys, xs = _wait_for_line(page)
    page.screenshot(path=str(screenshot_dir / "05-calibration-before.png"))
    x, y = float(np.median(xs)), float(np.median(ys))
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(x + 8 * step, y, steps=2)
    page.mouse.up()
    # The drag reaches the server: the numeric inputs follow the drawing.
    deadline = time.monotonic() + 30
    while True:
        moved = _png(page.screenshot())
        mx = np.nonzero((moved[..., 2] > 200) & (moved[..., 0] > 200) & (moved[..., 1] < 80))[1]
        if len(mx) and np.median(mx) > x + 40:
            break
        assert time.monotonic() < deadline, "the line did not move"
        time.sleep(0.5)
    time.sleep(1.0)
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved and applied").wait_for()
    page.screenshot(path=str(screenshot_dir / "06-calibration-saved.png"))
    after = _db_calibration(server)
    shift = after.lines[0].x1 - before.lines[0].x1
    assert shift > 40, f"saved line moved by {shift:.1f} px"
    assert after.lines[0].x2 - before.lines[0].x2 == pytest.approx(shift, abs=1.0)
    assert after.lines[0].id == before.lines[0].id

    # The preview runs the model on the snapshot and draws what it finds.
    page.get_by_role("button", name="Preview detection").click()
    page.get_by_text("people detected").wait_for()
    assert "Preview:" in page.get_by_text("people detected").inner_text()
    time.sleep(1.0)
    page.screenshot(path=str(screenshot_dir / "07-calibration-preview.png"))


def _magenta(shot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the counting lines' colour (LINE_COLOUR) in a screenshot."""
    b, g, r = (shot[..., i].astype(int) for i in range(3))
    return np.nonzero((r > 200) & (b > 200) & (g < 80))


def _wait_for_text(page, text: str) -> None:
    page.get_by_text(text).first.wait_for()


def _wait_for_line(page) -> tuple[np.ndarray, np.ndarray]:
    """The counting lines' pixels once the plot shows them (it draws after the status)."""
    deadline = time.monotonic() + LINE_WAIT_S
    while True:
        ys, xs = _magenta(_png(page.screenshot()))
        if len(xs) > 100:
            time.sleep(1.0)  # and whatever the same update still draws
            return _magenta(_png(page.screenshot()))
        assert time.monotonic() < deadline, "the counting line is not drawn"
        time.sleep(0.5)


def test_draw_line_and_zone_by_mouse_and_save(page, server, screenshot_dir):
    """Draw a new counting line and a zone with the mouse; Save puts both in the database."""
    page.goto(server["url"] + "/calibrate")
    _wait_for_text(page, "Valid: 1 line(s)")
    before = _db_calibration(server)
    (line,) = before.lines
    ys, xs = _wait_for_line(page)
    # The drawing is at scale 1:1: the vertical line's pixels give the image's origin.
    left, top = float(np.median(xs)) - line.x1, float(ys.min()) - min(line.y1, line.y2)

    def at(x: float, y: float) -> tuple[float, float]:
        return left + x, top + y

    def press(x: float, y: float) -> None:
        """Bokeh's press (held longer than a tap) starts and ends a drawn shape."""
        page.mouse.move(*at(x, y), steps=3)
        page.mouse.down()
        time.sleep(PRESS_S)
        page.mouse.up()
        time.sleep(PRESS_S)  # so the next tap is not taken as a double tap

    def tap(x: float, y: float) -> None:
        page.mouse.move(*at(x, y), steps=3)
        page.mouse.click(*at(x, y))
        time.sleep(PRESS_S)

    page.locator('[title="Draw or move zones"]').first.click()
    press(500, 150)
    tap(700, 150)
    tap(700, 350)
    press(500, 350)
    _wait_for_text(page, "1 zone(s)")
    page.locator('[title="Draw or move counting lines"]').first.click()
    press(100, 450)
    press(300, 450)
    _wait_for_text(page, "Valid: 2 line(s), 1 zone(s)")
    time.sleep(1.0)
    page.screenshot(path=str(screenshot_dir / "08-calibration-zone-drawn.png"))
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved and applied").wait_for()
    after = _db_calibration(server)
    assert after.lines[0] == line
    drawn = after.lines[1]
    assert (drawn.id, drawn.orientation) == ("line-1", "leftToRight")
    assert [drawn.x1, drawn.y1, drawn.x2, drawn.y2] == pytest.approx([100, 450, 300, 450], abs=4)
    (zone,) = after.zones
    assert (zone.id, zone.queue) == ("zone-1", False)
    corners = [(500, 150), (700, 150), (700, 350), (500, 350)]
    assert len(zone.points) == 4
    for (x, y), (cx, cy) in zip(zone.points, corners, strict=True):
        assert (x, y) == (pytest.approx(cx, abs=4), pytest.approx(cy, abs=4))
    log = server.log_text()
    # No traceback through the drawing, no Bokeh model changed outside the document's lock.
    assert "calibration_model" not in log and "_pending_writes" not in log, log[-3000:]


def test_admin_page_lists_cameras(page, server, screenshot_dir):
    page.goto(server["url"] + "/admin")
    page.get_by_text("Demo camera").first.wait_for()
    page.get_by_role("button", name="Add camera").wait_for()
    page.screenshot(path=str(screenshot_dir / "08-admin.png"))


def test_logout(page, server, screenshot_dir):
    page.goto(server["url"] + "/live")
    page.locator("#logout").click()
    page.wait_for_url("**/login**")
    assert "You are logged out" in page.content()
    page.goto(server["url"] + "/analytics")
    assert "/login" in page.url
    page.screenshot(path=str(screenshot_dir / "09-logged-out.png"))
