"""Component tests of the dashboards: each view built with a real App on a tmp database.

The App runs its database, bootstrap (admin/admin, demo store + camera on data/vtest.avi)
and result hub; the model is loaded only by the tests marked ``model``. Views are
rendered with ``get_root`` into a Bokeh ``Document``; what a browser would do (moving a
drawn line, typing a value, pressing a button) is done through the same Bokeh sources and
Panel widgets the browser changes.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import holoviews as hv
import jsonschema
import numpy as np
import pandas as pd
import panel as pn
import pytest
from bokeh.document import Document
from drawing_loop import settle, with_event_loop

from zvpanel.app import App
from zvpanel.calibration import MAX_DETECTION_FPS, MIN_DETECTION_FPS, Calibration
from zvpanel.config import load_settings
from zvpanel.detections import Detections
from zvpanel.engine.result import CameraStatus, FrameResult
from zvpanel.sources import iter_frames
from zvpanel.sources.frame import Frame
from zvpanel.storage.database import EventRow, utc_text
from zvpanel.ui.admin import AdminView, admin_page
from zvpanel.ui.analytics import AnalyticsView, analytics_page
from zvpanel.ui.calibration_editor import CalibrationEditor, calibration_page
from zvpanel.ui.calibration_model import CalibrationDrawing, CalibrationModel
from zvpanel.ui.live import LiveView, live_page, status_html
from zvpanel.ui.session import is_admin
from zvpanel.ui.streaming_image import StreamingImage
from zvpanel.web.auth import SESSION_COOKIE, issue_token, verify_token
from zvpanel.web.auth_module import _safe_next, cookie_claims
from zvpanel.web.feed import load_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def any_app(request, settings, monkeypatch):
    """Like ``app``, once per storage backend (PostgreSQL: the session's server)."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").new_database()
        monkeypatch.setenv("ZVPANEL_DATABASE_URL", url)
        settings = load_settings()
    app = App(settings)
    app.start_database()
    app.start_bootstrap()
    yield app
    app.stop()


@pytest.fixture
def admin(app):
    return verify_token(app.settings, issue_token(app.settings, "admin", admin=True))


@pytest.fixture
def viewer(app):
    app.db.create_user("vera", "viewer-password")
    return verify_token(app.settings, issue_token(app.settings, "vera", admin=False))


def render(viewable) -> object:
    """Render like a server session would; returns the Bokeh root model."""
    return viewable.get_root(Document())


def demo_camera(app):
    return next(c for c in app.db.list_cameras() if c.name == "Demo camera")


# ---------------------------------------------------------------------- session / auth
def test_session_cookie_claims(app, admin):
    token = issue_token(app.settings, "admin", admin=True)
    claims = cookie_claims({SESSION_COOKIE: token}, app.settings)
    assert claims is not None and claims.username == "admin" and claims.admin
    assert cookie_claims({}, app.settings) is None
    assert cookie_claims({SESSION_COOKIE: token[:-3] + "xyz"}, app.settings) is None
    expired = issue_token(app.settings, "admin", lifetime=timedelta(seconds=-60))
    assert cookie_claims({SESSION_COOKIE: expired}, app.settings) is None


def short_session(app, seconds: int):
    """Claims of an admin login whose token expires in about ``seconds`` (whole seconds)."""
    token = issue_token(app.settings, "admin", admin=True, lifetime=timedelta(seconds=seconds))
    return verify_token(app.settings, token)


def seconds_left(claims) -> float:
    return (claims.expires_at - datetime.now(timezone.utc)).total_seconds()


def wait_for_expiry(claims) -> None:
    time.sleep(max(0.0, seconds_left(claims)) + 0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str) -> int:
    """Status of a GET (the Panel server builds a session's page on the page's GET)."""
    with urllib.request.urlopen(url, timeout=20) as response:
        return response.status


def wait_for_server(url: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            http_get(url)
            return
        except OSError:  # refused while the server starts
            assert time.monotonic() < deadline, f"{url} did not answer"
            time.sleep(0.1)


def test_admin_actions_refused_once_the_session_expired(app):
    claims = short_session(app, 2)
    view = AdminView(app, claims)
    render(view.__panel__())
    view.store_name.value, view.store_tz.value = "Before expiry", "UTC"
    assert view.add_store_action() is True

    wait_for_expiry(claims)  # the page still holds the claims it was built with
    assert not is_admin(app, claims)
    view.store_name.value = "After expiry"
    assert view.add_store_action() is False
    assert view.status.alert_type == "danger"
    assert "session expired" in view.status.object and "log in again" in view.status.object
    assert "After expiry" not in [s.name for s in app.db.list_stores()]


def test_served_page_ends_when_the_session_expires(app):
    """A page served by a real Panel server hides its data and sends the browser to log in."""
    built = {}

    def build():
        built["page"] = admin_page(app, built["claims"])
        built["location"] = pn.state.location
        return built["page"]

    port = free_port()
    server = pn.serve(
        {"admin": build}, port=port, address="127.0.0.1", threaded=True, show=False, liveness=True
    )
    try:
        wait_for_server(f"http://127.0.0.1:{port}/liveness")
        built["claims"] = short_session(app, 6)  # time to build the page on a busy machine
        assert http_get(f"http://127.0.0.1:{port}/admin") == 200
        page, location = built["page"], built["location"]
        assert not isinstance(page[-1], pn.pane.Alert) and seconds_left(built["claims"]) > 0

        wait_for_expiry(built["claims"])
        deadline = time.monotonic() + 10
        # The server's thread ends the page; the browser is sent away last (reload).
        while not location.reload and time.monotonic() < deadline:
            time.sleep(0.05)
        assert isinstance(page[-1], pn.pane.Alert), "the page still shows data after expiry"
        assert "session has expired" in page[-1].object
        assert "/login?next=/admin&expired=1" in page[-1].object
        # The browser goes to the login page, which brings it back afterwards.
        assert (location.pathname, location.search) == ("/login", "?next=/admin&expired=1")
        assert location.reload is True
    finally:
        server.stop()
        server.join(10)


def test_login_redirect_only_to_this_site():
    assert _safe_next("/calibrate") == "/calibrate"
    assert _safe_next("https://evil.example/") == "/"
    assert _safe_next("//evil.example/x") == "/"
    assert _safe_next(None) == "/"


def test_pages_without_login_show_no_data(app):
    for build in (live_page, calibration_page, analytics_page, admin_page):
        column = build(app, None)
        render(column)
        text = str(column.objects[-1].object)
        assert "Log in" in text


# ---------------------------------------------------------------------- live
def test_live_view_tiles_status_and_counts(app, admin):
    camera = demo_camera(app)
    view = LiveView(app)
    render(view.__panel__())
    assert [t.camera_id for t in view.tiles] == [camera.id]
    tile = view.tiles[0]
    assert isinstance(tile.image, StreamingImage)
    assert tile.image.src == f"/ws/video/{camera.id}"
    assert "not running" in tile.status.object

    app.hub.set_status(
        CameraStatus(
            camera.id,
            "reconnecting",
            last_error="connection refused by 10.0.0.9",
            target_fps=5.0,
            actual_fps=1.2,
            hardware_limited=True,
        )
    )
    calibration = app.db.get_calibration(camera.id)
    frame = Frame(np.zeros((576, 768, 3), np.uint8), 7, 0.7, datetime.now(timezone.utc))
    status = CameraStatus(camera.id, "online", target_fps=5.0, actual_fps=4.9)
    app.hub.publish(
        FrameResult(
            camera.id,
            frame,
            Detections.empty(),
            (),
            {"door": {"entries": 3, "exits": 2}},
            calibration,
            status,
        )
    )
    view.refresh()
    html = tile.status.object
    assert 'data-state="online"' in html
    assert '<b class="zv-entries">3</b>' in html and '<b class="zv-exits">2</b>' in html
    assert "4.9" in html and "5.0" in html

    offline = status_html(
        CameraStatus(camera.id, "offline", last_error="file not found: /x.avi", target_fps=5.0),
        None,
    )
    assert 'data-state="offline"' in offline and "file not found: /x.avi" in offline
    limited = status_html(
        CameraStatus(camera.id, "online", target_fps=10.0, actual_fps=3.0, hardware_limited=True),
        {},
    )
    assert "hardware limited" in limited


def test_live_grid_of_several_cameras(app, admin, video_path):
    store = app.db.list_stores()[0]
    second = app.db.create_camera(store.id, "Back door", str(video_path))
    view = LiveView(app, columns=2)
    render(view.__panel__())
    assert sorted(t.camera_id for t in view.tiles) == [demo_camera(app).id, second.id]
    assert view.grid.ncols == 2
    # A layout change keeps the tiles, so their video streams stay connected.
    tiles = {t.camera_id: t for t in view.tiles}
    view.columns = 1
    assert view.grid.ncols == 1
    assert all(tiles[t.camera_id] is t for t in view.tiles)
    view.picker.value = [second.id]
    assert [t.camera_id for t in view.tiles] == [second.id]
    assert view.tiles[0] is tiles[second.id]  # still picked: same tile, same stream
    render(live_page(app, admin))


# ---------------------------------------------------------------------- calibration
# The editor's drawing is a HoloViews plot: the browser's mouse reaches the model through
# its streams, so the tests send the streams the data dicts a browser would
# (PolyDraw/PolyEdit: xs/ys per shape; BoxEdit: x0/y0/x1/y1 per box).
def _lines(editor) -> list[dict]:
    return editor.model.lines.to_dict("records")


def _drawn_paths(editor) -> list[list[tuple[float, float]]]:
    """The line paths the plot shows now (the DynamicMap's current element)."""
    paths = editor.drawing.lines.last.split(datatype="array", dimensions=["x", "y"])
    return [[tuple(p) for p in path] for path in paths]


def _arrow_dx(editor) -> float:
    arrow = editor.model.arrows().iloc[0]
    return arrow["x1"] - arrow["x0"]


@with_event_loop
async def test_calibration_editor_loads_snapshot_and_saved_calibration(app, admin):
    camera = demo_camera(app)
    editor = CalibrationEditor(app, admin, camera.id)
    render(editor.__panel__())
    assert editor.model.frame_size == (768, 576)  # a real frame of data/vtest.avi
    assert editor.model.image.std() > 10  # a picture, not the blank placeholder
    saved = app.db.get_calibration(camera.id)
    assert _lines(editor) == [line.model_dump() for line in saved.lines]
    assert _drawn_paths(editor) == [[(saved.lines[0].x1, 0.0), (saved.lines[0].x2, 576.0)]]
    assert editor.lines_table.value.equals(editor.model.lines)
    assert editor.model.detection_fps == saved.detection_fps
    assert len(editor.model.arrows()) == 1
    assert editor.status.alert_type == "success"
    assert not editor.save_button.disabled


@with_event_loop
async def test_drawing_and_tables_stay_in_sync(app, admin):
    editor = CalibrationEditor(app, admin, demo_camera(app).id)
    render(editor.__panel__())
    # The browser's PolyDraw tool moved the line: the model, the table and the plot follow.
    editor.drawing.line_draw.event(data={"xs": [[100.0, 120.0]], "ys": [[50.0, 500.0]]})
    assert _lines(editor) == [
        {"id": "door", "x1": 100.0, "y1": 50.0, "x2": 120.0, "y2": 500.0,
         "orientation": "leftToRight"}
    ]  # fmt: skip
    assert editor.lines_table.value["x1"].tolist() == [100.0]
    assert _drawn_paths(editor) == [[(100.0, 50.0), (120.0, 500.0)]]
    # The plot's read-back of what it drew changes nothing (no ping-pong).
    before = editor.model.lines
    await settle()
    assert editor.model.lines is before
    # Typing into the table moves the drawn line; the orientation flips the entry arrow.
    arrow_before = _arrow_dx(editor)
    edited = editor.lines_table.value.copy()
    edited.loc[0, ["x2", "orientation"]] = [300.0, "rightToLeft"]
    editor.lines_table.value = edited
    assert _drawn_paths(editor) == [[(100.0, 50.0), (300.0, 500.0)]]
    assert arrow_before > 0 > _arrow_dx(editor)
    # The browser's BoxEdit tool drew the ROI; the inputs follow...
    editor.drawing.roi_edit.event(data={"x0": [50.0], "y0": [580.0], "x1": [750.0], "y1": [20.0]})
    assert [w.value for w in editor.roi_inputs] == [50.0, 20.0, 750.0, 580.0]
    assert editor.use_roi.value
    # ...and a typed ROI value moves the box.
    editor.roi_inputs[0].value = 60.0
    assert editor.drawing.roi.last.data[["x0", "x1"]].values.tolist() == [[60.0, 750.0]]
    # PolyDraw drew a second line (with a stray middle vertex): it gets a name and the
    # default orientation, and is first-to-last.
    editor.drawing.line_draw.event(
        data={"xs": [[100.0, 300.0], [200.0, 400.0, 600.0]], "ys": [[50.0, 500.0], [100.0] * 3]}
    )
    assert [(ln["id"], ln["orientation"]) for ln in _lines(editor)] == [
        ("door", "rightToLeft"),
        ("line-1", "leftToRight"),
    ]
    assert _lines(editor)[1]["x2"] == 600.0
    assert editor.lines_table.value["id"].tolist() == ["door", "line-1"]
    await settle()
    assert len(_lines(editor)) == 2
    # Deleting the first line (Backspace) sends the second alone: it keeps its own name.
    editor.drawing.line_draw.event(data={"xs": [[200.0, 600.0]], "ys": [[100.0, 100.0]]})
    assert [(ln["id"], ln["x1"]) for ln in _lines(editor)] == [("line-1", 200.0)]


@with_event_loop
async def test_zones_drawn_named_and_saved(app, admin):
    camera = demo_camera(app)
    editor = CalibrationEditor(app, admin, camera.id)
    render(editor.__panel__())
    square = {"xs": [[400.0, 600.0, 600.0, 400.0]], "ys": [[200.0, 200.0, 400.0, 400.0]]}
    editor.drawing.zone_draw.event(data=square)
    assert editor.model.zones["id"].tolist() == ["zone-1"]
    assert "1 zone(s)" in editor.status.object and editor.status.alert_type == "success"
    # Its name and queue flag are edited in the zones table; PolyEdit moves a corner.
    table = editor.zones_table.value.copy()
    table.loc[0, ["id", "queue"]] = ["till", True]
    editor.zones_table.value = table
    moved = {"xs": [[400.0, 650.0, 600.0, 400.0]], "ys": square["ys"]}
    editor.drawing.zone_edit.event(data=moved)
    assert editor.model.zones.to_dict("records") == [
        {"id": "till", "queue": True,
         "points": ((400.0, 200.0), (650.0, 200.0), (600.0, 400.0), (400.0, 400.0))}
    ]  # fmt: skip
    drawn = editor.drawing.zones.last.split(datatype="array", dimensions=["x", "y"])
    assert [tuple(p) for p in drawn[0]][:4] == list(editor.model.zones["points"][0])
    await settle()  # the plot's read-back (a closed polygon) leaves the zone as it is
    assert len(editor.model.zones["points"][0]) == 4
    assert editor.save() is True, editor.status.object
    (zone,) = app.db.get_calibration(camera.id).zones
    assert (zone.id, zone.queue, zone.points[1]) == ("till", True, (650.0, 200.0))


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda e: e.drawing.line_draw.event(data={"xs": [[100.0, 5000.0]], "ys": [[0, 500]]}),
            "outside the 768x576 frame",
        ),
        (
            lambda e: e.drawing.line_draw.event(data={"xs": [[100.0, 100.0]], "ys": [[50, 53]]}),
            "px long",
        ),
        (
            lambda e: e.drawing.roi_edit.event(
                data={"x0": [500.0], "y0": [0.0], "x1": [700.0], "y1": [576.0]}
            ),
            "is outside the roi",
        ),
        (
            lambda e: e.drawing.zone_draw.event(
                data={"xs": [[100.0, 105.0, 105.0]], "ys": [[100.0, 100.0, 105.0]]}
            ),
            "zone 'zone-1' has an area",
        ),
        (
            lambda e: e.drawing.zone_draw.event(
                data={"xs": [[100.0, 400.0, 400.0, 250.0, 100.0]],
                      "ys": [[100.0, 100.0, 300.0, 50.0, 300.0]]}
            ),
            "edges cross",
        ),
        (
            lambda e: e.drawing.zone_draw.event(
                data={"xs": [[100.0, 300.0, 300.0]], "ys": [[100.0, 100.0, 900.0]]}
            ),
            "vertex (300, 900) is outside the 768x576 frame",
        ),
    ],
    ids=["line-outside-frame", "short-line", "roi-without-line", "tiny-zone", "twisted-zone",
         "zone-outside-frame"],
)  # fmt: skip
@with_event_loop
async def test_validation_messages_while_drawing(app, admin, change, message):
    camera = demo_camera(app)
    before = app.db.get_calibration(camera.id)
    editor = CalibrationEditor(app, admin, camera.id)
    render(editor.__panel__())
    editor.drawing.roi_edit.event(data={"x0": [4.0], "y0": [0.0], "x1": [764.0], "y1": [576.0]})
    assert editor.status.alert_type == "success"
    change(editor)
    assert editor.status.alert_type == "danger"
    assert message in editor.status.object
    assert editor.save() is False
    assert app.db.get_calibration(camera.id) == before


