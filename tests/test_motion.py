"""Motion gating (issue 14 item 2): a table of frame sequences -> detect or skip, and the
gated detector on the real model with still and walking vtest footage."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from zvpanel.calibration import CountingLine, parse_calibration
from zvpanel.detection import YoloDetector
from zvpanel.detection.motion import KEEP_DETECTING_S, MAX_GATED_S, GatedDetector, MotionGate
from zvpanel.detections import Detections
from zvpanel.engine import Engine, ResultHub
from zvpanel.sources import iter_frames
from zvpanel.storage import Database
from zvpanel.ui.live import status_html

#: The default detection rate of a calibration (frames taken per second).
DETECTION_FPS = 5.0

#: One frame per second: the gate keeps detecting 2 frames after motion and never skips
#: more than 5 in a row.
RATE = 1.0
LINE = CountingLine(id="door", x1=320, y1=0, x2=320, y2=480)
HEIGHT, WIDTH = 480, 640
T, F = True, False


def _background() -> np.ndarray:
    rng = np.random.default_rng(14)
    texture = rng.integers(0, 255, (HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
    return np.kron(texture, np.ones((8, 8, 1), dtype=np.uint8))  # blocks a blur keeps


BACKGROUND = _background()


def still(i: int) -> np.ndarray:
    """The empty scene with a little sensor noise (different every frame)."""
    noise = np.random.default_rng(i).integers(-4, 5, BACKGROUND.shape)
    return np.clip(BACKGROUND.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def walker(i: int) -> np.ndarray:
    """Someone (a dark block) walking 40 pixels a frame across the empty scene."""
    image = still(i)
    x = 40 + 40 * i
    image[200:400, x : x + 60] = 20
    return image


def person(x: float) -> Detections:
    """A person standing with their feet at (x, 400)."""
    return Detections(
        xyxy=np.array([[x - 30, 200, x + 30, 400]], np.float32),
        confidence=np.array([0.9], np.float32),
        class_id=np.array([0], np.int32),
    )


NOBODY = Detections.empty()

CASES = {
    # name: (frames, what the detector found last, expected must_detect per frame)
    "still scene: detect, keep 2 frames, skip, detect again after 5 skipped": (
        [still(i) for i in range(8)],
        NOBODY,
        [T, T, F, F, F, F, F, T],
    ),
    "someone walks in after 3 still frames": (
        [still(i) for i in range(3)] + [walker(i) for i in range(4)],
        NOBODY,
        [T, T, F, T, T, T, T],
    ),
    "someone standing still far from the line: skipped like an empty scene": (
        [still(i) for i in range(6)],
        person(100),
        [T, T, F, F, F, F],
    ),
    "someone standing still at the line: never skipped (a crossing may be on its way)": (
        [still(i) for i in range(6)],
        person(330),
        [T, T, T, T, T, T],
    ),
    "a light switched on: everything changed, detect": (
        [still(0), still(1), still(2), np.clip(still(3).astype(np.int16) + 60, 0, 255)],
        NOBODY,
        [T, T, F, T],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_gate_decisions(name: str):
    frames, last, expected = CASES[name]
    gate = MotionGate([LINE], RATE)
    got = [gate.must_detect(frame.astype(np.uint8), last) for frame in frames]
    assert got == expected


class CountingDetector:
    """The real detector, counting how often it is run."""

    def __init__(self, detector: YoloDetector) -> None:
        self.detector, self.labels, self.calls = detector, detector.labels, 0

    def detect(self, image, roi=None) -> Detections:
        self.calls += 1
        return self.detector.detect(image, roi)


#: Every this many frames of vtest go into its median (the crossroads with nobody on it).
MEDIAN_STEP = 20


@pytest.fixture(scope="module")
def vtest(video_path: Path) -> list[np.ndarray]:
    return [frame.image for frame in iter_frames(video_path, max_frames=60)]


@pytest.fixture(scope="module")
def empty_scene(video_path: Path) -> np.ndarray:
    frames = [f.image for f in iter_frames(video_path) if f.index % MEDIAN_STEP == 0]
    return np.median(np.stack(frames), axis=0).astype(np.uint8)


def test_gated_detector_skips_the_empty_scene_and_hands_on_the_last_people(
    model_path: str, vtest, empty_scene
):
    """The median of vtest (the empty crossroads) with noise: the model runs for the first
    2 s and then every 5 s only; on walking footage it runs on every frame."""
    calibration = parse_calibration(
        {"lines": [{"id": "door", "x1": 345.6, "y1": 0, "x2": 345.6, "y2": 576}]}
    )
    detector = CountingDetector(YoloDetector(model_path))
    gated = GatedDetector(detector, calibration)
    empty = empty_scene
    rate = calibration.detection_fps
    frames = int(4 * MAX_GATED_S * rate)
    for i in range(frames):
        noise = np.random.default_rng(i).integers(-3, 4, empty.shape)
        found = gated.detect(np.clip(empty + noise, 0, 255).astype(np.uint8))
    assert detector.calls <= 2 * rate + 4 + 1, detector.calls
    assert gated.gated == frames - detector.calls
    assert gated.gated_share > 0.75
    assert len(found) == len(detector.detector.detect(empty))  # the last people, handed on

    walking = GatedDetector(CountingDetector(YoloDetector(model_path)), calibration)
    for image in vtest[::2]:
        walking.detect(image)
    assert walking.gated == 0  # people move in every frame of vtest


# -- in the engine: the camera status shows the share, and the setting switches it off ------


def _idle_video(path: Path, scene: np.ndarray, frames: int = 40, fps: float = 10.0) -> Path:
    """A camera looking at the empty crossroads (sensor noise only)."""
    height, width = scene.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for i in range(frames):
        noise = np.random.default_rng(i).integers(-3, 4, scene.shape)
        writer.write(np.clip(scene + noise, 0, 255).astype(np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize("gating", [True, False])
def test_engine_status_shows_the_gated_share_and_the_setting_switches_it_off(
    tmp_path: Path, model_path: str, empty_scene, gating: bool
):
    db = Database(tmp_path / "gate.db")
    store = db.create_store("Quiet shop", "UTC")
    camera = db.create_camera(
        store.id, "Back room", str(_idle_video(tmp_path / "idle.avi", empty_scene))
    )
    db.set_calibration(
        camera.id,
        parse_calibration({"lines": [{"id": "door", "x1": 345, "y1": 0, "x2": 345, "y2": 576}]}),
    )
    engine = Engine(db, ResultHub(), None, YoloDetector(model_path), motion_gating=gating)
    try:
        engine.start()
        # Gating starts once KEEP_DETECTING_S of frames have passed without motion.
        enough = 3 * KEEP_DETECTING_S * DETECTION_FPS
        status = _wait(
            lambda: (s := engine.status(camera.id)) and s.frames_processed > enough and s
        )
    finally:
        engine.stop()
        db.close()
    if gating:
        assert status.gated_share > 0.2
        assert status.as_dict()["gated_share"] == round(status.gated_share, 3)
    else:
        assert status.gated_share == 0.0
    shown = status_html(status, {})
    assert f'<span class="zv-gated">{100 * status.gated_share:.0f}%</span> skipped' in shown


def _wait(condition, deadline: float = 120.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {deadline:.0f} s")


@pytest.mark.parametrize(("env", "gated"), [("1", True), ("0", False)])
def test_zvpanel_motion_gating_setting_reaches_every_camera(settings, monkeypatch, env, gated):
    """ZVPANEL_MOTION_GATING, read as any setting is, decides the demo camera's detector."""
    from zvpanel.app import App
    from zvpanel.config import Settings, load_settings

    assert Settings.model_fields["motion_gating"].description
    monkeypatch.setenv("ZVPANEL_MOTION_GATING", env)
    app = App(load_settings()).start()
    try:
        workers = [app.engine.worker(c.id) for c in app.db.list_cameras()]
        workers = [w for w in workers if w is not None]
        assert workers, "the demo camera runs"
        assert all(isinstance(w.detector, GatedDetector) == gated for w in workers)
    finally:
        app.stop()
