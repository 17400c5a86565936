"""Zones in the running engine: a camera worker on vtest.avi with a zone on the walkway
stores its enters and leaves (the real model, a real SQLite file, the EventWriter) and
publishes the zone counts; a calibration without the zone, and the camera's stop, close
every stay."""

from __future__ import annotations

import pytest
from test_engine import (  # noqa: F401 (fixtures)
    DOOR,
    add_camera,
    calibration,
    db,
    detector,
    hub,
    make_engine,
    recorder,
    store_id,
    wait_for,
    writer,
)
from test_zone_counting import WALKWAY


def enters_and_leaves(database, camera_id: int) -> tuple[int, int]:
    events = database.zone_events(camera_id=camera_id)
    return sum(e.kind == "enter" for e in events), sum(e.kind == "leave" for e in events)


@pytest.mark.model
def test_engine_stores_zone_events_and_closes_stays(db, add_camera, make_engine, recorder, writer):  # noqa: F811
    camera_id = add_camera("Plaza", cal=calibration(DOOR, zones=[WALKWAY]))
    engine = make_engine()
    engine.start()
    wait_for("someone leaving the walkway", lambda: enters_and_leaves(db, camera_id)[1] >= 2)
    wait_for(
        "the walkway occupied",
        lambda: any(r.zones.get("walkway", {}).get("occupancy") for r in recorder.of(camera_id)),
    )
    # Dropping the zone closes the stays in it with the next frame.
    db.set_calibration(camera_id, calibration(DOOR))
    wait_for("the zone gone", lambda: recorder.of(camera_id)[-1].zones == {})
    assert writer.flush(timeout=10)
    enters, leaves = enters_and_leaves(db, camera_id)
    assert enters == leaves
    published = [e for r in recorder.of(camera_id) for e in r.zone_events]
    assert len(published) == enters + leaves  # every event published is stored, once
    stored = db.zone_events(camera_id=camera_id)
    assert all(e.dwell_s >= 0 for e in stored if e.kind == "leave")
    assert {e.zone_id for e in stored} == {"walkway"}

    # With the zone back, stopping the camera also closes the stays open at that moment.
    db.set_calibration(camera_id, calibration(DOOR, zones=[WALKWAY]))
    wait_for(
        "people inside again",
        lambda: recorder.of(camera_id)[-1].zones.get("walkway", {}).get("occupancy"),
    )
    engine.stop()
    assert writer.flush(timeout=10)
    enters, leaves = enters_and_leaves(db, camera_id)
    assert enters == leaves
