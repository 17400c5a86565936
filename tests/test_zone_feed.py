"""Zones on the WebSocket feed and the bus payloads: a real Tornado server on 127.0.0.1,
real WebSocket clients, results computed by the real pipeline on vtest.avi with a zone on
the walkway; every message is validated against zvpanel/schemas."""

from __future__ import annotations

import pytest
from test_video import read_frame, wait_until
from test_ws import TRUSTED_ORIGIN, connect, read_json, run
from test_zone_counting import WALKWAY

from zvpanel.app import App
from zvpanel.bus.messages import (
    counts_payload,
    detections_payload,
    event_payloads,
    result_from_payload,
)
from zvpanel.bus.topics import validate_payload
from zvpanel.calibration import parse_calibration
from zvpanel.engine import CameraStatus, FrameResult
from zvpanel.web.auth import issue_token
from zvpanel.web.feed import zone_counts
from zvpanel.web.jpeg import FrameEncoder
from zvpanel.web.routes import build_routes
from zvpanel.web.server import FeedServer
from zvpanel.web.ws_handlers import FeedRegistry

#: Frames of vtest.avi run through the pipeline (every second one processed).
FRAMES = 60


@pytest.fixture(scope="module")
def zone_results(model_path, video_path) -> list[tuple]:
    """(frame, PipelineOutput) with the walkway zone, and the closing leaves at the end."""
    from zvpanel.detection import YoloDetector
    from zvpanel.pipeline import CountingPipeline
    from zvpanel.sources.capture import iter_frames
    from zvpanel.storage.bootstrap import DEMO_CALIBRATION

    calibration = parse_calibration(DEMO_CALIBRATION.model_dump() | {"zones": [WALKWAY]})
    pipeline = CountingPipeline(calibration, YoloDetector(model_path))
    outputs = [
        (frame, pipeline.process(frame))
        for frame in iter_frames(video_path, max_frames=FRAMES)
        if frame.index % 2 == 0
    ]
    assert any(out.zone_events for _, out in outputs), "people must enter the walkway"
    return calibration, outputs


def frame_results(zone_results, camera_id: int) -> list[FrameResult]:
    calibration, outputs = zone_results
    status = CameraStatus(camera_id, state="online", target_fps=5.0, actual_fps=4.9)
    return [
        FrameResult(
            camera_id,
            frame,
            out.detections,
            out.events,
            out.counts,
            calibration,
            status,
            zone_events=out.zone_events,
            zones=out.zones,
        )
        for frame, out in outputs
    ]


@pytest.fixture
def served(settings, zone_results):
    settings = settings.model_copy(update={"allowed_origins": [TRUSTED_ORIGIN]})
    app = App(settings)
    app.start_database()
    app.start_bootstrap()
    app.start_hub()
    camera = app.db.list_cameras()[0]
    app.db.set_calibration(camera.id, zone_results[0])
    encoder = FrameEncoder()
    routes = build_routes(lambda: app, encoder_provider=lambda: encoder, registry=FeedRegistry())
    with FeedServer(routes) as server:
        yield app, server, frame_results(zone_results, camera.id)
    encoder.shutdown()
    app.stop_database()


@pytest.mark.model
def test_events_socket_carries_zone_enters_and_leaves(served):
    app, server, results = served
    expected = [(r, e) for r in results for e in r.zone_events]
    token = issue_token(app.settings, "admin", admin=True)

    async def scenario():
        conn = await connect(f"{server.ws_url}/ws/events?token={token}")
        await read_json(conn, "hello")
        for result in results:
            app.hub.publish(result)
        for result, event in expected:
            message = await read_json(conn)  # validated against its type's schema
            while message["type"] == "event":  # the crossings come in between
                message = await read_json(conn)
            assert message["type"] == "zone_event"
            assert (message["zone_id"], message["track_id"], message["kind"]) == (
                "walkway",
                event.track_id,
                event.kind,
            )
            assert message["zones"]["walkway"]["occupancy"] == result.zones["walkway"]["occupancy"]
            assert message["dropped"] == 0
        conn.close()

    run(scenario())


@pytest.mark.model
def test_detections_socket_carries_zone_counts(served):
    app, server, results = served
    token = issue_token(app.settings, "admin", admin=True)
    camera_id = results[0].camera_id

    async def scenario():
        conn = await connect(f"{server.ws_url}/ws/detections/{camera_id}?token={token}")
        await read_json(conn, "hello")
        occupancies = []
        for result in results:
            app.hub.publish(result)
            message = await read_json(conn, "detections")
            walkway = message["zones"]["walkway"]
            assert walkway["occupancy"] == result.zones["walkway"]["occupancy"]
            assert walkway["queue"] is False
            assert [e["kind"] for e in message["zone_events"]] == [
                e.kind for e in result.zone_events
            ]
            occupancies.append(walkway["occupancy"])
        assert max(occupancies) > 0
        conn.close()

    run(scenario())


@pytest.mark.model
def test_bus_payloads_carry_zones_and_read_back(zone_results):
    results = frame_results(zone_results, 7)
    for result in results:
        payload = detections_payload(result, "dash-1")
        validate_payload("detections", payload)
        validate_payload("counts", counts_payload(result, "dash-1"))
        for event in event_payloads(result, "dash-1"):
            validate_payload("events", event)
        back = result_from_payload(payload, result.calibration, None, None)
        assert back.zones["walkway"]["occupancy"] == result.zones["walkway"]["occupancy"]
        assert [(e.track_id, e.kind) for e in back.zone_events] == [
            (e.track_id, e.kind) for e in result.zone_events
        ]
    zone_payloads = [
        p for r in results for p in event_payloads(r, "dash-1") if p["type"] != "event"
    ]
    assert zone_payloads and all(p["type"] == "zone_event" for p in zone_payloads)
    # A leave without its dwell breaks the schema.
    leave = next(p for p in zone_payloads if p["kind"] == "enter")
    with pytest.raises(ValueError, match="events"):
        validate_payload("events", leave | {"kind": "leave"})


@pytest.mark.model
def test_video_socket_header_carries_zones_and_their_polygons(served):
    app, server, results = served
    token = issue_token(app.settings, "admin", admin=True)
    camera_id = results[0].camera_id

    async def scenario():
        conn = await connect(f"{server.ws_url}/ws/video/{camera_id}?token={token}")
        await wait_until(lambda: app.hub.frames_wanted(camera_id), "the stream exists")
        for result in results[:10]:
            app.hub.publish(result)
            header, _ = await read_frame(conn)  # validated against frame.json
            assert header["zones"]["walkway"] == zone_counts(result)["walkway"]
            (zone,) = header["calibration"]["zones"]
            assert zone == {"id": "walkway", "points": WALKWAY["points"], "queue": False}
        conn.close()

    run(scenario())
