"""A real ``panel serve`` for tests: the README's start command on a free 127.0.0.1 port.

Browser tests and the security regression tests start the server the same way, so it
lives here (imported as ``serving``: pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
#: The dashboard apps the README's start command serves (its ``apps/*.py``).
APP_FILES = [
    "apps/live.py",
    "apps/overview.py",
    "apps/calibrate.py",
    "apps/analytics.py",
    "apps/admin.py",
    "apps/review.py",
]
#: The start command's flags after the apps, minus the port (the test adds a free one).
START_FLAGS = [
    "--setup",
    "zvpanel/serve_setup.py",
    "--plugins",
    "zvpanel.web.routes",
    "--auth-module",
    "zvpanel/web/auth_module.py",
    "--index",
    "overview",
    "--num-threads",
    "4",
    "--address",
    "127.0.0.1",
]
#: The README's start command, minus the port.
START_ARGS = ["panel", "serve", *APP_FILES, *START_FLAGS]
#: Start-up loads the model and opens the demo camera (seconds, generous on 2 busy cores).
SERVER_START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Server:
    """A running ``panel serve``: its base URL, database file, log and process."""

    url: str
    port: int
    db: Path
    log: Path
    process: subprocess.Popen

    def __getitem__(self, key: str):  # the older tests read server["url"]
        return getattr(self, key)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _wait_for_port(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"panel serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    pytest.fail(
        f"panel serve did not listen on {port} in {SERVER_START_TIMEOUT_S}s:\n"
        f"{log.read_text()[-3000:]}"
    )


def start_server(
    folder: Path, model_path: str, env: dict[str, str] | None = None, args: list[str] = ()
) -> tuple[subprocess.Popen, list[str], dict[str, str], Path, int]:
    """Start ``panel serve`` (not waiting for it); development mode unless ``env`` says else."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ZVPANEL_")}
    full_env.update(
        ZVPANEL_DB_PATH=str(folder / "zvpanel.db"), ZVPANEL_MODEL=model_path, ZVPANEL_DEV_MODE="1"
    )
    full_env.update(env or {})
    panel = Path(sys.executable).with_name("panel")
    command = [str(panel), *START_ARGS[1:], "--port", str(port)]
    command += ["--allow-websocket-origin", f"127.0.0.1:{port}", *args]
    log = folder / "server.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT
        )
    return process, command, full_env, log, port


@contextmanager
def panel_server(
    folder: Path, model_path: str, env: dict[str, str] | None = None, args: list[str] = ()
) -> Iterator[Server]:
    """A real ``panel serve`` with the README's flags, stopped on exit.

    ``env`` adds or overrides ``ZVPANEL_*`` variables (e.g. ``ZVPANEL_DEV_MODE="0"`` and a
    ``ZVPANEL_JWT_SECRET`` for production mode); ``args`` adds command-line flags.
    """
    process, _, _, log, port = start_server(folder, model_path, env, args)
    try:
        _wait_for_port(port, process, log)
        yield Server(f"http://127.0.0.1:{port}", port, folder / "zvpanel.db", log, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_login_page(page) -> None:
    """Wait until ``page`` shows the login page: its form, not only its address.

    A page that ends itself (login expired or revoked) first rewrites its address bar to
    the login page and then loads it, so the address matches before the load begins.
    Closing the browser context in between left Chromium's ``Target.disposeBrowserContext``
    unanswered for good (a test hung 10 minutes in CI; reproduced 1 in 8 locally).
    """
    page.wait_for_url("**/login**")
    page.locator("#password").wait_for()


def login(page, url: str, username: str = "admin", password: str = "admin") -> None:
    """Log in through the login page (Playwright ``page``), starting from ``/live``."""
    page.goto(f"{url}/live")
    page.wait_for_url("**/login**")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login")
