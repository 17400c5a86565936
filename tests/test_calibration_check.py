"""The calibration check: tables of lines and hand-made tracks -> expected warnings."""

from __future__ import annotations

import pytest

from zvpanel.calibration import parse_calibration
from zvpanel.calibration_check import (
    MIN_TRACKS_CROSSING,
    CalibrationWarning,
    check_calibration,
    check_footage,
    format_warnings,
    main_walking_direction,
)
from zvpanel.tracks import tracks_from_detections, tracks_from_ground_truth

FRAME = (800, 600)


def calibration(*lines: tuple[float, float, float, float], roi=None):
    return parse_calibration(
        {
            "roi": roi,
            "lines": [
                {"id": f"l{i}", "x1": x1, "y1": y1, "x2": x2, "y2": y2}
                for i, (x1, y1, x2, y2) in enumerate(lines, start=1)
            ],
        }
    )


def walkers(paths: list[tuple[tuple[float, float], tuple[float, float]]], steps: int = 20):
    """Tracks walking in straight lines, one per ((x0, y0), (x1, y1)), ``steps`` frames each."""
    from zvpanel.detections import Detections

    frames = []
    for frame in range(steps + 1):
        rows = []
        for track_id, ((x0, y0), (x1, y1)) in enumerate(paths, start=1):
            x = x0 + (x1 - x0) * frame / steps
            y = y0 + (y1 - y0) * frame / steps
            rows.append(([x - 5, y - 20, x + 5, y], track_id))
        frames.append(
            (
                frame,
                Detections(
                    xyxy=[r[0] for r in rows],
                    confidence=[1.0] * len(rows),
                    class_id=[0] * len(rows),
                    tracker_id=[r[1] for r in rows],
                ),
            )
        )
    return tracks_from_detections(frames)


# Ten people walking left to right across the middle band of the frame (y 200..380).
HORIZONTAL_WALKERS = [((100, 200 + 20 * k), (700, 200 + 20 * k)) for k in range(10)]


def codes(warnings: list[CalibrationWarning]) -> list[tuple[str, str]]:
    return [(w.line_id, w.code) for w in warnings]


@pytest.mark.parametrize(
    ("name", "lines", "roi", "expected"),
    [
        ("vertical across the middle", [(400, 0, 400, 600)], None, []),
        ("diagonal across the frame", [(50, 50, 750, 550)], None, []),
        ("along the top edge", [(100, 10, 700, 10)], None, [("l1", "near_edge")]),
        ("along the right edge", [(790, 100, 790, 500)], None, [("l1", "near_edge")]),
        ("just clear of the edge band", [(100, 40, 700, 40)], None, []),
        ("half outside the frame", [(400, 300, 1200, 300)], None, [("l1", "outside_frame")]),
        ("inside the roi", [(400, 150, 400, 450)], (100, 100, 700, 500), []),
        (
            "crossing the roi border",
            [(400, 0, 400, 600)],
            (100, 100, 700, 500),
            [("l1", "outside_roi")],
        ),
        (
            "two lines, one bad",
            [(400, 150, 400, 450), (150, 590, 650, 590)],
            None,
            [("l2", "near_edge")],
        ),
    ],
)
def test_geometry_warnings(name, lines, roi, expected):
    assert codes(check_calibration(calibration(*lines, roi=roi), FRAME)) == expected, name


@pytest.mark.parametrize(
    ("name", "paths", "line", "expected"),
    [
        ("across the walkers", HORIZONTAL_WALKERS, (400, 150, 400, 450), []),
        (
            "along the walkers",
            HORIZONTAL_WALKERS,
            (100, 290, 700, 290),
            [("l1", "parallel_to_walking"), ("l1", "few_tracks")],
        ),
        (
            "10 degrees off the walkers",
            HORIZONTAL_WALKERS,
            (100, 290, 700, 290 + 600 * 0.176),
            [("l1", "parallel_to_walking")],
        ),
        ("45 degrees to the walkers", HORIZONTAL_WALKERS, (200, 150, 500, 450), []),
        (
            "where nobody walks",
            HORIZONTAL_WALKERS,
            (750, 150, 750, 450),
            [("l1", "few_tracks")],
        ),
        (
            "too few walkers",
            HORIZONTAL_WALKERS[: MIN_TRACKS_CROSSING - 1],
            (400, 150, 400, 450),
            [("l1", "few_tracks")],
        ),
        (
            "walkers every way: no main direction",
            [((100, 300 + 60 * k), (700, 300 + 60 * k)) for k in range(3)]
            + [((400 + 60 * k, 50), (400 + 60 * k, 550)) for k in range(3)],
            (100, 250, 700, 250),
            [],
        ),
    ],
)
def test_warnings_from_tracks(name, paths, line, expected):
    tracks = walkers(paths)
    assert codes(check_calibration(calibration(line), FRAME, tracks)) == expected, name


def test_messages_name_the_line_and_the_problem():
    tracks = walkers(HORIZONTAL_WALKERS)
    # 10 degrees off the walkers: crossed by five of them, but at a shallow angle.
    (warning,) = check_calibration(calibration((100, 290, 700, 395.6)), FRAME, tracks)
    assert "'l1'" in warning.message and "walking direction" in warning.message
    assert warning.as_dict() == {
        "line_id": "l1",
        "code": "parallel_to_walking",
        "message": warning.message,
    }


