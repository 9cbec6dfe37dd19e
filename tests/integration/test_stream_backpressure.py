"""Streams are flow-controlled end to end: a slow reader pauses the model's generator (nothing
piles up in between), a reader that leaves cancels at once, stalled streams are capped per
token, and streams have an idle limit and a maximum duration."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_runner.control.tasks import Task
from tests.conftest import (
    MS,
    RunningRunner,
    Stack,
    spawn_ready,
    stop_process,
    wait_for,
    write_model,
)
from tests.integration.test_tunnel import _hello, _raw_tunnel

#: class body of a model that streams as fast as it is allowed to, counting what it produced
BURST_MODEL = (
    "    produced = 0\n"
    "    closed = False\n\n"
    "    @ModelClass.method\n"
    "    def burst(self, n: int, size: int = 4096) -> Iterator[str]:\n"
    "        '''Yield n strings of size characters, as fast as the caller takes them.'''\n"
    "        try:\n"
    "            for i in range(n):\n"
    "                type(self).produced = i + 1\n"
    "                yield f'{i:08d}' + 'x' * (size - 8)\n"
    "        finally:\n"
    "            type(self).closed = True\n\n"
    "    @ModelClass.method\n"
    "    def trickle(self, every: float, first_only: bool = False) -> Iterator[int]:\n"
    "        '''Yield a number every `every` seconds (only the first one if first_only).'''\n"
    "        i = 0\n"
    "        while not self.cancelled():\n"
    "            if i == 0 or not first_only:\n"
    "                yield i\n"
    "                i += 1\n"
    "            time.sleep(every)\n\n"
    "    @ModelClass.method\n"
    "    def ping(self) -> str:\n"
    "        '''Answer at once.'''\n"
    "        return 'pong'\n"
)


@pytest.fixture
def burst(stack: Stack, tmp_path: Path) -> RunningRunner:
    """A runner (pool 4) serving the burst model, on a control plane that checks often."""
    stack.stop_control()
    stack.start_control(heartbeat_interval=0.4, stream_window=16)
    return stack.start_runner(write_model(tmp_path, "burst", BURST_MODEL), pool_size=4)


def _model(running: RunningRunner) -> Any:
    return type(running.backend._instance)  # type: ignore[attr-defined]


def _dispatcher(stack: Stack) -> Any:
    assert stack.plane is not None and stack.plane.state is not None
    return stack.plane.state.dispatcher


def _paused(stack: Stack) -> list[Task]:
    return list(_dispatcher(stack).paused.values())


class Reader:
    """One streaming call read by hand: events one at a time, or not at all."""

    def __init__(self, stack: Stack, body: dict[str, Any], token: str | None = None) -> None:
        self.client = httpx.Client(
            headers={"Authorization": f"Bearer {token or stack.token}"},
            timeout=30,
        )
        method = body.pop("method")
        self.response = self.client.send(
            self.client.build_request(
                "POST", f"{stack.api_base}/v2/models/burst/{method}", json=body
            ),
            stream=True,
        )
        assert self.response.status_code == 200, self.response.read()
        self.task_id = self.response.headers["x-task-id"]
        self._lines = self.response.iter_lines()

    def events(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """The stream's events, as (name, data), read only as they are asked for."""
        name = ""
        for line in self._lines:
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                yield name, json.loads(line[6:])

    def take(self, count: int) -> list[Any]:
        """Read ``count`` chunk outputs."""
        out = []
        for name, data in self.events():
            assert name == "chunk", data
            out.append(data["output"])
            if len(out) == count:
                break
        return out

    def close(self) -> None:
        """Hang up."""
        self.response.close()
        self.client.close()


def test_a_slow_reader_pauses_the_generator_and_loses_nothing(
    stack: Stack, burst: RunningRunner
) -> None:
    """A reader that stops reading pauses the model at its stream credit; nothing piles up,
    other calls go on, and reading again delivers every chunk in order."""
    # Enough output to fill the socket buffers between the reader and the control plane.
    reader = Reader(stack, {"method": "burst", "n": 6000})
    try:
        first = reader.take(5)
        wait_for(lambda: _paused(stack), "the stream to pause on its reader")
        (task,) = _paused(stack)
        assert task.task_id == reader.task_id
        executor = burst.runner._executor
        assert executor is not None
        gate = executor._gates[(task.task_id, task.attempt)]
        entry = task.link.session.inflight[(task.task_id, task.attempt)]  # type: ignore[union-attr]
        # The generator went no further than its credit, and the credit no further than one
        # window beyond what the reader's connection took.
        assert _model(burst).produced == gate.allowed == entry.credit_upto
        assert entry.credit_upto - task.consumed <= 16
        assert task.received - task.consumed <= 16
        assert _model(burst).produced < 6000
        with httpx.Client(headers=stack.headers) as other:
            for _ in range(5):
                r = other.post(f"{stack.api_base}/v2/models/burst/ping", json={})
                assert r.json()["output"] == "pong"
        rest = [data for name, data in reader.events() if name == "chunk"]
        outputs = first + [d["output"] for d in rest]
        assert [int(o[:8]) for o in outputs] == list(range(6000))
    finally:
        reader.close()
    wait_for(lambda: not _dispatcher(stack).tasks, "the stream to finish")
    assert not _paused(stack)


