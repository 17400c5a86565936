"""Shared fixtures: the real video, the real model (from ZVPANEL_MODEL) and real settings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from zvpanel.config import Settings, load_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"
DEFAULT_MODEL = SHARED / "models" / "yolov8n_int8_openvino_model"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def model_path() -> str:
    """The model CI and developers test with: ZVPANEL_MODEL, else ../shared's OpenVINO YOLOv8n."""
    path = os.environ.get("ZVPANEL_MODEL") or str(DEFAULT_MODEL)
    if not Path(path).exists():
        pytest.fail(
            f"test model {path!r} not found: set ZVPANEL_MODEL to a local YOLO model "
            f"(CI uses {DEFAULT_MODEL})"
        )
    return path


@pytest.fixture(scope="session")
def video_path() -> Path:
    path = REPO_ROOT / "data" / "vtest.avi"
    assert path.is_file(), f"sample video missing: {path}"
    return path


@pytest.fixture(scope="session")
def gt_path() -> Path:
    path = SHARED / "ground_truth" / "vtest-first400" / "gt.txt"
    if not path.is_file():
        pytest.fail(f"ground truth {path} not found (CI has ../shared beside the clone)")
    return path


@pytest.fixture
def settings(tmp_path: Path, model_path: str, video_path: Path, monkeypatch) -> Settings:
    """Settings for one test: its own SQLite file, the real model, development mode."""
    for name in list(os.environ):
        if name.startswith("ZVPANEL_") and name != "ZVPANEL_MODEL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("ZVPANEL_DB_PATH", str(tmp_path / "zvpanel.db"))
    monkeypatch.setenv("ZVPANEL_MODEL", model_path)
    monkeypatch.setenv("ZVPANEL_DEV_MODE", "1")
    monkeypatch.setenv("ZVPANEL_SAMPLE_VIDEO", str(video_path))
    return load_settings()


@pytest.fixture
def app(settings: Settings):
    """A real App without the engine: database (bootstrapped with the demo camera) and hub."""
    from zvpanel.app import App  # here, not above: importing it loads the model stack

    app = App(settings)
    app.start_database()
    app.start_bootstrap()
    app.start_hub()
    yield app
    app.stop()


#: Debian's Chromium (apt-get install chromium): Playwright cannot download its own here.
CHROMIUM = "/usr/bin/chromium"
#: Headless as root, and without the background connections a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def launch_chromium():
    """``launch_chromium(playwright)`` -> a headless Browser on Debian's Chromium."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: apt-get install chromium (.ci/run does)")

    def launch(playwright):
        return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

    return launch


#: The Bokeh Figures a page rendered (its views' tree, walked in the browser).
_COUNT_FIGURES_JS = """() => {
    const types = [];
    const walk = (view) => {
        types.push(view.model.type);
        for (const child of view.child_views || []) walk(child);
    };
    for (const view of Object.values(Bokeh.index)) walk(view);
    return types.filter((t) => t === "Figure").length;
}"""


@dataclass(frozen=True)
class RenderedReport:
    figures: int  # Bokeh Figures rendered
    canvases: int  # <canvas> elements, shadow roots included
    heading: str  # the first <h1>, "" if none
    errors: list[str]  # JavaScript errors on the page
    remote: list[str]  # requests for anything but a file: URL (all refused)


@pytest.fixture
def render_offline(launch_chromium):
    """``render_offline(html_path, **page_options)`` -> :class:`RenderedReport`: the file
    opened in Chromium with every request but ``file:`` refused, once Bokeh has drawn."""
    from playwright.sync_api import sync_playwright

    def render(path: Path, **page_options) -> RenderedReport:
        errors: list[str] = []
        remote: list[str] = []

        def route(r):
            if r.request.url.startswith("file:"):
                r.continue_()
            else:
                remote.append(r.request.url)
                r.abort()

        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                page = browser.new_page(**page_options)
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.route("**/*", route)
                page.goto(path.as_uri())
                page.wait_for_function(
                    "() => window.Bokeh && Object.keys(Bokeh.index).length > 0", timeout=30_000
                )
                figures = page.evaluate(_COUNT_FIGURES_JS)
                headings = page.locator("h1")
                heading = headings.first.inner_text() if headings.count() else ""
                canvases = page.locator("canvas").count()
            finally:
                browser.close()
        return RenderedReport(figures, canvases, heading, errors, remote)

    return render


@pytest.fixture(scope="session")
def postgres():
    """Debian's PostgreSQL, started once per session as the postgres user (tests/postgres.py)."""
    from postgres import postgres_server

    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory):
    """Debian's Mosquitto on a free 127.0.0.1 port, once per session (tests/mosquitto.py);
    a test that stops it starts it again before it ends."""
    from mosquitto import mosquitto_server

    with mosquitto_server(tmp_path_factory.mktemp("mosquitto")) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request, tmp_path: Path) -> str | Path:
    """Where a test's database lives, once per backend: a new SQLite file, or a new
    database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return tmp_path / "nested" / "dir" / "zvpanel.db"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def fast_hasher():
    """Real Argon2id with small costs: the default costs ~0.2 s a hash here, which adds up
    over many tests (test_storage checks the defaults)."""
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


@pytest.fixture
def db(db_target, fast_hasher):
    """An open :class:`~zvpanel.storage.Database` at ``db_target`` (once per backend)."""
    from zvpanel.storage import Database

    database = Database(db_target, password_hasher=fast_hasher)
    yield database
    database.close()


@pytest.fixture(scope="module")
def browser(launch_chromium):
    """A headless Chromium for one test module (Playwright's sync API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()
