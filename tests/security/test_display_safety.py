"""Issue 10, items 1 and 4: names people type are shown as text, camera passwords stay secret.

The browser tests run one real ``panel serve`` (README flags, real model) for the module.
Hostile names are made the ways people make them: on the admin page (typing and
clicking in Chromium) and with the CLI (``zvpanel store add``, ``camera add``,
``calibrate`` in a subprocess on the server's database). Every page is then opened as the
admin and as a viewer whose own name is hostile; any JavaScript dialog fails the test,
each page must show a hostile name as literal text (so hiding names cannot pass), and no
page, socket message or log line may carry the camera's password.
"""

from __future__ import annotations

import contextlib
import csv
import html
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pandas as pd
import panel as pn
import pytest
from bokeh.document import Document
from playwright.sync_api import Error as PlaywrightError
from serving import REPO_ROOT, Server, login, panel_server

from zvpanel.display import csv_cell, csv_frame, html_text, markdown_text
from zvpanel.errors import SourceError
from zvpanel.sources import describe_source, mask_source, probe_source
from zvpanel.storage.database import Database, EventRow, utc_text
from zvpanel.ui.admin import AdminView
from zvpanel.ui.analytics import AnalyticsView
from zvpanel.web.auth import issue_token, verify_token

PAGE_TIMEOUT_MS = 60_000
VIEWPORT = {"width": 1400, "height": 1000}
VIDEO = REPO_ROOT / "data" / "vtest.avi"

STORE_WEB = "<img src=x onerror=alert(1)>"
CAMERA_WEB = '"><svg onload=alert(5)>'
STORE_CLI = "+<svg/onload=alert(2)>"
CAMERA_CLI = "=1+2<img src=c onerror=alert(4)>"
LINE_HOSTILE = "@<img src=l onerror=alert(6)>"
USER_HOSTILE = "<img src=u onerror=alert(7)>"
USER_PASSWORD = "viewer-password-7"
SECRET = "S3cretCamPass"
SECRET_SOURCE = f"rtsp://cam:{SECRET}@127.0.0.1:9/x"
SECRET_CAMERA = "Backdoor cam"
PAGES = ("/overview", "/live", "/calibrate", "/analytics", "/admin")


