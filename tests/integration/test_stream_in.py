"""Stream-in methods through the WebSocket route ``/v2/models/{id}/{method}/ws``: items in as
messages, outputs out as they come, over both tunnel transports; authentication in a header or
the first message; every bad input answered with an error message; back-pressure both ways;
cancel from either side; a lost runner, an old runner and a silent client."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from edge_runner.control.dispatch import Dispatcher
from edge_runner.control.tasks import Task
from edge_runner.runner.transport import TransportKind
from edge_runner.testing import daemon_env
from tests.conftest import (
    MS,
    RunningRunner,
    Stack,
    spawn_ready,
    stop_process,
    wait_for,
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


def _serve(stack: Stack, model: Path, **settings: Any) -> RunningRunner:
    """Restart the control plane with a small window (and ``settings``); a runner (pool 2)."""
    stack.stop_control()
    stack.start_control(stream_window=WINDOW, heartbeat_interval=0.4, **settings)
    return stack.start_runner(model, pool_size=2)


@pytest.fixture
def flow(stack: Stack, model: Path) -> RunningRunner:
    """A runner serving the stream-in model, on a control plane with a small window."""
    return _serve(stack, model)


def _open(
    stack: Stack,
    method: str,
    token: str | None = "admin",
    model: str = "flow",
    close_timeout: float = 2_000 * MS,
) -> ClientConnection:
    """A WebSocket to a method; ``token``: the admin token in the header (None: no header)."""
    url = stack.api_base.replace("http", "ws", 1) + f"/v2/models/{model}/{method}/ws"
    if token == "admin":
        token = stack.token
    headers = {"Authorization": f"Bearer {token}"} if token is not None else None
    # No compression: the back-pressure tests count what the sockets can hold.
    return connect(
        url,
        additional_headers=headers,
        open_timeout=10,
        close_timeout=close_timeout,
        compression=None,
    )


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


# -- authentication -------------------------------------------------------------------------


def _token(stack: Stack, *scopes: str) -> str:
    r = httpx.post(
        f"{stack.api_base}/v2/tokens",
        headers=stack.headers,
        json={"name": "-".join(scopes), "scopes": list(scopes)},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def test_the_server_declines_compression(stack: Stack, flow: RunningRunner) -> None:
    """A client that offers permessage-deflate gets plain messages: the server would inflate a
    whole socket read of compressed messages before the route takes the first one."""
    url = stack.api_base.replace("http", "ws", 1) + "/v2/models/flow/echo/ws"
    headers = {"Authorization": f"Bearer {stack.token}"}
    with connect(url, additional_headers=headers, compression="deflate") as ws:
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        _send(ws, {"type": "input", "data": "a"})
        _send(ws, {"type": "end"})
        assert [m["type"] for m in _rest(ws)] == ["started", "output", "done"]


def test_the_token_may_come_in_the_first_message(stack: Stack, flow: RunningRunner) -> None:
    """Without a header the start message carries the token; none, a wrong one, or a first
    message that is not a start is UNAUTHENTICATED (1008); a wrong header is refused at the
    upgrade (403); no task is created for any of them."""
    with _open(stack, "echo", token=None) as ws:
        _send(ws, {"type": "start", "token": stack.token, "args": {"prefix": "-"}})
        _send(ws, {"type": "input", "data": "x"})
        _send(ws, {"type": "end"})
        messages = _rest(ws)
    assert [m["data"] for m in messages if m["type"] == "output"] == ["-x"]
    before = len(_dispatcher(stack).recent)
    for first in (
        {"type": "start"},
        {"type": "start", "token": "not-a-token"},
        {"type": "start", "token": 5},
        {"type": "input", "data": "x", "token": stack.token},
    ):
        with _open(stack, "echo", token=None) as ws:
            _send(ws, first)
            messages = _rest(ws)
            assert ws.close_code == 1008, first
        error = _error(messages)
        assert error["code"] == "UNAUTHENTICATED", first
        assert "Authorization" in error["message"] and "task_id" not in error
    with pytest.raises(InvalidStatus) as refused:
        _open(stack, "echo", token="not-a-token")
    assert refused.value.response.status_code == 403
    assert len(_dispatcher(stack).recent) == before
    # Only a WebSocket may bring its token later: plain HTTP to the path needs one at once.
    assert httpx.get(f"{stack.api_base}/v2/models/flow/echo/ws").status_code == 401
    _still_serving(stack)


def test_a_token_without_the_predict_scope_is_refused(stack: Stack, flow: RunningRunner) -> None:
    """A token that may only read gets MISSING_SCOPE (1008), in a header or in the start."""
    reader = _token(stack, "read")
    with _open(stack, "echo", token=reader) as ws:
        messages = _rest(ws)  # answered at once: no message needed
        assert ws.close_code == 1008
    assert _error(messages)["code"] == "MISSING_SCOPE"
    assert "'predict'" in _error(messages)["message"]
    with _open(stack, "echo", token=None) as ws:
        _send(ws, {"type": "start", "token": reader})
        messages = _rest(ws)
        assert ws.close_code == 1008
    assert _error(messages)["code"] == "MISSING_SCOPE"


# -- bad input ------------------------------------------------------------------------------


def _start(args: Any) -> str:
    return json.dumps({"type": "start", "args": args})


def _item(data: Any) -> str:
    return json.dumps({"type": "input", "data": data})


#: (method, messages sent, error code, close code, words in the message, a task was started)
BAD = [
    ("echo", ["{not json"], "INVALID_JSON", 1007, "not valid JSON", False),
    ("echo", ["[1, 2]"], "INVALID_BODY", 1007, "JSON object", False),
    ("echo", ['{"type": "shout"}'], "INVALID_BODY", 1007, "'shout'", False),
    ("echo", ['{"data": "x"}'], "INVALID_BODY", 1007, "start, input, end, cancel", False),
    ("echo", [b"\x00binary"], "INVALID_BODY", 1007, "binary", False),
    ("echo", [_start({"nope": 1})], "INVALID_ARGUMENT", 1007, "'nope'", False),
    ("echo", [_start({"prefix": 5})], "INVALID_ARGUMENT", 1007, "prefix", False),
    ("echo", [_start(["x"])], "INVALID_BODY", 1007, "args", False),
    ("echo", [_start({"items": ["a"]})], "INVALID_ARGUMENT", 1007, "input stream", False),
    ("echo", [_item(5)], "INVALID_ARGUMENT", 1007, "input item 0 of 'items'", True),
    ("total", [_item(1), _item("two")], "INVALID_ARGUMENT", 1007, "item 1 of 'numbers'", True),
    ("echo", ['{"type": "input"}'], "INVALID_BODY", 1007, '"data"', True),
    ("echo", [_item("a"), _start({})], "INVALID_BODY", 1007, "after the first", True),
    ("echo", [_item("a"), "{"], "INVALID_JSON", 1007, "not valid JSON", True),
    ("echo", [_item("y" * 5000)], "BODY_TOO_LARGE", 1009, "--max-body-bytes", False),
    ("nothing", [], "UNKNOWN_METHOD", 1000, "its methods: echo, ping, repeat, slow", False),
    ("ping", [], "BAD_REQUEST", 1000, "POST /v2/models/flow/ping", False),
]


def test_bad_input_is_answered_with_an_error_message(stack: Stack, model: Path) -> None:
    """Each malformed or invalid message, argument or item, and each wrong model or method,
    gets its error message and close code; the task (if one started) is cancelled and its
    slot comes back; the control plane goes on serving."""
    running = _serve(stack, model, max_body_bytes=4096)
    for method, sends, code, close_code, words, started in BAD:
        case = f"{method} {sends}"[:80]
        with _open(stack, method) as ws:
            for message in sends:
                try:
                    ws.send(message)
                except ConnectionClosed:
                    break  # refused already
            messages = _rest(ws)
            assert ws.close_code == close_code, (case, messages)
        error = _error(messages)
        assert error["code"] == code, (case, error)
        assert words in error["message"], (case, error)
        if started:
            assert messages[0]["type"] == "started", case
            assert error["task_id"] == messages[0]["task_id"], case
        else:
            assert [m["type"] for m in messages] == ["error"], case
    with _open(stack, "echo", model="nope") as ws:
        messages = _rest(ws)
    assert _error(messages)["code"] == "UNKNOWN_MODEL" and "known models: flow" in str(messages)
    wait_for(lambda: _busy(running) == 0, "the cancelled tasks' slots to come back")
    assert not _dispatcher(stack).tasks
    _still_serving(stack)


# -- back-pressure --------------------------------------------------------------------------


def test_a_model_slower_than_its_input_holds_the_client_back(
    stack: Stack, flow: RunningRunner
) -> None:
    """The control plane takes items only as the runner grants input credit: what it sent
    stays within a window of what the model took, and the client's sends block."""
    total, item = 400, "x" * 65536
    sent = 0
    with _open(stack, "slow") as ws:
        _send(ws, {"type": "start", "args": {"delay": 0.02}})

        def feed() -> None:
            nonlocal sent
            try:
                for _ in range(total):
                    ws.send(_item(item))
                    sent += 1
            except ConnectionClosed:
                pass

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        model = _model(flow)
        wait_for(lambda: model.taken >= 10, "the model to take items")
        task = _task(stack)
        for _ in range(5):
            inputs = task.inputs
            # the runner grants a window beyond what the model read; it reads one ahead
            assert inputs - model.taken <= WINDOW + 1, (inputs, model.taken)
            wait_for(lambda t=model.taken: model.taken > t, "the model to take one more")
        assert sent < total and feeder.is_alive()  # held back through TCP
        tasks = httpx.get(f"{stack.api_base}/v2/tasks", headers=stack.headers).json()["tasks"]
        (live,) = [t for t in tasks if t["task_id"] == task.task_id]
        assert live["status"] == "running" and live["inputs"] >= 10 and live["outputs"] == 0
        # The items in the sockets are behind a close from this side, not behind a DELETE.
        r = httpx.delete(f"{stack.api_base}/v2/tasks/{task.task_id}", headers=stack.headers)
        assert r.status_code == 200
        wait_for(lambda: _busy(flow) == 0, "the cancelled call's slot to come back")
        feeder.join(10_000 * MS)
    (record,) = [r for r in _dispatcher(stack).recent if r.method == "slow"]
    assert record.status == "cancelled"


