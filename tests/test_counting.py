"""Line crossing tables: hand-made box sequences -> expected events."""

from __future__ import annotations

import numpy as np
import pytest

from zvpanel.calibration import Calibration, CountingLine
from zvpanel.counting import LineCounter, MultiLineCounter
from zvpanel.detections import Detections


def boxes_to_detections(rows: list[tuple[int, float, float, float, float]]) -> Detections:
    """Rows of (track_id, x1, y1, x2, y2) -> tracked Detections."""
    if not rows:
        return Detections.empty()
    arr = np.asarray(rows, dtype=float)
    return Detections(
        xyxy=arr[:, 1:5],
        confidence=np.ones(len(arr)),
        class_id=np.zeros(len(arr)),
        tracker_id=arr[:, 0].astype(np.int64),
    )


def box_at(x: float, y: float, w: float = 20, h: float = 40) -> tuple[float, float, float, float]:
    """A box whose bottom-centre anchor is (x, y)."""
    return (x - w / 2, y - h, x + w / 2, y)


def run(counter: LineCounter, tracks: dict[int, list[tuple[float, float] | None]]):
    """Feed frame by frame; ``None`` in a track's path means it is not seen in that frame."""
    frames = max(len(path) for path in tracks.values())
    events = []
    for index in range(frames):
        rows = [
            (tid, *box_at(*path[index]))
            for tid, path in tracks.items()
            if index < len(path) and path[index] is not None
        ]
        events += counter.update(boxes_to_detections(rows), index)
    return [(e.track_id, e.direction, e.frame_index) for e in events]


VERTICAL = dict(x1=100, y1=0, x2=100, y2=200)  # drawn top to bottom
HORIZONTAL = dict(x1=0, y1=100, x2=200, y2=100)  # drawn left to right
DIAGONAL = dict(x1=0, y1=0, x2=200, y2=200)

LEFT_TO_RIGHT = [(60, 100), (80, 100), (95, 100), (105, 100), (120, 100), (140, 100)]
RIGHT_TO_LEFT = list(reversed(LEFT_TO_RIGHT))
DOWN = [(100, 60), (100, 80), (100, 95), (100, 105), (100, 120), (100, 140)]
UP = list(reversed(DOWN))


@pytest.mark.parametrize(
    ("line", "orientation", "path", "expected"),
    [
        # Vertical line drawn top->bottom: leftToRight means walking left-to-right is entry.
        (VERTICAL, "leftToRight", LEFT_TO_RIGHT, "entry"),
        (VERTICAL, "leftToRight", RIGHT_TO_LEFT, "exit"),
        (VERTICAL, "rightToLeft", LEFT_TO_RIGHT, "exit"),
        (VERTICAL, "rightToLeft", RIGHT_TO_LEFT, "entry"),
        # Horizontal line drawn left->right: above is side -1, below +1.
        (HORIZONTAL, "leftToRight", DOWN, "exit"),
        (HORIZONTAL, "leftToRight", UP, "entry"),
        (HORIZONTAL, "rightToLeft", DOWN, "entry"),
        # Diagonal (0,0)->(200,200): below-left (y > x) is side +1, so moving up-right
        # goes +1 -> -1, an entry with leftToRight.
        (DIAGONAL, "leftToRight", [(60, 140), (80, 120), (95, 105), (105, 95), (130, 70)], "entry"),
        (DIAGONAL, "leftToRight", [(130, 70), (105, 95), (95, 105), (60, 140)], "exit"),
        (DIAGONAL, "rightToLeft", [(130, 70), (105, 95), (95, 105), (60, 140)], "entry"),
    ],
)
def test_direction_table(line, orientation, path, expected):
    counter = LineCounter(CountingLine(**line, orientation=orientation), min_distance=2)
    events = run(counter, {7: path})
    assert [(tid, kind) for tid, kind, _ in events] == [(7, expected)]
    assert (counter.entries, counter.exits) == ((1, 0) if expected == "entry" else (0, 1))


def test_side_formula_matches_prototype():
    # (x2-x1)*(py-y1) - (y2-y1)*(px-x1) > 0 for a point left of a top->bottom line.
    line = CountingLine(**VERTICAL)
    counter = LineCounter(line)
    run(counter, {1: [(50, 100)]})
    assert counter._tracks[1].side == 1
    run(counter, {2: [(150, 100)]})
    assert counter._tracks[2].side == -1


def test_walk_in_and_back_out_is_one_entry_and_one_exit():
    counter = LineCounter(CountingLine(**VERTICAL), min_distance=2)
    events = run(counter, {3: LEFT_TO_RIGHT + RIGHT_TO_LEFT})
    assert [kind for _, kind, _ in events] == ["entry", "exit"]


