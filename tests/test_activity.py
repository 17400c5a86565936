"""Camera activity on real parts: status changes, coverage and heat grids in the database
(both backends), the recorder crediting online time, a node's outbox forwarding activity,
and the real model on vtest.avi filling the heat grid where people walk."""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import holoviews as hv
import numpy as np
import pytest

from zvpanel.calibration import parse_calibration
from zvpanel.engine import CameraStatus, Engine, ResultHub
from zvpanel.engine.recorder import ActivityRecorder
from zvpanel.node.outbox import Forwarder, Outbox
from zvpanel.storage import Database, EventFilter, EventRow, EventWriter
from zvpanel.storage.activity import (
    HEAT_COLUMNS,
    HEAT_ROWS,
    CoverageRow,
    HeatRow,
    StatusChangeRow,
)
from zvpanel.storage.coverage import camera_coverage, coverage_share, heat_grid, store_gaps
from zvpanel.storage.values import utc_text

UTC = timezone.utc
T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def cameras(db: Database):
    store = db.create_store("Main street", "Europe/Paris")
    door = db.create_camera(store.id, "Door", "rtsp://127.0.0.1:9/door")
    back = db.create_camera(store.id, "Back", "rtsp://127.0.0.1:9/back")
    return store, door, back


def _change(camera, when: datetime, state: str, reason: str | None = None, uid: str = ""):
    uid = uid or f"{camera.id}-{when.isoformat()}-{state}"
    return StatusChangeRow(uid, camera.store_id, camera.id, utc_text(when), state, reason)


def _quarter(camera, when: datetime, seconds: float, run: str = "run-a"):
    return CoverageRow(camera.store_id, camera.id, utc_text(when), run, seconds)


def _heat(camera, when: datetime, run: str, cells: dict[tuple[int, int], int]) -> HeatRow:
    """A run's heat grid of one hour; ``cells``: (column, row) -> visits."""
    grid = np.zeros((HEAT_ROWS, HEAT_COLUMNS), dtype=np.int64)
    for (x, y), visits in cells.items():
        grid[y, x] = visits
    return HeatRow.of(camera.id, utc_text(when), run, grid)


# --------------------------------------------------------------------------- storage
def test_coverage_per_hour_and_day_counts_online_time_of_the_elapsed_bins(db, cameras):
    store, door, back = cameras
    q = timedelta(minutes=15)
    db.record_activity(
        changes=[_change(door, T0 - timedelta(hours=1), "online")],
        coverage=[
            _quarter(door, T0, 900),
            _quarter(door, T0 + q, 900),
            _quarter(door, T0 + 2 * q, 450),
        ],
    )
    # Sent again (a node's forwarder after a crash) and late with smaller totals: kept once.
    db.record_activity(
        changes=[_change(door, T0 - timedelta(hours=1), "online")],
        coverage=[_quarter(door, T0 + 2 * q, 300)],
    )
    assert [c.state for c in db.status_changes(door.id)] == ["online"]

    window = EventFilter(store.id, door.id, T0 - timedelta(hours=2), T0 + timedelta(hours=10))
    now = T0 + timedelta(hours=2)
    hourly = camera_coverage(db, "h", "Europe/Paris", window, now)[door.id]
    # 10:00 UTC is before the first record: unknown; 14:00 UTC is not over (now).
    assert [t.hour for t in hourly.index] == [11, 12, 13, 14]  # Paris hours
    assert math.isnan(hourly.iloc[0])
    assert hourly.iloc[1:].tolist() == [0.0, 2250 / 3600, 0.0]

    daily = camera_coverage(db, "D", "Europe/Paris", window, now)[door.id]
    assert len(daily) == 1 and daily.index[0].hour == 0
    assert daily.iloc[0] == pytest.approx(2250 / (3 * 3600))

    # A second process (another run) credited the last quarter: the hour adds both up.
    db.record_activity(coverage=[_quarter(door, T0 + 3 * q, 900, run="run-b")])
    hourly = camera_coverage(db, "h", "Europe/Paris", window, now)[door.id]
    assert hourly.iloc[2] == pytest.approx(3150 / 3600)


