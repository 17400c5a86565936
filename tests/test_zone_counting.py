"""Zone counting tables: hand-made box sequences -> enter/leave events, dwell, occupancy."""

from __future__ import annotations

import pytest
from test_counting import box_at, boxes_to_detections

from zvpanel.calibration import Zone, parse_calibration
from zvpanel.counting import MultiZoneCounter, ZoneCounter

#: The square 100..200 x 100..200; frames come every 0.5 s.
SQUARE = Zone(id="till", points=((100, 100), (200, 100), (200, 200), (100, 200)))
STEP_S = 0.5
OUT, EDGE_IN, EDGE_OUT, IN = (50, 150), (101, 150), (99, 150), (150, 150)


def run(counter: ZoneCounter, tracks: dict[int, list[tuple[float, float] | None]], frames=None):
    """Feed frame by frame (``None``: not seen in that frame); events as
    (track, kind, frame, dwell seconds or None)."""
    frames = frames or max(len(path) for path in tracks.values())
    events = []
    for index in range(frames):
        rows = [
            (tid, *box_at(*path[index]))
            for tid, path in tracks.items()
            if index < len(path) and path[index] is not None
        ]
        events += counter.update(boxes_to_detections(rows), index, index * STEP_S)
    return [(e.track_id, e.kind, e.frame_index, e.dwell_s) for e in events]


@pytest.mark.parametrize(
    ("path", "hysteresis", "expected"),
    [
        # Walk in, stay 2 s, walk out: one enter, one leave with 2 s of dwell.
        ([OUT, IN, IN, IN, IN, IN, OUT], (0, 1), [(1, "enter", 1, None), (1, "leave", 6, 2.5)]),
        # Jitter across the edge inside the dead band: nothing.
        ([OUT, EDGE_IN, EDGE_OUT, EDGE_IN, EDGE_OUT, OUT], (4, 1), []),
        # The same jitter without hysteresis flickers: what the band prevents.
        (
            [OUT, EDGE_IN, EDGE_OUT, EDGE_IN],
            (0, 1),
            [(1, "enter", 1, None), (1, "leave", 2, 0.5), (1, "enter", 3, None)],
        ),
        # One frame outside is not enough with min_frames=2.
        ([IN, IN, OUT, IN, IN], (0, 2), [(1, "enter", 1, None)]),
        # Two frames outside are: the leave is at the second.
        ([IN, IN, OUT, OUT], (0, 2), [(1, "enter", 1, None), (1, "leave", 3, 1.0)]),
        # Walking past outside the polygon (concave corner not involved): nothing.
        ([(50, 50), (150, 50), (250, 50)], (4, 1), []),
    ],
)
def test_zone_table(path, hysteresis, expected):
    min_distance, min_frames = hysteresis
    counter = ZoneCounter(SQUARE, min_distance=min_distance, min_frames=min_frames)
    assert run(counter, {1: path}) == expected


def test_occupancy_and_time_inside_follow_the_people():
    counter = ZoneCounter(SQUARE)
    run(counter, {1: [IN, IN, IN, IN], 2: [OUT, OUT, IN, IN], 3: [OUT] * 4})
    assert counter.occupancy == 2
    # Track 1 entered at 0.0 s, track 2 at 1.0 s; now is 1.5 s.
    assert counter.inside_seconds() == [0.5, 1.5]


def test_a_track_lost_inside_leaves_at_its_last_sighting():
    counter = ZoneCounter(SQUARE, lost_after=1.0)
    # Seen inside at 0.0..1.0 s, then gone; an unrelated track keeps the frames coming.
    events = run(counter, {1: [IN, IN, IN], 2: [OUT] * 8})
    assert events == [(1, "enter", 0, None), (1, "leave", 2, 1.0)]
    assert counter.occupancy == 0


def test_a_track_lost_briefly_inside_keeps_one_stay():
    counter = ZoneCounter(SQUARE, lost_after=2.0)
    events = run(counter, {1: [OUT, IN, None, None, IN, IN, OUT]})
    assert events == [(1, "enter", 1, None), (1, "leave", 6, 2.5)]


