"""The engine on real parts: vtest.avi played as live cameras, the real model, real SQLite.

Runs are short (a few seconds of video each). Waiting loops have generous deadlines
only so that a broken engine fails instead of hanging; nothing asserts on speed.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from zvpanel.calibration import Calibration, parse_calibration
from zvpanel.detection import YoloDetector
from zvpanel.engine import (
    DISABLED,
    HARDWARE_LIMITED_RATIO,
    NOT_CALIBRATED,
    CameraStatus,
    Engine,
    FrameResult,
    MovingMean,
    Pacer,
    RateMeter,
    ResultHub,
)
from zvpanel.errors import ModelError
from zvpanel.storage import Database, EventWriter

#: Longest wait for something the engine should do within a few seconds of video.
DEADLINE_S = 60.0
#: vtest.avi plays at 10 fps; detecting every frame keeps the tracker on real motion.
FPS = 10.0
#: Vertical line x=450: the ground truth has people crossing it at frames 17, 22, 44, 50.
DOOR = {"id": "door", "x1": 450, "y1": 0, "x2": 450, "y2": 576}
#: Horizontal line y=300: crossings at frames 8, 30, 55, 59.
AISLE = {"id": "aisle", "x1": 0, "y1": 300, "x2": 768, "y2": 300}


def calibration(*lines: dict, detection_fps: float = FPS, **kwargs) -> Calibration:
    return parse_calibration(
        {"lines": list(lines or [DOOR]), "detection_fps": detection_fps, **kwargs}
    )


def wait_for(what: str, condition: Callable[[], object], deadline: float = DEADLINE_S):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {deadline:.0f} s waiting for {what}")


def zvpanel_threads(besides: set[threading.Thread] = frozenset()) -> list[str]:
    """Names of zvpanel's live threads, except those in ``besides`` (there before the test)."""
    return sorted(
        t.name for t in threading.enumerate() if t.name.startswith("zvpanel") and t not in besides
    )


class Recorder:
    """A hub listener that keeps every result (the test reads them afterwards)."""

    def __init__(self) -> None:
        self.results: list[FrameResult] = []
        self._lock = threading.Lock()

    def __call__(self, result: FrameResult) -> None:
        with self._lock:
            self.results.append(result)

    def of(self, camera_id: int) -> list[FrameResult]:
        with self._lock:
            return [r for r in self.results if r.camera_id == camera_id]


class FlakyDetector:
    """The real detector, except that the calls numbered in ``fail_on`` raise.

    A real object in front of the real model (not a mock of the engine): it stands for a
    detector that fails now and then (a driver error, a corrupt frame).
    """

    def __init__(self, detector: YoloDetector, fail_on: set[int]) -> None:
        self.detector = detector
        self.labels = detector.labels
        self.fail_on = fail_on
        self.calls = 0
        self._lock = threading.Lock()  # cameras call it from their own threads

    def detect(self, image: np.ndarray, roi=None):
        with self._lock:
            self.calls += 1
            call = self.calls
        if call in self.fail_on:
            raise RuntimeError(f"injected failure on call {call}")
        return self.detector.detect(image, roi)


class SlowDetector(FlakyDetector):
    """The real detector on a machine that is too slow: each call takes ``seconds`` more."""

    def __init__(self, detector: YoloDetector, seconds: float) -> None:
        super().__init__(detector, fail_on=set())
        self.seconds = seconds

    def detect(self, image: np.ndarray, roi=None):
        time.sleep(self.seconds)
        return super().detect(image, roi)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def detector(model_path: str) -> YoloDetector:
    """One model for the whole module, as in the engine (loading it takes seconds)."""
    detector = YoloDetector(model_path)
    detector.warmup()
    return detector


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "engine.db")
    yield database
    database.close()


@pytest.fixture
def store_id(db: Database) -> int:
    return db.create_store("Test shop", "Europe/Paris").id


@pytest.fixture
def add_camera(db: Database, store_id: int, video_path: Path):
    def add(name: str, source: str | None = None, cal: Calibration | None = None) -> int:
        camera = db.create_camera(store_id, name, source or str(video_path))
        if cal is not None:
            db.set_calibration(camera.id, cal)
        return camera.id

    return add


@pytest.fixture
def hub() -> ResultHub:
    return ResultHub()