def test_rate_out_of_bounds_is_refused_by_name(app, admin):
    editor = CalibrationEditor(app, admin, demo_camera(app).id)
    assert (editor.fps.start, editor.fps.end) == (MIN_DETECTION_FPS, MAX_DETECTION_FPS)
    with pytest.raises(ValueError, match="detection_fps"):
        editor.model.detection_fps = 100.0
    assert editor.model.detection_fps == app.db.get_calibration(demo_camera(app).id).detection_fps


@with_event_loop
async def test_badly_placed_line_gets_a_warning_and_can_still_be_saved(app, admin):
    camera = demo_camera(app)
    editor = CalibrationEditor(app, admin, camera.id)
    render(editor.__panel__())
    editor.use_roi.value = False
    # Along the bottom edge of the 768x576 frame: valid, but few people's feet get there.
    editor.drawing.line_draw.event(data={"xs": [[10.0, 700.0]], "ys": [[572.0, 572.0]]})
    assert editor.status.alert_type == "warning"
    assert "Check the placement" in editor.status.object and "edge" in editor.status.object
    assert [w.code for w in editor.model.warnings] == ["near_edge"]
    assert editor.save() is True
    assert app.db.get_calibration(camera.id).lines[0].y1 == 572.0


@with_event_loop
async def test_admin_saves_calibration(app, admin):
    camera = demo_camera(app)
    editor = CalibrationEditor(app, admin, camera.id)
    render(editor.__panel__())
    editor.drawing.line_draw.event(data={"xs": [[200.0, 210.0]], "ys": [[20.0, 560.0]]})
    table = editor.lines_table.value.copy()
    table.loc[0, "orientation"] = "rightToLeft"
    editor.lines_table.value = table
    editor.fps.value = 4.0
    editor.use_roi.value = False
    assert editor.save() is True
    saved = app.db.get_calibration(camera.id)
    assert saved.roi is None and saved.detection_fps == 4.0
    assert saved.lines[0].model_dump() == {
        "id": "door",
        "x1": 200.0,
        "y1": 20.0,
        "x2": 210.0,
        "y2": 560.0,
        "orientation": "rightToLeft",
    }
    assert "Saved" in editor.status.object


