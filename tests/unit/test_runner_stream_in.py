"""A real Runner serving stream-in tasks over the in-memory tunnel, with the control plane's side
driven by hand through a real ControlSession: input credit, back-pressure, cancel, a lost
tunnel."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest

from edge_runner.backends.base import Backend
from edge_runner.backends.python_model import PythonModelBackend
from edge_runner.errors import TunnelError
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import ControlSession
from edge_runner.protocol.codec import decode_runner
from edge_runner.runner import Runner, RunnerSettings
from edge_runner.testing import ECHO_MODEL, EchoBackend, MemoryEnd, transport_pair
from tests.conftest import MS

KEY = ("t1", 1)
_E = TypeVar("_E")


class _HandControl:
    """Hands each tunnel the runner dials to the test, which plays the control plane."""

    def __init__(self) -> None:
        self.tunnels: asyncio.Queue[MemoryEnd] = asyncio.Queue()
        self.latest: MemoryEnd | None = None

    @contextlib.asynccontextmanager
    async def dial(self) -> AsyncIterator[MemoryEnd]:
        runner_end, control_end = transport_pair()
        self.latest = control_end
        await self.tunnels.put(control_end)
        try:
            yield runner_end
        finally:
            await runner_end.finish()


class _Tunnel:
    """One tunnel's control end and its session; ``events`` keeps what arrived unclaimed."""

    def __init__(self, end: MemoryEnd, session: ControlSession) -> None:
        self.end = end
        self.session = session
        self.events: list[object] = []

    async def flush(self) -> None:
        for frame in self.session.data_to_send():
            await self.end.send(frame)

    async def expect(self, kind: type[_E]) -> _E:
        """The next event of ``kind`` (the others stay in ``events``)."""
        deadline = time.monotonic() + 5_000 * MS
        while True:
            for i, event in enumerate(self.events):
                if isinstance(event, kind):
                    del self.events[i]
                    return event
            frame = await asyncio.wait_for(self.end.recv(), deadline - time.monotonic())
            assert frame is not None, f"the tunnel ended before a {kind.__name__}"
            self.events.extend(self.session.receive_frame(frame))


async def _open(hand: _HandControl, window: int) -> _Tunnel:
    """Accept the runner's next tunnel and wait for its slot grant."""
    end = await asyncio.wait_for(hand.tunnels.get(), 5_000 * MS)
    session = ControlSession(
        server_version="t", heartbeat_interval_ms=60_000, lease_ttl_ms=120_000, stream_window=window
    )
    tunnel = _Tunnel(end, session)
    await tunnel.expect(pb.Hello)
    session.accept("r1")
    await tunnel.flush()
    await tunnel.expect(pb.Credit)
    return tunnel


async def _until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 5_000 * MS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(5 * MS)


async def _close_after_goodbye(end: MemoryEnd | None) -> None:
    """End the call once the stopping runner says Goodbye, as the control plane does."""
    if end is None or end.aborted:
        return
    with contextlib.suppress(TunnelError):
        while (frame := await end.recv()) is not None:
            if decode_runner(frame).HasField("goodbye"):
                await end.finish()
                return


def _run(
    scenario: Callable[[Runner, _HandControl], Awaitable[None]], backend: Backend | None = None
) -> None:
    async def main() -> None:
        hand = _HandControl()
        settings = RunnerSettings(
            api_base="memory://",
            token="unused",
            pool_size=2,
            backoff_initial=10 * MS,
            grace_period=1_000 * MS,
        )
        runner = Runner(settings, backend or EchoBackend(), "r1", dial=hand.dial)
        async with runner:
            await scenario(runner, hand)
            closing = asyncio.create_task(_close_after_goodbye(hand.latest))
            runner.request_stop()
            runner.request_stop()  # and cancel whatever is left
            await runner.wait_closed()
            await closing

    asyncio.run(main())


async def _start_chat(tunnel: _Tunnel, prefix: str = ">") -> pb.InputCredit:
    tunnel.session.send_task(
        KEY[0], KEY[1], "echo", "chat", f'{{"prefix": "{prefix}"}}'.encode(), input_stream=True
    )
    await tunnel.flush()
    return await tunnel.expect(pb.InputCredit)


