"""What the dashboard needs from the control plane: GET /v2/tasks, draining a runner, request
and error counters, and runner logs carried over the tunnel (GET /v2/runners/{id}/logs)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_runner.client import Client
from edge_runner.control.runner_logs import MAX_BATCH, MAX_MESSAGE, RunnerLogs
from edge_runner.errors import Forbidden, NotFound
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.runner.events import LogBuffer
from tests.conftest import MS, SLOW_MODEL, Stack, wait_for, write_model


@pytest.fixture
def slow_stack(stack: Stack, tmp_path: Path) -> Stack:
    """Two runners of a model whose `wait(seconds)` blocks."""
    folder = write_model(tmp_path, "slow", SLOW_MODEL)
    stack.start_runner(folder, runner_id="runner-a")
    stack.start_runner(folder, runner_id="runner-b")
    return stack


async def _call(stack: Stack, seconds: float) -> int:
    async with httpx.AsyncClient(headers=stack.headers, timeout=30) as client:
        r = await client.post(f"{stack.api_base}/v2/models/slow/wait", json={"seconds": seconds})
        return r.status_code


def test_tasks_lists_running_then_finished(slow_stack: Stack) -> None:
    """A running task shows with its age; finished ones with status, queue wait and run time."""
    with Client(slow_stack.api_base, slow_stack.token) as client:
        assert client.predict("slow", "wait", seconds=0) == "done"
        running = slow_stack.loop.submit(_call(slow_stack, 5))
        wait_for(lambda: any(t["status"] == "running" for t in client.tasks()), "a running task")
        tasks = client.tasks()
        live = tasks[0]
        assert live["model"] == "slow" and live["method"] == "wait" and live["age_s"] >= 0
        assert live["runner_id"] in ("runner-a", "runner-b")
        client.cancel(live["task_id"])
        assert running.result(10) == 409
        recent = client.tasks()
        assert [t["status"] for t in recent[:2]] == ["cancelled", "done"]
        done = recent[1]
        assert done["code"] == "" and done["run_time_s"] >= 0 and done["queue_wait_s"] >= 0
        assert client.tasks(limit=1) == recent[:1]
        bob = httpx.post(
            f"{slow_stack.api_base}/v2/users", json={"id": "bob"}, headers=slow_stack.headers
        ).json()
    with Client(slow_stack.api_base, bob["token"]) as other:
        assert other.tasks() == []
    bad = httpx.get(f"{slow_stack.api_base}/v2/tasks?limit=x", headers=slow_stack.headers)
    assert bad.status_code == 400


def test_requests_and_errors_are_counted_per_model(slow_stack: Stack) -> None:
    """/v2/models counts requests and failures (the dashboard's rates come from them)."""
    with Client(slow_stack.api_base, slow_stack.token) as client:
        client.predict("slow", "wait", seconds=0)
        client.predict("slow", "wait", seconds=0)
        model = client.model("slow")
    assert model["requests"] == 2 and model["errors"] == 0


def test_drain_stops_routing_to_a_runner(slow_stack: Stack) -> None:
    """A drained runner gets no more tasks; it needs the manage scope; unknown ids are 404."""
    with Client(slow_stack.api_base, slow_stack.token) as client:
        assert client.drain_runner("runner-a") == {"runner_id": "runner-a", "status": "draining"}
        wait_for(
            lambda: {r["id"]: r["status"] for r in client.runners()}["runner-a"] == "draining",
            "runner-a to drain",
        )
        for _ in range(4):
            client.predict("slow", "wait", seconds=0)
        assert {t["runner_id"] for t in client.tasks()} == {"runner-b"}
        with pytest.raises(NotFound, match="no connected runner 'runner-z'"):
            client.drain_runner("runner-z")
        reader = client.create_token("ro", ["read"])["token"]
    with Client(slow_stack.api_base, reader) as client, pytest.raises(Forbidden):
        client.drain_runner("runner-b")


def test_runner_logs_come_over_the_tunnel(stack: Stack) -> None:
    """Records a runner logs reach GET /v2/runners/{id}/logs, filtered; follow streams them."""
    running = stack.start_runner()
    buffer = LogBuffer(running.runner.hub)
    log = logging.getLogger("edge_runner.test.ops")
    log.addHandler(buffer)
    log.setLevel(logging.INFO)
    try:
        log.info("an info line")
        log.warning("a warning about the needle")
        with Client(stack.api_base, stack.token) as client:
            wait_for(lambda: len(client.runner_logs(running.runner_id)) >= 2, "the logs to arrive")
            records = client.runner_logs(running.runner_id)
            assert [r["message"] for r in records][-2:] == [
                "an info line",
                "a warning about the needle",
            ]
            assert (
                records[-1]["runner_id"] == running.runner_id and records[-1]["level"] == "WARNING"
            )
            warnings = client.runner_logs(running.runner_id, level="warning")
            assert [r["message"] for r in warnings] == ["a warning about the needle"]
            assert client.runner_logs(running.runner_id, grep="NEEDLE") == warnings
            followed: list[dict[str, Any]] = []
            got = threading.Event()

            def follow() -> None:
                with Client(stack.api_base, stack.token) as follower:
                    for record in follower.follow_runner_logs(running.runner_id):
                        followed.append(record)
                        if record["message"] == "a line to follow":
                            got.set()
                            return

            threading.Thread(target=follow, daemon=True).start()
            log.error("a line to follow")
            wait_for(got.is_set, "the followed line", 5_000 * MS)
            with pytest.raises(NotFound):
                client.runner_logs("runner-nope")
    finally:
        log.removeHandler(buffer)


def test_runner_log_frames_are_bounded() -> None:
    """Oversized batches and messages are cut, and what was cut is counted."""
    logs = RunnerLogs()
    batch = pb.Logs(
        records=[
            pb.LogRecord(level="INFO", message="x" * (MAX_MESSAGE + 50))
            for _ in range(MAX_BATCH + 7)
        ],
        dropped=3,
    )
    logs.add("r1", "u", batch)
    kept = logs.records("r1")
    assert len(kept) == MAX_BATCH and len(kept[0]["message"]) == MAX_MESSAGE
    assert logs.dropped["r1"] == 10 and logs.owner("r1") == "u"