def test_jitter_on_the_line_does_not_double_count():
    # Hovering within 3 px of the line, then crossing once for good.
    jitter = [(60, 100), (99, 100), (101, 100), (98, 100), (102, 100), (99, 100), (101, 100)]
    path = jitter + [(130, 100), (150, 100)]
    counter = LineCounter(CountingLine(**VERTICAL), min_distance=4)
    assert [kind for _, kind, _ in run(counter, {1: path})] == ["entry"]


def test_jitter_across_the_dead_band_needs_min_frames():
    # Each excursion is 6 px past the line but lasts one frame only.
    path = [(60, 100), (106, 100), (94, 100), (106, 100), (94, 100), (120, 100), (130, 100)]
    counter = LineCounter(CountingLine(**VERTICAL), min_distance=4, min_frames=2)
    events = run(counter, {1: path})
    assert [(kind, frame) for _, kind, frame in events] == [("entry", 6)]


def test_without_hysteresis_jitter_would_count_each_time():
    path = [(60, 100), (106, 100), (94, 100), (106, 100)]
    counter = LineCounter(CountingLine(**VERTICAL), min_distance=4, min_frames=1)
    assert [k for _, k, _ in run(counter, {1: path})] == ["entry", "exit", "entry"]


def test_passing_beside_the_end_of_the_segment_does_not_count():
    # The line covers y 0..200; this person crosses x=100 at y=260.
    path = [(60, 260), (90, 260), (110, 260), (140, 260)]
    counter = LineCounter(CountingLine(**VERTICAL), min_distance=2)
    assert run(counter, {1: path}) == []
    # ...and then walking back across the segment itself counts.
    assert [k for _, k, _ in run(counter, {1: [(140, 150), (110, 150), (90, 150)]})] == ["exit"]


def test_lost_and_refound_track_does_not_recount():
    path = LEFT_TO_RIGHT + [None] * 20 + [(150, 100), (160, 100)]
    counter = LineCounter(CountingLine(**VERTICAL), min_distance=2)
    assert [k for _, k, _ in run(counter, {1: path})] == ["entry"]


def test_crossing_while_lost_counts_once():
    path = [(60, 100), (70, 100)] + [None] * 5 + [(140, 100), (150, 100)]
    counter = LineCounter(CountingLine(**VERTICAL), min_distance=2)
    assert [k for _, k, _ in run(counter, {1: path})] == ["entry"]


def test_id_reuse_after_forget_starts_fresh():
    # Track 5 is seen left of the line, vanishes long enough to be forgotten, and the id
    # is reused by somebody who appears on the right: no crossing is invented.
    counter = LineCounter(CountingLine(**VERTICAL), min_distance=2, forget_after=10)
    path = [(60, 100)] * 3 + [None] * 80 + [(150, 100), (160, 100)]
    assert run(counter, {5: path}) == []
    assert counter._tracks[5].side == -1


def test_untracked_detections_are_ignored():
    counter = LineCounter(CountingLine(**VERTICAL))
    for i, (x, y) in enumerate(LEFT_TO_RIGHT):
        counter.update(boxes_to_detections([(-1, *box_at(x, y))]), i)
    assert (counter.entries, counter.exits) == (0, 0)


def test_two_people_in_opposite_directions_same_frame():
    counter = LineCounter(CountingLine(**VERTICAL), min_distance=2)
    events = run(counter, {1: LEFT_TO_RIGHT, 2: RIGHT_TO_LEFT})
    assert sorted((tid, k) for tid, k, _ in events) == [(1, "entry"), (2, "exit")]


def test_center_anchor():
    counter = LineCounter(CountingLine(**HORIZONTAL), anchor="center", min_distance=2)
    # Bottom-centre crosses y=100 but the box centre (20 px higher) stays above it.
    events = run(counter, {1: [(100, 90), (100, 110), (100, 115)]})
    assert events == []


def test_multi_line_counter_counts_each_line():
    calibration = Calibration(
        lines=(
            CountingLine(id="a", **VERTICAL),
            CountingLine(id="b", x1=120, y1=0, x2=120, y2=200, orientation="rightToLeft"),
        ),
        min_distance=2,
    )
    multi = MultiLineCounter(calibration)
    for i, (x, y) in enumerate(LEFT_TO_RIGHT):
        multi.update(boxes_to_detections([(1, *box_at(x, y))]), i)
    assert multi.counts() == {"a": {"entries": 1, "exits": 0}, "b": {"entries": 0, "exits": 1}}