@pytest.fixture
def recorder(hub: ResultHub) -> Iterator[Recorder]:
    recorder = Recorder()
    with hub.subscribe(recorder):
        yield recorder


@pytest.fixture
def writer(db: Database) -> Iterator[EventWriter]:
    writer = EventWriter(db)
    yield writer
    writer.close()


@pytest.fixture
def make_engine(db: Database, hub: ResultHub, writer: EventWriter, detector: YoloDetector):
    engines: list[Engine] = []
    before = set(threading.enumerate())

    def make(det=None) -> Engine:
        engine = Engine(db, hub, writer, det or detector)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.stop()
    # Whatever a test did, stopping leaves no camera, source or reload thread behind.
    assert zvpanel_threads(besides=before) == []


def processed(engine: Engine, camera_id: int) -> int:
    status = engine.status(camera_id)
    return 0 if status is None else status.frames_processed


# --------------------------------------------------------------------------- clocks
def test_rate_meter_counts_over_a_sliding_window():
    meter = RateMeter(window=2.0)
    meter.reset(0.0)
    assert meter.rate(0.5) == 0.0
    for i in range(20):  # 5 per second for 4 s
        meter.tick(0.2 * i + 0.1)
        assert i == 0 or meter.rate(0.2 * i + 0.1) == pytest.approx(5.0)
    assert meter.rate(3.95) == pytest.approx(5.0)  # between two ticks: still 5
    assert meter.full(2.0) and not meter.full(1.9)
    # Ticks stop: the rate falls as the gap grows, and is 0 once the window is empty.
    assert meter.rate(4.6) == pytest.approx(7 / 1.9)  # 7 ticks left (2.7 ... 3.9)
    assert meter.rate(5.0) < meter.rate(4.6)
    assert meter.rate(10.0) == 0.0
    with pytest.raises(ValueError, match="window"):
        RateMeter(window=0)


def test_pacer_keeps_the_rate_without_drift_or_bursts():
    pacer = Pacer(5.0)
    assert pacer.delay(100.0) == 0.0
    pacer.taken(100.0)
    assert pacer.delay(100.05) == pytest.approx(0.15)
    pacer.taken(100.23)  # a little late: the next one is still due at 100.4
    assert pacer.delay(100.3) == pytest.approx(0.1)
    pacer.taken(101.0)  # far behind: start afresh instead of bursting
    assert pacer.delay(101.0) == pytest.approx(0.2)
    pacer.set_fps(10.0)
    pacer.taken(101.2)
    assert pacer.delay(101.2) == pytest.approx(0.1)


def test_pacer_with_a_longer_max_lag_catches_up_before_starting_afresh():
    # A file source allows 1 s of lag: a short hiccup is caught up, a long one is not.
    pacer = Pacer(10.0, max_lag=1.0)
    pacer.taken(100.0)
    pacer.taken(100.5)  # 0.4 s late: still on the old schedule, the next is overdue
    assert pacer.delay(100.5) == 0.0
    pacer.taken(102.0)  # 1.8 s late: afresh
    assert pacer.delay(102.0) == pytest.approx(0.1)


def test_moving_mean_starts_at_the_first_value():
    mean = MovingMean(weight=0.5)
    assert mean.add(10.0) == 10.0
    assert mean.add(20.0) == 15.0