def test_time_going_back_closes_every_stay():
    counter = ZoneCounter(SQUARE)
    run(counter, {1: [IN, IN, IN]})
    events = counter.update(boxes_to_detections([(1, *box_at(*IN))]), 0, 0.0)
    # Left at its last sighting (1.0 s), then entered again in the new pass.
    assert [(e.kind, e.dwell_s) for e in events] == [("leave", 1.0), ("enter", None)]


def test_close_empties_the_zone():
    counter = ZoneCounter(SQUARE)
    run(counter, {1: [IN, IN], 2: [IN]})
    assert sorted((e.track_id, e.dwell_s) for e in counter.close()) == [(1, 0.5), (2, 0.0)]
    assert counter.occupancy == 0 and counter.enters == 2 and counter.leaves == 2


def test_multi_zone_counter_counts_each_zone_with_queue_waits():
    calibration = parse_calibration(
        {
            "lines": [{"id": "door", "x1": 0, "y1": 10, "x2": 300, "y2": 10}],
            "zones": [
                SQUARE.model_dump(),
                {
                    "id": "queue",
                    "points": [[0, 100], [90, 100], [90, 200], [0, 200]],
                    "queue": True,
                },
            ],
            "min_distance": 0,
        }
    )
    zones = MultiZoneCounter(calibration)
    for index, rows in enumerate(
        [[(1, *box_at(*IN)), (2, *box_at(50, 150))], [(2, *box_at(50, 150))]]
    ):
        zones.update(boxes_to_detections(rows), index, index * 2.0)
    counts = zones.counts()
    assert counts["till"] == {
        "occupancy": 1,  # track 1 is not seen in the second frame but not lost yet
        "enters": 1,
        "leaves": 0,
        "queue": False,
        "longest_inside_s": 2.0,
        "mean_inside_s": 2.0,
    }
    assert counts["queue"]["occupancy"] == 1 and counts["queue"]["queue"] is True
    assert counts["queue"]["longest_inside_s"] == 2.0


#: A zone on the walkway of data/vtest.avi (768x576), where people walk left and right.
WALKWAY = {"id": "walkway", "points": [[100, 185], [420, 185], [420, 310], [100, 265]]}
#: The first 40 s of the video, processed at 5 detections per second.
FOOTAGE_FRAMES = 400


def test_real_footage_walkway_zone(model_path, video_path):
    from zvpanel.detection import YoloDetector
    from zvpanel.pipeline import CountingPipeline, FrameSampler, run_offline
    from zvpanel.sources.capture import iter_frames
    from zvpanel.storage.bootstrap import DEMO_CALIBRATION

    calibration = parse_calibration(DEMO_CALIBRATION.model_dump() | {"zones": [WALKWAY]})
    pipeline = CountingPipeline(calibration, YoloDetector(model_path))
    occupancy: list[int] = []
    run = run_offline(
        iter_frames(video_path, max_frames=FOOTAGE_FRAMES),
        pipeline,
        FrameSampler(5.0, 10.0),
        on_output=lambda _, out: occupancy.append(out.zones["walkway"]["occupancy"]),
    )
    enters = [e for e in run.zone_events if e.kind == "enter"]
    leaves = [e for e in run.zone_events if e.kind == "leave"]
    dwells = sorted(e.dwell_s for e in leaves)
    print(f"walkway: {len(enters)} enters, peak {max(occupancy)} inside, dwells {dwells}")
    # Several people at once walk through it, and it is empty at times.
    assert max(occupancy) >= 3 and min(occupancy) == 0
    assert len(enters) >= 5
    # Every stay ends (the end of the footage empties the zone), each after its enter.
    assert sorted(e.track_id for e in enters) == sorted(e.track_id for e in leaves)
    # Crossing 320 px of walkway at walking pace takes seconds, not minutes.
    assert 1.0 <= dwells[len(dwells) // 2] <= 20.0
    assert dwells[-1] <= FOOTAGE_FRAMES / 10.0
