"""A real PostgreSQL server for tests: Debian's, started by the tests themselves.

PostgreSQL refuses to run as root and tests run as root in CI, so the cluster is made
and run as the ``postgres`` user (created by Debian's package) in a directory it owns,
on a free 127.0.0.1 port, with trust authentication for local TCP (nothing else can
reach it). One server per test session; each test gets a fresh database.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

#: How long pg_ctl waits for the server to accept connections.
START_TIMEOUT_SECONDS = 60
SUPERUSER = "postgres"


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(
            f"PostgreSQL's {name} not found under /usr/lib/postgresql/*/bin: "
            "apt-get install -y postgresql (.ci/run does)"
        )
    return found[-1]  # the newest installed version


def _as_postgres(*args: str) -> list[str]:
    return ["runuser", "-u", SUPERUSER, "--", *args] if os.geteuid() == 0 else list(args)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*args: str) -> None:
    subprocess.run(_as_postgres(*args), check=True, capture_output=True, text=True)


class PostgresServer:
    """A running server; :meth:`new_database` makes an empty database and returns its URL.

    :meth:`stop` and :meth:`start` take it down and up again on the same port (outage
    tests); a test that stops it starts it again before it ends.
    """

    def __init__(self, port: int, folder: Path) -> None:
        self.port = port
        self.folder = folder
        self.running = False
        self._names = itertools.count(1)

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off"
        _run(
            _bin("pg_ctl"),
            "-D",
            str(self.folder / "data"),
            "-o",
            options,
            "-l",
            str(self.folder / "server.log"),
            "-w",
            "-t",
            str(START_TIMEOUT_SECONDS),
            "start",
        )
        self.running = True

    def stop(self) -> None:
        """Stop at once (``-m fast``: open connections are cut, as in an outage)."""
        _run(_bin("pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")
        self.running = False

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        name = f"zvtest_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    # In /tmp, not $TMPDIR: the postgres user must be able to reach the folder.
    folder = Path(tempfile.mkdtemp(prefix="zvpanel-pg-", dir="/tmp"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, SUPERUSER, SUPERUSER)
    try:
        _run(_bin("initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8")
        server = PostgresServer(_free_port(), folder)
        server.start()
        try:
            yield server
        finally:
            if server.running:
                server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