# --------------------------------------------------------------------------- engine
@pytest.mark.model
def test_one_camera_counts_into_the_database_and_publishes_results(
    db, add_camera, make_engine, recorder, writer
):
    camera_id = add_camera("Entrance", cal=calibration(DOOR, AISLE))
    engine = make_engine()
    engine.start()
    worker = engine.worker(camera_id)
    assert engine.camera_ids == [camera_id]

    wait_for("events in the database", lambda: sum(db.count_events(camera_id=camera_id).values()))
    wait_for("tracked people", lambda: any(len(r.detections) for r in recorder.of(camera_id)))
    engine.stop()
    assert writer.flush(timeout=10)

    # Every event the worker counted is in the database, with real values.
    final = worker.counts()
    events = db.events(camera_id=camera_id)
    assert len(events) == sum(c["entries"] + c["exits"] for c in final.values())
    assert {e.line_id for e in events} <= {"door", "aisle"}
    assert all(0.25 <= e.confidence < 1.0 for e in events)
    assert all(e.track_id >= 0 and e.direction in ("entry", "exit") for e in events)
    assert all(e.store_id == db.get_camera(camera_id).store_id for e in events)

    results = recorder.of(camera_id)
    tracked = [r for r in results if len(r.detections)]
    confidences = np.concatenate([r.detections.confidence for r in tracked])
    assert np.all((confidences >= 0.25) & (confidences < 1.0))
    assert len(np.unique(confidences)) > 10  # real scores, not a constant
    assert all(np.all(r.detections.tracker_id >= 0) for r in tracked)
    assert all(r.labels == ("person",) for r in results)
    # Boxes are in full-frame pixels of the 768x576 video.
    boxes = np.concatenate([r.detections.xyxy for r in tracked])
    assert boxes[:, [0, 2]].max() <= 768 and boxes[:, [1, 3]].max() <= 576

    last = results[-1]
    assert last.calibration.lines[0].id == "door"
    assert set(last.counts) == {"door", "aisle"}
    assert [r.frame.index for r in results] == sorted(r.frame.index for r in results)
    status = last.status
    assert status.camera_id == camera_id and status.state == "online"
    assert status.target_fps == FPS
    assert status.actual_fps > 0 and status.processing_ms > 0
    assert status.frames_processed == len(results)
    assert status.frames_decoded >= status.frames_processed + status.frames_dropped - 1
    # After stop the camera says so, and its capture is released.
    assert engine.statuses()[camera_id].state == "stopped"
    assert not worker.is_alive() and not worker.source.running
    assert worker.source.status.captures_opened == 1


@pytest.mark.model
def test_two_cameras_on_the_same_file_each_have_their_own_worker(add_camera, make_engine, recorder):
    first = add_camera("Door A", cal=calibration(DOOR))
    second = add_camera("Door B", cal=calibration(AISLE, detection_fps=5))
    engine = make_engine()
    engine.start()
    assert sorted(engine.camera_ids) == sorted([first, second])
    assert {f"zvpanel-camera-{first}", f"zvpanel-camera-{second}"} <= set(zvpanel_threads())
    assert {f"zvpanel-source-{first}", f"zvpanel-source-{second}"} <= set(zvpanel_threads())

    wait_for(
        "results of both", lambda: len(recorder.of(first)) > 5 and len(recorder.of(second)) > 5
    )
    workers = [engine.worker(first), engine.worker(second)]
    assert workers[0] is not workers[1] and workers[0].source is not workers[1].source
    assert all(w.source.status.captures_opened == 1 for w in workers)  # one decoder each
    assert set(recorder.of(first)[-1].counts) == {"door"}
    assert set(recorder.of(second)[-1].counts) == {"aisle"}
    statuses = engine.statuses()
    assert statuses[first].target_fps == FPS and statuses[second].target_fps == 5


@pytest.mark.model
def test_calibration_change_applies_without_restart(db, add_camera, make_engine, recorder, writer):
    camera_id = add_camera("Entrance", cal=calibration(DOOR))
    engine = make_engine()
    engine.start()
    worker = engine.worker(camera_id)
    wait_for("a first processed frame", lambda: processed(engine, camera_id) > 3)

    # Same rate, one more line: the engine hears the change from the database itself.
    db.set_calibration(camera_id, calibration(DOOR, AISLE))
    wait_for("the new line in the counts", lambda: "aisle" in engine.counts(camera_id))
    wait_for("results with the new line", lambda: "aisle" in recorder.of(camera_id)[-1].counts)
    wait_for(
        "an event on the new line",
        lambda: (
            engine.counts(camera_id)["aisle"]["entries"]
            + engine.counts(camera_id)["aisle"]["exits"]
        ),
    )
    before = engine.counts(camera_id)
    assert writer.flush(timeout=10)
    assert "aisle" in {e.line_id for e in db.events(camera_id=camera_id)}

    # A new rate: the tracker keeps its tracks and rescales; the counts so far are kept.
    db.set_calibration(camera_id, calibration(DOOR, AISLE, detection_fps=5))
    wait_for("the new target rate", lambda: engine.status(camera_id).target_fps == 5)
    after = engine.counts(camera_id)
    for line in ("door", "aisle"):
        for key in ("entries", "exits"):
            assert after[line][key] >= before[line][key]
    assert engine.worker(camera_id) is worker  # same worker, same thread, same capture
    assert worker.is_alive() and worker.source.status.captures_opened == 1

    engine.reload_camera(camera_id)  # nothing changed: nothing restarts
    assert engine.worker(camera_id) is worker


