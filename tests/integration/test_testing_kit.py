"""edge_runner.testing as a model author uses it: the stack in a test, daemons as processes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edge_runner.errors import NotFound
from edge_runner.testing import (
    ECHO_MODEL,
    NotReady,
    Stack,
    daemon_env,
    spawn_ready,
    stop_process,
    write_model,
)


def test_a_model_folder_is_tested_through_the_real_stack(tmp_path: Path) -> None:
    """`with Stack(...)`: its own loop, control plane and runner; calls go over real sockets."""
    folder = write_model(
        tmp_path,
        "shout",
        "    @ModelClass.method\n"
        "    def predict(self, text: str) -> str:\n"
        "        return text.upper()\n",
    )
    with Stack(tmp_path / "control") as stack:
        shout = stack.start_runner(folder)
        echo = stack.start_runner()  # the kit's echo model by default
        assert echo.backend.specs()[0].model_id == "echo"
        with stack.client() as client:
            assert client.predict("shout", text="hi") == "HI"
            assert client.predict("echo", text="hi") == "hi"
            assert list(client.generate("echo", text="ab", n=2)) == ["ab", "ab"]
            with pytest.raises(NotFound):
                client.predict("nobody", text="hi")
        stack.stop_runner(shout)
        assert shout.task.done() and shout.task.exception() is None
    assert stack.loop.loop.is_closed()  # a stack that made its loop closes it


def test_spawn_ready_returns_the_ready_line_and_reports_an_early_exit(tmp_path: Path) -> None:
    """A daemon's ready line comes back as data; one that dies first raises NotReady."""
    env = daemon_env(tmp_path / "home")
    assert env["EDGE_RUNNER_HOME"] == str(tmp_path / "home")
    proc, ready = spawn_ready(
        ["control", "--port", "0", "--grpc-port", "0", "--data-dir", str(tmp_path / "c")], env
    )
    try:
        assert ready["api_base"].startswith("http://127.0.0.1:")
        runner, info = spawn_ready(
            ["runner", str(ECHO_MODEL)],
            {
                **env,
                "EDGE_RUNNER_API_BASE": ready["api_base"],
                "EDGE_RUNNER_PAT": Path(ready["admin_token_file"]).read_text().strip(),
            },
        )
        assert info["models"] == ["echo"]
        assert stop_process(runner) == 0
    finally:
        assert stop_process(proc) == 0
    with pytest.raises(NotReady, match="exited with code 2"):
        spawn_ready(["control", "--port", "99999"], env, stderr=subprocess.DEVNULL)
