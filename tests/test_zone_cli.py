"""``zvpanel calibrate --zone``: zones set, shown, refused and removed from the command line;
``zvpanel count`` with a zone in its calibration file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from test_cli_admin import VIDEO, db_file, open_db, run  # noqa: F401 (db_file: a fixture)
from test_zone_counting import WALKWAY

TILL = ["--zone", "till", "100,300", "300,300", "300,450", "100,450"]
SHELF = ["--zone", "shelf", "400,300", "600,300", "600,450"]


@pytest.mark.parametrize("db_target", ["sqlite"], indirect=True)
def test_calibrate_sets_shows_and_removes_zones(db_file, capsys):  # noqa: F811
    run(capsys, "store", "add", "Shop")
    run(capsys, "camera", "add", "1", "Door", str(VIDEO))
    run(capsys, "calibrate", "1", "--line", "345", "0", "345", "576", "--line-id", "door")

    code, out, _ = run(capsys, "calibrate", "1", *TILL, *SHELF, "--queue", "till")
    assert code == 0 and "768x576" in out and "zones: till (queue), shelf" in out
    with open_db(db_file) as db:
        calibration = db.get_calibration(1)
    assert [line.id for line in calibration.lines] == ["door"]  # the lines stay
    assert [(z.id, z.queue, len(z.points)) for z in calibration.zones] == [
        ("till", True, 4),
        ("shelf", False, 3),
    ]
    code, out, _ = run(capsys, "calibrate", "1")
    assert json.loads(out)["zones"][1] == {
        "id": "shelf",
        "points": [[400, 300], [600, 300], [600, 450]],
        "queue": False,
    }
    # New lines keep the zones.
    assert run(capsys, "calibrate", "1", "--line", "300", "0", "300", "576", "--no-probe")[0] == 0
    with open_db(db_file) as db:
        assert [z.id for z in db.get_calibration(1).zones] == ["till", "shelf"]

    code, out, _ = run(capsys, "calibrate", "1", "--no-zones")
    assert code == 0 and "zones" not in out
    with open_db(db_file) as db:
        assert db.get_calibration(1).zones == ()


@pytest.mark.parametrize("db_target", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--zone", "till", "1,1", "2,2"], r"zones\.0\.points: .*at least 3"),
        (["--zone", "till", "1,1", "200,1", "x,5"], r"--zone 'till': vertex 'x,5' is not X,Y"),
        (["--zone", "till", "1,1", "200,1", "5"], r"vertex '5' is not X,Y"),
        (
            ["--zone", "till", "0,0", "900,0", "900,400"],
            r"zone 'till' vertex \(900, 0\) is outside",
        ),
        ([*TILL, "--queue", "door"], r"--queue 'door' is not a --zone \(zones: till\)"),
        (["--queue", "till"], r"--queue names a --zone"),
        (["--no-zones", *TILL], "either --no-zones or --zone"),
        (["--zone", "door", "1,1", "200,1", "200,200"], "ids must be unique together"),
    ],
)
def test_calibrate_refuses_bad_zones(db_file, capsys, argv, message):  # noqa: F811
    run(capsys, "store", "add", "Shop")
    run(capsys, "camera", "add", "1", "Door", str(VIDEO))
    run(capsys, "calibrate", "1", "--line", "345", "0", "345", "576", "--line-id", "door")
    code, _, err = run(capsys, "calibrate", "1", *argv)
    assert code == 2
    assert re.search(message, err), err


@pytest.mark.model
def test_count_a_video_with_a_zone_from_a_calibration_file(settings, tmp_path):
    calibration = tmp_path / "calibration.json"
    calibration.write_text(
        json.dumps({"lines": [{"x1": 345.6, "y1": 0, "x2": 345.6, "y2": 576}], "zones": [WALKWAY]})
    )
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / "ultralytics")}
    args = ["count", str(VIDEO), "--calibration", str(calibration), "--max-frames", "200"]
    done = subprocess.run(
        [sys.executable, "-m", "zvpanel", *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    walkway = json.loads(done.stdout)["zones"]["walkway"]
    assert walkway["queue"] is False
    assert walkway["enters"] == walkway["leaves"] >= 3  # the end of the video closes stays
    assert walkway["peak_inside"] >= 2
    assert 1.0 <= walkway["median_inside_s"] <= walkway["p90_inside_s"] <= 20.0
    text = subprocess.run(
        [sys.executable, "-m", "zvpanel", *args], capture_output=True, text=True, env=env
    )
    assert (
        f"zone walkway: {walkway['enters']} stays, at most {walkway['peak_inside']}" in text.stdout
    )