@with_event_loop
async def test_viewer_cannot_save_calibration(app, viewer):
    camera = demo_camera(app)
    before = app.db.get_calibration(camera.id)
    editor = CalibrationEditor(app, viewer, camera.id)
    render(editor.__panel__())
    assert editor.save_button.disabled
    editor.drawing.line_draw.event(data={"xs": [[200.0, 210.0]], "ys": [[20.0, 560.0]]})
    assert editor.save() is False
    assert "only admins" in editor.status.object
    assert app.db.get_calibration(camera.id) == before


def test_demoted_admin_cannot_save(app, admin):
    app.db.create_user("other", "other-password", is_admin=True)
    app.db.set_admin("admin", False)  # the token still says admin: the database wins
    editor = CalibrationEditor(app, admin, demo_camera(app).id)
    assert editor.save() is False
    assert "only admins" in editor.status.object


@with_event_loop
async def test_calibration_model_and_drawing_without_a_server(video_path):
    """What a notebook does: a model on a local frame, drawn and edited, no app at all."""
    image = next(iter_frames(str(video_path), max_frames=1)).image
    model = CalibrationModel()
    model.load(image, Calibration.single_line(300, 100, 300, 500))
    drawing = CalibrationDrawing(model=model)
    figure = hv.render(drawing.overlay, backend="bokeh")
    tools = sorted(type(tool).__name__ for tool in figure.tools)
    assert [t for t in tools if "Edit" in t or "Draw" in t] == [
        "BoxEditTool", "PolyDrawTool", "PolyDrawTool", "PolyEditTool"
    ]  # fmt: skip
    (vertices,) = [tool for tool in figure.tools if type(tool).__name__ == "PolyEditTool"]
    assert len(vertices.renderers) == 2  # one vertex tool moves line ends and zone corners
    drawing.line_draw.event(data={"xs": [[300.0, 500.0]], "ys": [[100.0, 500.0]]})
    drawing.zone_draw.event(data={"xs": [[0.0, 200.0, 200.0]], "ys": [[0.0, 0.0, 200.0]]})
    assert model.problem == "" and model.calibration.lines[0].x2 == 500.0
    assert model.calibration.zones[0].id == "zone-1"
    assert [w.code for w in model.warnings] == []
    drawing.line_draw.event(data={"xs": [[300.0, 300.0]], "ys": [[100.0, 104.0]]})
    assert model.calibration is None and "px long" in model.problem
    # A line being drawn is a point at first: no entry side, no arrow, no error.
    drawing.line_draw.event(data={"xs": [[300.0, 300.0]], "ys": [[100.0, 100.0]]})
    assert "px long" in model.problem and model.arrows().empty
    # The frame it shows is the snapshot, in image pixels (y down).
    rgb = drawing.overlay[()].get(0)
    assert rgb.bounds.lbrt() == (0, 0, 768, 576)
    assert figure.frame_height == 576  # at scale 1:1
    # A wide camera's snapshot: drawn anew at its own aspect ratio, not stretched.
    model.image = np.zeros((360, 1280, 3), dtype=np.uint8)
    assert drawing.pane.object is drawing.overlay
    assert hv.render(drawing.overlay, backend="bokeh").frame_height == 216
    assert drawing.overlay[()].get(0).bounds.lbrt() == (0, 0, 1280, 360)