def test_a_reader_that_hangs_up_cancels_at_once(stack: Stack, burst: RunningRunner) -> None:
    """Closing a paused stream cancels its task: the slot comes back, the generator closes."""
    reader = Reader(stack, {"method": "burst", "n": 1_000_000})
    reader.take(3)
    wait_for(lambda: _paused(stack), "the stream to pause on its reader")
    reader.close()
    executor = burst.runner._executor
    assert executor is not None
    wait_for(lambda: executor.busy == 0, "the runner slot to come back")
    wait_for(lambda: _model(burst).closed, "the generator to be closed")
    assert not _dispatcher(stack).tasks and not _paused(stack)
    (record,) = list(_dispatcher(stack).recent)
    assert record.status == "cancelled"


def _token(stack: Stack) -> str:
    r = httpx.post(
        f"{stack.api_base}/v2/tokens",
        headers=stack.headers,
        json={"name": "other", "scopes": ["predict", "read"]},
    )
    return str(r.json()["token"])


def test_stalled_streams_are_capped_per_token(stack: Stack, tmp_path: Path) -> None:
    """Over `max_paused_streams` stalled streams of one token, the newest fails SLOW_READER;
    its slot comes back; another token's stream is not affected."""
    stack.stop_control()
    stack.start_control(heartbeat_interval=0.4, stream_window=8, max_paused_streams=1)
    running = stack.start_runner(write_model(tmp_path, "burst", BURST_MODEL), pool_size=4)
    readers = [Reader(stack, {"method": "burst", "n": 1_000_000}) for _ in range(2)]
    other = Reader(stack, {"method": "burst", "n": 1_000_000}, token=_token(stack))
    try:
        for reader in [*readers, other]:
            reader.take(1)
        wait_for(
            lambda: [r for r in _dispatcher(stack).recent if r.code == "SLOW_READER"],
            "a stream over the cap to fail",
        )
        (failed,) = [r for r in _dispatcher(stack).recent if r.code == "SLOW_READER"]
        loser = next(r for r in readers if r.task_id == failed.task_id)
        events = list(loser.events())
        assert events[-1][0] == "error" and events[-1][1]["code"] == "SLOW_READER"
        assert "--max-paused-streams" in events[-1][1]["message"]
        assert all(name == "chunk" for name, _ in events[:-1])
        executor = running.runner._executor
        assert executor is not None
        wait_for(lambda: executor.busy == 2, "the failed stream's slot to come back")
        paused = {t.task_id for t in _paused(stack)}
        assert paused == {r.task_id for r in [*readers, other] if r is not loser}
    finally:
        for reader in [*readers, other]:
            reader.close()


def test_a_stopped_reader_is_cancelled_after_the_idle_timeout(stack: Stack, tmp_path: Path) -> None:
    """A stream whose reader takes nothing for the idle timeout fails SLOW_READER, its slot
    comes back and its connection is dropped."""
    stack.stop_control()
    stack.start_control(heartbeat_interval=0.4, stream_window=8, stream_idle_timeout=1.5)
    running = stack.start_runner(write_model(tmp_path, "burst", BURST_MODEL), pool_size=2)
    reader = Reader(stack, {"method": "burst", "n": 1_000_000})
    try:
        reader.take(1)
        executor = running.runner._executor
        assert executor is not None
        wait_for(lambda: _dispatcher(stack).recent, "the stalled stream to be cancelled")
        (record,) = list(_dispatcher(stack).recent)
        assert record.code == "SLOW_READER"
        wait_for(lambda: executor.busy == 0, "the slot to come back")
        # The connection goes too: nothing could be sent to a client that reads nothing.
        assert stack.plane is not None
        wait_for(lambda: stack.plane.open_connections == 0, "the stalled connection to drop")
        events = []
        with contextlib.suppress(httpx.TransportError):  # dropped before all it held was read
            events.extend(reader.events())
        if events and events[-1][0] != "chunk":
            assert events[-1][1]["code"] == "SLOW_READER"
            assert "read nothing" in events[-1][1]["message"]
    finally:
        reader.close()


@pytest.mark.parametrize(
    ("settings", "body", "words"),
    [
        (
            {"stream_idle_timeout": 0.5},
            {"method": "trickle", "every": 0.01, "first_only": True},
            "--stream-idle-timeout",
        ),
        (
            {"max_stream_duration": 1.0},
            {"method": "trickle", "every": 0.02},
            "--max-stream-duration",
        ),
    ],
    ids=["idle", "duration"],
)
def test_streams_end_at_their_idle_limit_and_maximum_duration(
    stack: Stack, tmp_path: Path, settings: dict[str, float], body: dict[str, Any], words: str
) -> None:
    """A silent model, and a stream past its maximum duration, end with DEADLINE_EXCEEDED."""
    stack.stop_control()
    stack.start_control(**settings)
    running = stack.start_runner(write_model(tmp_path, "burst", BURST_MODEL), pool_size=2)
    reader = Reader(stack, body)
    try:
        events = list(reader.events())
    finally:
        reader.close()
    assert events[0][0] == "chunk"
    name, data = events[-1]
    assert name == "error" and data["code"] == "DEADLINE_EXCEEDED"
    assert words in data["message"]
    executor = running.runner._executor
    assert executor is not None
    wait_for(lambda: executor.busy == 0, "the slot to come back")


