"""Tests for edge_runner.config.paths: env overrides, platformdirs defaults, private dirs."""

from __future__ import annotations

import stat
from pathlib import Path

import platformdirs
import pytest

from edge_runner.config.paths import (
    config_dir,
    config_file,
    data_dir,
    ensure_private_dir,
    runtime_dir,
)
from edge_runner.errors import ConfigError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test without the developer's own overrides."""
    monkeypatch.delenv("EDGE_RUNNER_HOME", raising=False)
    monkeypatch.delenv("EDGE_RUNNER_CONFIG", raising=False)


def test_home_override_puts_everything_under_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """EDGE_RUNNER_HOME moves config, data and runtime dirs under it."""
    monkeypatch.setenv("EDGE_RUNNER_HOME", str(tmp_path))
    assert config_dir() == tmp_path / "config"
    assert data_dir() == tmp_path / "data"
    assert runtime_dir() == tmp_path / "run"
    assert config_file() == tmp_path / "config" / "config.yaml"


def test_paths_are_read_at_call_time_and_create_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each call reads the environment again and leaves the disk untouched."""
    monkeypatch.setenv("EDGE_RUNNER_HOME", str(tmp_path / "a"))
    assert data_dir() == tmp_path / "a" / "data"
    monkeypatch.setenv("EDGE_RUNNER_HOME", str(tmp_path / "b"))
    assert data_dir() == tmp_path / "b" / "data"
    for fn in (config_dir, data_dir, runtime_dir, config_file):
        fn()
    assert list(tmp_path.iterdir()) == []


def test_config_env_overrides_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """EDGE_RUNNER_CONFIG names the contexts file directly."""
    monkeypatch.setenv("EDGE_RUNNER_HOME", str(tmp_path))
    monkeypatch.setenv("EDGE_RUNNER_CONFIG", str(tmp_path / "elsewhere.yaml"))
    assert config_file() == tmp_path / "elsewhere.yaml"


def test_defaults_come_from_platformdirs() -> None:
    """Without overrides the platformdirs user directories for edge-runner are used."""
    assert config_dir() == Path(platformdirs.user_config_dir("edge-runner", appauthor=False))
    assert data_dir() == Path(platformdirs.user_data_dir("edge-runner", appauthor=False))
    assert config_file() == config_dir() / "config.yaml"


def test_runtime_dir_falls_back_under_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A runtime dir that cannot be created (its ancestor is a file) falls back to data/run."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setattr(
        platformdirs, "user_runtime_dir", lambda *a, **k: str(blocker / "edge-runner")
    )
    assert runtime_dir() == data_dir() / "run"


def test_runtime_dir_uses_platform_dir_when_creatable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A runtime dir whose parent exists and is writable is used as is."""
    target = tmp_path / "run-user" / "edge-runner"
    monkeypatch.setattr(platformdirs, "user_runtime_dir", lambda *a, **k: str(target))
    assert runtime_dir() == target
    assert not target.exists()


def test_ensure_private_dir_creates_0700(tmp_path: Path) -> None:
    """A new private dir (and missing parents) is created with mode 0700."""
    target = tmp_path / "x" / "secrets"
    assert ensure_private_dir(target) == target
    assert _mode(target) == 0o700


def test_ensure_private_dir_tightens_loose_dir(tmp_path: Path) -> None:
    """An existing dir open to group/others is chmod-ed to 0700."""
    target = tmp_path / "loose"
    target.mkdir()
    target.chmod(0o755)
    ensure_private_dir(target)
    assert _mode(target) == 0o700


def test_ensure_private_dir_reports_a_file_in_the_way(tmp_path: Path) -> None:
    """A file where the dir should be gives a ConfigError naming the path."""
    target = tmp_path / "taken"
    target.write_text("")
    with pytest.raises(ConfigError, match="taken"):
        ensure_private_dir(target)
