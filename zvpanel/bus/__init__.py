"""The MQTT bus (``ZVPANEL_MQTT_URL``): engines publish their cameras' results, dashboards
of other processes serve them. Topics and payloads: ``zvpanel/schemas/bus_*.json`` and
the README's "MQTT bus" section."""

from .bus import WATCH_EXPIRY_S, WATCH_RENEW_S, Bus
from .client import parse_mqtt_url
from .feed import BUS_UNAVAILABLE, BusFeed
from .publisher import BusPublisher
from .topics import camera_topic, parse_topic, validate_payload

__all__ = [
    "Bus",
    "BusFeed",
    "BusPublisher",
    "BUS_UNAVAILABLE",
    "WATCH_EXPIRY_S",
    "WATCH_RENEW_S",
    "camera_topic",
    "parse_topic",
    "parse_mqtt_url",
    "validate_payload",
]
