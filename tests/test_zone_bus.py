"""Zone events over the MQTT bus: a publishing process's zone enters/leaves reach a
bus-fed dashboard's /ws/events once each, as ``zone_event`` messages valid against
``zone_event.json`` (real PostgreSQL, real Mosquitto, the dashboard App of test_bus)."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import replace

import jsonschema
import pytest
from test_bus import WAIT_S, HubWatcher, fleet, wait_until  # noqa: F401 (fleet: a fixture)
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from zvpanel.bus import Bus
from zvpanel.counting import ZoneEvent
from zvpanel.engine import ResultHub
from zvpanel.web.auth import issue_token
from zvpanel.web.feed import load_schema
from zvpanel.web.jpeg import FrameEncoder
from zvpanel.web.routes import build_routes
from zvpanel.web.server import FeedServer
from zvpanel.web.ws_handlers import FeedRegistry

#: Track ids and frames no real result of the test footage has.
ZONE_TRACK = 800_000
ZONE_FRAME = 8_000_000
ZONES = {
    "till": {"occupancy": 1, "enters": 1, "leaves": 0, "queue": True,
             "longest_inside_s": 0.0, "mean_inside_s": 0.0},
}  # fmt: skip


@pytest.mark.model
def test_zone_events_reach_a_bus_fed_dashboards_ws_events_once(fleet):  # noqa: F811
    camera_id, dashboard = fleet["camera_id"], fleet["dashboard"]
    watcher = HubWatcher(fleet["engine"], camera_id)
    try:
        wait_until(lambda: watcher.results, "a result of the engine")
    finally:
        watcher.close()
    real = watcher.results[-1]
    enter = ZoneEvent("till", ZONE_TRACK, "enter", ZONE_FRAME, 0.0, None, (150.0, 400.0))
    leave = replace(enter, kind="leave", frame_index=ZONE_FRAME + 1, dwell_s=12.5, point=None)
    entered, left = (
        replace(real, frame=replace(real.frame, index=ZONE_FRAME + k), events=(),
                zone_events=(event,), zones=ZONES)
        for k, event in enumerate((enter, leave))
    )  # fmt: skip
    routes = build_routes(lambda: dashboard, encoder_provider=FrameEncoder, registry=FeedRegistry())
    version = dashboard.db.get_user("admin").token_version  # an earlier test ended sessions
    token = issue_token(dashboard.settings, "admin", admin=True, version=version)
    node = Bus(fleet["mosquitto"].url, ResultHub(), publish=True).start()

    async def zone_messages(url: str) -> list[dict]:
        conn = await websocket_connect(HTTPRequest(f"{url}/ws/events?token={token}"))
        try:
            assert json.loads(await conn.read_message())["type"] == "hello"
            # Both through the events topic (QoS 1), the leave's frame also as detections.
            node.publisher._send({camera_id: left}, {}, deque([entered, left]))
            seen: list[dict] = []
            while not any(m["kind"] == "leave" for m in seen):  # bounded by the wait below
                message = json.loads(await asyncio.wait_for(conn.read_message(), WAIT_S))
                if message["type"] == "zone_event" and message["track_id"] == ZONE_TRACK:
                    jsonschema.validate(message, load_schema("zone_event"))
                    seen.append(message)
            return seen
        finally:
            conn.close()

    try:
        wait_until(node.connected.is_set, "the test node to connect")
        with FeedServer(routes) as server:
            seen = asyncio.run(zone_messages(server.ws_url))
    finally:
        node.stop()
    assert [(m["kind"], m["dwell_s"], m["frame"]) for m in seen] == [
        ("enter", None, ZONE_FRAME),
        ("leave", 12.5, ZONE_FRAME + 1),
    ]
    assert seen[0]["zones"]["till"]["queue"] is True and seen[1]["point"] is None