@pytest.mark.parametrize("folder", [False, True], ids=["echo-backend", "echo-folder"])
def test_a_stream_in_task_streams_both_ways_under_credit(folder: bool) -> None:
    """The first input credit is the window; each output answers one input item; the credit
    follows what the model read; InputEnd ends the task with a result; the snapshot counts."""

    async def scenario(runner: Runner, hand: _HandControl) -> None:
        tunnel = await _open(hand, window=4)
        first = await _start_chat(tunnel)
        assert first.upto_seq == 4
        s = tunnel.session
        sent = outputs = 0
        got: list[bytes] = []
        while outputs < 10:
            while sent < 10 and s.input_room(*KEY):
                s.send_input(*KEY, f'"{sent}"'.encode())
                sent += 1
            await tunnel.flush()
            chunk = await tunnel.expect(pb.Chunk)
            got.append(chunk.payload)
            outputs += 1
            s.send_stream_credit(*KEY, outputs + 4)
            if outputs == 5:
                (task,) = runner.snapshot()["tasks"]
                assert task.get("inputs", 0) >= task.get("outputs", 0) >= 5
        s.send_input_end(*KEY)
        await tunnel.flush()
        result = await tunnel.expect(pb.Result)
        assert result.task_id == KEY[0]
        assert got == [f'">{n}"'.encode() for n in range(10)]
        await _until(lambda: runner.busy == 0, "the slot to free")

    _run(scenario, PythonModelBackend(ECHO_MODEL) if folder else None)


def test_a_model_that_does_not_read_holds_its_input_at_one_window() -> None:
    """With its output paused (no stream credit) the model stops reading, and the runner grants
    no input beyond one window past what it read: the sender is held back."""

    async def scenario(runner: Runner, hand: _HandControl) -> None:
        tunnel = await _open(hand, window=4)
        await _start_chat(tunnel, prefix="")
        s = tunnel.session
        for n in range(4):
            s.send_input(*KEY, f'"{n}"'.encode())
        await tunnel.flush()
        for _ in range(4):  # the model answers 4 items, then waits for output credit
            await tunnel.expect(pb.Chunk)
        assert [(await tunnel.expect(pb.InputCredit)).upto_seq for _ in range(2)] == [6, 8]
        for n in range(4, 8):
            s.send_input(*KEY, f'"{n}"'.encode())
        await tunnel.flush()
        sent = 8
        executor = runner._executor
        assert executor is not None
        await _until(
            lambda: (
                (feed := executor.input_feed(KEY)) is not None
                and feed.consumed == 4
                and feed.received == 8
            ),
            "the model to read 4 items and 4 more to wait",
        )
        assert s.input_room(*KEY) == 0  # held back: 8 granted, 8 sent, 4 buffered
        s.send_stream_credit(*KEY, 100)
        await tunnel.flush()
        while sent < 20:
            await tunnel.expect(pb.InputCredit)
            while sent < 20 and s.input_room(*KEY):
                s.send_input(*KEY, f'"{sent}"'.encode())
                sent += 1
            await tunnel.flush()
        s.send_input_end(*KEY)
        await tunnel.flush()
        await tunnel.expect(pb.Result)
        chunks = [e for e in tunnel.events if isinstance(e, pb.Chunk)]
        assert len(chunks) == 20 - 4 and chunks[-1].payload == b'"19"'

    _run(scenario)


def test_a_cancel_stops_a_model_waiting_for_input_and_frees_the_slot() -> None:
    """A Cancel wakes the model blocked on its next input item; the task ends CANCELLED."""

    async def scenario(runner: Runner, hand: _HandControl) -> None:
        tunnel = await _open(hand, window=4)
        await _start_chat(tunnel)
        tunnel.session.send_input(*KEY, b'"a"')
        await tunnel.flush()
        assert (await tunnel.expect(pb.Chunk)).payload == b'">a"'
        tunnel.session.send_cancel(*KEY, "the client went away")
        await tunnel.flush()
        error = await tunnel.expect(pb.TaskError)
        assert error.code == "CANCELLED"
        await _until(lambda: runner.busy == 0, "the slot to free")
        assert tunnel.session.credits["echo"] == 2  # the whole pool again

    _run(scenario)


def test_a_lost_tunnel_cancels_its_stream_in_tasks() -> None:
    """When the tunnel drops, a stream-in task waiting for input is cancelled at once (its
    input cannot come on another tunnel); the next tunnel gets its slot back."""

    async def scenario(runner: Runner, hand: _HandControl) -> None:
        tunnel = await _open(hand, window=4)
        await _start_chat(tunnel)
        tunnel.session.send_input(*KEY, b'"a"')
        await tunnel.flush()
        await tunnel.expect(pb.Chunk)
        tunnel.end.abort()
        await _until(lambda: runner.busy == 0, "the stream-in task to be cancelled")
        assert len(runner.ledger) == 0
        again = await _open(hand, window=4)
        assert again.session.credits["echo"] == 2  # the whole pool

    _run(scenario)
