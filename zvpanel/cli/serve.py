"""``zvpanel serve``: the dashboards, i.e. the README's ``panel serve`` line in one word.

The setup script and the auth module are files of the installed package, so they are
found from the package's own location whatever the working directory. The dashboard apps
are the thin entry points in the ``apps/`` folder beside the package (a source checkout,
installed with ``pip install -e .`` as the README does); ``--apps DIR`` names another
folder. The working directory stays the caller's, as with ``panel serve``: relative
settings (``data/zvpanel.db``) resolve against it.

The command replaces this process with ``panel serve`` (``os.execv``), so Ctrl-C and
``kill`` reach the server itself and nothing is left behind. With ``--num-procs`` other
than 1 it stays as a supervisor instead, which passes stop signals to every server
process (see :func:`_supervise`).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..config import load_settings
from ..errors import ConfigError

__all__ = ["register", "panel_command"]

PACKAGE_DIR = Path(__file__).resolve().parent.parent
SETUP_FILE = PACKAGE_DIR / "serve_setup.py"
AUTH_MODULE_FILE = PACKAGE_DIR / "web" / "auth_module.py"
#: The apps of a source checkout: ``apps/`` beside the ``zvpanel`` package.
DEFAULT_APPS_DIR = PACKAGE_DIR.parent / "apps"
PLUGINS_MODULE = "zvpanel.web.routes"
INDEX_APP = "overview"

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 5006
DEFAULT_NUM_THREADS = 4
MAX_PORT = 65535

#: Signals that stop a multi-process server: each becomes a SIGTERM to all its processes
#: (Bokeh's server stops cleanly on SIGTERM; the forking parent just ends).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: How long a multi-process server may take to stop after a forwarded signal, seconds.
STOP_TIMEOUT_S = 60.0
#: How often the supervisor looks whether the server's processes are gone, seconds.
GROUP_POLL_S = 0.2
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``serve`` to the ``zvpanel`` parser's sub-commands."""
    p = sub.add_parser(
        "serve",
        help="start the dashboards (panel serve with zvpanel's apps, setup and login)",
        description="Start the dashboards: panel serve with zvpanel's apps, --setup, "
        "--plugins, --auth-module, --index overview and --num-threads. Arguments after -- "
        "go to panel serve unchanged (e.g. -- --allow-websocket-origin shop.example:5006).",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s)")
    p.add_argument(
        "--address",
        default=DEFAULT_ADDRESS,
        help="address to listen on (default %(default)s: this machine only)",
    )
    p.add_argument(
        "--num-threads",
        type=int,
        default=DEFAULT_NUM_THREADS,
        help="threads for page callbacks (default %(default)s)",
    )
    p.add_argument(
        "--num-procs", type=int, help="server processes (panel's default: 1; 0: one per core)"
    )
    p.add_argument(
        "--apps", type=Path, default=DEFAULT_APPS_DIR, help="folder of the dashboard apps"
    )
    p.add_argument("panel_args", nargs="*", help="after --: more arguments for panel serve")
    p.set_defaults(func=_serve)


def panel_command(
    port: int = DEFAULT_PORT,
    address: str = DEFAULT_ADDRESS,
    num_threads: int = DEFAULT_NUM_THREADS,
    num_procs: int | None = None,
    apps_dir: Path = DEFAULT_APPS_DIR,
    extra: list[str] | tuple[str, ...] = (),
) -> list[str]:
    """The ``panel serve`` command line, run by this interpreter; bad values raise ConfigError."""
    _check_range("--port", port, 1, MAX_PORT)
    _check_range("--num-threads", num_threads, 1, None)
    if num_procs is not None:
        _check_range("--num-procs", num_procs, 0, None)
    command = [sys.executable, "-m", "panel", "serve", *map(str, _apps(apps_dir))]
    command += ["--setup", str(SETUP_FILE), "--plugins", PLUGINS_MODULE]
    command += ["--auth-module", str(AUTH_MODULE_FILE), "--index", INDEX_APP]
    command += ["--num-threads", str(num_threads), "--address", address, "--port", str(port)]
    if num_procs is not None:
        command += ["--num-procs", str(num_procs)]
    return command + list(extra)


def _apps(apps_dir: Path) -> list[Path]:
    apps = sorted(apps_dir.resolve().glob("*.py"))
    if not any(app.stem == INDEX_APP for app in apps):
        raise ConfigError(
            f"--apps {apps_dir}: no {INDEX_APP}.py there; zvpanel serve runs the apps/ folder "
            "of a zvpanel checkout (pip install -e .), or name it with --apps DIR"
        )
    return apps


def _check_range(flag: str, value: int, low: int, high: int | None) -> None:
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ConfigError(f"{flag} {value}: must be {bound}")


def _serve(args: argparse.Namespace) -> int:
    command = panel_command(
        args.port, args.address, args.num_threads, args.num_procs, args.apps, args.panel_args
    )
    if args.num_procs in (None, 1):
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(command[0], command)  # only returns by raising
    _check_one_engine(args.num_procs)
    return _supervise(command)


def _check_one_engine(num_procs: int) -> None:
    """Each server process runs its own engine: several would count every camera again."""
    if load_settings().engine:
        raise ConfigError(
            f"--num-procs {num_procs}: every process would run its own engine and count each "
            "camera once per process; set ZVPANEL_ENGINE=0 (dashboards of the fleet's bus, "
            "the cameras counted by zvpanel node) or serve one process"
        )


def _supervise(command: list[str]) -> int:
    """Run a multi-process ``panel serve`` in its own process group and stop the whole
    group on a stop signal: Tornado's forking parent dies of SIGTERM without stopping its
    children, which would go on serving."""
    _become_subreaper()
    process = subprocess.Popen(command, start_new_session=True)
    stop_asked_at: list[float] = []

    def stop(_signum: int, _frame: object) -> None:
        if not stop_asked_at:
            stop_asked_at.append(time.monotonic())
        _signal_group(process.pid, signal.SIGTERM)

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)
    code = process.wait()
    while _group_alive(process.pid):
        if stop_asked_at and time.monotonic() - stop_asked_at[0] > STOP_TIMEOUT_S:
            _signal_group(process.pid, signal.SIGKILL)
        time.sleep(GROUP_POLL_S)
    if stop_asked_at:
        return 0  # stopped as asked
    return code if code >= 0 else 128 - code  # the shell's code for "killed by signal N"


def _become_subreaper() -> None:
    """Orphaned server processes become ours (Linux), so we reap them even where no init
    process would (a container's PID 1)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass  # reaped an orphan that had ended
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