def test_store_coverage_is_the_mean_of_its_known_cameras_and_flags_gaps(db, cameras):
    store, door, back = cameras
    hours = [T0 + timedelta(minutes=15 * i) for i in range(8)]  # 12:00 to 14:00 UTC
    db.record_activity(
        changes=[_change(door, T0, "online"), _change(back, T0, "online")],
        coverage=[_quarter(door, t, 900) for t in hours]
        + [_quarter(back, t, 900) for t in hours[:4]],  # back is down from 13:00
    )
    window = EventFilter(store.id, None, T0, T0 + timedelta(hours=2))
    per_camera = camera_coverage(db, "h", "Europe/Paris", window, T0 + timedelta(hours=3))
    assert sorted(per_camera.columns) == sorted([door.id, back.id])
    assert coverage_share(per_camera).tolist() == [1.0, 0.5]

    gaps = store_gaps(db, None, T0, T0 + timedelta(hours=2), now=T0 + timedelta(hours=3))
    assert gaps[store.id].has_gaps and gaps[store.id].gap_hours == 1
    assert gaps[store.id].cameras_with_gaps == (back.id,)
    assert gaps[store.id].coverage == pytest.approx(0.75)
    # By default: each store's local day so far (hours before the first record unknown).
    today = store_gaps(db, [store], now=T0 + timedelta(hours=2))[store.id]
    assert today.gap_hours == 1 and today.cameras_with_gaps == (back.id,)

    # A camera an admin switched off is not expected to count: the store has no gap.
    db.set_enabled(back.id, False)
    db.record_activity(coverage=[_quarter(door, t, 900) for t in hours])
    later = EventFilter(store.id, None, T0 + timedelta(hours=3), T0 + timedelta(hours=4))
    assert camera_coverage(db, "h", "UTC", later, T0 + timedelta(hours=5)).columns.tolist() == [
        door.id
    ]
    # A store whose cameras never recorded anything has unknown coverage, not a gap.
    other = db.create_store("Station", "UTC")
    db.create_camera(other.id, "Gate", "rtsp://127.0.0.1:9/gate")
    quiet = store_gaps(db, [other], T0, T0 + timedelta(hours=2), T0 + timedelta(hours=3))[other.id]
    assert not quiet.has_gaps and math.isnan(quiet.coverage)


def test_coverage_in_a_half_hour_zone_bins_local_hours(db, cameras):
    store, door, _ = cameras
    start = T0 + timedelta(minutes=30)  # 18:00 in Kolkata (UTC+5:30)
    db.record_activity(
        changes=[_change(door, start, "online")],
        coverage=[_quarter(door, start + timedelta(minutes=15 * i), 900) for i in range(4)],
    )
    window = EventFilter(store.id, door.id, start, start + timedelta(hours=2))
    hourly = camera_coverage(db, "h", "Asia/Kolkata", window, start + timedelta(hours=2))
    assert [t.strftime("%H:%M") for t in hourly.index] == ["18:00", "19:00"]
    assert hourly[door.id].tolist() == [1.0, 0.0]


def test_heat_grid_adds_up_hours_and_runs_and_keeps_the_larger_total(db, cameras):
    _, door, back = cameras
    db.record_activity(
        heat=[
            _heat(door, T0, "run-a", {(3, 17): 5, (4, 17): 1}),
            _heat(door, T0 + timedelta(hours=1), "run-a", {(3, 17): 2}),
            _heat(door, T0, "run-b", {(31, 0): 1}),
            _heat(back, T0, "run-a", {(0, 0): 9}),
        ]
    )
    # Late and smaller (an older grid of the same run, sent again): the newer one stays.
    db.record_activity(heat=[_heat(door, T0, "run-a", {(3, 17): 4})])
    grid = heat_grid(db, door.id, T0, T0 + timedelta(hours=2))
    assert grid.shape == (HEAT_ROWS, HEAT_COLUMNS)
    assert grid[17, 3] == 7 and grid[17, 4] == 1 and grid[0, 31] == 1 and grid.sum() == 9
    # The newer, larger grid of a run replaces its older one.
    db.record_activity(heat=[_heat(door, T0, "run-a", {(3, 17): 6, (4, 17): 1})])
    assert heat_grid(db, door.id, T0, T0 + timedelta(hours=1))[17, 3] == 6
    assert heat_grid(db, door.id, T0 + timedelta(hours=1), T0 + timedelta(hours=2)).sum() == 2