@pytest.mark.model
@with_event_loop
async def test_preview_detects_people_with_unsaved_roi(app, admin):
    app.start_detector()
    camera = demo_camera(app)
    editor = CalibrationEditor(app, admin, camera.id)
    render(editor.__panel__())
    everywhere = editor.preview()
    assert everywhere and everywhere > 0
    boxes = editor.drawing.overlay[()].get(1)  # drawn over the snapshot
    assert len(boxes) == len(editor.model.preview) == everywhere
    confidences = editor.model.preview["confidence"].tolist()
    assert all(0 < c < 1 for c in confidences) and len(set(confidences)) > 1
    # A small unsaved ROI around the line: fewer people, all inside it.
    editor.drawing.roi_edit.event(data={"x0": [285.6], "y0": [0.0], "x1": [405.6], "y1": [576.0]})
    inside = editor.preview()
    assert inside is not None and inside < everywhere
    assert (editor.model.preview["x0"] >= 285.6 - 1).all()
    assert app.db.get_calibration(camera.id).roi is None  # nothing was saved


# ---------------------------------------------------------------------- analytics
def _events(app, camera, times_and_directions):
    rows = [
        EventRow(camera.store_id, camera.id, "door", i, d, utc_text(t), i, 0.8)
        for i, (t, d) in enumerate(times_and_directions)
    ]
    app.db.insert_events(rows)


