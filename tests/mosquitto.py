"""A real Mosquitto broker for tests: Debian's ``mosquitto -c <conf>`` on a free 127.0.0.1
port (never the system service), anonymous, without persistence. :meth:`stop` and
:meth:`start` take it down and up again on the same port (outage tests).
:func:`secured_mosquitto` asks for a login, and also listens with TLS."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

#: How long the broker may take to listen (seconds).
START_TIMEOUT_S = 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MosquittoServer:
    def __init__(self, port: int, folder: Path, conf: str | None = None) -> None:
        self.port = port
        self.folder = folder
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            conf or f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        self.log = folder / "mosquitto.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [binary, "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None


@contextmanager
def mosquitto_server(folder: Path) -> Iterator[MosquittoServer]:
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        raise RuntimeError("mosquitto not found: apt-get install -y mosquitto (.ci/run does)")
    server = MosquittoServer(_free_port(), folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class SecuredBroker:
    """A broker that asks for a login: plain MQTT on ``port``, MQTT over TLS on
    ``tls_port`` with a certificate for 127.0.0.1 signed by the CA in ``ca_file``."""

    server: MosquittoServer
    tls_port: int
    ca_file: Path
    username: str
    password: str

    def url(self, *, tls: bool, password: str | None = None) -> str:
        scheme, port = ("mqtts", self.tls_port) if tls else ("mqtt", self.server.port)
        secret = quote(self.password if password is None else password, safe="")
        return f"{scheme}://{self.username}:{secret}@127.0.0.1:{port}"


@contextmanager
def secured_mosquitto(folder: Path, username: str, password: str) -> Iterator[SecuredBroker]:
    """Mosquitto with a password file (``mosquitto_passwd``) and a TLS listener whose
    certificate comes from a test CA (trustme)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    passwords = folder / "passwords"
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    subprocess.run([passwd, "-b", "-c", str(passwords), username, password], check=True)
    passwords.chmod(0o600)
    port, tls_port = _free_port(), _free_port()
    # As root, Mosquitto would switch to its own user, who cannot read the test's files.
    user = "user root\n" if os.geteuid() == 0 else ""
    conf = (
        f"{user}per_listener_settings false\nallow_anonymous false\n"
        f"password_file {passwords}\npersistence false\n"
        f"listener {port} 127.0.0.1\n"
        f"listener {tls_port} 127.0.0.1\ncertfile {cert_file}\nkeyfile {key_file}\n"
    )
    server = MosquittoServer(port, folder, conf)
    server.start()
    try:
        yield SecuredBroker(server, tls_port, ca_file, username, password)
    finally:
        server.stop()
