"""Calibration validation: every problem is named."""

from __future__ import annotations

import pytest

from zvpanel.calibration import Calibration, CountingLine, parse_calibration
from zvpanel.errors import CalibrationError

LINE = {"id": "door", "x1": 100, "y1": 0, "x2": 100, "y2": 500, "orientation": "leftToRight"}


def test_round_trip_json():
    cal = parse_calibration({"roi": [0, 0, 700, 570], "lines": [LINE], "detection_fps": 5})
    assert parse_calibration(cal.model_dump_json()) == cal
    assert cal.lines[0].entry_side == -1


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"lines": []}, "lines"),
        ({"lines": [{**LINE, "x2": 100, "y2": 3}]}, "at least 10 px"),
        ({"lines": [{**LINE, "orientation": "up"}]}, "orientation"),
        ({"lines": [LINE], "detection_fps": 0}, "detection_fps"),
        ({"lines": [LINE], "detection_fps": 500}, "detection_fps"),
        ({"lines": [LINE], "roi": [10, 10, 5, 50]}, "x1 < x2"),
        ({"lines": [LINE, LINE]}, "unique"),
        ({"lines": [LINE], "colour": "red"}, "colour"),
    ],
)
def test_invalid_calibrations(data, fragment):
    with pytest.raises(CalibrationError) as info:
        parse_calibration(data)
    assert fragment in str(info.value)


def test_check_frame_names_each_problem():
    cal = Calibration(
        roi=(0, 0, 300, 300),
        lines=(CountingLine(id="door", x1=100, y1=0, x2=100, y2=500),),
    )
    with pytest.raises(CalibrationError) as info:
        cal.check_frame(768, 576)
    assert "'door' end (100, 500) is outside the roi" in str(info.value)
    with pytest.raises(CalibrationError, match="outside the 200x200 frame"):
        cal.check_frame(200, 200)
    Calibration(lines=cal.lines).check_frame(768, 576)  # no ROI: fits