@pytest.mark.model
def test_calibration_saved_by_another_process_applies_without_restart(
    db, tmp_path, add_camera, make_engine
):
    camera_id = add_camera("Entrance", cal=calibration(DOOR))
    engine = make_engine()
    engine.start()
    wait_for("a first processed frame", lambda: processed(engine, camera_id) > 1)
    # A second connection to the same file, as `zvpanel calibrate` in another process has:
    # the engine's database object sends no change notification for it.
    other = Database(tmp_path / "engine.db")
    try:
        other.set_calibration(camera_id, calibration(DOOR, AISLE))
    finally:
        other.close()
    wait_for("the new line in the counts", lambda: "aisle" in engine.counts(camera_id))


@pytest.mark.model
def test_unreachable_stream_reconnects_while_the_other_camera_counts(add_camera, make_engine):
    good = add_camera("Entrance", cal=calibration(DOOR))
    bad = add_camera("Back door", source="rtsp://127.0.0.1:9/x", cal=calibration(DOOR))
    engine = make_engine()
    engine.start()

    status: CameraStatus = wait_for(
        "the stream camera to report its error",
        lambda: (
            (s := engine.status(bad))
            and s.state in ("reconnecting", "offline")
            and s.last_error
            and s
        ),
    )
    assert "127.0.0.1" in status.last_error
    assert status.frames_processed == 0
    seen = processed(engine, good)
    wait_for("the file camera to keep processing", lambda: processed(engine, good) > seen + 5)
    assert engine.status(good).state == "online"
    assert engine.worker(bad).is_alive()  # still trying, not given up


@pytest.mark.model
def test_cameras_without_calibration_disabled_or_deleted(db, add_camera, make_engine):
    calibrated = add_camera("Entrance", cal=calibration(DOOR))
    uncalibrated = add_camera("New camera")
    engine = make_engine()
    engine.start()
    assert engine.camera_ids == [calibrated]
    status = engine.status(uncalibrated)
    assert status.last_error == NOT_CALIBRATED and status.state == "offline"

    # Calibrating it starts it; disabling stops it; deleting forgets it.
    db.set_calibration(uncalibrated, calibration(AISLE))
    wait_for("the new camera to start", lambda: processed(engine, uncalibrated) > 0)
    db.set_enabled(uncalibrated, False)
    wait_for("the camera to stop", lambda: uncalibrated not in engine.camera_ids)
    wait_for("its status", lambda: engine.status(uncalibrated).last_error == DISABLED)
    db.delete_camera(uncalibrated)
    wait_for("it to be forgotten", lambda: engine.status(uncalibrated) is None)
    assert engine.camera_ids == [calibrated] and engine.worker(calibrated).is_alive()


@pytest.mark.model
def test_failing_frames_are_logged_and_the_loop_goes_on(add_camera, make_engine, detector, caplog):
    first = add_camera("Entrance", cal=calibration(DOOR))
    second = add_camera("Back", cal=calibration(AISLE))
    flaky = FlakyDetector(detector, fail_on={3})
    engine = make_engine(flaky)
    caplog.set_level(logging.ERROR, logger="zvpanel.engine")
    engine.start()
    wait_for("the injected failure", lambda: flaky.calls > 3)
    wait_for(
        "frames after the failure",
        lambda: processed(engine, first) + processed(engine, second) > 10,
    )
    failures = [
        r for r in caplog.records if "injected failure" in str(r.exc_info and r.exc_info[1])
    ]
    assert len(failures) == 1
    assert (
        f"camera {first}" in failures[0].getMessage()
        or f"camera {second}" in failures[0].getMessage()
    )
    assert engine.worker(first).is_alive() and engine.worker(second).is_alive()

    # A calibration that does not fit the frame (ROI outside it), applied at run time:
    # every frame fails with a clear error, the other camera is untouched, and a good
    # calibration brings the camera back without a restart.
    outside = calibration(
        {"id": "far", "x1": 2000, "y1": 2000, "x2": 2100, "y2": 2000}, roi=(1900, 1900, 2200, 2200)
    )
    engine.worker(first).apply_calibration(outside)
    wait_for("the error in the status", lambda: "1900" in (engine.status(first).last_error or ""))
    stuck = processed(engine, first)
    other = processed(engine, second)
    wait_for("the other camera to go on", lambda: processed(engine, second) > other + 5)
    assert processed(engine, first) == stuck
    assert any(f"camera {first}" in r.getMessage() for r in caplog.records)
    engine.worker(first).apply_calibration(calibration(DOOR))
    wait_for("the camera to recover", lambda: processed(engine, first) > stuck + 3)
    assert "1900" not in (engine.status(first).last_error or "")


