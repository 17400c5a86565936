"""The bus on a broker that asks for a login, over TLS: a real Mosquitto with a password
file and a TLS listener (its certificate from a test CA). The password never shows in a
log line or an error; a refused login or an untrusted certificate is said once, not at
every retry."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mosquitto import SecuredBroker, secured_mosquitto
from test_bus import wait_until

from zvpanel.bus import BUS_UNAVAILABLE, Bus, parse_mqtt_url
from zvpanel.config import load_settings
from zvpanel.engine import ResultHub
from zvpanel.engine.result import CameraStatus
from zvpanel.errors import ConfigError

USER, PASSWORD = "zvnode", "s3cret pw/with:odd@chars"
CAMERA = 7
#: Waits for what must happen (seconds); retries come every 1-2 s.
WAIT_S = 20.0
#: How long a refused client is watched retrying.
RETRYING_S = 5.0


def dashboard_bus(url: str, hub: ResultHub, ca_file: Path | None, publish: bool) -> Bus:
    """A bus that feeds ``hub`` with :data:`CAMERA` (and publishes, with ``publish``)."""
    return Bus(
        url,
        hub,
        publish=publish,
        calibration_for=lambda camera_id: None,
        expected_cameras=lambda: [CAMERA],
        ca_file=ca_file,
    ).start()


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[SecuredBroker]:
    with secured_mosquitto(tmp_path_factory.mktemp("secured-mqtt"), USER, PASSWORD) as broker:
        yield broker


def test_a_login_and_tls_in_the_url_are_parsed_and_never_shown():
    target = parse_mqtt_url("mqtts://zv:p%40ss%2Fword@broker.example:8884")
    assert (target.host, target.port, target.tls) == ("broker.example", 8884, True)
    assert (target.username, target.password) == ("zv", "p@ss/word")
    assert str(target) == "mqtts://zv:***@broker.example:8884" and "p@ss" not in repr(target)
    assert parse_mqtt_url("mqtts://broker.example").port == 8883
    assert parse_mqtt_url("mqtt://broker.example").port == 1883
    for bad, problem in [
        ("mqtt://zv:hunter22@broker/topic", "more than"),
        ("mqtt://zv:hunter22@broker:99999", "port"),
        ("http://zv:hunter22@broker", "scheme"),
        ("mqtt://:hunter22@broker", "no user name"),
    ]:
        with pytest.raises(ValueError, match=problem) as error:
            parse_mqtt_url(bad)
        assert "hunter22" not in str(error.value), error.value


def test_the_settings_never_show_the_brokers_password():
    with pytest.raises(ConfigError, match="ZVPANEL_MQTT_URL") as error:
        load_settings(mqtt_url="mqtt://zv:hunter22@broker/topic")
    assert "hunter22" not in str(error.value) and "zv:***@broker" in str(error.value)
    settings = load_settings(mqtt_url="mqtts://zv:hunter22@broker")
    assert "hunter22" not in repr(settings) and "hunter22" not in str(settings)


def test_a_ca_file_that_is_not_there_is_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match="ZVPANEL_MQTT_CA_FILE.*missing.pem' is not a file"):
        load_settings(mqtt_url="mqtts://broker", mqtt_ca_file=tmp_path / "missing.pem")


def test_status_travels_with_a_login_over_tls(broker, caplog):
    caplog.set_level(logging.INFO, logger="zvpanel.bus")
    url = broker.url(tls=True)
    publisher_hub, dashboard_hub = ResultHub(), ResultHub()
    publisher = Bus(url, publisher_hub, publish=True, ca_file=broker.ca_file).start()
    dashboard = dashboard_bus(url, dashboard_hub, broker.ca_file, publish=False)
    try:
        wait_until(publisher.connected.is_set, "the publisher to log in", WAIT_S)
        wait_until(dashboard.connected.is_set, "the dashboard to log in", WAIT_S)
        publisher_hub.set_status(CameraStatus(CAMERA, "online"))
        wait_until(
            lambda: getattr(dashboard_hub.status(CAMERA), "state", None) == "online",
            "the camera's status on the dashboard",
            WAIT_S,
        )
    finally:
        dashboard.stop()
        publisher.stop()
    said = " ".join(r.getMessage() for r in caplog.records)
    assert f"connected to mqtts://{USER}:***@127.0.0.1:{broker.tls_port}" in said
    assert PASSWORD not in said


@pytest.mark.parametrize(
    "how, expected",
    [
        ("wrong password", "refused the connection: Not authorized"),
        ("untrusted certificate", "cannot connect to mqtts://"),
        ("no login", "refused the connection: Not authorized"),
    ],
)
def test_a_refused_bus_says_why_once_and_never_the_password(broker, caplog, how, expected):
    caplog.set_level(logging.INFO, logger="zvpanel.bus")
    if how == "wrong password":
        url, ca_file = broker.url(tls=False, password="not-" + PASSWORD), None
    elif how == "untrusted certificate":  # the system's CAs do not know the test CA
        url, ca_file = broker.url(tls=True), None
    else:
        url, ca_file = f"mqtt://127.0.0.1:{broker.server.port}", None
    hub = ResultHub()
    bus = dashboard_bus(url, hub, ca_file, publish=True)
    try:
        time.sleep(RETRYING_S)  # it retries every 1-2 s meanwhile
        assert not bus.connected.is_set()
        assert hub.status(CAMERA).reason == BUS_UNAVAILABLE  # what the live views show
    finally:
        bus.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and expected in warnings[0], warnings
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)
