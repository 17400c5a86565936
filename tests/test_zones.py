"""Zones: the calibration model, polygon geometry and zones stored with a calibration
(both backends)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from argon2 import PasswordHasher

from zvpanel.calibration import parse_calibration
from zvpanel.errors import CalibrationError
from zvpanel.geometry import polygon_area, polygon_depth, polygon_is_simple
from zvpanel.storage import Database

VIDEO = Path(__file__).resolve().parents[1] / "data" / "vtest.avi"
DOOR = {"id": "door", "x1": 0, "y1": 100, "x2": 200, "y2": 100}
SQUARE = [[100, 100], [200, 100], [200, 200], [100, 200]]


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


@pytest.fixture
def db(db_target):
    hasher = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    database = Database(db_target, password_hasher=hasher)
    yield database
    database.close()


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
