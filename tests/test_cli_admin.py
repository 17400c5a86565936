"""The admin commands of the ``zvpanel`` console script, on a real database in tmp_path."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from zvpanel.cli import main
from zvpanel.storage import Database, EventRow, utc_text

REPO = Path(__file__).resolve().parents[1]
VIDEO = REPO / "data" / "vtest.avi"  # 768x576


@pytest.fixture
def db_file(db_target, monkeypatch: pytest.MonkeyPatch) -> Path | str:
    """The commands' database, once per backend: ZVPANEL_DB_PATH (a SQLite file) or
    ZVPANEL_DATABASE_URL (a fresh database on the session's PostgreSQL server)."""
    for name in list(os.environ):
        if name.startswith("ZVPANEL_") and name != "ZVPANEL_MODEL":
            monkeypatch.delenv(name)
    if isinstance(db_target, Path):
        monkeypatch.setenv("ZVPANEL_DB_PATH", str(db_target))
    else:
        monkeypatch.setenv("ZVPANEL_DATABASE_URL", db_target)
    monkeypatch.setenv("ZVPANEL_DEMO", "0")
    return db_target


def run(capsys, *argv: str, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def open_db(target: Path | str) -> Database:
    return Database(target)


def test_user_commands(db_file, capsys, monkeypatch):
    code, out, _ = run(
        capsys,
        "user",
        "add",
        "alice",
        "--admin",
        "--password-stdin",
        stdin="alice-password\n",
        monkeypatch=monkeypatch,
    )
    assert code == 0 and "created admin 'alice'" in out
    code, out, _ = run(
        capsys,
        "user",
        "add",
        "bob",
        "--password-stdin",
        stdin="bob-password\n",
        monkeypatch=monkeypatch,
    )
    assert code == 0 and "created user 'bob'" in out
    with open_db(db_file) as db:
        assert db.authenticate("alice", "alice-password").is_admin
        assert not db.authenticate("bob", "bob-password").is_admin

    code, out, _ = run(capsys, "user", "list")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "USERNAME", "ADMIN", "DISABLED", "CREATED", "(UTC)"]
    assert lines[1].split()[1:3] == ["alice", "yes"] and lines[2].split()[1:3] == ["bob", "no"]

    code, out, _ = run(capsys, "user", "set-admin", "bob")
    assert code == 0 and "now an admin" in out
    code, out, _ = run(capsys, "user", "set-admin", "alice", "--off")
    assert code == 0 and "no longer an admin" in out
    code, _, err = run(capsys, "user", "set-admin", "bob", "--off")
    assert code == 2 and "'bob' is the only admin" in err

    code, _, err = run(
        capsys, "user", "add", "carol", "--password-stdin", stdin="short\n", monkeypatch=monkeypatch
    )
    assert code == 2 and "too short" in err
    code, _, err = run(
        capsys,
        "user",
        "add",
        "bob",
        "--password-stdin",
        stdin="another-pass\n",
        monkeypatch=monkeypatch,
    )
    assert code == 2 and "'bob' already exists" in err
    code, _, err = run(
        capsys, "user", "passwd", "nobody", "--password-stdin", stdin="x\n", monkeypatch=monkeypatch
    )
    assert code == 2 and "no user named 'nobody'" in err


def test_passwords_are_asked_twice_without_stdin(db_file, capsys, monkeypatch):
    answers = iter(["first-password", "first-password", "second-pass", "different"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert run(capsys, "user", "add", "dora")[0] == 0
    code, _, err = run(capsys, "user", "passwd", "dora")
    assert code == 2 and "differ" in err
    with open_db(db_file) as db:
        assert db.authenticate("dora", "first-password") is not None

    code, out, _ = run(
        capsys,
        "user",
        "passwd",
        "dora",
        "--password-stdin",
        stdin="third-password\n",
        monkeypatch=monkeypatch,
    )
    assert code == 0 and "changed" in out
    with open_db(db_file) as db:
        assert db.authenticate("dora", "third-password") is not None


def test_store_commands(db_file, capsys):
    code, out, _ = run(capsys, "store", "add", "Main street", "--timezone", "Europe/Paris")
    assert code == 0 and "created store 1 'Main street' (Europe/Paris)" in out
    assert run(capsys, "store", "add", "Airport")[0] == 0
    code, _, err = run(capsys, "store", "add", "Moon base", "--timezone", "Moon/Crater")
    assert code == 2 and "timezone 'Moon/Crater'" in err
    code, out, _ = run(capsys, "store", "list")
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["ID", "NAME", "TIMEZONE", "CAMERAS"]
    assert rows[1] == ["2", "Airport", "UTC", "0"] and rows[2] == [
        "1",
        "Main",
        "street",
        "Europe/Paris",
        "0",
    ]


def test_camera_commands_probe_the_source(db_file, capsys, tmp_path, monkeypatch):
    run(capsys, "store", "add", "Shop")
    code, out, _ = run(capsys, "camera", "add", "1", "Door", str(VIDEO))
    assert code == 0 and "768x576" in out and "created camera 1 'Door'" in out

    missing = tmp_path / "no-such-video.mp4"
    code, _, err = run(capsys, "camera", "add", "1", "Ghost", str(missing))
    assert code == 2 and "no-such-video.mp4" in err and "not added" in err
    code, _, err = run(capsys, "camera", "add", "9", "Door", str(VIDEO))
    assert code == 2 and "no store with id 9" in err

    # --no-probe adds it anyway; a relative file path is stored absolute.
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(
        capsys, "camera", "add", "1", "Later", "videos/later.mp4", "--no-probe", "--disabled"
    )
    assert code == 0 and "(disabled)" in out
    with open_db(db_file) as db:
        assert db.get_camera(2).source == str(tmp_path / "videos" / "later.mp4")
        assert not db.get_camera(2).enabled

    code, out, _ = run(capsys, "camera", "list")
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["ID", "STORE", "NAME", "STATE", "CALIBRATED", "SOURCE"]
    assert rows[1][:5] == ["1", "1", "Door", "enabled", "no"]
    assert rows[2][:5] == ["2", "1", "Later", "disabled", "no"]

    assert "enabled" in run(capsys, "camera", "enable", "2")[1]
    assert "disabled" in run(capsys, "camera", "disable", "1")[1]
    with open_db(db_file) as db:
        assert db.get_camera(2).enabled and not db.get_camera(1).enabled

    code, out, _ = run(capsys, "camera", "delete", "2")
    assert code == 0 and "deleted" in out and "kept" in out
    assert len(run(capsys, "camera", "list")[1].splitlines()) == 2
    rows = [line.split() for line in run(capsys, "camera", "list", "--all")[1].splitlines()]
    assert rows[2][:4] == ["2", "1", "Later", "deleted"]
    code, _, err = run(capsys, "camera", "enable", "2")
    assert code == 2 and "deleted" in err


def test_calibrate_checks_the_frame_and_round_trips(db_file, capsys):
    run(capsys, "store", "add", "Shop")
    run(capsys, "camera", "add", "1", "Door", str(VIDEO))

    code, out, _ = run(capsys, "calibrate", "1")
    assert code == 1 and "no calibration" in out
    code, _, err = run(capsys, "calibrate", "1", "--line", "900", "0", "900", "576")
    assert code == 2 and "outside the 768x576 frame" in err
    code, _, err = run(capsys, "calibrate", "1", "--line", "0", "0", "3", "3")
    assert code == 2 and "at least" in err
    code, _, err = run(
        capsys,
        "calibrate",
        "1",
        "--line",
        "10",
        "0",
        "10",
        "500",
        "--line-id",
        "a",
        "--line-id",
        "b",
    )
    assert code == 2 and "--line-id" in err
    code, _, err = run(capsys, "calibrate", "1", "--line", "10", "0", "10", "500", "--fps", "100")
    assert code == 2 and "detection_fps" in err

    code, out, _ = run(
        capsys,
        "calibrate", "1",
        "--line", "345.6", "0", "345.6", "576", "--line-id", "door",
        "--line", "0", "300", "768", "300", "--line-id", "hall",
        "--orientation", "leftToRight", "--orientation", "rightToLeft",
        "--roi", "0", "0", "768", "576", "--fps", "6",
    )  # fmt: skip
    assert code == 0 and "768x576" in out and "lines: door, hall" in out
    with open_db(db_file) as db:
        calibration = db.get_calibration(1)
    assert [(ln.id, ln.orientation) for ln in calibration.lines] == [
        ("door", "leftToRight"),
        ("hall", "rightToLeft"),
    ]
    assert calibration.roi == (0, 0, 768, 576) and calibration.detection_fps == 6

    # Options not given keep their values; the JSON view shows the result.
    assert run(capsys, "calibrate", "1", "--line", "100", "0", "100", "576", "--no-probe")[0] == 0
    code, out, _ = run(capsys, "calibrate", "1")
    shown = json.loads(out)
    assert code == 0 and shown["detection_fps"] == 6 and shown["roi"] == [0, 0, 768, 576]
    assert shown["lines"] == [
        {"id": "line-1", "x1": 100, "y1": 0, "x2": 100, "y2": 576, "orientation": "leftToRight"}
    ]
    code, _, err = run(capsys, "calibrate", "77", "--line", "1", "0", "1", "500")
    assert code == 2 and "no camera with id 77" in err


def test_init_creates_and_bootstraps(db_file, capsys, monkeypatch):
    monkeypatch.setenv("ZVPANEL_DEV_MODE", "1")
    monkeypatch.setenv("ZVPANEL_DEMO", "1")
    monkeypatch.setenv("ZVPANEL_SAMPLE_VIDEO", str(VIDEO))
    code, out, _ = run(capsys, "init")
    assert code == 0 and str(db_file) in out
    assert "created admin user 'admin'" in out and "created demo store 1 with demo camera 1" in out
    code, out, _ = run(capsys, "init")
    assert code == 0 and "created" not in out
    with open_db(db_file) as db:
        assert db.get_calibration(1) is not None and db.authenticate("admin", "admin")


def test_retention_run_rolls_up_old_events(db_file, capsys, monkeypatch):
    now = datetime.now(timezone.utc)
    with open_db(db_file) as db:
        store = db.create_store("Shop", "UTC")
        camera = db.create_camera(store.id, "Door", "0")
        db.insert_events(
            EventRow(store.id, camera.id, "door", i, "entry", utc_text(when), i, 0.9)
            for i, when in enumerate((now - timedelta(days=40), now - timedelta(hours=2)))
        )
    code, _, err = run(capsys, "retention", "run")
    assert code == 2 and "ZVPANEL_RETENTION_DAYS" in err
    monkeypatch.setenv("ZVPANEL_RETENTION_DAYS", "30")
    code, out, _ = run(capsys, "retention", "run")
    assert code == 0 and "rolled 1 raw event(s)" in out
    with open_db(db_file) as db:
        assert len(db.events()) == 1 and db.count_events() == {"entry": 2, "exit": 0}
    code, _, err = run(capsys, "retention", "run", "--days", "0")
    assert code != 0 and "retention days 0" in err


def test_console_script_runs_in_a_subprocess(tmp_path):
    script = Path(sys.executable).parent / "zvpanel"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZVPANEL_")}
    env.update(ZVPANEL_DB_PATH=str(tmp_path / "sub.db"), ZVPANEL_DEMO="0")
    added = subprocess.run(
        [str(script), "store", "add", "Kiosk", "--timezone", "Asia/Tokyo"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = subprocess.run(
        [str(script), "store", "list"], env=env, capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0 and "Kiosk" in listed.stdout and "Asia/Tokyo" in listed.stdout
    bad = subprocess.run(
        [str(script), "camera", "enable", "5"], env=env, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and "zvpanel: error: no camera with id 5" in bad.stderr


def test_calibrate_warns_about_a_badly_placed_line(db_file, capsys):
    run(capsys, "store", "add", "Shop")
    run(capsys, "camera", "add", "1", "Door", str(VIDEO))
    # Along the bottom edge of the frame: saved, with a warning that names the problem.
    code, out, _ = run(capsys, "calibrate", "1", "--line", "10", "570", "700", "570")
    assert code == 0 and "warning [near_edge]" in out


@pytest.mark.model
def test_calibrate_check_runs_the_model_on_the_footage(db_file, capsys, model_path, monkeypatch):
    monkeypatch.setenv("ZVPANEL_MODEL", model_path)
    run(capsys, "store", "add", "Shop")
    run(capsys, "camera", "add", "1", "Door", str(VIDEO))
    # A short line in the top-left corner, where nobody walks.
    code, out, _ = run(capsys, "calibrate", "1", "--line", "20", "20", "120", "20", "--check")
    assert code == 0 and "warning [few_tracks]" in out