# --------------------------------------------------------------------------- recorder
class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now


def _status(camera, state: str, reason: str | None = None) -> CameraStatus:
    return CameraStatus(camera.id, state=state, last_error=reason)


def test_recorder_records_changes_not_ticks_and_credits_online_time(db, cameras):
    store, door, _ = cameras
    clock = Clock(T0)
    recorder = ActivityRecorder(db, lambda camera_id: store.id, clock=clock)
    hub = recorder.wrap(ResultHub())
    hub.set_status(_status(door, "online"))
    clock.now += 600
    hub.set_status(_status(door, "online"))  # the same status again: no change
    hub.set_status(_status(door, "reconnecting", "stream ended"))
    clock.now += 300
    hub.set_status(_status(door, "online"))
    clock.now += 1200  # 12:35: still online, credited at the flush
    assert recorder.flush()
    assert recorder.flush()  # nothing new; writing the same totals again changes nothing

    changes = db.status_changes(door.id)
    assert [(c.state, c.reason) for c in changes] == [
        ("online", None),
        ("reconnecting", "stream ended"),
        ("online", None),
    ]
    window = EventFilter(store.id, door.id, T0, T0 + timedelta(hours=1))
    hourly = camera_coverage(db, "h", "UTC", window, T0 + timedelta(hours=1))[door.id]
    # Online 12:00-12:10 and 12:15-12:35; the process then died (no flush): not covered.
    assert hourly.iloc[0] == pytest.approx(1800 / 3600)


def test_recorder_keeps_what_the_database_refused_until_it_is_back(tmp_path, db, cameras):
    store, door, _ = cameras
    clock = Clock(T0)
    broken = Database(tmp_path / "broken.db")
    broken.close()  # every write raises
    recorder = ActivityRecorder(broken, lambda camera_id: store.id, clock=clock)
    recorder.observe_status(_status(door, "online"))
    clock.now += 900
    assert not recorder.flush()
    recorder.sink = db
    assert recorder.flush()
    assert [c.state for c in db.status_changes(door.id)] == ["online"]
    window = EventFilter(store.id, door.id, T0, T0 + timedelta(hours=1))
    assert camera_coverage(db, "h", "UTC", window, T0 + timedelta(hours=1))[door.id].iloc[
        0
    ] == pytest.approx(0.25)


def test_node_outbox_forwards_activity_once_after_an_outage(tmp_path, db, cameras):
    store, door, _ = cameras
    clock = Clock(T0)
    outbox = Outbox(tmp_path / "outbox.db", "node-1")
    try:
        recorder = ActivityRecorder(outbox, lambda camera_id: store.id, node="node-1", clock=clock)
        recorder.observe_status(_status(door, "online"))
        clock.now += 450
        assert recorder.flush()  # into the outbox: the central database plays no part
        clock.now += 450
        recorder.observe_status(_status(door, "offline", "camera unplugged"))
        assert recorder.flush()
        batches = [batch for _, batch in outbox.pending_activity(10)]
        assert len(batches) == 2
        Forwarder(outbox, db).forward_once()
        assert outbox.pending_activity(10) == []
        for batch in batches:  # sent again (a crash before they were marked): stored once
            db.record_activity(**batch)
    finally:
        outbox.close()
    changes = db.status_changes(door.id)
    assert [(c.state, c.reason, c.node) for c in changes] == [
        ("online", None, "node-1"),
        ("offline", "camera unplugged", "node-1"),
    ]
    window = EventFilter(store.id, door.id, T0, T0 + timedelta(hours=1))
    hourly = camera_coverage(db, "h", "UTC", window, T0 + timedelta(hours=1))[door.id]
    assert hourly.iloc[0] == pytest.approx(0.25)


