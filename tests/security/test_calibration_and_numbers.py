"""Issue #10 items 2 and 8: a calibration is saved onto the camera it was drawn for, and
every number crossing a boundary is finite.

Item 2 runs the README's ``panel serve`` (``--num-threads 4``) with a real browser; item 8
goes through the real CLI (subprocess), the settings, the calibration JSON and the
database, a real feed server with real WebSocket clients, and its query strings.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote, urlencode

import cv2
import numpy as np
import param
import pytest
from bokeh.document import Document
from drawing_loop import settle, with_event_loop
from serving import Server, login, panel_server
from tornado.websocket import websocket_connect

from zvpanel.app import App
from zvpanel.calibration import Calibration, parse_calibration
from zvpanel.config import load_settings
from zvpanel.detections import Detections
from zvpanel.engine.result import CameraStatus, FrameResult
from zvpanel.errors import CalibrationError, ConfigError
from zvpanel.numbers import refuse_json_constant
from zvpanel.sources.capture import iter_frames
from zvpanel.sources.frame import Frame
from zvpanel.storage.database import Database
from zvpanel.ui.calibration_editor import CalibrationEditor
from zvpanel.ui.calibration_model import LINE_COLOUR
from zvpanel.web.auth import issue_token, verify_token
from zvpanel.web.jpeg import FrameEncoder
from zvpanel.web.routes import build_routes
from zvpanel.web.server import FeedServer
from zvpanel.web.ws_handlers import CLOSE_POLICY_VIOLATION, FeedRegistry

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Waits for something the page must show (milliseconds).
PAGE_TIMEOUT_MS = 60_000
#: How long the page may take to draw a picked camera's line (seconds, 2 busy cores).
DRAW_WAIT_S = 60
#: Guard against a hang: a socket read that gets nothing for this long fails the test.
READ_TIMEOUT_S = 60.0
SECOND_CAMERA = "Second camera"
#: A horizontal line across data/vtest.avi (768x576): unlike the demo camera's vertical one.
SECOND_CALIBRATION: Calibration = parse_calibration(
    {
        "roi": [20.0, 100.0, 748.0, 500.0],
        "lines": [
            {"id": "aisle", "x1": 80.0, "y1": 300.0, "x2": 680.0, "y2": 300.0},
        ],
        "detection_fps": 3.0,
    }
)


# ---------------------------------------------------------------------- item 2
def _line_shape(screenshot: bytes) -> str | None:
    """'vertical' or 'horizontal': how the LINE_COLOUR pixels on the page lie."""
    image = cv2.imdecode(np.frombuffer(screenshot, np.uint8), cv2.IMREAD_COLOR)
    red, green, blue = (int(LINE_COLOUR[i : i + 2], 16) for i in (1, 3, 5))
    colour = np.array([blue, green, red])
    close = np.abs(image.astype(int) - colour).max(axis=2) < 60
    ys, xs = np.nonzero(close)
    if len(xs) < 100:
        return None
    width, height = np.ptp(xs), np.ptp(ys)
    if width > 3 * height:
        return "horizontal"
    if height > 3 * width:
        return "vertical"
    return None


def _option(page, camera_name: str) -> str:
    """The camera Select's option label of ``camera_name`` (it adds the camera id)."""
    options = page.locator("select").first.locator("option").all_inner_texts()
    return next(text for text in options if text.startswith(camera_name))


def _pick(page, camera_name: str, shape: str) -> None:
    """Pick a camera in the Select and wait until its line is the one drawn."""
    page.locator("select").first.select_option(label=_option(page, camera_name))
    deadline = time.monotonic() + DRAW_WAIT_S
    seen = None
    while seen != shape:
        assert time.monotonic() < deadline, f"{camera_name}: its {shape} line never shown"
        time.sleep(0.3)
        seen = _line_shape(page.screenshot())


def _updated_at(db_file: Path, camera_name: str):
    db = Database(db_file)
    try:
        camera = next(c for c in db.list_cameras() if c.name == camera_name)
        return db.calibration_updated_at(camera.id)
    finally:
        db.close()


