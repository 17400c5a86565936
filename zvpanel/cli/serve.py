"""``zvpanel serve``: the dashboards, i.e. the README's ``panel serve`` line in one word.

The setup script and the auth module are files of the installed package, so they are
found from the package's own location whatever the working directory. The dashboard apps
are the thin entry points in the ``apps/`` folder beside the package (a source checkout,
installed with ``pip install -e .`` as the README does); ``--apps DIR`` names another
folder. The working directory stays the caller's, as with ``panel serve``: relative
settings (``data/zvpanel.db``) resolve against it.

The command replaces this process with ``panel serve`` (``os.execv``), so Ctrl-C and
``kill`` reach the server itself and nothing is left behind.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import ConfigError

__all__ = ["register", "panel_command"]

PACKAGE_DIR = Path(__file__).resolve().parent.parent
SETUP_FILE = PACKAGE_DIR / "serve_setup.py"
AUTH_MODULE_FILE = PACKAGE_DIR / "web" / "auth_module.py"
#: The apps of a source checkout: ``apps/`` beside the ``zvpanel`` package.
DEFAULT_APPS_DIR = PACKAGE_DIR.parent / "apps"
PLUGINS_MODULE = "zvpanel.web.routes"
INDEX_APP = "live"

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 5006
DEFAULT_NUM_THREADS = 4
MAX_PORT = 65535


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``serve`` to the ``zvpanel`` parser's sub-commands."""
    p = sub.add_parser(
        "serve",
        help="start the dashboards (panel serve with zvpanel's apps, setup and login)",
        description="Start the dashboards: panel serve with zvpanel's apps, --setup, "
        "--plugins, --auth-module, --index live and --num-threads. Arguments after -- "
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
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)  # only returns by raising
    return 0