# ---------------------------------------------------------------------- unit tables
@pytest.mark.parametrize(
    "value, expected",
    [
        ("=1+2", "'=1+2"),
        ("+cmd", "'+cmd"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("door", "door"),
        ("a=b", "a=b"),
        ("", ""),
        (-3, -3),  # numbers stay numbers
        (1.5, 1.5),
        (None, None),
    ],
)
def test_csv_cell_quotes_formulas(value, expected):
    assert csv_cell(value) == expected


def test_csv_frame_guards_text_cells_and_headers_only():
    df = pd.DataFrame({"camera_name": ["=cmd", "door"], "entries": [-1, 2], "@h": ["x", "+y"]})
    safe = csv_frame(df)
    assert list(safe.columns) == ["camera_name", "entries", "'@h"]
    assert safe["camera_name"].tolist() == ["'=cmd", "door"]
    assert safe["entries"].tolist() == [-1, 2]
    assert safe["'@h"].tolist() == ["x", "'+y"]
    assert df["camera_name"].tolist() == ["=cmd", "door"]  # the input is left alone


@pytest.mark.parametrize(
    "source, masked",
    [
        (SECRET_SOURCE, "rtsp://cam:***@127.0.0.1:9/x"),
        ("rtsp://cam:p@ss:w@host:554/s?x=1", "rtsp://cam:***@host:554/s?x=1"),
        ("rtsp://admin:@host/s", "rtsp://admin:***@host/s"),
        ("http://h/v.cgi?user=a&pwd=zz&res=1", "http://h/v.cgi?user=a&pwd=***&res=1"),
        ("https://h/v?Token=abc", "https://h/v?Token=***"),
        ("http://u:pw@[::1/x", "http://u:***@[::1/x"),  # unparsable: masked all the same
        # A password typed with "#", "/" or "?" unencoded: URL parsing ends the host there.
        ("rtsp://cam:Pa#ss1@host/s", "rtsp://cam:***@host/s"),
        ("rtsp://cam:pa/ss@host/s", "rtsp://cam:***@host/s"),
        ("rtsp://cam:pa?ss@host/s", "rtsp://cam:***@host/s"),
        ("rtsp://cam@host/s", "rtsp://cam@host/s"),  # no password: nothing to hide
        ("rtsp://host/s?q=1%202", "rtsp://host/s?q=1%202"),
        ("/data/a b@c:d.avi", "/data/a b@c:d.avi"),  # a path comes back unchanged
        ("0", "0"),
    ],
)
def test_mask_source(source, masked):
    assert mask_source(source) == masked
    assert SECRET not in describe_source(source)


def test_source_errors_mask_the_password():
    with pytest.raises(SourceError) as raised:
        probe_source(SECRET_SOURCE)
    assert "cam:***@127.0.0.1:9" in str(raised.value) and SECRET not in str(raised.value)


@pytest.mark.parametrize(
    "name",
    [STORE_WEB, CAMERA_WEB, LINE_HOSTILE, "*a* _b_ `c` [l](javascript:x) $m$ # ~s~ \\ &amp;"],
)
def test_markdown_and_html_text_render_the_literal_text(name):
    rendered = pn.pane.Markdown(markdown_text(name)).get_root(Document()).text
    # Panel sends the rendered HTML escaped once more; the browser shows this paragraph.
    assert html.unescape(html.unescape(rendered)).strip() == f"<p>{name}</p>"
    assert html.unescape(html_text(name)) == name and "<" not in html_text(name)


# ---------------------------------------------------------------------- components
def test_admin_edits_a_camera_without_reading_its_password(app):
    admin = verify_token(app.settings, issue_token(app.settings, "admin", admin=True))
    store = app.db.list_stores()[0]
    camera = app.db.create_camera(store.id, SECRET_CAMERA, SECRET_SOURCE)
    view = AdminView(app, admin)
    document = Document()
    document.add_root(view.__panel__().get_root(document))
    row = view.cameras_table.value.index[view.cameras_table.value["id"] == camera.id][0]
    view.cameras_table.selection = [int(row)]
    assert view.camera_source.value == "rtsp://cam:***@127.0.0.1:9/x"
    # What the browser would receive: the document's models, table data and form included.
    assert SECRET not in json.dumps(document.to_json(), default=str)
    # Renamed, source left as shown: the stored source keeps its password.
    view.camera_name.value = "Backdoor cam 2"
    assert view.update_camera_action(), view.status.object
    assert app.db.get_camera(camera.id).source == SECRET_SOURCE
    # The masked text edited (another host, say) is refused: the password is not known.
    view.cameras_table.selection = [int(row)]
    view.camera_source.value = "rtsp://cam:***@10.0.0.9:9/x"
    assert not view.update_camera_action()
    assert "masked password" in view.status.object and view.status.alert_type == "danger"
    assert app.db.get_camera(camera.id).source == SECRET_SOURCE
    # A new source typed in replaces it (opened first, like any new source).
    view.cameras_table.selection = [int(row)]
    view.camera_source.value = str(VIDEO)
    assert view.update_camera_action(), view.status.object
    assert app.db.get_camera(camera.id).source == str(VIDEO)


def test_analytics_csv_downloads_quote_formulas(app):
    store = app.db.create_store(STORE_CLI)
    camera = app.db.create_camera(store.id, CAMERA_CLI, str(VIDEO))
    now = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)
    app.db.insert_events(
        [EventRow(store.id, camera.id, LINE_HOSTILE, 1, "entry", utc_text(now), 1, 0.9)]
    )
    view = AnalyticsView(app)
    view.store_select.value = store.id
    rows = list(csv.DictReader(view._events_csv()))
    assert [(r["camera_name"], r["line_id"]) for r in rows] == [
        ("'" + CAMERA_CLI, "'" + LINE_HOSTILE)
    ]
    assert view._binned_csv().getvalue().startswith("timestamp,entries,exits")


# ---------------------------------------------------------------------- the browser
@dataclass
class Hostile:
    """What the module's set-up made, and what the CLI printed."""

    server: Server
    cli_output: list[str] = field(default_factory=list)
    secret_camera_id: int = 0
    cli_camera_id: int = 0


