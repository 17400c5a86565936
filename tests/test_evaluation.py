"""Ground-truth crossings and matching: vtest's real MOTChallenge file and small hand-made ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zvpanel.calibration import CountingLine, parse_calibration
from zvpanel.counting import CrossingEvent
from zvpanel.errors import ZvpanelError
from zvpanel.evaluation import evaluate, match_events, read_mot_gt, true_crossings

VERTICAL = CountingLine(id="v", x1=345.6, y1=0, x2=345.6, y2=576)  # leftToRight


def event(frame: int, direction: str = "entry", line: str = "v", track: int = 1) -> CrossingEvent:
    return CrossingEvent(line, track, direction, frame, 1.0, (0.0, 0.0))


def write_gt(path: Path, rows: list[tuple]) -> Path:
    path.write_text("\n".join(",".join(str(v) for v in row) for row in rows) + "\n")
    return path


def test_vtest_ground_truth_crossings_of_the_vertical_line(gt_path: Path):
    gt = read_mot_gt(gt_path)
    assert gt.num_frames == 400
    events = true_crossings(gt, VERTICAL)
    # Walking left to right is an entry for a top-to-bottom leftToRight line.
    assert sum(e.direction == "entry" for e in events) == 6
    assert sum(e.direction == "exit" for e in events) == 8
    assert all(0 <= e.frame_index < 400 for e in events)
    flipped = VERTICAL.model_copy(update={"orientation": "rightToLeft"})
    assert sum(e.direction == "entry" for e in true_crossings(gt, flipped)) == 8
    # Only the first 100 decoded frames: fewer crossings, all before frame 100.
    early = true_crossings(gt, VERTICAL, max_frames=100)
    assert 0 < len(early) < len(events) and all(e.frame_index < 100 for e in early)


def test_gt_frames_start_at_one_and_flag_zero_rows_are_ignored(tmp_path: Path):
    # Person 1 walks left to right across x=100 (feet at x = left + 10); person 2 is
    # flagged 0 (ignore) and would cross the other way.
    rows = []
    for frame in range(1, 6):
        rows.append((frame, 1, 60 + 15 * frame, 50, 20, 60, 1, -1, -1, -1))
        rows.append((frame, 2, 200 - 30 * frame, 50, 20, 60, 0, -1, -1, -1))
    gt = read_mot_gt(write_gt(tmp_path / "gt.txt", rows))
    assert sorted(gt.frames) == [0, 1, 2, 3, 4]  # GT frame k+1 = decoded frame k
    assert gt.track_ids == {1}
    np.testing.assert_allclose(gt.at(0).xyxy[0], [75, 50, 95, 110])
    line = CountingLine(id="v", x1=100, y1=0, x2=100, y2=200)
    (crossing,) = true_crossings(gt, line)
    # Feet at x = 85 + 15k: 100 is passed between decoded frames 0 (85) and 1 (100 -> on
    # the line, no side) and 2 (115).
    assert (crossing.direction, crossing.frame_index, crossing.track_id) == ("entry", 2, 1)


def test_unreadable_ground_truth_is_reported(tmp_path: Path):
    with pytest.raises(ZvpanelError, match="does not exist"):
        read_mot_gt(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("this,is,not\nground,truth,at all\n")
    with pytest.raises(ZvpanelError, match="MOTChallenge"):
        read_mot_gt(bad)


def test_matching_pairs_same_line_and_direction_within_the_window():
    true = [event(10), event(50), event(52, "exit"), event(90, line="w")]
    counted = [event(14), event(49), event(60, "exit"), event(91, line="v")]
    pairs = match_events(true, counted, window=5)
    # 10<->14 and 50<->49 match; the exit is 8 frames late; the last is on another line.
    assert pairs == [(0, 0), (1, 1)]
    assert match_events(true, counted, window=8) == [(0, 0), (1, 1), (2, 2)]
    assert match_events([], counted, window=5) == []


def test_matching_is_one_to_one_and_minimises_time_differences():
    true = [event(10), event(20)]
    counted = [event(18), event(12), event(19)]
    # 10<->12 and 20<->19 (total 3), not 10<->18 greedy-by-order; 18 stays unmatched.
    assert match_events(true, counted, window=10) == [(0, 1), (1, 2)]


def test_evaluation_counts_errors_precision_and_recall(gt_path: Path):
    gt = read_mot_gt(gt_path)
    calibration = parse_calibration({"lines": [VERTICAL.model_dump()]})
    truth = true_crossings(gt, VERTICAL)
    perfect = evaluate(calibration, gt, truth, frames=400)
    assert perfect.precision == 1.0 and perfect.recall == 1.0
    assert perfect.max_relative_error == 0.0
    assert perfect.score("v", "entry").true == 6 and perfect.score("v", "exit").true == 8

    # Drop one entry and add a spurious one far from any true entry: the entry total is
    # right, but precision and recall show both mistakes.
    entries = [e for e in truth if e.direction == "entry"]
    far = max(range(0, 400, 7), key=lambda f: min(abs(f - e.frame_index) for e in entries))
    counted = [e for e in truth if e is not entries[0]] + [event(far, track=99)]
    report = evaluate(calibration, gt, counted, frames=400, window_frames=15)
    entry = report.score("v", "entry")
    assert (entry.true, entry.counted, entry.error, entry.matched) == (6, 6, 0, 5)
    assert entry.precision == pytest.approx(5 / 6) and entry.recall == pytest.approx(5 / 6)
    assert report.score("v", "exit").error == 0
    data = report.as_dict()
    assert data["true_entries"] == 6 and data["counted_exits"] == 8
    assert data["lines"]["v"]["entry"]["matched"] == 5
    table = report.format_table()
    assert "entry" in table and "precision" in table


def test_scene_list_names_each_scene_its_files_and_lines(tmp_path: Path, gt_path: Path):
    from zvpanel.evaluation import LineRule, load_scenes

    (tmp_path / "bench").mkdir()
    path = tmp_path / "bench" / "scenes.toml"
    path.write_text(
        f"""
[[scene]]
name = "vtest"
video = "data/vtest.avi"
ground_truth = "{gt_path}"
frames = 400
lines = [{{ id = "door", x1 = 345.6, y1 = 0.0, x2 = 345.6, y2 = 576.0 }}]

[scene.generated]
grid = 2
angles = [90]
min_crossings = 3
"""
    )
    (scene,) = load_scenes(path)
    assert scene.video == tmp_path / "data" / "vtest.avi"  # relative to the repository
    assert scene.ground_truth == gt_path and scene.frames == 400
    assert [line.id for line in scene.lines] == ["door"]
    assert scene.rule == LineRule(grid=2, angles=(90.0,), min_crossings=3)
    path.write_text('[[scene]]\nname = "x"\n')
    with pytest.raises(ZvpanelError, match="scene 1 is invalid"):
        load_scenes(path)


def test_generated_lines_are_kept_only_where_the_truth_crosses_enough(gt_path: Path):
    from zvpanel.evaluation import LineRule, generated_lines

    gt = read_mot_gt(gt_path)
    every = generated_lines(gt, LineRule(min_crossings=0), 768, 576, 400)
    kept = generated_lines(gt, LineRule(min_crossings=5), 768, 576, 400)
    assert len(every) == 3 * 3 * 4
    assert 0 < len(kept) < len(every) and {line.id for line in kept} <= {x.id for x in every}
    for line in every:
        crossings = len(true_crossings(gt, line, max_frames=400))
        assert (line in kept) == (crossings >= 5), line.id
        assert min(line.x1, line.x2) >= 0 and max(line.x1, line.x2) <= 768
