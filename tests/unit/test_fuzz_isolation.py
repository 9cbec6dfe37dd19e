"""One user's runner cannot touch another user's tasks, whatever frames it sends.

Alice's runner is registered with a real ``ControlState`` (SQLite registry under tmp_path) and
holds her tasks; Bob's runner then opens a tunnel and sends random frames, through the same two
steps the tunnel takes (``ControlSession.receive_frame`` + ``ControlState.register_runner`` for
the Hello, :func:`edge_runner.control.tunnel.apply_frame` for every frame after it). Frames
name Alice's task ids more often than not. Her tasks' events and state must not change.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from edge_runner.control.config import ControlConfig
from edge_runner.control.dispatch import RunnerLink
from edge_runner.control.registry import Registry
from edge_runner.control.state import ControlState
from edge_runner.control.tasks import Task
from edge_runner.control.tunnel import apply_frame
from edge_runner.errors import ProtocolError
from edge_runner.models.signatures import MethodKind, MethodSignature
from edge_runner.models.wire import model_spec
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import PROTOCOL_VERSION, ControlSession, SessionState, encode
from tests.fuzzing import MODEL_IDS, TASK_IDS, envelopes, examples, frames, mostly

pytestmark = pytest.mark.fuzz

ALICE, BOB = "alice", "bob"
ALICE_RUNNER, BOB_RUNNER = "runner-a", "runner-b"
_VERSION = pb.ProtocolVersion(major=PROTOCOL_VERSION[0], minor=PROTOCOL_VERSION[1])
_SPECS = [
    model_spec(
        model,
        (MethodSignature("predict", MethodKind.UNARY, (), "str", ""),),
        backend="python",
        chat=False,
    )
    for model in MODEL_IDS
]
_SETTINGS = settings(
    max_examples=examples(100),
    # tmp_path only holds one fresh database per example; nothing carries over between them
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _hello(runner_id: str, inflight: list[tuple[str, int]]) -> bytes:
    hello = pb.Hello(
        runner_id=runner_id,
        protocol=_VERSION,
        pool_size=4,
        models=_SPECS,
        inflight=[pb.TaskRef(task_id=t, attempt=a) for t, a in inflight],
    )
    return encode(pb.RunnerMessage(hello=hello))


def _connect(
    state: ControlState, user: str, hello: bytes
) -> tuple[ControlSession, RunnerLink | None]:
    """What serve_tunnel does with a tunnel's first frame."""
    session = ControlSession(server_version="t", heartbeat_interval_ms=5000, lease_ttl_ms=10000)
    session.receive_frame(hello)
    link = state.register_runner(user, session, f"token-{user}")
    if link is not None:
        link.flush()
    return session, link


def _alice_with_tasks(tmp_path: Path, streamed: int) -> tuple[ControlState, RunnerLink, list[Task]]:
    """Alice's runner with credit, running one task per pool id (``streamed`` of them have
    sent a chunk)."""
    registry = Registry(tmp_path / f"{uuid.uuid4().hex}.db")
    for user in (ALICE, BOB):
        registry.create_user(user)
    state = ControlState(ControlConfig(data_dir=tmp_path), registry)
    session, link = _connect(state, ALICE, _hello(ALICE_RUNNER, []))
    assert link is not None
    apply_frame(state, session, link, encode(pb.RunnerMessage(credit=pb.Credit(grant={"m1": 8}))))
    tasks = [Task(task_id, ALICE, "m1", "predict", b"{}") for task_id in TASK_IDS]
    for task in tasks:
        state.dispatcher.submit(task)
    for task in tasks[:streamed]:
        chunk = pb.Chunk(task_id=task.task_id, attempt=1, seq=0, payload=b'"x"')
        apply_frame(state, session, link, encode(pb.RunnerMessage(chunk=chunk)))
    return state, link, tasks


def _peek(queue: asyncio.Queue[Any]) -> list[Any]:
    """What an asyncio queue holds, left as it was."""
    items = [queue.get_nowait() for _ in range(queue.qsize())]
    for item in items:
        queue.put_nowait(item)
    return items


