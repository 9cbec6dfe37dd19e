"""edge_runner.testing's in-memory tunnel: the runner and the control plane with no socket."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from edge_runner.backends.python_model import PythonModelBackend
from edge_runner.control.config import ControlConfig
from edge_runner.control.registry import Registry, TokenInfo
from edge_runner.control.state import ControlState
from edge_runner.control.tasks import Task, TaskDone, TaskOutput, TaskState
from edge_runner.control.tunnel import EndKind, TunnelEnd, serve_tunnel
from edge_runner.errors import TunnelError
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import RunnerSession
from edge_runner.runner import Runner, RunnerSettings
from edge_runner.testing import (
    ECHO_MODEL,
    MS,
    EchoBackend,
    MemoryEnd,
    memory_dialer,
    transport_pair,
)

ALICE = TokenInfo(user_id="alice", scopes=frozenset({"runner"}), name="t", token_id="tok-a")


async def _pump(session: RunnerSession, end: MemoryEnd) -> None:
    for frame in session.data_to_send():
        await end.send(frame)


async def _next(session: RunnerSession, end: MemoryEnd) -> list[object]:
    frame = await asyncio.wait_for(end.recv(), 5_000 * MS)
    assert frame is not None, "the control plane ended the tunnel"
    return list(session.receive_frame(frame))


def test_a_runner_session_meets_the_control_plane_in_memory(tmp_path: Path) -> None:
    """Hello → Welcome → Task → Result → Goodbye through serve_tunnel, nothing listening."""

    async def scenario() -> None:
        registry = Registry(tmp_path / f"{uuid.uuid4().hex}.db")
        registry.create_user("alice")
        state = ControlState(ControlConfig(data_dir=tmp_path), registry)
        runner_end, control_end = transport_pair()
        served = asyncio.create_task(serve_tunnel(state, ALICE, control_end))
        spec = pb.ModelSpec(model_id="m1")
        session = RunnerSession(pb.Hello(runner_id="mem-1", models=[spec]))
        await _pump(session, runner_end)
        events = await _next(session, runner_end)
        assert [type(e) for e in events] == [pb.Welcome]
        session.grant("m1", 1)
        await _pump(session, runner_end)

        task = Task("task-1", "alice", "m1", "predict", b'{"text": "hi"}')
        state.dispatcher.submit(task)
        events = [e for e in await _next(session, runner_end) if isinstance(e, pb.Task)]
        assert [(e.task_id, e.method, e.payload) for e in events] == [
            ("task-1", "predict", b'{"text": "hi"}')
        ]
        session.send_result("task-1", events[0].attempt, b'"hi"')
        session.send_goodbye("done")
        await _pump(session, runner_end)
        await runner_end.finish()
        end = await asyncio.wait_for(served, 5_000 * MS)
        assert end.kind is EndKind.CLOSED
        assert task.state is TaskState.DONE
        assert registry.runner_owner("mem-1") == "alice"

    asyncio.run(scenario())


def test_a_dropped_in_memory_tunnel_fails_both_ends() -> None:
    """finish() is a clean end for the peer; abort() makes both ends fail like a reset."""

    async def scenario() -> None:
        runner_end, control_end = transport_pair()
        await runner_end.send(b"one")
        await runner_end.finish()
        assert await control_end.recv() == b"one"
        assert await control_end.recv() is None
        with pytest.raises(ConnectionResetError):
            await runner_end.send(b"after finish")
        runner_end.abort()
        with pytest.raises(TunnelError):
            await runner_end.recv()
        with pytest.raises(ConnectionResetError):
            await control_end.send(b"to a dropped peer")

    asyncio.run(scenario())


@pytest.mark.parametrize("folder", [True, False], ids=["echo-folder", "echo-backend"])
def test_a_real_runner_serves_real_control_state_over_the_in_memory_tunnel(
    tmp_path: Path, folder: bool
) -> None:
    """Runner + ControlState on one loop: registration, a unary task and a stream, a drain."""
    backend = PythonModelBackend(ECHO_MODEL) if folder else EchoBackend()

    async def scenario() -> None:
        registry = Registry(tmp_path / "control.db")
        registry.create_user("alice")
        state = ControlState(ControlConfig(data_dir=tmp_path), registry)
        ends: list[TunnelEnd] = []
        settings = RunnerSettings(api_base="memory://", token="unused", pool_size=2)
        runner = Runner(
            settings,
            backend,
            "mem-runner",
            dial=memory_dialer(state, ALICE, ends),
        )
        async with runner:
            await asyncio.wait_for(runner.wait_ready(), 5_000 * MS)
            assert registry.runner_owner("mem-runner") == "alice"
            unary = Task("t-unary", "alice", "echo", "predict", b'{"text": "hi"}')
            stream = Task("t-stream", "alice", "echo", "generate", b'{"text": "ab", "n": 2}')
            for task in (unary, stream):
                state.dispatcher.submit(task)
            done = await asyncio.wait_for(unary.events.get(), 5_000 * MS)
            assert done == TaskDone(b'"hi"', None)
            events = [await asyncio.wait_for(stream.events.get(), 5_000 * MS) for _ in range(3)]
            assert events[:2] == [TaskOutput(b'"ab"'), TaskOutput(b'"ab"')]
            assert isinstance(events[2], TaskDone)
        assert unary.state is stream.state is TaskState.DONE
        if isinstance(backend, EchoBackend):
            assert backend.calls == [
                ("echo", "predict", {"text": "hi"}),
                ("echo", "generate", {"text": "ab", "n": 2}),
            ]
        assert [end.kind for end in ends] == [EndKind.CLOSED]

    asyncio.run(scenario())


def test_the_echo_backend_checks_arguments_and_stops_a_cancelled_stream() -> None:
    """Arguments are checked against its signatures; a cancel ends a stream between chunks."""
    import threading

    from edge_runner.backends.base import Reply, StreamReply
    from edge_runner.errors import BackendError, ErrorCode

    backend = EchoBackend("e2")
    assert sorted(m.name for m in backend.specs()[0].methods) == ["chat", "generate", "predict"]
    cancel = threading.Event()
    assert backend.call("e2", "predict", b'{"text": "x"}', cancel) == Reply(b'"x"')
    for bad, code in [
        ((b'{"text": 3}', "predict", "e2"), ErrorCode.INVALID_ARGUMENT),
        ((b"[]", "predict", "e2"), ErrorCode.INVALID_ARGUMENT),
        ((b"{}", "shout", "e2"), ErrorCode.NOT_FOUND),
        ((b'{"text": "x"}', "predict", "echo"), ErrorCode.NOT_FOUND),
    ]:
        payload, method, model = bad
        with pytest.raises(BackendError) as caught:
            backend.call(model, method, payload, cancel)
        assert caught.value.code == code
    reply = backend.call("e2", "generate", b'{"text": "y", "n": 5}', cancel)
    assert isinstance(reply, StreamReply)
    assert next(reply.chunks) == b'"y"'
    cancel.set()
    assert list(reply.chunks) == []