@pytest.mark.model
def test_a_camera_slower_than_its_target_is_hardware_limited(add_camera, make_engine, detector):
    camera_id = add_camera("Entrance", cal=calibration(DOOR, detection_fps=10))
    engine = make_engine(SlowDetector(detector, seconds=0.25))  # at most 4 frames/s
    engine.start()
    status = wait_for(
        "a full measuring window",
        lambda: (s := engine.status(camera_id)) and s.hardware_limited and s,
    )
    assert status.target_fps == 10 and 0 < status.actual_fps < 10 * HARDWARE_LIMITED_RATIO
    assert status.processing_ms >= 250
    assert status.frames_dropped > 0 and status.state == "online"
    # The tracker is told the rate it really gets, so lost tracks are kept as long in time.
    worker = engine.worker(camera_id)
    wait_for("the tracker's rate", lambda: worker.tracker_fps < 10)


# --------------------------------------------------------------------------- app
@pytest.mark.model
def test_app_starts_the_demo_camera_and_stops_cleanly(settings):
    from zvpanel.app import App, get_app, stop_app

    before = set(threading.enumerate())
    app = get_app(settings)
    try:
        assert get_app() is app and app.started
        cameras = app.db.list_cameras()
        assert cameras, "bootstrap creates a demo camera on an empty database"
        demo = cameras[0].id
        if app.db.get_calibration(demo) is None:
            assert app.engine.status(demo).last_error == NOT_CALIBRATED
        else:
            wait_for("the demo camera's results", lambda: app.hub.latest(demo) is not None)
        assert {"zvpanel-event-writer", "zvpanel-engine-reload"} <= set(zvpanel_threads())
    finally:
        stop_app()
    assert zvpanel_threads(besides=before) == []
    assert app.db is None and app.engine is None
    assert get_app.__module__ == App.__module__


def test_app_with_a_missing_model_says_so_and_leaves_nothing_running(tmp_path, settings):
    from zvpanel.app import App
    from zvpanel.config import load_settings

    missing = tmp_path / "no_such_model" / "yolov8n.xml"
    bad = load_settings(db_path=settings.db_path, model=str(missing), dev_mode=True)
    before = set(threading.enumerate())
    app = App(bad)
    with pytest.raises(ModelError, match="ZVPANEL_MODEL"):
        app.start()
    assert zvpanel_threads(besides=before) == []
    assert app.db is None and app.writer is None and not app.started


def test_an_unreadable_configuration_is_logged_once_per_outage(db, hub, monkeypatch, caplog):
    """A database outage makes every 2 s poll fail: one warning when it starts and one
    line when it ends, not a traceback per poll (a node logged 90 in a minute)."""
    engine = Engine(db, hub, None, detector=None)
    readable = db.config_revision
    polls = []

    def locked() -> int:
        polls.append(time.monotonic())
        raise sqlite3.OperationalError("database is locked")

    caplog.set_level(logging.INFO, logger="zvpanel.engine")
    engine.start()
    try:
        monkeypatch.setattr(db, "config_revision", locked)
        wait_for("three failed polls", lambda: len(polls) >= 3, deadline=30)
        monkeypatch.setattr(db, "config_revision", readable)
        wait_for(
            "the line saying it is readable again",
            lambda: any("can be read again" in r.getMessage() for r in caplog.records),
            deadline=30,
        )
    finally:
        engine.stop()
    about = [r for r in caplog.records if "configuration revision" in r.getMessage()]
    assert [(r.levelname, r.exc_info) for r in about] == [("WARNING", None), ("INFO", None)]
    assert "database is locked" in about[0].getMessage()