def test_main_walking_direction():
    assert main_walking_direction(walkers(HORIZONTAL_WALKERS)) == pytest.approx(0.0, abs=1)
    diagonal = [((100 + 20 * k, 100), (500 + 20 * k, 500)) for k in range(5)]
    assert main_walking_direction(walkers(diagonal)) == pytest.approx(45.0, abs=1)
    standing = [((100 + 20 * k, 100), (100 + 20 * k, 100)) for k in range(5)]
    assert main_walking_direction(walkers(standing)) is None


def test_bad_frame_size_is_rejected():
    with pytest.raises(ValueError, match="frame_size"):
        check_calibration(calibration((400, 0, 400, 600)), (0, 600))


def test_real_ground_truth(gt_path):
    """vtest.avi's people mostly walk left-right: a line across them is fine, a line along
    their walkway is flagged, a line in the empty top-left corner is crossed by nobody."""
    tracks = tracks_from_ground_truth(gt_path)
    cal = calibration((345.6, 0, 345.6, 576), (450, 290, 750, 290), (40, 40, 120, 40))
    got = codes(check_calibration(cal, (768, 576), tracks))
    assert ("l1", "parallel_to_walking") not in got and ("l1", "few_tracks") not in got
    assert ("l2", "parallel_to_walking") in got
    assert ("l3", "few_tracks") in got


def test_format_warnings():
    assert "no warnings" in format_warnings([])
    text = format_warnings(check_calibration(calibration((100, 10, 700, 10)), FRAME))
    assert text.startswith("warning [near_edge] line 'l1'")


@pytest.mark.model
def test_check_footage_with_the_real_model(video_path, model_path):
    """The camera's own footage, detected and tracked: a line in the empty top-left corner is
    crossed by nobody; the geometry warnings come with it."""
    from zvpanel.detection import YoloDetector

    cal = calibration((345.6, 0, 345.6, 576), (40, 15, 120, 15))
    got = codes(check_footage(cal, video_path, YoloDetector(model_path), max_frames=40))
    assert ("l2", "few_tracks") in got and ("l2", "near_edge") in got
    assert ("l1", "near_edge") not in got


def _tracks(rows: list[tuple[int, int, float, float]], size=(10.0, 40.0)):
    """A track table from rows (track_id, frame, x, y) of feet points, boxes of ``size``."""
    from zvpanel.detections import Detections

    w, h = size
    frames = {}
    for track_id, frame, x, y in rows:
        frames.setdefault(frame, []).append((track_id, [x - w / 2, y - h, x + w / 2, y]))
    return tracks_from_detections(
        (
            frame,
            Detections(
                xyxy=[box for _, box in items],
                confidence=[1.0] * len(items),
                class_id=[0] * len(items),
                tracker_id=[t for t, _ in items],
            ),
        )
        for frame, items in sorted(frames.items())
    )


def _walk(track_id: int, y: float, x0: float, x1: float, frames: range, offset: float = 0.0):
    n = len(frames) - 1
    return [(track_id, f, x0 + (x1 - x0) * i / n + offset, y) for i, f in enumerate(frames)]


# Six people walking left to right over frames 0-20, from x=100 to x=700, 40 px apart.
WHOLE = [row for k in range(6) for row in _walk(k + 1, 200 + 40 * k, 100, 700, range(21))]
# The same people, each lost at x=400 and found again under a new id (the tracker broke).
BROKEN = [row for k in range(6) for row in _walk(k + 1, 200 + 40 * k, 100, 400, range(11))] + [
    row for k in range(6) for row in _walk(k + 11, 200 + 40 * k, 415, 700, range(11, 21))
]
# Six pairs, each two people walking one behind the other (boxes 70% covered).
PAIRS = WHOLE + [row for k in range(6) for row in _walk(k + 21, 200 + 40 * k, 103, 703, range(21))]


@pytest.mark.parametrize(
    ("name", "rows", "line", "expected"),
    [
        ("people seen whole", WHOLE, (400, 150, 400, 450), []),
        (
            "tracks broken at the line: nobody crosses it whole",
            BROKEN,
            (400, 150, 400, 450),
            [("l1", "few_tracks"), ("l1", "broken_tracks")],
        ),
        ("tracks broken elsewhere", BROKEN, (250, 150, 250, 450), []),
        ("people hiding each other", PAIRS, (400, 150, 400, 450), [("l1", "crowded")]),
    ],
)
def test_reliability_warnings(name, rows, line, expected):
    assert codes(check_calibration(calibration(line), FRAME, _tracks(rows))) == expected, name


def test_reliability_numbers_are_in_the_message_and_the_table():
    from zvpanel.calibration_check import line_reliability

    cal = calibration((400, 150, 400, 450))
    table = line_reliability(_tracks(BROKEN), cal.lines, FRAME)
    assert table.iloc[0][["near_tracks", "broken"]].tolist() == [12, 12]
    (warning,) = [
        w for w in check_calibration(cal, FRAME, _tracks(BROKEN)) if w.code != "few_tracks"
    ]
    assert "12 tracks begin or end near it for 12 tracks passing it (100%" in warning.message