def test_a_client_that_stops_reading_pauses_the_model(stack: Stack, flow: RunningRunner) -> None:
    """Outputs nobody reads pause the model at its stream credit, as for stream-out; reading
    again delivers them in order; closing frees the slot."""
    # Its close waits behind the unread outputs: the close handshake cannot finish.
    with _open(stack, "repeat", close_timeout=100 * MS) as ws:
        _send(ws, {"type": "input", "data": 1_000_000})
        wait_for(lambda: _dispatcher(stack).paused, "the stream to pause on its reader")
        task = _task(stack)
        assert list(_dispatcher(stack).paused) == [task.task_id]
        assert task.received - task.consumed <= WINDOW
        assert json.loads(ws.recv(timeout=10_000 * MS))["type"] == "started"
        indexes = [json.loads(ws.recv(timeout=10_000 * MS))["index"] for _ in range(40)]
        assert indexes == list(range(40))
    wait_for(lambda: _busy(flow) == 0, "the closed call's slot to come back")
    assert not _dispatcher(stack).paused


# -- cancel, loss, refusal, idle ------------------------------------------------------------


@pytest.mark.parametrize("how", ["message", "close", "delete"])
def test_cancel_mid_stream_frees_the_runner_slot(
    stack: Stack, flow: RunningRunner, how: str
) -> None:
    """A cancel message, closing the socket, or DELETE /v2/tasks/{id} stops the task at once:
    the model's generator is closed and its slot comes back."""
    with _open(stack, "echo") as ws:
        _send(ws, {"type": "input", "data": "a"})
        started = json.loads(ws.recv(timeout=10_000 * MS))
        assert json.loads(ws.recv(timeout=10_000 * MS))["data"] == "a"
        task_id = started["task_id"]
        if how == "message":
            _send(ws, {"type": "cancel"})
        elif how == "delete":
            r = httpx.delete(f"{stack.api_base}/v2/tasks/{task_id}", headers=stack.headers)
            assert r.status_code == 200
        else:
            ws.close()
        if how != "close":
            messages = _rest(ws)
            assert ws.close_code == 1000
            error = _error(messages)
            assert (error["code"], error["task_id"]) == ("CANCELLED", task_id)
    wait_for(lambda: _busy(flow) == 0, "the slot to come back")
    wait_for(lambda: _model(flow).closed, "the model's generator to close")
    (record,) = list(_dispatcher(stack).recent)
    assert (record.task_id, record.status) == (task_id, "cancelled")


