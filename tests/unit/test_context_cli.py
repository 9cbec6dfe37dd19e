"""Context commands run in-process through ``main()``: formats, refusals and their messages."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from edge_runner.cli.login import check_api_base
from edge_runner.cli.main import main
from edge_runner.errors import ConfigError

TOKEN = "er_pat_ab12" + "d" * 40


def _create(name: str, monkeypatch: pytest.MonkeyPatch, token: str | None = TOKEN) -> None:
    argv = ["context", "create", name, "--api-base", f"http://{name}:7070", "--user-id", "u"]
    if token is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(token + "\n"))
        argv.append("--token-stdin")
    assert main(argv) == 0


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:7070/", "http://127.0.0.1:7070"),
        (" https://lab:7070 ", "https://lab:7070"),
    ],
)
def test_api_base_is_normalised(url: str, expected: str) -> None:
    """Trailing slashes and spaces go; the URL is otherwise kept."""
    assert check_api_base(url) == expected


@pytest.mark.parametrize("url", ["127.0.0.1:7070", "ftp://lab", "http://", "lab"])
def test_api_base_must_be_an_http_url(url: str) -> None:
    """Anything but an http(s) URL with a host is refused with an example of a good one."""
    with pytest.raises(ConfigError, match="http://127.0.0.1:7070"):
        check_api_base(url)


def test_list_formats_mask_tokens(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """yaml, json and name outputs list every context; a missing token reads as null or -."""
    _create("dev", monkeypatch)
    _create("lab", monkeypatch, token=None)
    capsys.readouterr()
    assert main(["context", "list", "-o", "yaml"]) == 0
    as_yaml = yaml.safe_load(capsys.readouterr().out)
    assert [(r["name"], r["active"], r["token"]) for r in as_yaml] == [
        ("dev", True, "er_pat_ab12****"),
        ("lab", False, None),
    ]
    assert main(["context", "list", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == as_yaml
    assert main(["context", "list", "-o", "name"]) == 0
    assert capsys.readouterr().out.split() == ["dev", "lab"]
    assert main(["context", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2].split() == ["lab", "http://lab:7070", "u", "-"]
    assert TOKEN not in out


def test_environment_context_is_the_one_marked_active(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """EDGE_RUNNER_CONTEXT beats current-context for list's * and for `current`."""
    _create("dev", monkeypatch)
    _create("lab", monkeypatch)
    monkeypatch.setenv("EDGE_RUNNER_CONTEXT", "lab")
    capsys.readouterr()
    assert main(["context", "current"]) == 0
    assert capsys.readouterr().out.strip() == "lab"
    assert main(["context", "list", "-o", "json"]) == 0
    active = [r["name"] for r in json.loads(capsys.readouterr().out) if r["active"]]
    assert active == ["lab"]


def test_create_refuses_an_existing_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second create with the same name fails and says how to replace the context."""
    _create("dev", monkeypatch)
    assert main(["context", "create", "dev", "--api-base", "http://x", "--user-id", "u"]) == 2
    assert "context delete dev" in capsys.readouterr().err


def test_delete_of_the_active_context_leaves_none_active(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], er_home: Path
) -> None:
    """Deleting the active context clears current-context and says how to pick another."""
    _create("dev", monkeypatch)
    _create("lab", monkeypatch)
    assert main(["context", "delete", "dev"]) == 0
    assert "context use NAME" in capsys.readouterr().out
    assert main(["context", "current"]) == 2
    assert "Known contexts: lab" in capsys.readouterr().err


def test_login_without_answers_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], er_home: Path
) -> None:
    """login --token-stdin without API_BASE or --user-id names both and saves nothing."""
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN))
    assert main(["login", "--token-stdin"]) == 2
    err = capsys.readouterr().err
    assert "API_BASE (or $EDGE_RUNNER_API_BASE) and --user-id" in err
    assert not (er_home / "config").exists()


def test_run_without_a_command_shows_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    """`run` alone and `run --` alone explain the form of the command."""
    for argv in (["run"], ["run", "--"]):
        assert main(argv) == 2
        assert "edge-runner run [--context NAME] -- CMD" in capsys.readouterr().err