def test_analytics_bins_occupancy_and_downloads(app, admin):
    camera = demo_camera(app)
    store = app.db.update_store(camera.store_id, timezone="Europe/Berlin")
    now = datetime.now(store.tz).replace(minute=30, second=0, microsecond=0)
    if now.hour < 2:  # keep all events on today's local date
        now = now.replace(hour=2)
    hour = timedelta(hours=1)
    _events(
        app,
        camera,
        [
            (now - hour, "entry"),
            (now - hour + timedelta(minutes=5), "entry"),
            (now - hour + timedelta(minutes=6), "exit"),
            (now, "entry"),
            (now + timedelta(minutes=1), "exit"),
            (now + timedelta(minutes=2), "exit"),
            (now + timedelta(minutes=3), "exit"),  # nobody left inside: occupancy stays 0
        ],
    )
    view = AnalyticsView(app)
    render(view.__panel__())
    assert 'id="zv-total-entries">3<' in view.summary.object
    assert 'id="zv-total-exits">4<' in view.summary.object
    binned = view.binned()
    assert binned["entries"].sum() == 3 and binned["exits"].sum() == 4
    assert str(binned.index.tz) == "Europe/Berlin" and len(binned) == 2
    assert view.timeline.object is not None and view.camera_chart.object is not None

    view.bin = "D"
    assert len(view.binned()) == 1

    events_csv = view._events_csv().getvalue().splitlines()
    assert events_csv[0].startswith("id,store_id,camera_id,camera_name,line_id")
    assert len(events_csv) == 1 + 7 and "+01:00" in events_csv[1] or "+02:00" in events_csv[1]
    counts_csv = view._binned_csv().getvalue().splitlines()
    # Coverage unknown (the demo camera never ran): empty, and nothing is shaded.
    assert counts_csv[0] == "timestamp,entries,exits,coverage"
    assert counts_csv[1].endswith(",3,4,")
    assert view.binned_download.filename.startswith("zvpanel-daily-")

    # Live update: nothing new -> no redraw; a new event -> totals change.
    assert view.refresh() is False
    _events(app, camera, [(now + timedelta(minutes=4), "entry")])
    assert view.refresh() is True
    assert 'id="zv-total-entries">4<' in view.summary.object

    # A date range without events.
    first = now.date() - timedelta(days=30)
    view.date_range.value = (first, first + timedelta(days=1))
    assert view.binned().empty and 'id="zv-total-entries">0<' in view.summary.object
    render(analytics_page(app, admin))


