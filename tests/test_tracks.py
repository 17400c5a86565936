"""Trajectory tables: from hand-made detections, the real ground truth and the real model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from zvpanel.calibration import CountingLine
from zvpanel.detections import Detections
from zvpanel.evaluation import read_mot_gt, true_crossings
from zvpanel.tracks import (
    TRACK_COLUMNS,
    candidate_lines,
    displacements,
    heatmap,
    line_crossing_counts,
    speeds,
    tracks_from_detections,
    tracks_from_ground_truth,
)


def boxes(*rows: tuple[int, float, float]) -> Detections:
    """Tracked 10x20 boxes whose bottom centre is (x, y): rows of (track_id, x, y)."""
    if not rows:
        return Detections.empty()
    arr = np.asarray(rows, dtype=float)
    x, y = arr[:, 1], arr[:, 2]
    return Detections(
        xyxy=np.column_stack([x - 5, y - 20, x + 5, y]),
        confidence=np.ones(len(arr)),
        class_id=np.zeros(len(arr)),
        tracker_id=arr[:, 0].astype(np.int64),
    )


def table(*points: tuple[int, int, float, float]) -> pd.DataFrame:
    """A trajectory table from (track_id, frame, x, y) rows."""
    return tracks_from_detections((f, boxes((t, x, y))) for t, f, x, y in points)


def test_tracks_from_detections_anchor_and_speed():
    untracked = Detections(xyxy=[[0, 0, 10, 10]], confidence=[0.9], class_id=[0])
    frames = [
        (0, boxes((1, 10, 100), (2, 500, 50))),
        (1, boxes((1, 13, 104))),  # moved 5 px in 1 frame
        (2, untracked),  # no tracker id: not a track point
        (3, boxes((1, 19, 112), (2, 500, 50))),  # moved 10 px in 2 frames; 2 stood still
    ]
    got = tracks_from_detections(frames)
    assert tuple(got.columns) == TRACK_COLUMNS
    assert got[["track_id", "frame"]].values.tolist() == [[1, 0], [1, 1], [1, 3], [2, 0], [2, 3]]
    assert got["x"].tolist() == [10, 13, 19, 500, 500]
    assert got["y"].tolist() == [100, 104, 112, 50, 50]
    speed = got["speed"].tolist()
    assert math.isnan(speed[0]) and math.isnan(speed[3])
    assert speed[1] == pytest.approx(5.0)
    assert speed[2] == pytest.approx(5.0)
    assert speed[4] == pytest.approx(0.0)


def test_tracks_from_detections_empty():
    got = tracks_from_detections([(0, Detections.empty())])
    assert tuple(got.columns) == TRACK_COLUMNS and got.empty


def test_tracks_from_ground_truth_matches_the_file(gt_path):
    rows = np.loadtxt(gt_path, delimiter=",", usecols=range(7))
    rows = rows[rows[:, 6] != 0]
    got = tracks_from_ground_truth(gt_path)
    assert len(got) == len(rows)
    assert set(got["track_id"]) == set(rows[:, 1].astype(int))
    # GT frame k+1 is decoded frame k; the anchor is the box's bottom centre.
    first = rows[0]
    point = got[(got.track_id == int(first[1])) & (got.frame == int(first[0]) - 1)].iloc[0]
    assert point.x == pytest.approx(first[2] + first[4] / 2)
    assert point.y == pytest.approx(first[3] + first[5])

    short = tracks_from_ground_truth(gt_path, max_frame=50)
    assert short["frame"].max() == 49
    assert len(short) == int((rows[:, 0] <= 50).sum())


def test_heatmap_counts_cells_top_row_first():
    tracks = table((1, 0, 5, 5), (1, 1, 15, 5), (2, 0, 95, 45), (2, 1, 96, 46), (3, 0, 200, 5))
    heat = heatmap(tracks, (100, 50), bins=(10, 5))
    assert heat.counts.shape == (5, 10)
    assert heat.counts[0, 0] == 1 and heat.counts[0, 1] == 1
    assert heat.counts[4, 9] == 2  # bottom right
    assert heat.counts.sum() == 4  # the point at x=200 is outside the frame
    assert heat.frame_size == (100, 50)
    with pytest.raises(ValueError, match="frame_size"):
        heatmap(tracks, (0, 50))


def test_speeds_per_track_in_pixels_per_second():
    tracks = table((1, 0, 0, 0), (1, 1, 3, 4), (1, 2, 6, 8), (2, 0, 0, 0), (2, 4, 0, 8))
    got = speeds(tracks, fps=10).set_index("track_id")
    assert got.loc[1, "speed_px_s"] == pytest.approx(50.0)
    assert got.loc[1, "distance_px"] == pytest.approx(10.0)
    assert got.loc[1, "duration_s"] == pytest.approx(0.2)
    assert got.loc[2, "speed_px_s"] == pytest.approx(20.0)
    with pytest.raises(ValueError, match="fps"):
        speeds(tracks, fps=0)


def test_displacements_over_a_step():
    tracks = table(*[(1, f, 2.0 * f, 100.0) for f in range(8)])
    got = displacements(tracks, step=5)
    assert got.tolist() == [[10.0, 0.0]] * 3


def test_candidate_lines_inside_the_frame():
    lines = candidate_lines((768, 576), steps=4, margin=0.05)
    assert len(lines) == 2 * 4 + 2
    assert len({line.id for line in lines}) == len(lines)
    for line in lines:
        for x, y in (line.start, line.end):
            assert 0.05 * 768 - 1e-6 <= x <= 0.95 * 768 + 1e-6
            assert 0.05 * 576 - 1e-6 <= y <= 0.95 * 576 + 1e-6


# A vertical line x=100 from y=0 to y=200; leftToRight: walking right is an entry.
LINE = CountingLine(id="door", x1=100, y1=0, x2=100, y2=200)


@pytest.mark.parametrize(
    ("name", "path", "crossings", "entries", "recrossings"),
    [
        ("walks across", [(50, 100), (90, 100), (110, 100), (150, 100)], 1, 1, 0),
        ("walks back", [(150, 100), (110, 100), (90, 100), (50, 100)], 1, 0, 0),
        ("beside the segment's end", [(50, 300), (150, 300)], 0, 0, 0),
        ("hesitates on the line", [(90, 100), (110, 100), (90, 100), (110, 100)], 3, 2, 2),
        ("never reaches it", [(10, 100), (50, 100), (90, 100)], 0, 0, 0),
    ],
)
def test_line_crossing_counts_table(name, path, crossings, entries, recrossings):
    tracks = table(*[(7, f, x, y) for f, (x, y) in enumerate(path)])
    row = line_crossing_counts(tracks, [LINE]).iloc[0]
    assert row.crossings == crossings, name
    assert row.entries == entries and row.exits == crossings - entries, name
    assert row.recrossings == recrossings, name
    assert row.tracks == (1 if crossings else 0), name
    assert row.score == crossings - 2 * recrossings, name


def test_slow_back_and_forth_is_not_a_recrossing():
    path = [(50, 100), (150, 100)] + [(150, 100)] * 20 + [(50, 100)]
    tracks = table(*[(7, f, x, y) for f, (x, y) in enumerate(path)])
    row = line_crossing_counts(tracks, [LINE], recross_frames=10).iloc[0]
    assert (row.crossings, row.recrossings, row.score) == (2, 0, 2)


def test_line_crossing_counts_agree_with_the_evaluator(gt_path):
    """On the real ground truth, the known vertical line: 8 + 6 crossings by the brief's count,
    and exactly the true crossings the evaluation uses."""
    vertical = CountingLine(id="v", x1=345.6, y1=0, x2=345.6, y2=576)
    row = line_crossing_counts(tracks_from_ground_truth(gt_path), [vertical]).iloc[0]
    true = true_crossings(read_mot_gt(gt_path), vertical)
    assert row.crossings == len(true) == 14
    assert {row.entries, row.exits} == {8, 6}
    assert row.entries == sum(1 for e in true if e.direction == "entry")


@pytest.mark.model
def test_tracks_from_video_with_the_real_model(video_path, model_path):
    from zvpanel.detection import YoloDetector
    from zvpanel.tracks import tracks_from_video

    tracks = tracks_from_video(
        video_path, YoloDetector(model_path), "bytetrack", max_frames=20, detection_fps=5
    )
    assert tracks.attrs["frame_size"] == (768, 576)
    assert tracks.attrs["fps"] == pytest.approx(10)
    assert tracks.attrs["detection_fps"] == pytest.approx(5)
    # Every second decoded frame is processed; the footage has several people walking.
    assert set(tracks["frame"]) <= set(range(0, 20, 2))
    assert tracks["track_id"].nunique() >= 3
    assert tracks["x"].between(0, 768).all() and tracks["y"].between(0, 576).all()
    moving = tracks["speed"].dropna()
    assert len(moving) and (moving >= 0).all()
