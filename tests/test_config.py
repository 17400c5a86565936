"""Settings: defaults that run, env vars that override, errors that name the setting."""

from __future__ import annotations

import pytest

from zvpanel.config import load_settings
from zvpanel.errors import ConfigError


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    import os

    for name in list(os.environ):
        if name.startswith("ZVPANEL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_defaults(clean_env):
    s = load_settings()
    assert s.db_path.as_posix() == "data/zvpanel.db"
    assert s.model == "yolov8n.pt"
    assert s.person_classes == ["person"]
    assert 0 < s.confidence < 1
    assert s.dev_mode is False


def test_env_overrides(clean_env, tmp_path):
    clean_env.setenv("ZVPANEL_DB_PATH", str(tmp_path / "x.db"))
    clean_env.setenv("ZVPANEL_PERSON_CLASSES", "person, bicycle")
    clean_env.setenv("ZVPANEL_CONFIDENCE", "0.4")
    clean_env.setenv("ZVPANEL_IMGSZ", "480")
    s = load_settings()
    assert s.db_file == tmp_path / "x.db"
    assert s.person_classes == ["person", "bicycle"]
    assert s.confidence == 0.4 and s.imgsz == 480


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("ZVPANEL_CONFIDENCE", "1.5", "ZVPANEL_CONFIDENCE"),
        ("ZVPANEL_CONFIDENCE", "abc", "ZVPANEL_CONFIDENCE"),
        ("ZVPANEL_IMGSZ", "500", "multiple of 32"),
        ("ZVPANEL_TRACKER", "sort", "ZVPANEL_TRACKER"),
        ("ZVPANEL_JWT_SECRET", "short", "32 characters"),
        ("ZVPANEL_PERSON_CLASSES", " , ", "ZVPANEL_PERSON_CLASSES"),
        ("ZVPANEL_NO_SUCH_THING", "1", None),  # unknown env vars are ignored, not fatal
    ],
)
def test_bad_settings_name_the_variable(clean_env, name, value, fragment):
    clean_env.setenv(name, value)
    if fragment is None:
        load_settings()
        return
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert fragment in str(info.value)


def test_secret_required_outside_dev_mode(clean_env):
    with pytest.raises(ConfigError, match="ZVPANEL_JWT_SECRET"):
        load_settings().secret()


def test_dev_mode_generates_and_keeps_a_secret(clean_env, tmp_path):
    clean_env.setenv("ZVPANEL_DEV_MODE", "1")
    clean_env.setenv("ZVPANEL_DB_PATH", str(tmp_path / "db" / "z.db"))
    first = load_settings().secret()
    assert len(first) >= 32
    assert load_settings().secret() == first  # survives a restart


def test_configured_secret_is_used(clean_env):
    clean_env.setenv("ZVPANEL_JWT_SECRET", "s" * 40)
    assert load_settings().secret() == "s" * 40


def test_admin_needs_both_name_and_password(clean_env):
    clean_env.setenv("ZVPANEL_ADMIN_USERNAME", "boss")
    with pytest.raises(ConfigError, match="ADMIN_PASSWORD"):
        load_settings()


def test_toml_file(clean_env, tmp_path):
    path = tmp_path / "zv.toml"
    path.write_text('confidence = 0.5\nperson_classes = ["person"]\n')
    clean_env.setenv("ZVPANEL_CONFIG_FILE", str(path))
    assert load_settings().confidence == 0.5
    clean_env.setenv("ZVPANEL_CONFIDENCE", "0.6")  # the environment wins over the file
    assert load_settings().confidence == 0.6


def test_missing_config_file(clean_env, tmp_path):
    clean_env.setenv("ZVPANEL_CONFIG_FILE", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="nope.toml"):
        load_settings()


def test_sample_video_falls_back_to_the_shipped_copy(clean_env, tmp_path, repo_root):
    # Started from another folder: the demo still finds the project's data/vtest.avi.
    assert load_settings().sample_video_file == repo_root / "data" / "vtest.avi"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "vtest.avi").write_bytes(b"local copy")
    assert load_settings().sample_video_file == tmp_path / "data" / "vtest.avi"
