"""config.yaml `checkpoints` are found on this machine, or the error says where to put them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_runner.compat.clarifai.builder import ModelBuilder
from edge_runner.errors import ModelFolderError
from edge_runner.models.checkpoints import CHECKPOINTS_ENV, find_checkpoints
from edge_runner.models.config_keys import Checkpoints

REPO = Checkpoints("huggingface", "org/tiny")


@pytest.fixture(autouse=True)
def _no_caches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No checkpoints directory and an empty Hugging Face cache unless a test sets them."""
    monkeypatch.delenv(CHECKPOINTS_ENV, raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


def files(root: Path, *names: str) -> Path:
    """Create ``names`` (empty files) under ``root``."""
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x")
    return root


def test_the_checkpoints_dir_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$EDGE_RUNNER_CHECKPOINTS/<repo_id> is looked at first."""
    files(tmp_path / "ck" / "org" / "tiny", "config.json")
    files(tmp_path / "m" / "1" / "checkpoints", "config.json")
    monkeypatch.setenv(CHECKPOINTS_ENV, str(tmp_path / "ck"))
    assert find_checkpoints(tmp_path / "m", REPO) == tmp_path / "ck" / "org" / "tiny"


def test_the_folders_own_checkpoints(tmp_path: Path) -> None:
    """<folder>/1/checkpoints, where Clarifai's runtime download puts them, is used."""
    place = files(tmp_path / "m" / "1" / "checkpoints", "model.safetensors")
    assert find_checkpoints(tmp_path / "m", REPO) == place


def test_the_hugging_face_cache_snapshot(tmp_path: Path) -> None:
    """The snapshot refs/main names in the Hugging Face cache is found."""
    repo = tmp_path / "hf" / "hub" / "models--org--tiny"
    files(repo / "snapshots" / "abc123", "config.json")
    files(repo / "snapshots" / "old000", "config.json")
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123\n")
    assert find_checkpoints(tmp_path / "m", REPO) == repo / "snapshots" / "abc123"


def test_missing_says_where_looked_what_lacked_and_where_to_put_them(tmp_path: Path) -> None:
    """Offline and absent: every place tried, the files wanted, and the fix."""
    (tmp_path / "m" / "1" / "checkpoints").mkdir(parents=True)
    files(tmp_path / "m" / "1" / "checkpoints", "config.json")
    with pytest.raises(ModelFolderError) as info:
        find_checkpoints(tmp_path / "m", REPO, {"allowed_file_patterns": ["*.safetensors"]})
    message = str(info.value)
    assert "the checkpoints of org/tiny" in message
    assert f"{tmp_path / 'm' / '1' / 'checkpoints'} (no file matching *.safetensors)" in message
    assert "models--org--tiny/snapshots (no such folder)" in message
    assert "huggingface-cli download org/tiny --local-dir checkpoints" in message
    assert f"{CHECKPOINTS_ENV}=DIR where DIR/org/tiny/ holds them" in message


def test_model_builder_download_checkpoints_finds_them(tmp_path: Path) -> None:
    """Clarifai's ModelBuilder(...).download_checkpoints(stage='runtime') returns the folder."""
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.yaml").write_text(
        "model:\n  id: m\ncheckpoints:\n  type: huggingface\n  repo_id: org/tiny\n"
    )
    place = files(folder / "1" / "checkpoints", "vocab.json")
    builder = ModelBuilder(folder, download_validation_only=True)
    assert builder.download_checkpoints(stage="runtime") == str(place)
    assert builder.config["checkpoints"]["repo_id"] == "org/tiny"


def test_checkpoints_option_sets_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`runner --checkpoints DIR` exports DIR for the model (and `up`'s runner child)."""
    from edge_runner.cli.daemon_args import export_checkpoints
    from edge_runner.cli.main import build_parser
    from edge_runner.errors import ConfigError

    monkeypatch.setenv(CHECKPOINTS_ENV, "unset")  # restored after the test
    (tmp_path / "ck").mkdir()
    for command in (["runner", "."], ["up", "."]):
        args = build_parser().parse_args([*command, "--checkpoints", str(tmp_path / "ck")])
        export_checkpoints(args)
        assert Path(os.environ[CHECKPOINTS_ENV]) == tmp_path / "ck"
    missing = build_parser().parse_args(["runner", ".", "--checkpoints", str(tmp_path / "no")])
    with pytest.raises(ConfigError, match="--checkpoints .* is not a folder"):
        export_checkpoints(missing)
