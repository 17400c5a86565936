"""Zones on the pages: the analytics page's zone table, occupancy and dwell charts (a real
App on SQLite, zone events through the real EventWriter), the live tile's zone line and
the annotated frame."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
from bokeh.document import Document

from zvpanel.annotate import QUEUE_COLOR, ZONE_COLOR, annotate
from zvpanel.calibration import parse_calibration
from zvpanel.counting import ZoneEvent
from zvpanel.detections import Detections
from zvpanel.engine import CameraStatus
from zvpanel.storage import EventWriter
from zvpanel.storage.bootstrap import DEMO_CALIBRATION
from zvpanel.ui.analytics import AnalyticsView
from zvpanel.ui.live import status_html
from zvpanel.ui.zones import dwell_bin_labels

TILL = {"id": "till", "points": [[100, 300], [300, 300], [300, 450], [100, 450]], "queue": True}
SHELF = {"id": "shelf", "points": [[400, 300], [600, 300], [600, 450]]}


def render(viewable) -> object:
    """Render like a server session would; returns the Bokeh root model."""
    return viewable.get_root(Document())


def demo_camera(app):
    return next(c for c in app.db.list_cameras() if c.name == "Demo camera")


def zoned(*zones: dict):
    return parse_calibration(DEMO_CALIBRATION.model_dump() | {"zones": list(zones)})


def stays(app, camera, zone_id: str, seconds: list[float], start: datetime) -> None:
    """One track per stay: enters at ``start`` + i minutes, leaves ``seconds[i]`` later."""
    with EventWriter(app.db) as writer:
        for i, dwell in enumerate(seconds):
            enter = start + timedelta(minutes=i)
            for when, kind, dwell_s in (
                (enter, "enter", None),
                (enter + timedelta(seconds=dwell), "leave", dwell),
            ):
                event = ZoneEvent(zone_id, i + 1, kind, 0, 0.0, dwell_s, (150.0, 400.0))
                assert writer.submit(camera.store_id, camera.id, [event], when)
        assert writer.flush(10)


def test_analytics_page_shows_zone_dwell_and_occupancy(app):
    camera = demo_camera(app)
    app.db.set_calibration(camera.id, zoned(TILL, SHELF))
    start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    stays(app, camera, "till", [30.0, 90.0, 45.0, 200.0], start)
    view = AnalyticsView(app)
    render(view.__panel__())
    # All cameras: the table lists every zone, the charts wait for one camera.
    table = view.zones.table.object
    assert '<tr data-zone="till">' in table and '<tr data-zone="shelf">' in table
    assert "(queue: waiting time)" in table and "Choose a camera" in table
    till = view.zones.data.set_index("zone").loc["till"]
    assert (till.stays, till.median_s, till.p90_s) == (4, 67.5, 167.0)
    assert view.zones.data.set_index("zone").loc["shelf"].stays == 0
    assert not view.zones.occupancy.visible

    view.camera_select.value = camera.id
    assert view.zones.occupancy.visible
    curves = {c.label: c for c in view.zones.occupancy.object}
    # Enters at 0, 60, 120, 180 s; leaves at 30, 150, 165, 380 s: two inside at 120 s.
    # (The curve starts at the first event: nobody was inside before.)
    inside = list(curves["till"].dimension_values("inside"))
    assert inside == [1, 0, 1, 2, 1, 0, 1, 0]
    assert list(curves["shelf"].dimension_values("inside")) == [0]
    bars = view.zones.dwell.object.data
    till_bars = bars[bars["zone"] == "till"].set_index("time inside")["stays"]
    labels = dwell_bin_labels()
    assert labels[4:7] == ["30 s-1 min", "1 min-2 min", "2 min-5 min"]
    assert till_bars.sum() == 4
    assert [till_bars[label] for label in labels[4:7]] == [2, 1, 1]

    # The zone charts redraw by themselves when zone events arrive (and only then).
    assert view.zones.refresh() is False
    stays(app, camera, "till", [10.0], start + timedelta(minutes=30))
    assert view.zones.refresh() is True
    assert view.zones.data.set_index("zone").loc["till"].stays == 5
    assert view.zones.refresh() is False


def test_analytics_without_zones_says_where_to_draw_them(app):
    view = AnalyticsView(app)
    render(view.__panel__())
    assert "No zones" in view.zones.table.object


def test_live_tile_shows_zone_occupancy_and_queue_wait():
    status = CameraStatus(1, state="online", target_fps=5.0, actual_fps=5.0)
    zones = {
        "till": {"occupancy": 3, "enters": 5, "leaves": 2, "queue": True,
                 "longest_inside_s": 74.4, "mean_inside_s": 30.0},
        "shelf": {"occupancy": 1, "enters": 1, "leaves": 0, "queue": False,
                  "longest_inside_s": 3.0, "mean_inside_s": 3.0},
    }  # fmt: skip
    html = status_html(status, {"door": {"entries": 1, "exits": 0}}, zones)
    assert 'Queue till: <b class="zv-occupancy">3</b> waiting, longest 74 s' in html
    assert 'Zone shelf: <b class="zv-occupancy">1</b> inside' in html
    assert "zv-zone" not in status_html(status, {})


def test_annotated_frame_draws_zones():
    image = np.zeros((576, 768, 3), np.uint8)
    calibration = zoned(TILL, SHELF)
    out = annotate(image, Detections.empty(), calibration, {}, None, {"till": {"occupancy": 2}})
    # The outlines are drawn in their colours (a queue orange, a zone violet).
    assert has_colour(out, 375, 100, QUEUE_COLOR) and has_colour(out, 375, 300, QUEUE_COLOR)
    assert has_colour(out, 375, 600, ZONE_COLOR)
    assert has_colour(out, 375, 500, ZONE_COLOR)  # the slanted edge
    assert not has_colour(out, 375, 450, ZONE_COLOR)
    assert not out[400, 200].any()  # inside the polygon is left as it was


def has_colour(image: np.ndarray, y: int, x: int, colour: tuple[int, int, int]) -> bool:
    """Whether a pixel of the 3x3 square around (x, y) is exactly ``colour``."""
    return bool((image[y - 1 : y + 2, x - 1 : x + 2] == colour).all(axis=2).any())