def _calibrations(db_file: Path) -> dict[str, Calibration]:
    db = Database(db_file)
    try:
        return {camera.name: db.get_calibration(camera.id) for camera in db.list_cameras()}
    finally:
        db.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_path: str):
    with panel_server(tmp_path_factory.mktemp("calibrate"), model_path) as running:
        db = Database(running.db)
        try:
            store = db.list_stores()[0]
            camera = db.create_camera(store.id, SECOND_CAMERA, str(REPO_ROOT / "data/vtest.avi"))
            db.set_calibration(camera.id, SECOND_CALIBRATION)
        finally:
            db.close()
        yield running


@pytest.mark.ui
@pytest.mark.model
def test_switching_cameras_saves_each_camera_its_own_line(server: Server, launch_chromium):
    from playwright.sync_api import sync_playwright

    before = _calibrations(server.db)
    assert before[SECOND_CAMERA] == SECOND_CALIBRATION
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            login(page, server.url)
            page.wait_for_url("**/live")
            page.goto(server.url + "/calibrate")
            page.get_by_text("Valid:").first.wait_for()
            _pick(page, "Demo camera", "vertical")
            for _ in range(2):  # back and forth: each time the picked camera's line
                _pick(page, SECOND_CAMERA, "horizontal")
                _pick(page, "Demo camera", "vertical")
            _pick(page, SECOND_CAMERA, "horizontal")
            page.get_by_role("button", name="Save").click()
            page.get_by_text("Saved and applied").wait_for()
            # Save pressed straight after picking, before the page can have drawn the
            # picked camera's line: it saves that camera's own line (or waits for it).
            saved_at = _updated_at(server.db, "Demo camera")
            page.locator("select").first.select_option(label=_option(page, "Demo camera"))
            page.get_by_role("button", name="Save").click()
            deadline = time.monotonic() + DRAW_WAIT_S
            while _updated_at(server.db, "Demo camera") == saved_at:
                assert time.monotonic() < deadline, "Save after picking a camera saved nothing"
                time.sleep(0.3)
            _pick(page, "Demo camera", "vertical")
        finally:
            browser.close()
    after = _calibrations(server.db)
    assert after[SECOND_CAMERA] == before[SECOND_CAMERA]
    assert after["Demo camera"] == before["Demo camera"]
    log = server.log_text()
    assert "_pending_writes" not in log and "RuntimeError" not in log, log[-3000:]


@with_event_loop
async def test_save_while_a_picked_camera_loads_waits_for_its_lines(app, video_path):
    """The state a worker thread leaves between the Select changing and the picked
    camera's lines being shown: Save writes nothing then, and the picked camera's own
    calibration once it is shown."""
    demo = app.db.list_cameras()[0]
    second = app.db.create_camera(demo.store_id, SECOND_CAMERA, str(video_path))
    app.db.set_calibration(second.id, SECOND_CALIBRATION)
    before = {c: app.db.calibration_updated_at(c) for c in (demo.id, second.id)}
    claims = verify_token(app.settings, issue_token(app.settings, "admin", admin=True))
    editor = CalibrationEditor(app, claims, demo.id)
    editor.__panel__().get_root(Document())
    with param.discard_events(editor.camera_select):  # picked; not loaded yet
        editor.camera_select.value = second.id
    assert editor.loading and editor.camera_id == demo.id
    shown = editor.model.lines
    # A drag of the demo camera's line that arrives now is dropped with its picture.
    editor.drawing.line_draw.event(data={"xs": [[100.0, 120.0]], "ys": [[50.0, 500.0]]})
    assert editor.model.lines is shown
    assert editor.save() is False
    assert "Saving once" in editor.status.object
    assert {c: app.db.calibration_updated_at(c) for c in before} == before
    editor.load_camera()  # the worker's part: the lines shown, then the save
    await settle()  # the save it scheduled (the page's Save button, in the document)
    assert editor.camera_id == second.id
    # Its own line drawn:
    (drawn,) = editor.drawing.lines.last.split(datatype="array", dimensions=["x", "y"])
    assert drawn.tolist() == [[80.0, 300.0], [680.0, 300.0]]
    assert app.db.calibration_updated_at(second.id) != before[second.id]
    assert app.db.get_calibration(second.id) == SECOND_CALIBRATION
    assert app.db.calibration_updated_at(demo.id) == before[demo.id]
    assert "Saved and applied" in editor.status.object


