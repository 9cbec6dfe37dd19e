"""Cancellation: DELETE /v2/tasks/{id} and clients that hang up free the runner's slot."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import httpx
import pytest

from tests.conftest import MS, SLOW_MODEL, Stack, wait_for, write_model

_COUNTING = (
    "    @ModelClass.method\n"
    "    def count(self, log: str) -> Iterator[int]:\n"
    "        '''Yield numbers until cancelled, logging each one and the stop.'''\n"
    "        i = 0\n"
    "        try:\n"
    "            while True:\n"
    "                with open(log, 'a') as fh:\n"
    "                    fh.write(f'{i}\\n')\n"
    "                yield i\n"
    "                i += 1\n"
    "                time.sleep(0.01)\n"
    "        finally:\n"
    "            with open(log, 'a') as fh:\n"
    "                fh.write('stopped\\n')\n"
)


def _busy(stack: Stack) -> int:
    runners = httpx.get(f"{stack.api_base}/v2/runners", headers=stack.headers).json()["runners"]
    return sum(int(r["busy"]) for r in runners)


def _runner_busy(stack: Stack) -> int:
    executor = stack.runners[0].runner._executor
    return executor.busy if executor is not None else -1


def test_delete_cancels_a_running_unary_task(stack: Stack, tmp_path: Path) -> None:
    """DELETE /v2/tasks/{id} answers the waiting client with 409 and frees the slot."""
    stack.start_runner(write_model(tmp_path, "slow", SLOW_MODEL), pool_size=1)
    with (
        httpx.Client(headers=stack.headers, timeout=30) as client,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        future = pool.submit(
            client.post, f"{stack.api_base}/v2/models/slow/wait", json={"seconds": 30}
        )
        wait_for(lambda: _runner_busy(stack) == 1, "the task to run")
        # A unary answer's headers come with its body, so take the id from the control plane.
        assert stack.plane is not None and stack.plane.state is not None
        (task_id,) = list(stack.plane.state.dispatcher.tasks)
        deleted = client.delete(f"{stack.api_base}/v2/tasks/{task_id}")
        assert deleted.status_code == 200
        assert deleted.json() == {"task_id": task_id, "status": "cancelled"}
        answer = future.result(10)
    assert answer.headers["x-task-id"] == task_id
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "CANCELLED"
    wait_for(lambda: _runner_busy(stack) == 0, "the slot to be free", timeout=1000 * MS)
    again = httpx.delete(f"{stack.api_base}/v2/tasks/{task_id}", headers=stack.headers)
    assert again.status_code == 404


def test_client_hang_up_cancels_a_unary_task(stack: Stack, tmp_path: Path) -> None:
    """A client that times out and closes the connection cancels its task on the runner."""
    stack.start_runner(write_model(tmp_path, "slow", SLOW_MODEL), pool_size=1)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{stack.api_base}/v2/models/slow/wait",
            json={"seconds": 30},
            headers=stack.headers,
            timeout=httpx.Timeout(30, read=300 * MS),
        )
    wait_for(lambda: _runner_busy(stack) == 0, "the cancelled task to free its slot")
    assert _busy(stack) == 0


@pytest.mark.parametrize("how", ["hang_up", "delete"])
def test_cancelling_a_stream_stops_the_generator(stack: Stack, tmp_path: Path, how: str) -> None:
    """Closing an SSE stream or DELETE stops the model's generator and frees the slot."""
    stack.start_runner(write_model(tmp_path, "counter", _COUNTING), pool_size=1)
    log = tmp_path / "count.log"
    with (
        httpx.Client(headers=stack.headers, timeout=30) as client,
        client.stream(
            "POST", f"{stack.api_base}/v2/models/counter/count", json={"log": str(log)}
        ) as r,
    ):
        task_id = r.headers["x-task-id"]
        lines = r.iter_lines()
        seen = 0
        for line in lines:
            if line.startswith("event: chunk"):
                seen += 1
            if seen == 3:
                break
        if how == "delete":
            assert client.delete(f"{stack.api_base}/v2/tasks/{task_id}").status_code == 200
    wait_for(
        lambda: log.exists() and log.read_text().endswith("stopped\n"), "the generator to stop"
    )
    wait_for(lambda: _runner_busy(stack) == 0, "the slot to be free", timeout=1000 * MS)
    size = len(log.read_text())
    assert _runner_busy(stack) == 0
    assert len(log.read_text()) == size


def test_cancelling_a_queued_task_removes_it(stack: Stack, tmp_path: Path) -> None:
    """A task still waiting for a slot is taken out of the queue by DELETE."""
    stack.start_runner(write_model(tmp_path, "slow", SLOW_MODEL), pool_size=1)
    url = f"{stack.api_base}/v2/models/slow/wait"
    assert stack.plane is not None and stack.plane.state is not None
    dispatcher = stack.plane.state.dispatcher
    with (
        httpx.Client(headers=stack.headers, timeout=30) as client,
        concurrent.futures.ThreadPoolExecutor(2) as pool,
    ):
        first = pool.submit(client.post, url, json={"seconds": 500 * MS})
        wait_for(lambda: _runner_busy(stack) == 1, "the first task to run")
        second = pool.submit(client.post, url, json={"seconds": 0})
        wait_for(lambda: dispatcher.queued("admin", "slow") == 1, "the second task to queue")
        (queued,) = [t for t in dispatcher.tasks.values() if t.state.value == "queued"]
        assert client.delete(f"{stack.api_base}/v2/tasks/{queued.task_id}").status_code == 200
        assert second.result(10).status_code == 409
        assert dispatcher.queued("admin", "slow") == 0
        assert first.result(10).json()["output"] == "done"


def test_other_users_tasks_and_unknown_ids_are_404(hello_stack: Stack) -> None:
    """DELETE of an unknown task id is 404 with a JSON error."""
    r = httpx.delete(f"{hello_stack.api_base}/v2/tasks/nope", headers=hello_stack.headers)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "UNKNOWN_TASK"
