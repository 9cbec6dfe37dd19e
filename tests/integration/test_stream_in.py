"""Stream-in methods through the WebSocket route ``/v2/models/{id}/{method}/ws``: items in as
messages, outputs out as they come, over both tunnel transports; authentication in a header or
the first message; every bad input answered with an error message; back-pressure both ways;
cancel from either side; a lost runner, an old runner and a silent client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from edge_runner.control.dispatch import Dispatcher
from edge_runner.control.tasks import Task
from edge_runner.runner.transport import TransportKind
from tests.conftest import (
    MS,
    RunningRunner,
    Stack,
    write_model,
)

#: class body of a model with stream-in methods (and one unary one)
STREAM_IN_MODEL = (
    "    taken = 0\n"
    "    closed = False\n\n"
    "    @ModelClass.method\n"
    "    def echo(self, items: Iterator[str], prefix: str = '') -> Iterator[str]:\n"
    "        '''Each item back as it arrives, after the prefix.'''\n"
    "        try:\n"
    "            for item in items:\n"
    "                yield prefix + item\n"
    "        finally:\n"
    "            type(self).closed = True\n\n"
    "    @ModelClass.method\n"
    "    def total(self, numbers: Iterator[int], start: int = 0) -> Iterator[int]:\n"
    "        '''The running total.'''\n"
    "        for n in numbers:\n"
    "            start += n\n"
    "            yield start\n\n"
    "    @ModelClass.method\n"
    "    def slow(self, items: Iterator[str], delay: float = 0.01) -> Iterator[int]:\n"
    "        '''Take each item `delay` seconds after the last; at the end, how many.'''\n"
    "        for _ in items:\n"
    "            time.sleep(delay)\n"
    "            type(self).taken += 1\n"
    "        yield type(self).taken\n\n"
    "    @ModelClass.method\n"
    "    def repeat(self, counts: Iterator[int], size: int = 65536) -> Iterator[str]:\n"
    "        '''For each count, that many strings of `size` characters.'''\n"
    "        for n in counts:\n"
    "            for _ in range(n):\n"
    "                yield 'x' * size\n\n"
    "    @ModelClass.method\n"
    "    def ping(self) -> str:\n"
    "        '''Answer at once.'''\n"
    "        return 'pong'\n"
)

WINDOW = 8  # the control plane's stream window: output credit, and the runner's input window


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """The stream-in model folder."""
    return write_model(tmp_path, "flow", STREAM_IN_MODEL)


@pytest.fixture
def flow(stack: Stack, model: Path) -> RunningRunner:
    """A runner (pool 2) serving the stream-in model, on a control plane with a small window."""
    stack.stop_control()
    stack.start_control(stream_window=WINDOW, heartbeat_interval=0.4)
    return stack.start_runner(model, pool_size=2)


def _open(
    stack: Stack, method: str, token: str | None = "admin", model: str = "flow"
) -> ClientConnection:
    """A WebSocket to a method; ``token``: the admin token in the header (None: no header)."""
    url = stack.api_base.replace("http", "ws", 1) + f"/v2/models/{model}/{method}/ws"
    if token == "admin":
        token = stack.token
    headers = {"Authorization": f"Bearer {token}"} if token is not None else None
    return connect(url, additional_headers=headers, open_timeout=10, close_timeout=2)


def _send(ws: ClientConnection, message: dict[str, Any]) -> None:
    ws.send(json.dumps(message))


def _rest(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every message until the server closes."""
    out = []
    try:
        while True:
            out.append(json.loads(ws.recv(timeout=10_000 * MS)))
    except ConnectionClosed:
        return out


def _call(
    stack: Stack, method: str, items: list[Any], start: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """One whole call: the start (if any), the items, the end; every message back."""
    with _open(stack, method) as ws:
        if start is not None:
            _send(ws, {"type": "start", **start})
        for item in items:
            _send(ws, {"type": "input", "data": item})
        _send(ws, {"type": "end"})
        messages = _rest(ws)
        assert ws.close_code == 1000, messages
    return messages


def _error(messages: list[dict[str, Any]]) -> dict[str, Any]:
    assert messages and messages[-1]["type"] == "error", messages
    return messages[-1]


def _dispatcher(stack: Stack) -> Dispatcher:
    assert stack.plane is not None and stack.plane.state is not None
    return stack.plane.state.dispatcher


def _task(stack: Stack) -> Task:
    tasks = list(_dispatcher(stack).tasks.values())
    assert len(tasks) == 1, tasks
    return tasks[0]


def _busy(running: RunningRunner) -> int:
    executor = running.runner._executor
    return executor.busy if executor is not None else -1


def _model(running: RunningRunner) -> Any:
    return type(running.backend._instance)  # type: ignore[attr-defined]


def _still_serving(stack: Stack) -> None:
    """The control plane answers a stream-in call after whatever the test did."""
    messages = _call(stack, "echo", ["a", "b"])
    assert [m["data"] for m in messages if m["type"] == "output"] == ["a", "b"]


# -- calls ----------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", [TransportKind.GRPC, TransportKind.WS], ids=["grpc", "ws"])
def test_echo_and_a_running_total_over_both_transports(
    stack: Stack, model: Path, transport: TransportKind
) -> None:
    """Items go in as messages and outputs come out in order, with the start's arguments or
    the defaults; done counts both; GET /v2/tasks shows the counts of the finished task."""
    stack.start_runner(model, transport=transport)
    messages = _call(stack, "echo", ["a", "b", "c"], {"args": {"prefix": "> "}})
    started, *outputs, done = messages
    assert started["type"] == "started"
    assert outputs == [
        {"type": "output", "index": i, "data": f"> {x}"} for i, x in enumerate("abc")
    ]
    assert done == {"type": "done", "task_id": started["task_id"], "inputs": 3, "outputs": 3}
    # No start message: the first message is already an item, the arguments are the defaults.
    messages = _call(stack, "total", [1, 2, 3, 4])
    assert [m["data"] for m in messages if m["type"] == "output"] == [1, 3, 6, 10]
    messages = _call(stack, "total", [5, -1], {"args": {"start": 100}})
    assert [m["data"] for m in messages if m["type"] == "output"] == [105, 104]
    started_empty, done_empty = _call(stack, "echo", [])
    assert done_empty == {
        "type": "done",
        "task_id": started_empty["task_id"],
        "inputs": 0,
        "outputs": 0,
    }
    tasks = httpx.get(f"{stack.api_base}/v2/tasks", headers=stack.headers).json()["tasks"]
    record = next(t for t in tasks if t["task_id"] == started["task_id"])
    assert record["status"] == "done"
    assert (record["inputs"], record["outputs"]) == (3, 3)
