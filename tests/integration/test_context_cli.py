"""``edge-runner login``, ``context ...`` and ``run`` as a user runs them: real processes,
a real control plane on loopback, the 0600 file secret store under a temporary home."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Stack
from tests.integration.test_cli import run_cli

pytestmark = pytest.mark.slow

TOKEN = "er_pat_ab12" + "c" * 40  # long enough for mask_secret to show its first 4 characters


def cli(
    *args: str, stdin: str = "", env: dict[str, str] | None = None, new_session: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run one CLI command to completion with ``stdin`` as its input."""
    return run_cli(*args, env=env, stdin=stdin, new_session=new_session)


def config_path(home: Path) -> Path:
    """The contexts file under the test's EDGE_RUNNER_HOME."""
    return home / "config" / "config.yaml"


def secret_path(home: Path, name: str) -> Path:
    """Where the file secret store keeps ``name``'s token."""
    return home / "data" / "secrets" / f"{name}.token"


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that is bound but not listening, so connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_login_with_a_good_token_saves_and_activates(stack: Stack, er_home: Path) -> None:
    """login --token-stdin verifies the token, stores it, writes the context and makes it active."""
    result = cli(
        "login", stack.api_base, "--context", "lab", "--user-id", "admin", "--token-stdin",
        stdin=stack.token + "\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert stack.token not in result.stdout + result.stderr
    assert stack.token[:11] + "****" in result.stdout
    assert secret_path(er_home, "lab").read_text() == stack.token
    assert cli("context", "current").stdout.strip() == "lab"
    shown = json.loads(cli("context", "show", "-o", "json").stdout)
    assert (shown["api_base"], shown["user_id"], shown["active"]) == (
        stack.api_base,
        "admin",
        True,
    )


def test_login_prompts_and_enter_takes_the_token_from_the_environment(
    stack: Stack, er_home: Path
) -> None:
    """Interactive login asks name and user id; an empty token answer takes EDGE_RUNNER_PAT."""
    env = {**os.environ, "EDGE_RUNNER_PAT": stack.token}
    result = cli("login", stack.api_base, stdin="\nadmin\n\n", env=env, new_session=True)
    assert result.returncode == 0, result.stderr
    assert "Context name [default]" in result.stderr
    assert secret_path(er_home, "default").read_text() == stack.token
    assert cli("context", "current").stdout.strip() == "default"


def test_login_with_a_rejected_token_saves_nothing(stack: Stack, er_home: Path) -> None:
    """A token the control plane answers 401 to is reported and neither file is written."""
    result = cli(
        "login", stack.api_base, "--user-id", "admin", "--token-stdin", stdin=TOKEN,
    )  # fmt: skip
    assert result.returncode == 2
    assert "rejected the token" in result.stderr
    assert "Nothing was saved" in result.stderr
    assert TOKEN not in result.stderr
    assert not config_path(er_home).exists()
    assert not secret_path(er_home, "default").exists()


def test_login_to_an_unreachable_control_plane_saves_nothing(
    closed_port: int, er_home: Path
) -> None:
    """An address where nothing listens is reported as unreachable and nothing is saved."""
    api_base = f"http://127.0.0.1:{closed_port}"
    result = cli("login", api_base, "--user-id", "admin", "--token-stdin", stdin=TOKEN)
    assert result.returncode == 2
    assert f"cannot reach the control plane at {api_base}" in result.stderr
    assert "Nothing was saved" in result.stderr
    assert not config_path(er_home).exists()
    assert not secret_path(er_home, "default").exists()


def test_context_create_use_list_current_show_delete(er_home: Path) -> None:
    """The context commands manage the file and the store, and print tokens only masked."""
    for name in ("dev", "lab"):
        created = cli(
            "context", "create", name, "--api-base", f"http://{name}.example:7070/",
            "--user-id", "alice", "--token-stdin", stdin=TOKEN,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
    assert cli("context", "current").stdout.strip() == "dev"  # the first one became active
    assert cli("context", "use", "lab").returncode == 0
    assert cli("context", "current").stdout.strip() == "lab"

    listed = cli("context", "list", "-o", "json")
    records = {r["name"]: r for r in json.loads(listed.stdout)}
    assert records["lab"]["active"] and not records["dev"]["active"]
    assert records["lab"]["api_base"] == "http://lab.example:7070"
    assert records["dev"]["token"] == "er_pat_ab12****"
    table = cli("context", "list").stdout.splitlines()
    assert table[0].split() == ["CURRENT", "NAME", "API", "BASE", "USER", "TOKEN"]
    assert table[1].split() == ["dev", "http://dev.example:7070", "alice", "er_pat_ab12****"]
    assert table[2].split() == ["*", "lab", "http://lab.example:7070", "alice", "er_pat_ab12****"]
    shown = cli("context", "show", "dev")
    assert "token: er_pat_ab12****" in shown.stdout
    for output in (listed, shown, cli("context", "list", "-o", "wide")):
        assert TOKEN not in output.stdout + output.stderr

    deleted = cli("context", "delete", "lab")
    assert deleted.returncode == 0, deleted.stderr
    assert not secret_path(er_home, "lab").exists()
    assert secret_path(er_home, "dev").exists()
    assert cli("context", "list", "-o", "name").stdout.split() == ["dev"]


def test_unknown_context_names_the_known_ones(er_home: Path) -> None:
    """use/show/delete of a missing context list the known ones and how to create it."""
    cli("context", "create", "dev", "--api-base", "http://dev:7070", "--user-id", "alice")
    for command in ("use", "show", "delete"):
        result = cli("context", command, "prod")
        assert result.returncode == 2
        assert result.stderr.strip() == (
            "edge-runner: error: No context named 'prod'. Known contexts: dev. "
            "Create one with `edge-runner context create prod`."
        )


def test_run_puts_the_context_in_the_environment_not_the_argv(er_home: Path) -> None:
    """run -- CMD sees the context's variables, never the token in its argv, and keeps its code."""
    cli(
        "context", "create", "lab", "--api-base", "http://lab:7070", "--user-id", "alice",
        "--token-stdin", stdin=TOKEN,
    )  # fmt: skip
    code = (
        "import hashlib, os, sys; print(os.environ['EDGE_RUNNER_API_BASE']);"
        "print(os.environ['EDGE_RUNNER_USER_ID'], os.environ['EDGE_RUNNER_CONTEXT']);"
        "print(hashlib.sha256(os.environ['EDGE_RUNNER_PAT'].encode()).hexdigest());"
        "print(repr(sys.argv)); sys.exit(3)"
    )
    result = cli("run", "--context", "lab", "--", sys.executable, "-c", code)
    assert result.returncode == 3, result.stderr
    api_base, ids, digest, argv = result.stdout.splitlines()
    assert (api_base, ids) == ("http://lab:7070", "alice lab")
    assert digest == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert TOKEN not in argv


def _editor(tmp_path: Path, content: str) -> dict[str, str]:
    """An environment whose EDITOR overwrites the file it is given with ``content``."""
    script = tmp_path / "editor.py"
    script.write_text(f"import sys\nopen(sys.argv[1], 'w').write({content!r})\n")
    env = {k: v for k, v in os.environ.items() if k != "VISUAL"}
    env["EDITOR"] = f"{sys.executable} {script}"
    return env


def test_edit_reports_broken_yaml_with_file_and_line(tmp_path: Path, er_home: Path) -> None:
    """An edit that leaves invalid YAML exits 2 naming the contexts file and the line."""
    broken = "current-context: lab\ncontexts:\n  lab:\n    api_base: http://x\n   user_id: b\n"
    result = cli("context", "edit", env=_editor(tmp_path, broken))
    assert result.returncode == 2
    assert f"{config_path(er_home)}, line 5: not valid YAML" in result.stderr
    assert "Traceback" not in result.stderr


def test_edit_accepts_a_valid_file(tmp_path: Path, er_home: Path) -> None:
    """A valid edit is checked and summarised; the new current context takes effect."""
    valid = "current-context: lab\ncontexts:\n  lab:\n    api_base: http://x\n    user_id: b\n"
    result = cli("context", "edit", env=_editor(tmp_path, valid))
    assert result.returncode == 0, result.stderr
    assert "1 context(s), active: lab" in result.stdout
    assert cli("context", "current").stdout.strip() == "lab"