def _cli(server: Server, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZVPANEL_")}
    env.update(ZVPANEL_DB_PATH=str(server.db), ZVPANEL_DEV_MODE="1")
    done = subprocess.run(
        [sys.executable, "-m", "zvpanel", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"zvpanel {args}: {done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def _camera_id(server: Server, name: str) -> int:
    with Database(server.db) as db:
        return next(c.id for c in db.list_cameras() if c.name == name)


def _store_id(server: Server, name: str) -> int:
    with Database(server.db) as db:
        return next(s.id for s in db.list_stores() if s.name == name)


class Watch:
    """A tab that records every dialog, socket message and page response it sees."""

    def __init__(self, browser) -> None:
        self.context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        self.page = self.context.new_page()
        self.page.set_default_timeout(PAGE_TIMEOUT_MS)
        self.dialogs: list[str] = []
        self.received: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("websocket", self._socket)
        self.page.on("response", self._response)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message} on {self.page.url}")
        with contextlib.suppress(PlaywrightError):  # several at once: the first closes all
            dialog.dismiss()

    def _socket(self, ws) -> None:
        ws.on("framereceived", lambda payload: self.received.append(str(payload)))

    def _response(self, response) -> None:
        kind = response.headers.get("content-type") or ""
        if "text" in kind or "json" in kind:
            # A redirect or a stream has no body to read.
            with contextlib.suppress(PlaywrightError):
                self.received.append(response.text())

    def options(self) -> list[str]:
        return self.page.locator("select option").evaluate_all("els => els.map(e => e.textContent)")

    def close(self) -> None:
        self.context.close()


def _field(page, label: str):
    """The input (or select) of the Panel widget titled ``label``."""
    group = page.locator(".bk-input-group").filter(has=page.get_by_text(label, exact=True))
    return group.locator("input, select").first


def _type(page, label: str, text: str) -> None:
    """Type into a widget; Tab leaves it, as a person does, which commits the value."""
    _field(page, label).fill(text)
    _field(page, label).press("Tab")


def _click(page, text: str) -> None:
    page.get_by_role("button", name=text).click()


def _admin_makes_names(tab: Watch, url: str) -> None:
    """Store, camera and viewer with hostile names, made by typing on the admin page."""
    page = tab.page
    page.goto(url + "/admin")
    page.get_by_text("Stores", exact=True).click()
    _type(page, "Store name", STORE_WEB)
    _click(page, "Add store")
    page.get_by_text(f"Store '{STORE_WEB}' added").wait_for()  # the message, as text
    page.get_by_text("Cameras", exact=True).click()
    _field(page, "Store").select_option(label=STORE_WEB)
    _type(page, "Camera name", CAMERA_WEB)
    _type(page, "Source (file path, rtsp://..., http://..., or webcam index)", str(VIDEO))
    _click(page, "Add camera")
    page.get_by_text(f"Camera '{CAMERA_WEB}' added").wait_for()
    page.get_by_text("Users", exact=True).click()
    _type(page, "Username", USER_HOSTILE)
    _type(page, "Password (8+ characters)", USER_PASSWORD)
    _click(page, "Add user")
    page.get_by_text(f"User '{USER_HOSTILE}' added").wait_for()


def _cli_makes_names(hostile: Hostile) -> None:
    server = hostile.server
    out = hostile.cli_output
    out.append(_cli(server, "store", "add", STORE_CLI))
    store = str(_store_id(server, STORE_CLI))
    out.append(_cli(server, "camera", "add", store, CAMERA_CLI, str(VIDEO)))
    out.append(_cli(server, "camera", "add", store, SECRET_CAMERA, SECRET_SOURCE, "--no-probe"))
    hostile.cli_camera_id = _camera_id(server, CAMERA_CLI)
    hostile.secret_camera_id = _camera_id(server, SECRET_CAMERA)
    line = ["--line", "345.6", "40", "345.6", "540"]
    # Two lines, so the live tile lists the counts per line (by name).
    lines = [*line, f"--line-id={LINE_HOSTILE}", "--line", "100", "150", "600", "150"]
    out.append(_cli(server, "calibrate", str(hostile.cli_camera_id), *lines, "--line-id=door"))
    # Calibrated, the engine starts the camera: it cannot connect, and says so (masked).
    out.append(_cli(server, "calibrate", str(hostile.secret_camera_id), *line))
    out.append(_cli(server, "camera", "list"))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, model_path: str, browser) -> Iterator[Hostile]:
    with panel_server(tmp_path_factory.mktemp("hostile"), model_path) as server:
        made = Hostile(server)
        _cli_makes_names(made)
        tab = Watch(browser)
        login(tab.page, server.url)
        tab.page.wait_for_url("**/live")
        _admin_makes_names(tab, server.url)
        assert tab.dialogs == []
        tab.close()
        yield made


def _wait_for_text(tab: Watch, text: str) -> None:
    tab.page.get_by_text(text, exact=False).first.wait_for()


def _open_every_page(tab: Watch, hostile: Hostile, who: str) -> None:
    """Visit each page; each must show a hostile name as text (asserted here)."""
    page, url = tab.page, hostile.server.url
    for path in PAGES:
        page.goto(url + path)
        page.get_by_text(who, exact=False).first.wait_for()  # the navigation bar, as text
        if path == "/overview":
            _wait_for_text(tab, STORE_WEB)  # a cell of the stores table, as text
            _wait_for_text(tab, CAMERA_WEB)  # a cell of the cameras table
            _wait_for_text(tab, CAMERA_CLI)
        elif path == "/live":
            _wait_for_text(tab, f"{STORE_WEB} / {CAMERA_WEB}")  # a tile's title
            _wait_for_text(tab, f"{LINE_HOSTILE}: ")  # the counts per line under a tile
            chips = page.locator(".choices__item").all_inner_texts()
            assert any(f"{STORE_CLI} / {CAMERA_CLI}" in chip for chip in chips), chips
        elif path == "/calibrate":
            _field(page, "Camera").wait_for()
            label = f"{CAMERA_CLI} (#{hostile.cli_camera_id})"
            assert label in tab.options()
            _field(page, "Camera").select_option(label=label)
            _wait_for_text(tab, LINE_HOSTILE)  # a cell of the lines table, as text
            # The camera that cannot connect: its snapshot error names the source, masked.
            secret = next(o for o in tab.options() if o.endswith(f"(#{hostile.secret_camera_id})"))
            _field(page, "Camera").select_option(label=secret)
            _wait_for_text(tab, "No snapshot")
            _wait_for_text(tab, "rtsp://cam:***@127.0.0.1:9/x")
        elif path == "/analytics":
            _field(page, "Store").wait_for()
            assert {STORE_WEB, STORE_CLI} <= set(tab.options())
            _field(page, "Store").select_option(label=STORE_CLI)
            deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
            while CAMERA_CLI not in tab.options():
                assert time.monotonic() < deadline, "the camera list did not follow the store"
                time.sleep(0.5)
        elif path == "/admin":
            _wait_for_text(tab, CAMERA_WEB)  # table cells
            _wait_for_text(tab, "rtsp://cam:***@127.0.0.1:9/x")
        time.sleep(1.0)  # let late renders (and any script in them) run
        assert tab.dialogs == [], tab.dialogs


def _assert_no_secret(tab: Watch) -> None:
    assert tab.received, "no page data was recorded"
    leaked = [text[:200] for text in tab.received if SECRET in text]
    assert leaked == [], f"the camera password reached the browser: {leaked}"


def test_admin_sees_names_as_text_and_no_password(hostile, browser):
    tab = Watch(browser)
    try:
        login(tab.page, hostile.server.url)
        tab.page.wait_for_url("**/live")
        _open_every_page(tab, hostile, "admin (admin)")
        # Editing the camera: the form shows the masked source; saving keeps the password.
        page = tab.page
        page.get_by_text(SECRET_CAMERA, exact=True).first.click()
        source = _field(page, "Source (file path, rtsp://..., http://..., or webcam index)")
        deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
        while source.input_value() != "rtsp://cam:***@127.0.0.1:9/x":
            assert time.monotonic() < deadline, f"source field shows {source.input_value()!r}"
            time.sleep(0.5)
        _type(page, "Camera name", SECRET_CAMERA + " 2")
        _click(page, "Update selected")
        page.get_by_text(f"Camera '{SECRET_CAMERA} 2' updated").wait_for()
        with Database(hostile.server.db) as db:
            assert db.get_camera(hostile.secret_camera_id).source == SECRET_SOURCE
        _assert_no_secret(tab)
        assert tab.dialogs == [], tab.dialogs
    finally:
        tab.close()


def test_viewer_sees_names_as_text_and_no_password(hostile, browser):
    tab = Watch(browser)
    try:
        url = hostile.server.url
        # The login page keeps a wrong attempt's name in the form, as text.
        login(tab.page, url, USER_HOSTILE, "wrong-password")
        tab.page.wait_for_selector("#login-error")
        assert tab.page.input_value("#username") == USER_HOSTILE
        login(tab.page, url, USER_HOSTILE, USER_PASSWORD)
        tab.page.wait_for_url("**/live")
        _open_every_page(tab, hostile, f"{USER_HOSTILE} (viewer)")
        # The example page of the feed: counts per line, the hostile line id as text.
        tab.page.goto(f"{url}/feed/")
        tab.page.fill("input[name=username]", USER_HOSTILE)
        tab.page.fill("input[name=password]", USER_PASSWORD)
        tab.page.fill("input[name=camera]", str(hostile.cli_camera_id))
        tab.page.get_by_role("button", name="Log in and watch").click()
        tab.page.locator("#counts").get_by_text(LINE_HOSTILE).wait_for()
        time.sleep(1.0)
        assert tab.dialogs == [], tab.dialogs
        _assert_no_secret(tab)
    finally:
        tab.close()


def test_password_in_no_log_line_or_cli_output(hostile):
    # After the page tests: the engine has been failing on the camera for a while.
    with Database(hostile.server.db) as db:
        assert db.get_camera(hostile.secret_camera_id).source == SECRET_SOURCE
    log = hostile.server.log_text()
    assert "cam:***@127.0.0.1:9" in log  # the engine did log the failing source...
    assert SECRET not in log  # ...masked
    output = "\n".join(hostile.cli_output)
    assert "rtsp://cam:***@127.0.0.1:9/x" in output and SECRET not in output
