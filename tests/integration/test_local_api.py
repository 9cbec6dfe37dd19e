"""The runner's local API (snapshot, events, /ready, /metrics, logs) and `status`/`logs`, with a
real runner, a real control plane and real sockets; GPUs from recorded NVML answers."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_runner.client import Client
from edge_runner.config.paths import runner_file
from edge_runner.errors import ClientError
from edge_runner.local_client import LocalClient, NoLocalRunner, local_runners
from edge_runner.runner.events import LogBuffer
from edge_runner.runner.local_api import LocalApi
from edge_runner.telemetry import GpuReader, Sampler
from tests.conftest import (
    MS,
    ROOT,
    SLOW_MODEL,
    RunningRunner,
    Stack,
    spawn_ready,
    stop_process,
    wait_for,
    write_model,
)
from tests.fakes.nvml import FakeNvml

CLI = [sys.executable, "-m", "edge_runner"]


@pytest.fixture
def served(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[RunningRunner, LocalApi]]:
    """A runner of a slow model with a (fake-NVML) sampler, and its local API."""
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml.load("one_gpu"))  # type: ignore[arg-type]
    folder = write_model(tmp_path, "slow", SLOW_MODEL)
    running = stack.start_runner(folder, sampler=Sampler(GpuReader(), interval=20 * MS))
    logs = LogBuffer(running.runner.hub)
    logging.getLogger("edge_runner").addHandler(logs)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    # What `edge-runner runner` does with claim_runner_id: hold the lock while running.
    lock = runner_file(runtime, running.runner_id, "lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    api = LocalApi(running.runner, logs, runtime)
    stack.loop.run(api.__aenter__())
    yield running, api
    stack.loop.run(api.__aexit__(None, None, None))
    lock.close()
    logging.getLogger("edge_runner").removeHandler(logs)


def _client(api: LocalApi) -> LocalClient:
    return LocalClient.find(runtime=api.runtime)


def test_every_request_needs_the_secret_and_a_loopback_host(
    served: tuple[RunningRunner, LocalApi],
) -> None:
    """No secret or a wrong one: 401; a foreign Host header (DNS rebinding): 403."""
    _, api = served
    url = f"http://127.0.0.1:{api.port}"
    for path in ("/ready", "/metrics", "/v1/snapshot", "/v1/logs"):
        assert httpx.get(url + path).status_code == 401
        assert httpx.get(url + path, headers={"Authorization": "Bearer nope"}).status_code == 401
    rebinding = {"Authorization": f"Bearer {api.secret}", "Host": "evil.example:80"}
    assert httpx.get(url + "/v1/snapshot", headers=rebinding).status_code == 403
    assert "secret in" in httpx.get(url + "/ready").json()["error"]["message"]
    for name in ("api.json", "secret"):
        path = runner_file(api.runtime, api.runner.runner_id, name)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_snapshot_shows_tunnel_models_slots_and_tasks_in_flight(
    stack: Stack, served: tuple[RunningRunner, LocalApi]
) -> None:
    """The snapshot names the runner, its tunnel, models, slots, and a running task's age."""
    running, api = served
    call = stack.loop.submit(_async_call(stack, "slow", "wait", {"seconds": 5}))
    with _client(api) as client:
        wait_for(lambda: client.snapshot()["busy"] == 1, "the task to run")
        snap = client.snapshot()
    with Client(stack.api_base, stack.token) as control:
        control.cancel(snap["tasks"][0]["task_id"])
    assert call.result(10) == 409
    assert snap["runner_id"] == running.runner_id and snap["pid"] == os.getpid()
    assert snap["tunnel"]["state"] == "connected" and snap["tunnel"]["reconnects"] == 0
    assert snap["models"] == [
        {"id": "slow", "backend": "python", "status": "ready", "message": "", "progress": 0.0}
    ]
    (task,) = snap["tasks"]
    assert task["model"] == "slow" and task["method"] == "wait" and task["age_s"] >= 0
    assert snap["telemetry"]["gpu"]["gpus"][0]["name"] == "NVIDIA H200"


async def _async_call(stack: Stack, model: str, method: str, body: dict[str, Any]) -> int:
    async with httpx.AsyncClient(headers=stack.headers, timeout=30) as client:
        response = await client.post(f"{stack.api_base}/v2/models/{model}/{method}", json=body)
        return response.status_code


def test_events_stream_tasks_logs_and_telemetry(
    stack: Stack, served: tuple[RunningRunner, LocalApi]
) -> None:
    """A snapshot first, then task started/finished (queue wait, run time), logs, telemetry."""
    _, api = served
    events: list[dict[str, Any]] = []
    seen = threading.Event()

    def follow() -> None:
        with _client(api) as client:
            for event in client.events({"task", "log", "telemetry"}):
                events.append(event)
                kinds = {e["topic"] for e in events}
                if {"snapshot", "task", "log", "telemetry"} <= kinds and _finished(events):
                    seen.set()
                    return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    wait_for(lambda: events, "the snapshot")
    with Client(stack.api_base, stack.token) as client:
        assert client.predict("slow", "wait", seconds=0.05) == "done"
    logging.getLogger("edge_runner.test").warning("a line for the log topic")
    wait_for(seen.is_set, "task, log and telemetry events")
    assert events[0]["topic"] == "snapshot"
    started = next(e["data"] for e in events if e["topic"] == "task")
    finished = _finished(events)
    assert started["event"] == "started" and started["method"] == "wait"
    assert finished is not None and finished["status"] == "ok"
    assert finished["run_time_s"] >= 0.05 and 0 <= finished["queue_wait_s"] < 5
    log = next(e["data"] for e in events if e["topic"] == "log")
    assert {"time", "level", "logger", "message"} <= log.keys()


