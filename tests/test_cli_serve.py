"""``zvpanel serve``: the README's ``panel serve`` flags, and a real server it starts."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode
from urllib.request import urlopen

import pytest
from serving import APP_FILES, START_FLAGS, _wait_for_port, free_port

from zvpanel.cli import build_parser
from zvpanel.cli.serve import panel_command
from zvpanel.errors import ConfigError

#: How long the server may take to stop after SIGTERM/SIGINT (it stops the engine and database).
STOP_TIMEOUT_S = 60
#: Values for the README's placeholders, so its commands parse.
PLACEHOLDER_VALUES = {"ID": "1"}
#: The README's relative paths, as an installed zvpanel resolves them (from the package).
RELATIVE_PATHS = ("zvpanel/serve_setup.py", "zvpanel/web/auth_module.py")


def test_serve_runs_the_readme_command(repo_root):
    """Same apps and flags as the README / browser tests, with the paths resolved."""
    command = panel_command(port=5006)
    readme_flags = [str(repo_root / arg) if arg in RELATIVE_PATHS else arg for arg in START_FLAGS]
    apps = sorted(str(p) for p in (repo_root / "apps").glob("*.py"))
    assert command[:4] == [sys.executable, "-m", "panel", "serve"]
    assert command[4:] == [*apps, *readme_flags, "--port", "5006"]
    assert sorted(str(repo_root / a) for a in APP_FILES) == apps
    assert "`.venv/bin/zvpanel serve`" in (repo_root / "README.md").read_text()


def test_serve_passes_num_procs_and_the_args_after_double_dash():
    argv = ["serve", "--port", "7000", "--address", "0.0.0.0", "--num-threads", "2"]
    argv += ["--num-procs", "2", "--", "--allow-websocket-origin", "shop:7000", "--port", "1"]
    args = build_parser().parse_args(argv)
    extra = args.panel_args
    command = panel_command(
        args.port, args.address, args.num_threads, args.num_procs, args.apps, extra
    )
    tail = ["--num-threads", "2", "--address", "0.0.0.0", "--port", "7000", "--num-procs", "2"]
    assert command[-len(tail) - 4 :] == [
        *tail,
        "--allow-websocket-origin",
        "shop:7000",
        "--port",
        "1",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"port": 0}, "--port 0: must be 1..65535"),
        ({"port": 65536}, "--port 65536: must be 1..65535"),
        ({"num_threads": 0}, "--num-threads 0: must be >= 1"),
        ({"num_procs": -1}, "--num-procs -1: must be >= 0"),
    ],
)
def test_serve_rejects_bad_values_naming_them(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        panel_command(**kwargs)


def test_serve_without_apps_says_where_it_looked(tmp_path, capsys):
    (tmp_path / "admin.py").write_text("")
    from zvpanel.cli import main

    assert main(["serve", "--apps", str(tmp_path)]) == 2
    assert f"--apps {tmp_path}: no overview.py there" in capsys.readouterr().err


def _get(url: str, data: dict[str, str] | None = None) -> tuple[int, str]:
    body = urlencode(data).encode() if data is not None else None
    with urlopen(url, data=body, timeout=30) as response:
        return response.status, response.read().decode()


@contextmanager
def zvpanel_serve(
    folder: Path, model_path: str, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen, int]]:
    """A real ``zvpanel serve`` started in ``folder`` (not the checkout) on a free port,
    development mode; killed at the end if the test did not stop it."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ZVPANEL_")}
    full_env.update(ZVPANEL_DB_PATH=str(folder / "zvpanel.db"), ZVPANEL_DEV_MODE="1")
    full_env.update(ZVPANEL_MODEL=str(Path(model_path).resolve()), **(env or {}))
    zvpanel = Path(sys.executable).with_name("zvpanel")
    command = [str(zvpanel), "serve", "--port", str(port), *args]
    command += ["--", "--allow-websocket-origin", f"127.0.0.1:{port}"]
    log = folder / "server.log"
    with open(log, "ab") as out, _sigint_not_ignored():
        process = subprocess.Popen(
            command, cwd=folder, env=full_env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_for_port(port, process, log)
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@contextmanager
def _sigint_not_ignored() -> Iterator[None]:
    """A server started as from a terminal, where ctrl-c works: a test run started in the
    background (``.ci/run &``) has SIGINT ignored, and a child inherits that."""
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous == signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _check_serves(port: int) -> None:
    """The login page and the token endpoint answer."""
    url = f"http://127.0.0.1:{port}"
    status, page = _get(f"{url}/login")
    assert status == 200 and 'id="password"' in page
    status, body = _get(f"{url}/api/token", {"username": "admin", "password": "admin"})
    assert status == 200 and json.loads(body)["token_type"] == "bearer"


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _assert_stopped(process: subprocess.Popen, port: int, log: Path) -> None:
    assert process.wait(timeout=STOP_TIMEOUT_S) == 0, log.read_text()[-3000:]
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_zvpanel_serve_serves_login_and_tokens_and_stops_on_a_signal(
    tmp_path, model_path, stop_signal
):
    with zvpanel_serve(tmp_path, model_path) as (process, port):
        # exec, not a child: the process we started is panel serve itself
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:4] == [b"-m", b"panel", b"serve"]
        _check_serves(port)
        process.send_signal(stop_signal)
        _assert_stopped(process, port, tmp_path / "server.log")


def test_zvpanel_serve_with_two_processes_stops_them_all(tmp_path, model_path):
    """--num-procs 2 (dashboards without an engine): both serve, one SIGTERM ends both
    (Tornado's forking parent alone would leave its children serving)."""
    env = {"ZVPANEL_ENGINE": "0"}
    with zvpanel_serve(tmp_path, model_path, "--num-procs", "2", env=env) as (process, port):
        for _ in range(4):
            _check_serves(port)
        (panel,) = _children(process.pid)
        workers = _children(panel)
        assert len(workers) == 2
        process.send_signal(signal.SIGTERM)
        _assert_stopped(process, port, tmp_path / "server.log")
        assert [pid for pid in (panel, *workers) if Path(f"/proc/{pid}").exists()] == []


def test_serve_refuses_several_processes_that_would_each_count(monkeypatch, capsys):
    from zvpanel.cli import main

    monkeypatch.setenv("ZVPANEL_DEV_MODE", "1")
    monkeypatch.delenv("ZVPANEL_ENGINE", raising=False)
    assert main(["serve", "--num-procs", "2"]) == 2
    assert "--num-procs 2: every process would run its own engine" in capsys.readouterr().err


def _fleet_section(readme: str) -> str:
    start = readme.index("## Fleet")
    return readme[start : readme.index("\n## ", start + 1)]


def test_readme_fleet_section_names_only_real_commands_and_settings(repo_root):
    """Every ``zvpanel ...`` line of the Fleet section parses, every ZVPANEL_* is a setting."""
    from zvpanel.config import ENV_PREFIX, Settings

    fleet = _fleet_section((repo_root / "README.md").read_text())
    lines = re.findall(r"`(zvpanel [^`]+)`", fleet) + re.findall(r"^\s*(zvpanel .+)$", fleet, re.M)
    assert len(lines) >= 5
    for line in lines:
        for command in line.split(" && "):
            argv = [PLACEHOLDER_VALUES.get(a, a) for a in shlex.split(command)[1:]]
            build_parser().parse_args(argv)  # SystemExit on an unknown command or flag
    names = set(re.findall(rf"\b{ENV_PREFIX}[A-Z_]+\b", fleet))
    fields = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    assert names and names <= fields, names - fields
