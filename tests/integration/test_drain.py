"""Stopping a runner process with work in flight: drain first, lose nothing."""

from __future__ import annotations

import concurrent.futures
import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.conftest import MS, spawn_ready, stop_process, wait_for, write_model

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