def _snapshot(state: ControlState, link: RunnerLink, tasks: list[Task]) -> dict[str, Any]:
    """Everything about Alice's tasks and the runner holding them that she could observe."""
    return {
        "tasks": [
            (t.task_id, t.state, t.attempt, t.link is link, t.runner_id, t.produced_output)
            for t in tasks
        ],
        "events": {t.task_id: _peek(t.events) for t in tasks},
        "runner attached": state.dispatcher.links.get(ALICE_RUNNER) is link,
        "runner holds": sorted(link.tasks),
        "frames to her runner (None closes it)": _peek(link.outbox),
        "session": (link.session.state, sorted(link.session.inflight)),
        "record": [
            (r.user_id, r.status) for r in state.registry.runners() if r.runner_id == ALICE_RUNNER
        ],
    }


def _bob_sends(state: ControlState, hello: bytes, traffic: list[bytes]) -> None:
    """Bob's tunnel: the Hello, then frames until the session ends, as the tunnel runs them."""
    try:
        session, link = _connect(state, BOB, hello)
    except ProtocolError:
        return
    if link is None:
        return
    for frame in traffic:
        try:
            apply_frame(state, session, link, frame)
        except ProtocolError:
            return
        if session.state is SessionState.CLOSED:
            return


def _frame(**message: Any) -> bytes:
    return encode(pb.RunnerMessage(**message))


_ALICES = st.tuples(st.sampled_from(TASK_IDS), st.integers(0, 2))  # her task ids, attempt 1
#: Bob's tunnel after its Hello: frames about Alice's task ids, any other message, garbage
_TRAFFIC = st.lists(
    mostly(
        st.builds(
            lambda key, seq: _frame(
                chunk=pb.Chunk(task_id=key[0], attempt=key[1], seq=seq, payload=b'"x"')
            ),
            _ALICES,
            st.integers(0, 2),
        ),
        st.builds(lambda key: _frame(result=pb.Result(task_id=key[0], attempt=key[1])), _ALICES),
        st.builds(
            lambda key, retry: _frame(
                task_error=pb.TaskError(
                    task_id=key[0], attempt=key[1], code="MODEL_ERROR", retryable=retry
                )
            ),
            _ALICES,
            st.booleans(),
        ),
        st.builds(
            lambda model, n: _frame(credit=pb.Credit(grant={model: n})),
            st.sampled_from(MODEL_IDS),
            st.integers(0, 3),
        ),
        envelopes(pb.RunnerMessage).map(encode),
        anything=frames(pb.RunnerMessage),
    ),
    max_size=12,
)
_INFLIGHT = st.lists(_ALICES, max_size=4)


@_SETTINGS
@given(traffic=_TRAFFIC, inflight=_INFLIGHT, streamed=st.integers(0, 3))
def test_another_users_runner_never_touches_your_tasks(
    tmp_path: Path, traffic: list[bytes], inflight: list[tuple[str, int]], streamed: int
) -> None:
    """Bob's runner, under its own id, listing Alice's task ids in its Hello and naming them
    in Chunk, Result and TaskError frames, leaves her tasks' events and state as they were."""
    state, link, tasks = _alice_with_tasks(tmp_path, streamed)
    try:
        before = _snapshot(state, link, tasks)
        _bob_sends(state, _hello(BOB_RUNNER, inflight), traffic)
        assert _snapshot(state, link, tasks) == before
    finally:
        state.registry.close()


@settings(_SETTINGS, phases=[Phase.explicit, Phase.reuse, Phase.generate])  # fails at once
@given(traffic=_TRAFFIC, inflight=_INFLIGHT, streamed=st.integers(0, 3))
def test_another_users_runner_cannot_take_over_your_runner_id(
    tmp_path: Path, traffic: list[bytes], inflight: list[tuple[str, int]], streamed: int
) -> None:
    """Bob's runner reusing Alice's runner id (and listing her tasks as in flight) is refused
    before it touches her runner or her tasks."""
    state, link, tasks = _alice_with_tasks(tmp_path, streamed)
    try:
        before = _snapshot(state, link, tasks)
        _bob_sends(state, _hello(ALICE_RUNNER, inflight), traffic)
        assert _snapshot(state, link, tasks) == before
    finally:
        state.registry.close()
