"""A paho-mqtt client for ``mqtt[s]://[user:password@]host[:port]``: connects in the
background, reconnects by itself, and never lets a publish wait (paho's network thread does
the I/O). ``mqtts`` is MQTT over TLS, checked against the system's CAs or a given CA file;
the user and password go to the broker's own authentication (Mosquitto's
``password_file``), and no log line or error message shows the password."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from ..display import SECRET_MASK, mask_source

__all__ = ["MqttTarget", "parse_mqtt_url", "new_origin", "make_client"]

#: The brokers' usual ports: plain MQTT and MQTT over TLS.
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
#: Seconds between keepalive pings (a dead broker is noticed within 1.5x this).
KEEPALIVE_S = 10
#: Reconnect back-off bounds, seconds: a broker that returns is found again within the max.
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 2
#: QoS 1 messages kept while the broker is unreachable (older ones are refused, counted).
MAX_QUEUED_MESSAGES = 1000


@dataclass(frozen=True)
class MqttTarget:
    """Where the bus is and how to log in; ``str()`` is the URL with the password masked."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = "" if self.username is None else self.username
        if self.password is not None:
            user += f":{SECRET_MASK}"
        return f"{scheme}://{user}{'@' if user else ''}{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> MqttTarget:
    """The broker of ``mqtt[s]://[user[:password]@]host[:port]``; ValueError naming the bad
    part otherwise (with the password masked)."""
    shown = mask_source(url)
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError(f"mqtt_url: scheme {parts.scheme!r} of {shown!r} is not 'mqtt' or 'mqtts'")
    if not parts.hostname:
        raise ValueError(f"mqtt_url: {shown!r} names no host")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ValueError(f"mqtt_url: the port of {shown!r} is not a number 0-65535") from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"mqtt_url: {shown!r} has more than mqtt[s]://[user:password@]host:port")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and username is None:
        raise ValueError(f"mqtt_url: {shown!r} has a password but no user name")
    return MqttTarget(parts.hostname, port, parts.scheme == "mqtts", username, password)


def new_origin() -> str:
    """A name for this process on the bus, unique across machines and restarts."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def make_client(client_id: str, target: MqttTarget, ca_file: Path | None = None) -> mqtt.Client:
    """A client for ``target`` (not connected yet): its login, TLS for ``mqtts`` (the
    broker's certificate checked against ``ca_file``, or the system's CAs)."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
    )
    if target.username is not None:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        client.tls_set(ca_certs=str(ca_file) if ca_file is not None else None)
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    client.max_queued_messages_set(MAX_QUEUED_MESSAGES)
    return client