def _analytics_numbers(view: AnalyticsView) -> dict:
    numbers = {"summary": view.summary.object}
    for bin_size in ("h", "D"):
        view.bin = bin_size
        numbers[bin_size] = view._binned_csv().getvalue()
        bars = view.camera_chart.object
        numbers[f"cameras-{bin_size}"] = sorted(map(tuple, bars.data.itertuples(index=False)))
    return numbers


def test_analytics_of_old_days_add_up_after_retention(any_app, video_path):
    app = any_app
    camera = demo_camera(app)
    other = app.db.create_camera(camera.store_id, "Side door", str(video_path))
    store = app.db.update_store(camera.store_id, timezone="Europe/Berlin")
    first = datetime.now(store.tz).date() - timedelta(days=25)
    start = datetime.combine(first, datetime.min.time(), store.tz)
    for i, cam in enumerate((camera, other, camera)):
        _events(
            app,
            cam,
            [
                (start + timedelta(days=d, hours=h, minutes=7 * i + h), d_)
                for d in range(3)
                for h in range(0, 24, 5)
                for d_ in ("entry", "exit", "entry")[: 1 + (h + d + i) % 3]
            ],
        )
    view = AnalyticsView(app)
    view.date_range.value = (first, first + timedelta(days=4))
    before = _analytics_numbers(view)
    assert len(view._events_csv().getvalue().splitlines()) > 1

    assert app.db.apply_retention(10).events > 0
    view.update()
    assert _analytics_numbers(view) == before  # charts and binned CSV add up exactly
    assert len(view._events_csv().getvalue().splitlines()) == 1  # raw events are gone


def test_analytics_per_camera(app, admin, video_path):
    camera = demo_camera(app)
    other = app.db.create_camera(camera.store_id, "Side door", str(video_path))
    now = datetime.now(timezone.utc).replace(microsecond=0)
    _events(app, camera, [(now, "entry"), (now, "entry")])
    _events(app, other, [(now, "exit")])
    view = AnalyticsView(app)
    render(view.__panel__())
    bars = view.camera_chart.object
    rows = {(r[0], r[1]): r[2] for r in bars.data.itertuples(index=False)}
    assert rows[("Demo camera", "entry")] == 2 and rows[("Side door", "exit")] == 1
    view.camera_select.value = other.id
    assert 'id="zv-total-entries">0<' in view.summary.object


def test_analytics_store_switch_reads_the_events_once(app, admin):
    other = app.db.create_store("Second shop", "Asia/Tokyo")
    view = AnalyticsView(app)
    render(view.__panel__())
    # A camera and dates of one's own, which the store switch resets:
    view.camera_select.value = demo_camera(app).id
    first, last = view.date_range.value
    view.date_range.value = (first - timedelta(days=3), last)
    reads = []
    query = view.query
    view.query = lambda *a, **k: reads.append(1) or query(*a, **k)
    view.store_select.value = other.id
    assert len(reads) == 1  # resetting camera and dates does not re-read on its own
    view.camera_select.value = view.camera_select.value  # no change: no read
    view.bin = "D"
    assert len(reads) == 2


@pytest.mark.parametrize("bin_size, width", [("h", timedelta(hours=1)), ("D", timedelta(days=1))])
def test_analytics_single_bin_is_shown_whole(app, admin, bin_size, width):
    camera = demo_camera(app)
    store = app.db.get_store(camera.store_id)
    start = datetime.now(store.tz).replace(minute=10, second=0, microsecond=0)
    _events(
        app,
        camera,
        [
            (start, "entry"),
            (start + timedelta(minutes=20), "exit"),
            (start + timedelta(minutes=30), "entry"),
        ],
    )
    view = AnalyticsView(app, bin=bin_size)
    render(view.__panel__())
    binned = view.binned()
    assert len(binned) == 1
    first = binned.index[0].tz_localize(None)  # the chart shows local wall-clock times

    figure = hv.render(view.timeline.object)
    x_start, x_end = pd.Timestamp(figure.x_range.start), pd.Timestamp(figure.x_range.end)
    bars = [r for layer in view.timeline.object for r in layer.data.itertuples(index=False)]
    assert x_start < min(r.x0 for r in bars) and max(r.x1 for r in bars) < x_end
    # The whole bin, with at least half a bin of margin on each side.
    assert x_start <= first - width / 2
    assert x_end >= first + width + width / 2


