"""Zones: the calibration model, polygon geometry, zones stored with a calibration, zone
events through the event writer and a node's outbox, the zone chart queries (storage on
both backends)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from zvpanel.calibration import MAX_LINES_AND_ZONES, parse_calibration
from zvpanel.counting import CrossingEvent, ZoneEvent
from zvpanel.errors import CalibrationError
from zvpanel.geometry import polygon_area, polygon_depth, polygon_is_simple
from zvpanel.node.outbox import Forwarder, Outbox
from zvpanel.storage import EventWriter
from zvpanel.storage.zones import DWELL_BIN_EDGES_S, dwell_stats, zone_occupancy

VIDEO = Path(__file__).resolve().parents[1] / "data" / "vtest.avi"
DOOR = {"id": "door", "x1": 0, "y1": 100, "x2": 200, "y2": 100}
SQUARE = [[100, 100], [200, 100], [200, 200], [100, 200]]
T0 = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)


def calibration_with(*zones: dict, **kwargs):
    return parse_calibration({"lines": [DOOR], "zones": list(zones), **kwargs})


@pytest.mark.parametrize(
    ("points", "area", "simple"),
    [
        (SQUARE, 10000.0, True),
        ([[0, 0], [10, 0], [0, 10]], 50.0, True),
        ([[0, 0], [10, 10], [10, 0], [0, 10]], 0.0, False),  # bow tie
        ([[0, 0], [20, 0], [20, 20], [10, 0], [0, 20]], 200.0, False),  # vertex on an edge
    ],
)
def test_polygon_area_and_simplicity(points, area, simple):
    assert polygon_area(np.array(points)) == pytest.approx(area)
    assert polygon_is_simple(np.array(points)) is simple


def test_polygon_depth_is_signed_distance_to_the_boundary():
    depth = polygon_depth(
        np.array(SQUARE), np.array([[150, 150], [105, 150], [95, 150], [150, 230]])
    )
    assert depth.tolist() == pytest.approx([50.0, 5.0, -5.0, -30.0])
    # A concave "U": the notch is outside.
    u = np.array([[0, 0], [30, 0], [30, 30], [20, 30], [20, 10], [10, 10], [10, 30], [0, 30]])
    assert polygon_depth(u, np.array([[15, 25], [5, 25]])).tolist() == pytest.approx([-5.0, 5.0])


def test_zone_model_defaults_and_round_trip():
    calibration = calibration_with({"id": "till", "points": SQUARE, "queue": True})
    zone = calibration.zones[0]
    assert zone.points == ((100.0, 100.0), (200.0, 100.0), (200.0, 200.0), (100.0, 200.0))
    assert zone.queue is True
    assert parse_calibration(calibration.model_dump_json()) == calibration
    assert parse_calibration({"lines": [DOOR]}).zones == ()


@pytest.mark.parametrize(
    ("zone", "message"),
    [
        ({"points": SQUARE[:2]}, r"zones\.0\.points: .*at least 3"),
        ({"points": [[0, 0]] * 65}, r"zones\.0\.points: .*at most 64"),
        ({"points": [[0, 0], [50, 0], [50, 1]]}, r"zone 'zone-1' has an area of 25 px²"),
        ({"points": [[0, 0], [40, 40], [40, 0], [0, 40]]}, r"area of 0 px²"),
        ({"points": [[0, 0], [20, 0], [20, 20], [10, 0], [0, 20]]}, "edges cross or touch"),
        ({"points": [[0, 0], [50, float("nan")], [50, 0]]}, r"zones\.0\.points\.1\.1: .*finite"),
        ({"id": "door", "points": SQUARE}, r"ids must be unique together, got \['door', 'door'\]"),
        ({"id": "", "points": SQUARE}, r"zones\.0\.id"),
        ({"points": SQUARE, "colour": "red"}, r"zones\.0\.colour: Extra inputs"),
    ],
)
def test_bad_zones_are_refused_naming_the_problem(zone, message):
    with pytest.raises(CalibrationError, match=message):
        calibration_with(zone)


def test_lines_and_zones_of_a_camera_are_bounded_together():
    zones = [{"id": f"z{i}", "points": SQUARE} for i in range(MAX_LINES_AND_ZONES - 1)]
    assert len(calibration_with(*zones).zones) == MAX_LINES_AND_ZONES - 1
    with pytest.raises(
        CalibrationError,
        match=f"{MAX_LINES_AND_ZONES + 1} lines and zones; at most {MAX_LINES_AND_ZONES}",
    ):
        calibration_with(*zones, {"id": "one-more", "points": SQUARE})


def test_check_frame_covers_zone_vertices_in_the_frame_and_the_roi():
    calibration = calibration_with({"id": "far", "points": [[100, 100], [300, 100], [300, 300]]})
    calibration.check_frame(400, 400)
    with pytest.raises(
        CalibrationError, match=r"zone 'far' vertex \(300, 100\) is outside the 250x400"
    ):
        calibration.check_frame(250, 400)
    roi = calibration_with(
        {"id": "far", "points": [[100, 100], [300, 100], [300, 300]]}, roi=(0, 0, 250, 400)
    )
    with pytest.raises(
        CalibrationError, match=r"zone 'far' vertex \(300, 100\) is outside the roi"
    ):
        roi.check_frame(400, 400)


@pytest.mark.parametrize("db_target", ["sqlite", "postgres"], indirect=True)
def test_zones_are_stored_with_the_calibration(db):
    store = db.create_store("Main street", "Europe/Paris")
    camera = db.create_camera(store.id, "Door", str(VIDEO))
    calibration = calibration_with(
        {"id": "till", "points": SQUARE, "queue": True},
        {"id": "shelf", "points": [[300.5, 10], [400, 10], [350, 90.25]]},
    )
    db.set_calibration(camera.id, calibration)
    assert db.get_calibration(camera.id) == calibration
    assert [z.id for z in db.get_calibration(camera.id).zones] == ["till", "shelf"]
    db.set_calibration(camera.id, calibration_with())
    assert db.get_calibration(camera.id).zones == ()


def zone_event(kind: str, track: int, t: float, dwell: float | None = None, zone: str = "till"):
    return ZoneEvent(zone, track, kind, int(t * 10), t, dwell, (150.0, 150.0))


@pytest.mark.parametrize("db_target", ["sqlite", "postgres"], indirect=True)
def test_writer_stores_zone_events_beside_crossings_and_charts_read_them(db):
    store = db.create_store("Main street", "Europe/Paris")
    camera = db.create_camera(store.id, "Door", str(VIDEO))
    frames = [
        (T0, [CrossingEvent("door", 1, "entry", 0, 0.9, (10.0, 20.0)), zone_event("enter", 1, 0)]),
        (T0 + timedelta(seconds=5), [zone_event("enter", 2, 5)]),
        (T0 + timedelta(seconds=20), [zone_event("leave", 1, 20, 20.0)]),
        (T0 + timedelta(seconds=30), [zone_event("leave", 2, 30, 25.0)]),
        (T0 + timedelta(seconds=40), [zone_event("enter", 3, 40)]),
    ]
    with EventWriter(db) as writer:
        for when, events in frames:
            assert writer.submit(store.id, camera.id, events, when)
        assert writer.flush(10)
        assert writer.stats().written == 6
    assert [e.line_id for e in db.events(camera_id=camera.id)] == ["door"]
    stored = db.zone_events(camera_id=camera.id)
    assert [(e.track_id, e.kind, e.dwell_s) for e in stored] == [
        (1, "enter", None),
        (2, "enter", None),
        (1, "leave", 20.0),
        (2, "leave", 25.0),
        (3, "enter", None),
    ]
    assert all(e.uid and e.node is None and e.store_id == store.id for e in stored)
    assert db.zone_dwells(camera.id) == {"till": [20.0, 25.0]}
    stats = dwell_stats(db.zone_dwells(camera.id)["till"])
    assert (stats.stays, stats.median_s, stats.p90_s) == (2, 22.5, pytest.approx(24.5))
    assert sum(stats.histogram) == 2 and stats.histogram[DWELL_BIN_EDGES_S.index(20)] == 2
    # From 10 s on: 2 inside at the start, then the leaves and the third enter.
    series = zone_occupancy(
        db, camera.id, "till", T0 + timedelta(seconds=10), T0 + timedelta(hours=1)
    )
    assert series.tolist() == [2, 1, 0, 1]
    assert series.index[0] == pd.Timestamp(T0 + timedelta(seconds=10))


@pytest.mark.parametrize("db_target", ["sqlite", "postgres"], indirect=True)
def test_a_nodes_zone_events_travel_through_its_outbox_once(db, tmp_path):
    store = db.create_store("Main street", "Europe/Paris")
    camera = db.create_camera(store.id, "Door", str(VIDEO))
    outbox = Outbox(tmp_path / "outbox.db", "node-a")
    try:
        crossing = CrossingEvent("door", 1, "entry", 0, 0.9, (10.0, 20.0))
        outbox.submit(store.id, camera.id, [crossing, zone_event("enter", 1, 0)], T0)
        outbox.submit(
            store.id, camera.id, [zone_event("leave", 1, 8, 8.0)], T0 + timedelta(seconds=8)
        )
        pending = outbox.pending_zone_events(10)
        assert [row.kind for _, row in pending] == ["enter", "leave"]
        # A forwarder killed after the insert but before marking sends the batch again.
        db.insert_zone_events(row for _, row in pending)
        Forwarder(outbox, db).forward_once()
        assert outbox.pending_zone_events(10) == [] and outbox.pending(10) == []
    finally:
        outbox.close()
    stored = db.zone_events(camera_id=camera.id)
    assert [(e.kind, e.dwell_s, e.node) for e in stored] == [
        ("enter", None, "node-a"),
        ("leave", 8.0, "node-a"),
    ]
    assert {e.uid for e in stored} == {row.uid for _, row in pending}
    assert len(db.events(camera_id=camera.id)) == 1


@pytest.mark.parametrize("db_target", ["sqlite", "postgres"], indirect=True)
def test_retention_deletes_the_zone_events_of_stays_that_ended(db):
    store = db.create_store("Main street", "Europe/Paris")
    camera = db.create_camera(store.id, "Door", str(VIDEO))
    hours = [
        (-2.0, [zone_event("enter", 1, 0), zone_event("enter", 2, 0)]),
        (-1.5, [zone_event("leave", 1, 1800, 1800.0)]),  # ended before the cutoff
        (0.5, [zone_event("leave", 2, 9000, 9000.0)]),  # open at the cutoff
        (1.0, [zone_event("enter", 3, 10800)]),
    ]
    with EventWriter(db) as writer:
        for h, events in hours:
            assert writer.submit(store.id, camera.id, events, T0 + timedelta(hours=h))
        assert writer.flush(10)
    assert db.roll_up_events(T0).zone_events == 2
    left = [(e.track_id, e.kind) for e in db.zone_events(camera_id=camera.id)]
    assert left == [(2, "enter"), (2, "leave"), (3, "enter")]
    # Who was inside still adds up after the cutoff.
    assert db.zone_occupancy_before(camera.id, "till", T0 + timedelta(minutes=15)) == 1
    assert db.zone_occupancy_before(camera.id, "till", T0 + timedelta(hours=2)) == 1
    assert db.zone_dwells(camera.id) == {"till": [9000.0]}