def test_a_runner_killed_mid_stream_is_runner_lost(
    stack: Stack, model: Path, tmp_path: Path
) -> None:
    """A runner process killed with a stream-in task: the client gets RUNNER_LOST (the input
    consumed so far cannot be replayed elsewhere)."""
    stack.stop_control()
    stack.start_control(lease_ttl=200 * MS)
    env = daemon_env(
        tmp_path / "runner-home", EDGE_RUNNER_API_BASE=stack.api_base, EDGE_RUNNER_PAT=stack.token
    )
    runner, _ = spawn_ready(["runner", str(model)], env)
    try:
        with _open(stack, "echo") as ws:
            _send(ws, {"type": "input", "data": "a"})
            assert json.loads(ws.recv(timeout=10_000 * MS))["type"] == "started"
            assert json.loads(ws.recv(timeout=10_000 * MS))["data"] == "a"
            runner.kill()
            runner.wait()
            messages = _rest(ws)
            assert ws.close_code == 1000
    finally:
        stop_process(runner)
    error = _error(messages)
    assert error["code"] == "RUNNER_LOST" and "was lost" in error["message"]


def test_an_old_runner_refuses_stream_in_calls_only(
    stack: Stack, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner before protocol 1.3: a stream-in call gets RUNNER_TOO_OLD naming both
    versions; its unary methods still answer."""
    monkeypatch.setattr("edge_runner.protocol.runner_session.PROTOCOL_VERSION", (1, 2))
    running = stack.start_runner(model)
    with _open(stack, "echo") as ws:
        _send(ws, {"type": "input", "data": "a"})
        messages = _rest(ws)
        assert ws.close_code == 1000
    error = _error(messages)
    assert error["code"] == "RUNNER_TOO_OLD"
    assert f"{running.runner_id} speaks 1.2" in error["message"] and "1.3" in error["message"]
    r = httpx.post(f"{stack.api_base}/v2/models/flow/ping", headers=stack.headers, json={})
    assert r.json()["output"] == "pong"


def test_the_input_idle_limit_is_per_item_not_per_call(stack: Stack, model: Path) -> None:
    """Items that keep coming within --body-idle-timeout may take longer than it in all; a
    client silent for longer fails BODY_TIMEOUT and its slot comes back. One that sends no
    token at all gets the header timeout."""
    idle = 300 * MS
    running = _serve(stack, model, body_idle_timeout=idle, header_timeout=idle)
    with _open(stack, "echo", token=None) as ws:
        messages = _rest(ws)
        assert ws.close_code == 1008
    assert _error(messages)["code"] == "UNAUTHENTICATED"
    assert "no start message with a token" in _error(messages)["message"]
    with _open(stack, "echo") as ws:
        messages = _rest(ws)
        assert ws.close_code == 1000
    assert _error(messages)["code"] == "BODY_TIMEOUT" and "task_id" not in _error(messages)
    with _open(stack, "echo") as ws:
        for i in range(4):
            _send(ws, {"type": "input", "data": str(i)})
            threading.Event().wait(idle / 3)
        _send(ws, {"type": "end"})
        messages = _rest(ws)
    assert messages[-1]["type"] == "done" and messages[-1]["inputs"] == 4
    with _open(stack, "echo") as ws:
        _send(ws, {"type": "input", "data": "a"})
        messages = _rest(ws)
        assert ws.close_code == 1000
    started, output, error = messages
    assert output["data"] == "a"
    assert (error["code"], error["task_id"]) == ("BODY_TIMEOUT", started["task_id"])
    assert "--body-idle-timeout" in error["message"]
    wait_for(lambda: _busy(running) == 0, "the slot to come back")


def test_a_stopping_control_plane_ends_open_streams(
    stack: Stack, flow: RunningRunner, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopping the control plane with a stream-in call open: the client gets UNAVAILABLE
    (or the going-away close), and uvicorn logs no error."""
    caplog.set_level(logging.ERROR)
    with _open(stack, "echo") as ws:
        _send(ws, {"type": "input", "data": "a"})
        assert json.loads(ws.recv(timeout=10_000 * MS))["type"] == "started"
        assert json.loads(ws.recv(timeout=10_000 * MS))["data"] == "a"
        stack.stop_control()
        messages = _rest(ws)
        assert ws.close_code in (1000, 1012), (ws.close_code, messages)
    if messages:
        assert _error(messages)["code"] == "UNAVAILABLE"
    assert [r.getMessage() for r in caplog.records if r.name.startswith("uvicorn")] == []
