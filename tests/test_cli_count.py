"""End to end: ``zvpanel count`` and ``zvpanel eval`` as subprocesses on vtest.avi (first 400
frames) with the shared model and ground truth, at the default detection rate."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from zvpanel.calibration import CountingLine
from zvpanel.evaluation import read_mot_gt, true_crossings

FRAMES = 400
#: Lines across the walkways of vtest.avi that ground-truth people cross several times each
#: way (true entries/exits in the first 400 frames in the comments).
LINES = {
    "line-1": (345.6, 0.0, 345.6, 576.0),  # vertical: 6 / 8
    "line-2": (450.0, 290.0, 750.0, 290.0),  # horizontal, across the slanting path: 5 / 5
    "line-3": (450.0, 150.0, 650.0, 450.0),  # diagonal: 8 / 10
}
TOLERANCE = 0.10  # each direction of each line within 10% of the truth
TIMEOUT_S = 300


def zvpanel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zvpanel", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT_S,
    )


@pytest.fixture
def env(settings, tmp_path: Path) -> dict[str, str]:
    """The test's settings (``ZVPANEL_*`` set by the settings fixture) for a child process."""
    return {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / "ultralytics")}


def line_args() -> list[str]:
    args: list[str] = []
    for x1, y1, x2, y2 in LINES.values():
        args += ["--line", str(x1), str(y1), str(x2), str(y2)]
    return args


def within(counted: int, true: int) -> bool:
    return abs(counted - true) <= TOLERANCE * true


@pytest.mark.model
def test_count_prints_json_events_csv_and_annotated_video(
    env, video_path: Path, gt_path: Path, model_path: str, tmp_path: Path
):
    events_csv, video_out = tmp_path / "events.csv", tmp_path / "annotated.mp4"
    result = zvpanel(
        "count",
        str(video_path),
        *line_args(),
        "--model",
        model_path,
        "--max-frames",
        str(FRAMES),
        "--json",
        "--events",
        str(events_csv),
        "--annotate",
        str(video_out),
        env=env,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # one JSON object, nothing else on stdout
    assert data["frames"] == FRAMES
    assert data["processed_frames"] == FRAMES // 2  # 5 of the file's 10 frames per second
    assert data["detection_fps"] == 5.0
    assert data["seconds"] > 0 and data["fps"] > 0
    assert set(data["lines"]) == set(LINES)
    assert data["entries"] == sum(line["entries"] for line in data["lines"].values())
    assert data["exits"] == sum(line["exits"] for line in data["lines"].values())
    events = data["events"]
    assert len(events) == data["entries"] + data["exits"]
    for e in events:
        assert 0 <= e["frame"] < FRAMES and e["frame"] % 2 == 0  # decoded index, processed
        assert e["type"] in ("entry", "exit") and e["line"] in LINES
        assert isinstance(e["track_id"], int) and e["track_id"] >= 1
        assert 0 < e["confidence"] <= 1

    gt = read_mot_gt(gt_path)
    for line_id, (x1, y1, x2, y2) in LINES.items():
        truth = true_crossings(gt, CountingLine(id=line_id, x1=x1, y1=y1, x2=x2, y2=y2))
        true_entries = sum(e.direction == "entry" for e in truth)
        true_exits = len(truth) - true_entries
        counted = data["lines"][line_id]
        assert within(counted["entries"], true_entries), (line_id, counted, true_entries)
        assert within(counted["exits"], true_exits), (line_id, counted, true_exits)

    with events_csv.open() as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["frame"]), r["type"], r["line"]) for r in rows] == [
        (e["frame"], e["type"], e["line"]) for e in events
    ]
    capture = cv2.VideoCapture(str(video_out))
    try:
        assert capture.isOpened()
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES // 2
        ok, image = capture.read()
        assert ok and image.shape == (576, 768, 3)
    finally:
        capture.release()


@pytest.mark.model
def test_eval_reports_every_line_and_direction_within_ten_percent(
    env, video_path: Path, gt_path: Path, model_path: str, tmp_path: Path
):
    html = tmp_path / "report.html"
    result = zvpanel(
        "eval",
        str(video_path),
        "--gt",
        str(gt_path),
        *line_args(),
        "--model",
        model_path,
        "--json",
        "--html",
        str(html),
        env=env,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    page = html.read_text()
    assert "<html" in page.lower() and "line-3" in page
    assert data["frames"] == FRAMES  # stops where the ground truth ends
    report = data["evaluation"]
    assert report["true_entries"] == 6 + 5 + 8 and report["true_exits"] == 8 + 5 + 10
    for line_id in LINES:
        for direction in ("entry", "exit"):
            score = report["lines"][line_id][direction]
            assert score["true"] > 0
            assert within(score["counted"], score["true"]), (line_id, direction, score)
            assert score["error"] == score["counted"] - score["true"]
    # Events match true crossings one to one: errors cannot cancel out.
    assert report["precision"] >= 0.9 and report["recall"] >= 0.9
    assert report["max_relative_error"] <= TOLERANCE


def test_cli_errors_name_the_problem(env, video_path: Path, tmp_path: Path):
    missing = tmp_path / "missing_model"
    result = zvpanel(
        "count", str(video_path), "--line", "10", "0", "10", "500", "--model", str(missing), env=env
    )
    assert result.returncode == 2
    assert str(missing) in result.stderr and "ZVPANEL_MODEL" in result.stderr

    result = zvpanel("count", str(video_path), "--line", "10", "0", "10", "900", env=env)
    assert result.returncode == 2 and "outside the 768x576 frame" in result.stderr

    result = zvpanel("count", str(video_path), env=env)
    assert result.returncode == 2 and "--line" in result.stderr


def _run_on_terminal(args: list[str], env: dict[str, str]) -> tuple[str, str]:
    """Run ``zvpanel`` with stdout on a pseudo-terminal; return (stdout, stderr)."""
    import pty

    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "zvpanel", *args],
            stdout=slave,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        stderr = process.stderr.read()
        assert process.wait(timeout=TIMEOUT_S) == 0, stderr
    finally:
        os.close(master)
    return out.decode(errors="replace"), stderr


@pytest.mark.model
@pytest.mark.parametrize("command", ["count", "eval"])
def test_progress_bar_on_a_terminal_only(command, env, video_path: Path, gt_path: Path):
    args = [command, str(video_path), *line_args(), "--max-frames", "20"]
    if command == "eval":
        args += ["--gt", str(gt_path)]
    stdout, stderr = _run_on_terminal(args, env)
    assert "20/20" in stderr and "frame/s" in stderr and "entries=" in stderr, stderr
    assert "20 frames" in stdout
    # Output not to a terminal: no bar, the same report.
    piped = zvpanel(*args, env=env)
    assert piped.returncode == 0, piped.stderr
    assert "frame/s" not in piped.stderr and "20 frames" in piped.stdout
    if command == "count":  # --json on a terminal: no bar either
        stdout, stderr = _run_on_terminal([*args, "--json"], env)
        assert "frame/s" not in stderr
        assert json.loads(stdout)["frames"] == 20
