"""The tuning view: a line dragged on vtest's first frame and the sliders, counted from the
real model's cached detections against the ground truth of frames 0-199."""

from __future__ import annotations

import panel as pn
import pytest
from bokeh.document import Document

from zvpanel.calibration import parse_calibration
from zvpanel.evaluation import read_mot_gt
from zvpanel.sources import iter_frames
from zvpanel.tuning import DetectionCache, SweepGrid, run_sweep
from zvpanel.ui.tuning_view import LINE_ID, TuningView

FRAMES = 200
BASE_CONFIDENCE = 0.1
VERTICAL = (345.6, 0.0, 345.6, 576.0)
DIAGONAL = (450.0, 150.0, 650.0, 450.0)
#: A short line in the top-left corner, where nobody walks.
NOBODY = (10.0, 10.0, 60.0, 10.0)
#: True crossings (entry, exit) of the ground truth's tracks in frames 0-199.
TRUE_VERTICAL = (2, 3)
TRUE_DIAGONAL = (5, 6)

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def cache(video_path, model_path):
    cache = DetectionCache(
        video_path, model_path, max_frames=FRAMES, base_confidence=BASE_CONFIDENCE
    )
    cache.run(640)
    return cache


@pytest.fixture(scope="module")
def gt(gt_path):
    return read_mot_gt(gt_path)


@pytest.fixture
def view(cache, gt, video_path):
    image = next(iter_frames(video_path, max_frames=1)).image
    return TuningView(cache, gt, image, line=VERTICAL, confidence=0.25, detection_fps=5.0)


def _by_direction(view: TuningView, column: str) -> tuple[int, int]:
    table = view.table().set_index("direction")
    return int(table.loc["entry", column]), int(table.loc["exit", column])


def _swept(cache, gt, line, **settings) -> tuple[int, int]:
    """Counted - true per direction for the same settings, from the batch sweep (``run_sweep``)."""
    x1, y1, x2, y2 = line
    calibration = parse_calibration(
        {"lines": [{"id": LINE_ID, "x1": x1, "y1": y1, "x2": x2, "y2": y2}]}
    )
    grid = SweepGrid(
        confidence=(settings["confidence"],),
        imgsz=(640,),
        detection_fps=(settings["detection_fps"],),
        tracker=("bytetrack",),
        track_buffer=(30,),
        min_distance=(settings["min_distance"],),
        min_frames=(settings["min_frames"],),
    )
    row = run_sweep(cache, calibration, gt, grid).iloc[0]
    return int(row[f"err {LINE_ID} entry"]), int(row[f"err {LINE_ID} exit"])


def test_counts_against_the_ground_truth_of_the_drawn_line(view, cache, gt):
    assert _by_direction(view, "true") == TRUE_VERTICAL
    assert view.error == ""
    # The counts are those of the batch sweep for the same settings (its error column).
    entry_error, exit_error = _swept(
        cache, gt, VERTICAL, confidence=0.25, detection_fps=5.0, min_distance=4.0, min_frames=1
    )
    counted = _by_direction(view, "counted")
    assert (counted[0] - TRUE_VERTICAL[0], counted[1] - TRUE_VERTICAL[1]) == (
        entry_error,
        exit_error,
    )
    assert sum(counted) > 0


def test_dragging_the_line_recounts_its_crossings(view, cache, gt):
    # What a drag on the frame sends: PolyDraw's path data.
    view.line_draw.event(
        data={"xs": [[DIAGONAL[0], DIAGONAL[2]]], "ys": [[DIAGONAL[1], DIAGONAL[3]]]}
    )
    assert view.line == DIAGONAL
    assert _by_direction(view, "true") == TRUE_DIAGONAL
    entry_error, exit_error = _swept(
        cache, gt, DIAGONAL, confidence=0.25, detection_fps=5.0, min_distance=4.0, min_frames=1
    )
    assert _by_direction(view, "error") == (entry_error, exit_error)
    # Moving one end with PolyEdit (three vertices: the line is first to last).
    view.line_edit.event(
        data={"xs": [[NOBODY[0], 30.0, NOBODY[2]]], "ys": [[NOBODY[1], 10.0, NOBODY[3]]]}
    )
    assert view.line == NOBODY
    assert _by_direction(view, "true") == (0, 0)
    assert _by_direction(view, "counted") == (0, 0)


def test_sliders_change_the_counts(view, cache, gt):
    base = _by_direction(view, "counted")
    # Almost no detection is that sure: nobody is tracked, nothing is counted.
    view.confidence = 0.95
    assert _by_direction(view, "counted") == (0, 0)
    assert _by_direction(view, "true") == TRUE_VERTICAL  # the truth does not move
    view.confidence = 0.25
    assert _by_direction(view, "counted") == base
    # Hysteresis: 30 detections on the new side (6 s at 5/s) is more than anyone stays
    # in view after crossing in these 200 frames.
    view.min_frames = 30
    assert sum(_by_direction(view, "counted")) < sum(base)
    for settings in (
        {"min_frames": 1, "min_distance": 40.0},
        {"min_distance": 4.0, "detection_fps": 2.0},
        {"confidence": 0.5, "detection_fps": 10.0},
    ):
        view.param.update(**settings)
        current = {
            name: getattr(view, name)
            for name in ("confidence", "detection_fps", "min_distance", "min_frames")
        }
        entry_error, exit_error = _swept(cache, gt, VERTICAL, **current)
        assert _by_direction(view, "error") == (entry_error, exit_error), settings


def test_a_line_the_calibration_refuses_keeps_the_last_counts(view):
    before = view.table()
    view.line = (100.0, 100.0, 102.0, 100.0)  # 2 px long
    assert "line 'line'" in view.error and "long" in view.error
    assert view.summary().startswith("Not counted")
    assert view.table().equals(before)
    view.line = VERTICAL
    assert view.error == ""


def test_sliders_are_bounded_by_the_cache(cache, gt, video_path):
    image = next(iter_frames(video_path, max_frames=1)).image
    view = TuningView(cache, gt, image)
    assert view.line == (384.0, 0.0, 384.0, 576.0)  # through the middle of the frame
    assert view.error == ""
    assert view.param.confidence.bounds[0] == BASE_CONFIDENCE
    assert view.param.detection_fps.bounds[1] == cache.fps
    with pytest.raises(ValueError, match="confidence"):
        TuningView(cache, gt, image, line=VERTICAL, confidence=0.05)
    with pytest.raises(ValueError, match="detection_fps"):
        TuningView(cache, gt, image, line=VERTICAL, detection_fps=cache.fps + 5)


def test_renders_with_the_counts_table(view):
    root = pn.panel(view).get_root(Document())
    tables = [m for m in root.select({"type": pn.widgets.Tabulator._widget_type})]
    assert tables
    shown = tables[0].source.data
    assert list(shown["counted"]) == list(view.table()["counted"])
    view.confidence = 0.95
    assert list(tables[0].source.data["counted"]) == [0, 0]
