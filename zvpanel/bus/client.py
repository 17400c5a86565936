"""A paho-mqtt client for ``mqtt://host:port``: connects in the background, reconnects by
itself, and never lets a publish wait (paho's network thread does the I/O)."""

from __future__ import annotations

import os
import secrets
import socket
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

__all__ = ["MqttAddress", "parse_mqtt_url", "new_origin", "make_client"]

DEFAULT_PORT = 1883
#: Seconds between keepalive pings (a dead broker is noticed within 1.5x this).
KEEPALIVE_S = 10
#: Reconnect back-off bounds, seconds: a broker that returns is found again within the max.
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 2
#: QoS 1 messages kept while the broker is unreachable (older ones are refused, counted).
MAX_QUEUED_MESSAGES = 1000

MqttAddress = tuple[str, int]


def parse_mqtt_url(url: str) -> MqttAddress:
    """(host, port) of ``mqtt://host[:port]``; ValueError naming the bad part otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt":
        raise ValueError(f"mqtt_url: scheme {parts.scheme!r} of {url!r} is not 'mqtt'")
    if not parts.hostname:
        raise ValueError(f"mqtt_url: {url!r} names no host")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError(f"mqtt_url: the port of {url!r} is not a number 0-65535") from None
    if parts.path not in ("", "/"):
        raise ValueError(f"mqtt_url: {url!r} has a path {parts.path!r}; give mqtt://host:port")
    return parts.hostname, port


def new_origin() -> str:
    """A name for this process on the bus, unique across machines and restarts."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def make_client(client_id: str) -> mqtt.Client:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
    )
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    client.max_queued_messages_set(MAX_QUEUED_MESSAGES)
    return client