def test_a_runner_before_stream_credit_still_streams(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A runner speaking protocol 1.1 streams without credit; the control plane says so once."""
    monkeypatch.setattr("edge_runner.protocol.runner_session.PROTOCOL_VERSION", (1, 1))
    caplog.set_level(logging.WARNING, "edge_runner.control.state")
    running = stack.start_runner(write_model(tmp_path, "burst", BURST_MODEL), pool_size=2)
    session = running.runner.connection.session
    assert session is not None and session.stream_window == 0
    with httpx.Client(headers=stack.headers, timeout=30) as client:
        r = client.post(f"{stack.api_base}/v2/models/burst/burst", json={"n": 300, "size": 16})
    chunks = [line for line in r.text.splitlines() if line.startswith("event: chunk")]
    assert len(chunks) == 300
    warnings = [r for r in caplog.records if "before stream credit" in r.getMessage()]
    assert len(warnings) == 1 and running.runner_id in warnings[0].getMessage()
    _raw_tunnel(stack, [_hello(running.runner_id)])  # takes the id over: the runner reconnects
    wait_for(lambda: running.runner.reconnects >= 1, "the runner to reconnect")
    assert len([r for r in caplog.records if "before stream credit" in r.getMessage()]) == 1


def test_a_stopping_control_plane_drops_readers_that_read_nothing(
    stack: Stack, burst: RunningRunner, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopping with a paused stream drops its connection at once: no forced cancel and no
    "Exception in ASGI application" traceback from uvicorn."""
    caplog.set_level(logging.ERROR)
    reader = Reader(stack, {"method": "burst", "n": 1_000_000})
    try:
        reader.take(1)
        wait_for(lambda: _paused(stack), "the stream to pause on its reader")
        stack.stop_control()
    finally:
        reader.close()
    errors = [r.getMessage() for r in caplog.records if r.name.startswith("uvicorn")]
    assert errors == []


def _rss_mib(pid: int) -> float:
    return (
        int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    )


def _busy_slots(api_base: str, headers: dict[str, str]) -> int:
    runners = httpx.get(f"{api_base}/v2/runners", headers=headers).json()["runners"]
    return sum(int(r["busy"]) for r in runners)


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from /proc")
def test_readers_that_stop_reading_leave_both_daemons_memory_flat(tmp_path: Path) -> None:
    """Against real control plane and runner processes, eight streams nobody reads grow
    neither process, other calls go on meanwhile, and the slots come back at hang-up."""
    model = write_model(tmp_path, "burst", BURST_MODEL)
    env = dict(os.environ)
    control, info = spawn_ready(
        ["control", "--port", "0", "--grpc-port", "0", "--data-dir", str(tmp_path / "cp")], env
    )
    token = Path(info["admin_token_file"]).read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    runner_env = dict(env, EDGE_RUNNER_API_BASE=info["api_base"], EDGE_RUNNER_PAT=token)
    runner, _ = spawn_ready(["runner", str(model), "--pool-size", "16"], runner_env)
    try:
        _watch_stopped_readers(info["api_base"], headers, token, control.pid, runner.pid)
    finally:
        codes = (stop_process(runner), stop_process(control))
    assert codes == (0, 0)


def _watch_stopped_readers(
    api_base: str, headers: dict[str, str], token: str, control: int, runner: int
) -> None:
    host, port = api_base.removeprefix("http://").rsplit(":", 1)
    body = b'{"n": 100000000, "size": 1024}'
    request = (
        b"POST /v2/models/burst/burst HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (token.encode(), len(body), body)
    )
    sockets: list[socket.socket] = []
    try:
        for _ in range(8):
            sock = socket.create_connection((host, int(port)))
            sock.sendall(request)
            sockets.append(sock)
        wait_for(lambda: _busy_slots(api_base, headers) == 8, "eight streams to run")
        start = (_rss_mib(control), _rss_mib(runner))
        peak = list(start)
        deadline = time.monotonic() + 2_000 * MS  # long enough to see megabytes a second
        with httpx.Client(base_url=api_base, headers=headers, timeout=10) as client:
            while time.monotonic() < deadline:
                assert client.post("/v2/models/burst/ping", json={}).json()["output"] == "pong"
                peak = [max(peak[0], _rss_mib(control)), max(peak[1], _rss_mib(runner))]
        assert peak[0] - start[0] < 32 and peak[1] - start[1] < 32, (start, peak)
    finally:
        for sock in sockets:
            sock.close()
    wait_for(lambda: _busy_slots(api_base, headers) == 0, "the slots to come back")