# ---------------------------------------------------------------------- admin
def test_admin_manages_stores_cameras_users(app, admin, video_path, tmp_path: Path):
    view = AdminView(app, admin)
    render(view.__panel__())
    assert len(view.cameras_table.value) == 1

    view.store_name.value, view.store_tz.value = "Berlin Mitte", "Europe/Berlin"
    assert view.add_store_action() is True
    assert any(
        s.name == "Berlin Mitte" and s.timezone == "Europe/Berlin" for s in app.db.list_stores()
    )
    view.store_name.value, view.store_tz.value = "Nowhere", "Mars/Olympus"
    assert view.add_store_action() is False
    assert "Mars/Olympus" in view.status.object and view.status.alert_type == "danger"

    # A camera whose source cannot be opened is not added, and the message says why.
    store_id = next(s.id for s in app.db.list_stores() if s.name == "Berlin Mitte")
    view.camera_store.value = store_id
    view.camera_name.value = "Entrance"
    view.camera_source.value = str(tmp_path / "missing.avi")
    assert view.add_camera_action() is False
    assert "could not be opened" in view.status.object and "missing.avi" in view.status.object
    assert len(app.db.list_cameras(store_id)) == 0
    view.camera_source.value = str(video_path)
    assert view.add_camera_action() is True
    assert "768x576" in view.status.object
    camera = app.db.list_cameras(store_id)[0]
    assert camera.enabled

    row = list(view.cameras_table.value["id"]).index(camera.id)
    view.cameras_table.selection = [row]
    assert view.camera_name.value == "Entrance"
    assert view.toggle_camera_action() is True
    assert not app.db.get_camera(camera.id).enabled
    view.cameras_table.selection = [list(view.cameras_table.value["id"]).index(camera.id)]
    view.camera_name.value = "Main entrance"
    assert view.update_camera_action() is True
    assert app.db.get_camera(camera.id).name == "Main entrance"
    view.cameras_table.selection = [list(view.cameras_table.value["id"]).index(camera.id)]
    assert view.delete_camera_action() is True
    assert app.db.get_camera(camera.id).archived

    view.user_name.value, view.user_password.value = "sam", "sam-password-1"
    assert view.add_user_action() is True
    assert app.db.authenticate("sam", "sam-password-1") is not None
    view.users_table.selection = [list(view.users_table.value["username"]).index("sam")]
    assert view.toggle_admin_action() is True
    assert app.db.get_user("sam").is_admin
    view.users_table.selection = [list(view.users_table.value["username"]).index("sam")]
    view.user_password.value = "new-password-2"
    assert view.reset_password_action() is True
    assert app.db.authenticate("sam", "new-password-2") is not None
    assert app.db.authenticate("sam", "sam-password-1") is None
    view.user_name.value, view.user_password.value = "tiny", "short"
    assert view.add_user_action() is False and view.status.alert_type == "danger"


def test_viewer_sees_admin_read_only(app, viewer):
    view = AdminView(app, viewer)
    render(view.__panel__())
    assert view.add_store_button.disabled and view.add_user_button.disabled
    assert view.store_name.disabled
    assert len(view.users_table.value) == 2
    stores_before = len(app.db.list_stores())
    view.store_name.value = "Sneaky"
    assert view.add_store_action() is False  # the server checks, whatever the browser shows
    assert "only admins" in view.status.object
    assert len(app.db.list_stores()) == stores_before
    render(admin_page(app, viewer))


def test_readme_start_command_matches_browser_tests(repo_root):
    """The README's start command has exactly the flags the browser tests start it with."""
    from serving import START_FLAGS

    readme = (repo_root / "README.md").read_text()
    flags = " ".join(START_FLAGS)
    assert "panel serve apps/*.py" in readme and flags in readme, (
        f"README.md must start the server with: panel serve apps/*.py {flags} --port 5006"
    )


# ---------------------------------------------------------------------- MJPEG streaming pane
class _StreamServer:
    """The real MJPEG handler on a real Tornado server (own IOLoop thread) on 127.0.0.1."""

    def __init__(self, app) -> None:
        import asyncio
        import threading

        from tornado.httpserver import HTTPServer
        from tornado.ioloop import IOLoop
        from tornado.web import Application

        from zvpanel.web.auth_module import LoginHandler
        from zvpanel.web.mjpeg import mjpeg_route

        self.app = app
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(asyncio.new_event_loop())
            self.loop = IOLoop.current()
            route = mjpeg_route(lambda: app)
            self.stream_stats = route[2]["streams"].stats  # frames rendered
            web = Application([route, (r"/login", LoginHandler)])
            self.server = HTTPServer(web)
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(16)
            sock.setblocking(False)
            self.port = sock.getsockname()[1]
            self.server.add_sockets([sock])
            ready.set()
            self.loop.start()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)

    def stop(self) -> None:
        self.loop.add_callback(self.loop.stop)
        self.thread.join(10)