# ---------------------------------------------------------------------- item 8
NOT_FINITE = ["nan", "NaN", "inf", "-inf", "Infinity", "1e999"]


@pytest.fixture
def cli_db(tmp_path: Path, video_path: Path) -> tuple[Path, int]:
    """A database file with one calibrated camera (the demo line and no ROI)."""
    db = Database(tmp_path / "zvpanel.db")
    try:
        store = db.create_store("Shop")
        camera = db.create_camera(store.id, "Door", str(video_path))
        db.set_calibration(camera.id, SECOND_CALIBRATION)
        return tmp_path / "zvpanel.db", camera.id
    finally:
        db.close()


def _zvpanel(db_file: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {"PATH": "/usr/bin:/bin", "ZVPANEL_DB_PATH": str(db_file), "ZVPANEL_DEV_MODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "zvpanel", *args],
        cwd=REPO_ROOT,
        env=environ | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _stored(db_file: Path, camera_id: int) -> Calibration | None:
    db = Database(db_file)
    try:
        return db.get_calibration(camera_id)
    finally:
        db.close()


@pytest.mark.parametrize(
    "options, named",
    [
        (["--line", "nan", "100", "100", "300"], "--line: 'nan'"),
        (["--line", "100", "100", "100", "Infinity"], "--line: 'Infinity'"),
        (["--line", "100", "100", "100", "²"], "--line: '²'"),
        (["--line", "100", "100", "100", "300", "--roi", "nan", "nan", "nan", "nan"], "--roi"),
        (["--line", "100", "100", "100", "300", "--fps", "inf"], "--fps: 'inf'"),
        (["--line", "100", "100", "100", "300", "--min-distance=-inf"], "--min-distance"),
    ],
    ids=["line-nan", "line-infinity", "line-superscript", "roi-nan", "fps-inf", "distance-inf"],
)
def test_cli_calibrate_refuses_numbers_that_are_not_finite(cli_db, options, named):
    db_file, camera_id = cli_db
    before = _stored(db_file, camera_id)
    done = _zvpanel(db_file, "calibrate", str(camera_id), "--no-probe", *options)
    assert done.returncode == 2, done.stdout + done.stderr
    assert named in done.stderr and "number" in done.stderr
    assert "Traceback" not in done.stderr and "saved" not in done.stdout
    assert _stored(db_file, camera_id) == before


@pytest.mark.parametrize("option", ["--confidence", "--fps", "--min-distance", "--window"])
def test_cli_count_and_eval_refuse_nan_options(tmp_path, video_path, option):
    command = "eval" if option == "--window" else "count"
    extra = ["--gt", str(tmp_path / "gt.txt")] if command == "eval" else []
    line = ["--line", "345", "0", "345", "576"]
    done = _zvpanel(tmp_path / "z.db", command, str(video_path), *line, *extra, option, "nan")
    assert done.returncode == 2
    assert f"{option}: 'nan' is not a finite number" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_setting_that_is_not_finite_is_named(cli_db):
    db_file, _ = cli_db
    done = _zvpanel(db_file, "camera", "list", ZVPANEL_CONFIDENCE="nan")
    assert done.returncode == 2
    assert "ZVPANEL_CONFIDENCE" in done.stderr and "finite number" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("value", [*NOT_FINITE, float("nan"), float("inf")])
def test_settings_refuse_numbers_that_are_not_finite(value):
    with pytest.raises(ConfigError, match=r"ZVPANEL_CONFIDENCE .*finite number"):
        load_settings(confidence=value, dev_mode=True)


LINE = '{"id": "door", "x1": %s, "y1": 0, "x2": 300, "y2": 500}'


@pytest.mark.parametrize(
    "text, named",
    [
        ('{"lines": [%s]}' % (LINE % "NaN"), "lines.0.x1"),
        ('{"lines": [%s]}' % (LINE % "Infinity"), "lines.0.x1"),
        ('{"lines": [%s]}' % (LINE % "-Infinity"), "lines.0.x1"),
        ('{"lines": [%s]}' % (LINE % "1e999"), "lines.0.x1"),
        ('{"lines": [%s], "roi": [NaN, NaN, NaN, NaN]}' % (LINE % "300"), "roi.0"),
        ('{"lines": [%s], "detection_fps": NaN}' % (LINE % "300"), "detection_fps"),
        ('{"lines": [%s], "min_distance": Infinity}' % (LINE % "300"), "min_distance"),
    ],
)
def test_calibration_json_refuses_numbers_that_are_not_finite(text, named):
    with pytest.raises(CalibrationError, match="finite number") as refused:
        parse_calibration(text)
    assert named in str(refused.value)
    as_dict = json.loads(text)  # Python's own parser reads NaN: the dict path refuses too
    with pytest.raises(CalibrationError, match=named):
        parse_calibration(as_dict)


@pytest.mark.parametrize(
    "field, value",
    [("x1", math.nan), ("y2", math.inf), ("roi", (math.nan,) * 4), ("detection_fps", math.nan)],
)
def test_database_refuses_a_calibration_built_without_validation(cli_db, field, value):
    db_file, camera_id = cli_db
    before = _stored(db_file, camera_id)
    line = SECOND_CALIBRATION.lines[0]
    if field in ("x1", "y2"):
        line = line.model_construct(**(line.model_dump() | {field: value}))
        calibration = SECOND_CALIBRATION.model_construct(
            **(dict(SECOND_CALIBRATION) | {"lines": (line,)})
        )
    else:
        calibration = SECOND_CALIBRATION.model_construct(
            **(dict(SECOND_CALIBRATION) | {field: value})
        )
    db = Database(db_file)
    try:
        with pytest.raises(CalibrationError, match="finite number"):
            db.set_calibration(camera_id, calibration)
    finally:
        db.close()
    assert _stored(db_file, camera_id) == before


# ---------------------------------------------------------------------- item 8: the feed
@dataclass
class Feed:
    server: FeedServer
    app: App
    camera_id: int

    def url(self, path: str, **query: str) -> str:
        query["token"] = issue_token(self.app.settings, "admin", admin=True)
        return f"{self.server.ws_url}{path}?{urlencode(query)}"

    def publish(self, index: int) -> None:
        """A real frame of the demo video, published as the engine would."""
        camera = self.app.db.get_camera(self.camera_id)
        image = next(iter_frames(camera.source, max_frames=1)).image
        frame = Frame(image, index, 0.0, datetime.now(timezone.utc))
        status = CameraStatus(self.camera_id, "online", target_fps=5.0, actual_fps=5.0)
        calibration = self.app.db.get_calibration(self.camera_id)
        self.app.hub.publish(
            FrameResult(self.camera_id, frame, Detections.empty(), (), {}, calibration, status)
        )


@pytest.fixture
def feed(settings):
    app = App(settings)
    app.start_database()
    app.start_bootstrap()
    app.start_hub()
    encoder = FrameEncoder()
    routes = build_routes(lambda: app, encoder_provider=lambda: encoder, registry=FeedRegistry())
    with FeedServer(routes) as server:
        yield Feed(server, app, app.db.list_cameras()[0].id)
    encoder.shutdown()
    app.stop_database()


async def _read_json(conn) -> dict:
    text = await asyncio.wait_for(conn.read_message(), READ_TIMEOUT_S)
    assert isinstance(text, str), f"closed: {conn.close_code} {conn.close_reason}"
    # The server's messages are JSON as the standard says: no NaN or Infinity.
    return json.loads(text, parse_constant=refuse_json_constant)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_feed_message_refuses_numbers_that_are_not_finite(feed, value):
    async def scenario():
        conn = await websocket_connect(feed.url(f"/ws/detections/{feed.camera_id}"))
        assert (await _read_json(conn))["type"] == "hello"
        await conn.write_message(f'{{"type": "set", "max_fps": {value}}}')
        error = await _read_json(conn)
        assert error["type"] == "error" and error["code"] == "bad_message", error
        assert value.lstrip("-") in error["message"] or "max_fps" in error["message"]
        # The socket goes on: pings are answered and frames still come.
        await conn.write_message(json.dumps({"type": "ping", "id": 1}))
        assert (await _read_json(conn))["type"] == "pong"
        feed.publish(7)
        assert (await _read_json(conn))["frame"] == 7
        conn.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "name, value",
    [
        ("quality", "²"),
        ("quality", "٣"),
        ("quality", "1e2"),
        ("max_height", "³⁰⁰"),
        ("max_height", "9" * 5000),
        ("max_fps", "nan"),
        ("max_fps", "inf"),
        ("max_fps", "Infinity"),
        ("max_fps", "1e999"),
    ],
)
def test_feed_query_numbers_are_refused_by_name(feed, name, value):
    async def scenario():
        conn = await websocket_connect(feed.url(f"/ws/live/{feed.camera_id}", **{name: value}))
        error = await _read_json(conn)
        assert error["type"] == "error" and error["code"] == "bad_parameter", error
        assert name in error["message"]
        assert await conn.read_message() is None  # then closed, saying why
        assert conn.close_code == CLOSE_POLICY_VIOLATION and name in conn.close_reason

    asyncio.run(scenario())


@pytest.mark.parametrize("spelling", ["+{id}", " {id}", "{id}\t", "١", "𝟏"])
def test_feed_camera_ids_are_ascii_digits_only(feed, spelling):
    """``int()`` reads each of these as the camera's id; a URL names it one way only."""
    spelling = spelling.format(id=feed.camera_id)
    assert int(spelling) == feed.camera_id == 1  # the trap

    async def scenario():
        conn = await websocket_connect(feed.url(f"/ws/detections/{quote(spelling)}"))
        error = await _read_json(conn)
        assert error["type"] == "error" and error["code"] == "unknown_camera", error
        assert await conn.read_message() is None
        assert conn.close_code == CLOSE_POLICY_VIOLATION

    asyncio.run(scenario())


# ---------------------------------------------------------------------- item 8: the page
def _typed_line(editor, column: str, value) -> None:
    """Type ``value`` into the lines table's first row (as a browser's cell edit does)."""
    table = editor.lines_table.value.copy()
    table[column] = table[column].astype(object)
    table.loc[0, column] = value
    editor.lines_table.value = table


@pytest.mark.parametrize(
    "change, named, says",
    [
        (lambda e: _typed_line(e, "x1", math.nan), "lines.0.x1", "finite"),
        (lambda e: _typed_line(e, "y2", math.inf), "lines.0.y2", "finite"),
        (lambda e: setattr(e.roi_inputs[2], "value", math.nan), "roi.2", "finite"),
        (
            lambda e: e.drawing.line_draw.event(data={"xs": [[1.0, math.nan]], "ys": [[0.0, 9.0]]}),
            "lines.0.x2",
            "finite",
        ),
        # An emptied input is named too, not taken as 0.
        (lambda e: _typed_line(e, "x1", None), "lines.0.x1", "valid number"),
        (lambda e: setattr(e.roi_inputs[1], "value", None), "roi.1", "valid number"),
    ],
    ids=["x1-nan", "y2-inf", "roi-nan", "drawn-nan", "x1-empty", "roi-empty"],
)
@with_event_loop
async def test_calibration_page_refuses_numbers_that_are_not_finite(app, change, named, says):
    camera = app.db.list_cameras()[0]
    before = app.db.get_calibration(camera.id)
    claims = verify_token(app.settings, issue_token(app.settings, "admin", admin=True))
    editor = CalibrationEditor(app, claims, camera.id)
    editor.__panel__().get_root(Document())
    editor.use_roi.value = True
    change(editor)
    assert editor.status.alert_type == "danger"
    assert named in editor.status.object and says in editor.status.object
    assert editor.save() is False
    assert app.db.get_calibration(camera.id) == before


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, None, 100.0])
def test_calibration_page_rate_refuses_numbers_that_are_not_finite(app, value):
    """The rate is a bounded parameter: its slider cannot send such a value, and the
    model refuses one by name; the rate shown and saved stays the last good one."""
    camera = app.db.list_cameras()[0]
    before = app.db.get_calibration(camera.id)
    claims = verify_token(app.settings, issue_token(app.settings, "admin", admin=True))
    editor = CalibrationEditor(app, claims, camera.id)
    with pytest.raises(ValueError, match="detection_fps"):
        editor.model.detection_fps = value
    assert editor.fps.value == editor.model.detection_fps == before.detection_fps
    assert editor.save() is True
    assert app.db.get_calibration(camera.id) == before