# --------------------------------------------------------------------------- real footage
#: Cells (rows, columns of the heat grid) of vtest.avi: the building front at the top
#: (x 312-576, y 0-96) and the lawn at the bottom left, where nobody walks, and the band of
#: the paved walkway.
BUILDINGS = (slice(0, 3), slice(13, 24))
LAWN = (slice(13, 18), slice(0, 16))
WALKWAY_ROWS = slice(5, 12)


@pytest.mark.model
def test_real_footage_fills_the_heat_grid_where_people_walk(tmp_path: Path, video_path, model_path):
    from zvpanel.detection import YoloDetector

    db = Database(tmp_path / "heat.db")
    store = db.create_store("Plaza", "UTC")
    camera = db.create_camera(store.id, "Square", str(video_path))
    db.set_calibration(
        camera.id,
        parse_calibration(
            {"lines": [{"id": "door", "x1": 450, "y1": 0, "x2": 450, "y2": 576}],
             "detection_fps": 10}
        ),
    )  # fmt: skip
    detector = YoloDetector(model_path)
    recorder = ActivityRecorder(db, lambda camera_id: store.id).start()
    hub = ResultHub()
    writer = EventWriter(db)
    engine = Engine(db, recorder.wrap(hub), writer, detector)
    started = datetime.now(UTC)
    try:
        engine.start()
        deadline = datetime.now(UTC) + timedelta(seconds=120)
        while datetime.now(UTC) < deadline:
            status = engine.status(camera.id)
            if status is not None and status.frames_processed >= 60:
                break
            time.sleep(0.2)
        engine.stop()
    finally:
        writer.close()
        recorder.stop()
    hour = started.replace(minute=0, second=0, microsecond=0)
    grid = heat_grid(db, camera.id, hour - timedelta(hours=1), hour + timedelta(hours=2))
    assert grid.sum() > 50, grid
    assert grid[BUILDINGS].sum() == 0 and grid[LAWN].sum() == 0, grid
    assert grid[WALKWAY_ROWS].sum() >= 0.8 * grid.sum(), grid
    states = [c.state for c in db.status_changes(camera.id)]
    assert "online" in states and states[-1] == "stopped"
    window = EventFilter(store.id, camera.id, started - timedelta(minutes=1), datetime.now(UTC))
    share = camera_coverage(db, "h", "UTC", window)[camera.id]
    assert np.nansum(share.to_numpy()) > 0
    db.close()


# --------------------------------------------------------------------------- analytics page
def test_analytics_shades_downtime_exports_coverage_and_shows_the_heat_map(app):
    from bokeh.document import Document

    from zvpanel.ui.analytics import AnalyticsView

    camera = next(c for c in app.db.list_cameras() if c.name == "Demo camera")
    store = app.db.update_store(camera.store_id, timezone="Europe/Berlin")
    # Three local hours of yesterday (within the page's default dates, and over):
    # watched, half watched, camera down.
    yesterday = datetime.now(store.tz) - timedelta(days=1)
    first = yesterday.replace(hour=10, minute=0, second=0, microsecond=0).astimezone(UTC)
    quarters = [first + timedelta(minutes=15 * i) for i in range(8)]  # two hours
    app.db.record_activity(
        changes=[
            _change(camera, first, "online"),
            _change(camera, first + timedelta(hours=1, minutes=30), "offline", "camera unplugged"),
        ],
        coverage=[_quarter(camera, t, 900) for t in quarters[:6]],
        heat=[_heat(camera, first, "run-a", {(10, 12): 4, (11, 12): 2})],
    )
    app.db.insert_events(
        [
            EventRow(
                camera.store_id,
                camera.id,
                "door",
                1,
                "entry",
                utc_text(first + timedelta(minutes=5)),
                1,
                0.9,
            )
        ]
    )
    view = AnalyticsView(app)
    view.camera_select.value = camera.id
    view.__panel__().get_root(Document())

    binned = view.binned()
    hours = binned.loc[first.astimezone(store.tz) :]
    assert hours["coverage"].iloc[:3].tolist() == [1.0, 0.5, 0.0]
    assert hours["entries"].iloc[:3].tolist() == [1, 0, 0]
    assert 'id="zv-coverage-gaps"' in view.summary.object
    labels = {layer.label for layer in view.timeline.object}
    assert {"camera down", "partly covered", "entries", "exits"} <= labels
    occupancy = {layer.label for layer in view.occupancy_chart.object}
    assert {"camera down", "partly covered", "inside"} <= occupancy
    csv = view._binned_csv().getvalue().splitlines()
    assert csv[0] == "timestamp,entries,exits,coverage"
    assert any(line.endswith(",1,0,1.0") for line in csv)
    assert any(line.endswith(",0,0,0.0") for line in csv)

    assert 'data-visits="6"' in view.heat_caption.object
    assert view.data.heat[12, 10] == 4 and view.data.heat[12, 11] == 2
    snapshot, heat = list(view.heatmap.object)  # the heat grid over the camera's frame
    assert isinstance(snapshot, hv.RGB) and heat.vdims[0].name == "visits"
    assert snapshot.bounds.lbrt() == heat.bounds.lbrt() == (0, 0, 768, 576)
    # A camera going down or coming back redraws the page, even without new events.
    assert view.refresh() is False
    app.db.record_activity(changes=[_change(camera, first + timedelta(hours=2), "online")])
    assert view.refresh() is True and view.refresh() is False
    view.camera_select.value = 0  # all cameras: no heat map
    assert "Choose a camera" in view.heat_caption.object and not view.heatmap.visible