def _publish(app, camera_id: int, frames: list, calibration, start_index: int) -> None:
    for i, image in enumerate(frames):
        frame = Frame(image, start_index + i, 0.0, datetime.now(timezone.utc))
        status = CameraStatus(camera_id, "online", target_fps=5.0, actual_fps=5.0)
        app.hub.publish(
            FrameResult(camera_id, frame, Detections.empty(), (), {}, calibration, status)
        )


def _read_part(stream) -> dict:
    headers = {}
    while True:
        line = stream.readline().decode("latin-1").strip()
        if not line:
            if headers:
                break
            continue
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    jpeg = stream.read(int(headers["content-length"]))
    stream.readline()
    return {"index": int(headers["x-frame-index"]), "jpeg": jpeg}


#: Frames sent while one client stalls: far more than the socket buffers between them hold.
ROUNDS = 60


def test_login_page_says_why_it_was_opened(app):
    server = _StreamServer(app)
    try:
        for query, text in [("?expired=1", "session expired"), ("?logged_out=1", "logged out")]:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/login{query}") as r:
                assert text in r.read().decode()
    finally:
        server.stop()


def test_mjpeg_stream_auth_sharing_and_slow_clients(app, video_path):
    import http.client
    import time

    import cv2

    camera = demo_camera(app)
    calibration = app.db.get_calibration(camera.id)
    cap = cv2.VideoCapture(str(video_path))
    frames = [cap.read()[1] for _ in range(20)]
    cap.release()
    token = issue_token(app.settings, "admin", admin=True)
    server = _StreamServer(app)
    try:
        # Not logged in -> 401; unknown camera -> 404 naming it.
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", f"/stream/{camera.id}.mjpg")
        assert conn.getresponse().status == 401
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        ghost = issue_token(app.settings, "ghost")  # a user that does not exist (any more)
        conn.request(
            "GET", f"/stream/{camera.id}.mjpg", headers={"Authorization": f"Bearer {ghost}"}
        )
        response = conn.getresponse()
        assert (
            response.status == 401 and "no longer exists" in json.loads(response.read())["message"]
        )
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/stream/999.mjpg", headers={"Cookie": f"{SESSION_COOKIE}={token}"})
        response = conn.getresponse()
        assert response.status == 404
        error = json.loads(response.read())
        jsonschema.validate(error, load_schema("http_error"))
        assert error["error"] == "not_found" and "999" in error["message"]
        deleted = app.db.create_camera(camera.store_id, "Old door", str(video_path))
        app.db.delete_camera(deleted.id)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request(
            "GET", f"/stream/{deleted.id}.mjpg", headers={"Cookie": f"{SESSION_COOKIE}={token}"}
        )
        assert conn.getresponse().status == 404  # a deleted camera is not streamed

        # Nobody watches: no frames wanted, nothing encoded.
        assert not app.hub.frames_wanted(camera.id)
        _publish(app, camera.id, frames[:5], calibration, 0)
        assert server.stream_stats.rendered == 0

        # A slow client that never reads (tiny receive buffer) and a fast one.
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: tiny window
        slow.connect(("127.0.0.1", server.port))
        slow.sendall(
            f"GET /stream/{camera.id}.mjpg HTTP/1.1\r\nHost: x\r\n"
            f"Cookie: {SESSION_COOKIE}={token}\r\n\r\n".encode()
        )
        fast = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        fast.request(
            "GET", f"/stream/{camera.id}.mjpg", headers={"Authorization": f"Bearer {token}"}
        )
        response = fast.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type").startswith("multipart/x-mixed-replace")
        deadline = time.monotonic() + 10
        while not app.hub.frames_wanted(camera.id):
            assert time.monotonic() < deadline
            time.sleep(0.05)

        # The camera's newest result is shown at once, before the next one is published.
        assert _read_part(response.fp)["index"] == 4
        received = []
        published = 0
        for round_ in range(ROUNDS):  # one frame at a time, each read by the fast client
            _publish(app, camera.id, [frames[round_ % len(frames)]], calibration, 100 + round_)
            published += 1
            received.append(_read_part(response.fp))
        assert [p["index"] for p in received] == list(range(100, 100 + ROUNDS))
        image = cv2.imdecode(np.frombuffer(received[-1]["jpeg"], np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (576, 768, 3)
        # One encoding per frame, whatever the number of viewers.
        assert server.stream_stats.rendered <= published + 1

        # The slow client was never waited for; it gets a few buffered frames, not 30.
        slow.settimeout(3)
        data = b""
        try:
            while True:
                chunk = slow.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            pass
        parts = data.count(b"Content-Type: image/jpeg")
        assert 1 <= parts < published, f"the stalled client was sent {parts} of {published} frames"
        slow.close()
        fast.close()
        deadline = time.monotonic() + 10
        while app.hub.frames_wanted(camera.id):  # last viewer gone: encoding stops
            assert time.monotonic() < deadline, "frames still wanted after the viewers left"
            time.sleep(0.1)
    finally:
        server.stop()
