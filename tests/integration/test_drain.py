"""Stopping a runner process with work in flight: drain first, lose nothing."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from edge_runner.backends.python_model import PythonModelBackend
from edge_runner.runner import Runner, RunnerSettings
from tests.conftest import MS, SLOW_MODEL, Stack, spawn_ready, stop_process, wait_for, write_model

pytestmark = pytest.mark.slow


def test_sigterm_finishes_in_flight_tasks_before_exit(tmp_path: Path) -> None:
    """SIGTERM to a runner process: every in-flight result is delivered, then it exits 0."""
    control, info = spawn_ready(["control", "--port", "0", "--grpc-port", "0"], dict(os.environ))
    token = Path(info["admin_token_file"]).read_text().strip()
    env = dict(os.environ, EDGE_RUNNER_API_BASE=info["api_base"], EDGE_RUNNER_PAT=token)
    started = tmp_path / "started"
    started.mkdir()
    folder = write_model(
        tmp_path,
        "slow",
        "    @ModelClass.method\n"
        "    def wait(self, seconds: float, marker: str) -> str:\n"
        "        open(marker, 'w').close()\n"
        "        time.sleep(seconds)\n"
        "        return 'done'\n",
    )
    runner, _ = spawn_ready(["runner", str(folder), "--pool-size", "4"], env)
    url = f"{info['api_base']}/v2/models/slow/wait"
    try:
        with (
            httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client,
            concurrent.futures.ThreadPoolExecutor(4) as pool,
        ):
            calls = [
                pool.submit(
                    client.post, url, json={"seconds": 600 * MS, "marker": str(started / str(i))}
                )
                for i in range(4)
            ]
            wait_for(lambda: len(list(started.iterdir())) == 4, "four tasks running in the model")
            runner.send_signal(signal.SIGTERM)
            answers = [call.result(30) for call in calls]
        assert [a.status_code for a in answers] == [200] * 4
        assert [a.json()["output"] for a in answers] == ["done"] * 4
        assert runner.wait(10_000 * MS) == 0
    finally:
        stop_process(runner)
        assert stop_process(control) == 0


def test_second_stop_cancels_in_flight_and_they_run_elsewhere(stack: Stack, tmp_path: Path) -> None:
    """Stop twice: the runner cancels its task and leaves; another runner answers the client."""
    folder = write_model(tmp_path, "slow", SLOW_MODEL)
    first = stack.start_runner(folder, pool_size=1, runner_id="first", grace_period=30)
    with (
        httpx.Client(headers=stack.headers, timeout=30) as client,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        call = pool.submit(
            client.post, f"{stack.api_base}/v2/models/slow/wait", json={"seconds": 1500 * MS}
        )
        wait_for(
            lambda: first.runner._executor is not None and first.runner._executor.busy == 1,
            "the task to run on the first runner",
        )
        stack.loop.call(first.runner.request_stop)  # drain: would wait for the task
        stack.start_runner(folder, pool_size=1, runner_id="second")
        stack.loop.call(first.runner.request_stop)  # cancel it
        first.task.result(10_000 * MS)
        answer = call.result(30)
    assert answer.status_code == 200 and answer.json()["output"] == "done"


def test_third_signal_exits_at_once(tmp_path: Path) -> None:
    """Three signals: a runner stuck in a task that ignores cancel exits now, code 130."""
    control, info = spawn_ready(["control", "--port", "0", "--grpc-port", "0"], dict(os.environ))
    token = Path(info["admin_token_file"]).read_text().strip()
    env = dict(os.environ, EDGE_RUNNER_API_BASE=info["api_base"], EDGE_RUNNER_PAT=token)
    started = tmp_path / "started"
    folder = write_model(
        tmp_path,
        "stuck",
        "    @ModelClass.method\n"
        "    def hang(self, marker: str) -> str:\n"
        "        open(marker, 'w').close()\n"
        "        threading.Event().wait()  # ignores cancel, forever\n"
        "        return 'never'\n",
    )
    runner, _ = spawn_ready(
        ["runner", str(folder), "--pool-size", "1"], env, stderr=subprocess.PIPE
    )
    assert runner.stderr is not None

    def signal_and_wait_for(words: str) -> None:
        # Signals that arrive together coalesce, as POSIX signals do: wait for each reaction.
        runner.send_signal(signal.SIGTERM)
        for line in runner.stderr:  # type: ignore[union-attr]
            if words in line.decode():
                return
        raise AssertionError(f"the runner exited before logging {words!r}")

    try:
        with (
            httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client,
            concurrent.futures.ThreadPoolExecutor(1) as pool,
        ):
            pool.submit(
                client.post,
                f"{info['api_base']}/v2/models/stuck/hang",
                json={"marker": str(started)},
            )
            wait_for(started.exists, "the task to hang in the model")
            signal_and_wait_for("signal again to cancel them")
            signal_and_wait_for("signal again to exit now")
            signal_and_wait_for("exiting now")
            assert runner.wait(10_000 * MS) == 130
            # The client's call now waits out its deadline; stopping the control plane ends it.
            assert stop_process(control) == 0
    finally:
        stop_process(runner)
        assert stop_process(control) == 0


def test_leaving_async_with_runner_drains_in_flight_tasks(stack: Stack, tmp_path: Path) -> None:
    """`async with Runner(...)` serves once registered; leaving the block drains: the task in
    flight finishes, its client gets the answer, and the runner is stopped."""
    settings = RunnerSettings(
        api_base=stack.api_base, token=stack.token, pool_size=1, grace_period=30
    )
    runner = Runner(settings, PythonModelBackend(write_model(tmp_path, "slow", SLOW_MODEL)), "cm")
    url = f"{stack.api_base}/v2/models/slow/wait"

    async def scenario() -> tuple[httpx.Response, str]:
        async with httpx.AsyncClient(headers=stack.headers, timeout=30) as client:
            async with runner:
                await runner.wait_ready()
                tasks = runner.hub.subscribe(frozenset({"task"}), watcher=False)
                call = asyncio.ensure_future(client.post(url, json={"seconds": 300 * MS}))
                assert (await tasks.queue.get()).data["event"] == "started"
            state = runner.tunnel_state()
            return await call, state

    answer, state = stack.loop.run(scenario(), timeout=30)
    assert answer.status_code == 200 and answer.json()["output"] == "done"
    assert state == "stopping" and not runner.connected and runner.busy == 0


def test_stopping_control_plane_answers_waiting_clients(stack: Stack, tmp_path: Path) -> None:
    """A control plane that stops answers its waiting requests 503 + Retry-After, not a reset."""
    running = stack.start_runner(write_model(tmp_path, "slow", SLOW_MODEL), pool_size=1)
    with (
        httpx.Client(headers=stack.headers, timeout=30) as client,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        call = pool.submit(
            client.post, f"{stack.api_base}/v2/models/slow/wait", json={"seconds": 1500 * MS}
        )
        executor = running.runner._executor
        wait_for(lambda: executor is not None and executor.busy == 1, "the task to run")
        stack.stop_control()
        answer = call.result(30)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "UNAVAILABLE"
    assert int(answer.headers["retry-after"]) > 0