def _finished(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next(
        (e["data"] for e in events if e["topic"] == "task" and e["data"]["event"] == "finished"),
        None,
    )


def test_ready_and_metrics(stack: Stack, served: tuple[RunningRunner, LocalApi]) -> None:
    """/ready is 200 while registered and 503 after the control plane went away; /metrics
    counts tasks by status, times them, and exposes the GPUs."""
    _, api = served
    with Client(stack.api_base, stack.token) as control, _client(api) as client:
        control.predict("slow", "wait", seconds=0)
        assert client.ready()["ready"] is True
        text = client.metrics()
        assert 'edge_runner_tasks_total{status="ok"} 1' in text
        assert "edge_runner_task_run_seconds_count 1" in text
        assert 'edge_runner_task_queue_wait_seconds_bucket{le="+Inf"} 1' in text
        assert 'edge_runner_gpu_utilization_ratio{gpu="0"' in text and "0.12" in text
        assert "edge_runner_tunnel_reconnects_total 0" in text
        stack.stop_control()
        wait_for(lambda: client.ready()["ready"] is False, "the runner to notice")
        assert client.ready()["state"] in ("reconnecting", "connecting")
        assert "edge_runner_ready 0" in client.metrics()


def test_logs_are_filtered_by_level_and_text(served: tuple[RunningRunner, LocalApi]) -> None:
    """The log buffer answers the last records, by level and by text."""
    _, api = served
    log = logging.getLogger("edge_runner.test")
    log.info("plain info line")
    log.warning("needle in a warning")
    log.error("another needle")
    with _client(api) as client:
        warnings = client.logs(level="warning")
        assert [r["message"] for r in warnings][-2:] == ["needle in a warning", "another needle"]
        assert [r["message"] for r in client.logs(grep="NEEDLE", limit=1)] == ["another needle"]
        with pytest.raises(ClientError, match="unknown log level"):
            client.logs(level="loud")


def test_finding_runners(tmp_path: Path, served: tuple[RunningRunner, LocalApi]) -> None:
    """The only runner is found, a stale file (no lock held) is not; an unknown id is named."""
    _, api = served
    stale = runner_file(api.runtime, "runner-dead", "api.json")
    stale.write_text(
        json.dumps({"runner_id": "runner-dead", "pid": 1, "url": "x", "secret_file": "y"})
    )
    assert [r.runner_id for r in local_runners(api.runtime)] == [api.runner.runner_id]
    with pytest.raises(
        NoLocalRunner, match=rf"no local runner 'nope'; running here: {api.runner.runner_id}"
    ):
        LocalClient.find("nope", runtime=api.runtime)
    with pytest.raises(NoLocalRunner, match="no runner runs on this machine"):
        LocalClient.find(runtime=tmp_path / "empty")


@pytest.mark.slow
def test_status_and_logs_commands(stack: Stack, er_home: Path) -> None:
    """`edge-runner status` and `logs` read a runner process; -f follows it."""
    env = dict(os.environ, EDGE_RUNNER_API_BASE=stack.api_base, EDGE_RUNNER_PAT=stack.token)
    proc, ready = spawn_ready(["runner", str(ROOT / "examples" / "hello")], env)
    try:
        status = subprocess.run([*CLI, "status"], capture_output=True, text=True, env=env)
        assert status.returncode == 0, status.stderr
        assert f"runner     {ready['runner_id']}" in status.stdout and "connected" in status.stdout
        doc = json.loads(
            subprocess.run(
                [*CLI, "status", "-o", "json"], capture_output=True, text=True, env=env
            ).stdout
        )
        assert doc["models"][0]["id"] == "hello" and doc["ready"] is True
        logs = subprocess.run([*CLI, "logs", "-n", "50"], capture_output=True, text=True, env=env)
        assert "connected to" in logs.stdout
        follow = subprocess.Popen(
            [*CLI, "logs", "-f", "-n", "0", "--grep", "said goodbye"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert follow.stdout is not None
            lines: list[str] = []
            reader = threading.Thread(target=lambda: lines.append(follow.stdout.readline()))  # type: ignore[union-attr]
            reader.start()
            wait_for(lambda: _following(doc["runner_id"], env), "the follower to subscribe")
            stack.stop_control()  # the runner logs the goodbye; the follower prints it
            reader.join(20_000 * MS)
            assert lines and "INFO" in lines[0] and "said goodbye" in lines[0], lines
        finally:
            follow.kill()
            follow.wait()
    finally:
        stop_process(proc)
    gone = subprocess.run([*CLI, "status"], capture_output=True, text=True, env=env)
    assert gone.returncode == 2 and "no runner runs on this machine" in gone.stderr


def _following(runner_id: str, env: dict[str, str]) -> bool:
    """Whether a `logs -f` has subscribed to the runner's events."""
    runtime = Path(env["EDGE_RUNNER_HOME"]) / "run"
    with LocalClient.find(runner_id, runtime=runtime) as client:
        return int(client.snapshot()["watchers"]) >= 1
