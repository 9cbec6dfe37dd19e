"""One control plane per data dir: a second one is refused naming the first, the lock goes
away with its holder (even ``kill -9``), and ``up`` joins a running one instead of starting
another on the same registry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from edge_runner.config.contexts import ContextsFile
from edge_runner.control import ControlConfig, build_control
from edge_runner.control.datadir import DataDirBusy, running_control_plane
from tests.conftest import (
    HELLO,
    MS,
    LoopThread,
    Stack,
    spawn_ready,
    stop_process,
    wait_for,
    write_model,
)
from tests.integration.test_cli import CLI, UpProcess, run_cli

pytestmark = pytest.mark.slow


def _control(data_dir: Path) -> list[str]:
    return ["control", "--port", "0", "--grpc-port", "0", "--data-dir", str(data_dir)]


def test_a_second_control_plane_in_process_is_refused_until_the_first_closes(
    stack: Stack, loop_thread: LoopThread
) -> None:
    """A second ControlPlane on a held data dir raises DataDirBusy naming pid and address."""
    second = build_control(ControlConfig(port=0, grpc_port=0, data_dir=stack.data_dir))
    with pytest.raises(DataDirBusy) as busy:
        loop_thread.run(second.__aenter__())
    message = str(busy.value)
    assert f"pid {os.getpid()}" in message and stack.api_base in message
    assert "--data-dir" in message and "EDGE_RUNNER_HOME" in message
    holder = running_control_plane(stack.data_dir)
    assert holder is not None and holder["api_base"] == stack.api_base
    stack.stop_control()
    assert running_control_plane(stack.data_dir) is None
    loop_thread.run(second.__aenter__())
    loop_thread.run(second.close())


def test_second_control_command_exits_2_naming_the_first(tmp_path: Path) -> None:
    """`edge-runner control` on a busy data dir: one line naming the pid and the way out."""
    data_dir = tmp_path / "cp"
    first, ready = spawn_ready(_control(data_dir), dict(os.environ))
    try:
        second = run_cli(*_control(data_dir))
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert f"pid {first.pid}" in lines[0] and ready["api_base"] in lines[0]
        assert "--data-dir" in lines[0]
        # The first one never noticed: it still answers.
        token = (data_dir / "admin-token").read_text().strip()
        info = httpx.get(
            f"{ready['api_base']}/v2/info", headers={"Authorization": f"Bearer {token}"}
        )
        assert info.status_code == 200
    finally:
        assert stop_process(first) == 0


def test_the_lock_dies_with_a_killed_holder(tmp_path: Path) -> None:
    """After `kill -9` of the holder, a new control plane starts on the same data dir at once."""
    data_dir = tmp_path / "cp"
    first, _ = spawn_ready(_control(data_dir), dict(os.environ))
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert running_control_plane(data_dir) is None
    second, ready = spawn_ready(_control(data_dir), dict(os.environ))
    try:
        holder = json.loads((data_dir / "control.json").read_text())
        assert holder["pid"] == second.pid and holder["api_base"] == ready["api_base"]
    finally:
        assert stop_process(second) == 0
    assert not (data_dir / "control.json").exists()


def test_up_joins_a_running_control_plane_instead_of_starting_another(
    tmp_path: Path, er_home: Path
) -> None:
    """A second `up` adds its runner to the running control plane; `local` keeps pointing at
    the live one after the second stops."""
    first = UpProcess(str(HELLO))
    try:
        other = write_model(
            tmp_path,
            "echo",
            "    @ModelClass.method\n"
            "    def predict(self, text: str) -> str:\n"
            "        return text\n",
        )
        second = subprocess.Popen(
            [*CLI, "up", str(other), "--port", "0", "--grpc-port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert second.stderr is not None and second.stdout is not None
            note = second.stderr.readline()
            assert "already running" in note and first.api_base in note, note
            banner = []
            for line in second.stdout:
                banner.append(line)
                if "Ctrl-C" in line:
                    break
            assert first.api_base in "".join(banner)
            predict = run_cli("predict", "echo", "--text", "joined")
            assert predict.stdout == "joined\n", predict.stderr
            runners = json.loads(run_cli("runners", "-o", "json").stdout)
            assert sorted(r["models"][0] for r in runners if r["status"] == "connected") == [
                "echo",
                "hello",
            ]
        finally:
            second.send_signal(signal.SIGINT)
            code = second.wait(10_000 * MS)
            for pipe in (second.stdout, second.stderr):
                pipe.close()  # type: ignore[union-attr]
        assert code == 0
        assert ContextsFile.load().get("local").api_base == first.api_base
        wait_for(
            lambda: run_cli("predict", "hello", "--text", "still").stdout == "Hello, still!\n",
            "the first `up` to keep serving",
        )
    finally:
        first.stop()
        first.close()