def test_overview_flags_stores_with_gaps_today(app):
    from bokeh.document import Document

    from zvpanel.ui.overview import OverviewView

    store = app.db.create_store("Station", "UTC")
    gate = app.db.create_camera(store.id, "Gate <b>", "rtsp://127.0.0.1:9/gate")
    now = T0 + timedelta(hours=2)  # 14:00; the camera was down from 12:00 to 13:00
    quarters = [T0 - timedelta(hours=2) + timedelta(minutes=15 * i) for i in range(16)]
    app.db.record_activity(
        changes=[_change(gate, quarters[0], "online")],
        coverage=[
            _quarter(gate, t, 900) for t in quarters if not T0 <= t < T0 + timedelta(hours=1)
        ],
    )
    view = OverviewView(app, None, clock=lambda: now)
    view.__panel__().get_root(Document())
    table = view.table.value.set_index("store")
    flag = table.loc["Station", "gaps today"]
    assert 'data-gap-hours="1"' in flag and "Gate &lt;b&gt;" in flag
    assert table.loc["Demo store", "gaps today"].endswith(">-</span>")  # never recorded


# --------------------------------------------------------------------------- fleet
@pytest.mark.model
def test_a_node_records_its_cameras_activity_in_the_central_database(
    postgres, tmp_path: Path, model_path, video_path
):
    """A real ``zvpanel node`` process on real PostgreSQL: what its camera did reaches the
    central database through the outbox (its last records when it stops)."""
    from test_fleet import Fleet, _cli, wait_for

    fleet = Fleet(postgres.new_database(), tmp_path, model_path, video_path)
    try:
        camera = fleet.camera("Door")
        _cli(fleet, "camera", "assign", str(camera), "--node", "n1")
        started = datetime.now(UTC)
        fleet.start_node("n1")
        wait_for("n1's events", lambda: fleet.central_uids("n1", camera))
        fleet.stop_node("n1")
        changes = fleet.db.status_changes(camera)
        assert {c.node for c in changes} == {"n1"}
        assert "online" in [c.state for c in changes] and changes[-1].state == "stopped"
        window = EventFilter(fleet.store.id, camera, started, datetime.now(UTC))
        share = camera_coverage(fleet.db, "h", "UTC", window)[camera]
        assert np.nansum(share.to_numpy()) > 0
        hour = started.replace(minute=0, second=0, microsecond=0)
        assert heat_grid(fleet.db, camera, hour, hour + timedelta(hours=2)).sum() > 0
    finally:
        fleet.close()
