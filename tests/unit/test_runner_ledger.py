"""The runner's task ledger across tunnels, driven against real sans-I/O sessions: no sockets,
no event loop."""

from __future__ import annotations

from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import ControlSession, RunnerSession, SessionState
from edge_runner.protocol.session import InflightTask
from edge_runner.runner.ledger import (
    Disposal,
    ErrorOut,
    ResultOut,
    TaskLedger,
    stopped_error,
)

KEY = ("t1", 1)


def _pump(src: RunnerSession | ControlSession, dst: RunnerSession | ControlSession) -> list[object]:
    events: list[object] = []
    for frame in src.data_to_send():
        events.extend(dst.receive_frame(frame))
    return events


def _tunnel(
    ledger: TaskLedger, adopted: dict[tuple[str, int], InflightTask] | None = None
) -> tuple[RunnerSession, ControlSession]:
    """Open a tunnel whose Hello lists what the ledger holds; the control plane adopts
    ``adopted`` and the ledger resumes."""
    runner = RunnerSession(pb.Hello(runner_id="r1", pool_size=2, inflight=ledger.refs()))
    control = ControlSession(server_version="t", heartbeat_interval_ms=5000, lease_ttl_ms=10000)
    (hello,) = _pump(runner, control)
    assert isinstance(hello, pb.Hello)
    control.accept("r1", adopted)
    (welcome,) = _pump(control, runner)
    assert isinstance(welcome, pb.Welcome)
    return runner, control


def _start(ledger: TaskLedger) -> tuple[RunnerSession, ControlSession]:
    """A fresh tunnel carrying one task, KEY, now held by the ledger."""
    runner, control = _tunnel(ledger)
    runner.grant("m", 2)
    _pump(runner, control)
    control.send_task(KEY[0], KEY[1], "m", "generate", b"{}", queued_ms=250)
    (task,) = _pump(control, runner)
    assert isinstance(task, pb.Task)
    held = ledger.take(task)
    assert held.model_id == "m" and held.method == "generate" and held.queue_wait == 0.25
    return runner, control


def test_chunks_keep_one_numbering_across_tunnels() -> None:
    """Chunks produced while the tunnel is down are held with their numbers and follow the
    ones already sent, in order, once the control plane adopts the task."""
    ledger = TaskLedger()
    first, first_control = _start(ledger)
    assert ledger.chunk(KEY, b"a", first)
    (chunk,) = _pump(first, first_control)
    assert isinstance(chunk, pb.Chunk) and chunk.seq == 0
    assert not ledger.chunk(KEY, b"b", None)  # the tunnel dropped: held
    assert not ledger.chunk(KEY, b"c", None)
    assert ledger.refs() == [pb.TaskRef(task_id="t1", attempt=1)]

    runner, control = _tunnel(ledger, {KEY: InflightTask("m", next_seq=1)})
    resumed = ledger.resume(runner, {KEY})
    assert resumed.adopted == 1 and resumed.cancel == []
    events = _pump(runner, control)
    assert [(e.seq, e.payload) for e in events if isinstance(e, pb.Chunk)] == [(1, b"b"), (2, b"c")]
    assert ledger.finish(KEY, ResultOut(b'"done"', None), runner) is Disposal.SENT
    (result,) = _pump(runner, control)
    assert isinstance(result, pb.Result) and len(ledger) == 0


def test_a_task_finished_offline_is_sent_once_adopted_then_forgotten() -> None:
    """A result produced with no tunnel waits in the ledger and goes out after the Welcome."""
    ledger = TaskLedger()
    _start(ledger)
    assert ledger.finish(KEY, ResultOut(b'"late"', None), None) is Disposal.HELD
    held = ledger.get(KEY)
    assert held is not None and held.finished and len(ledger) == 1

    runner, control = _tunnel(ledger, {KEY: InflightTask("m")})
    assert ledger.resume(runner, {KEY}).adopted == 1
    (result,) = _pump(runner, control)
    assert isinstance(result, pb.Result) and result.payload == b'"late"'
    assert len(ledger) == 0 and control.credits["m"] == 1  # the slot came back


def test_tasks_the_control_plane_gave_up_are_cancelled_and_their_slots_released() -> None:
    """A running task not adopted is named for cancelling and its output dropped; a finished
    one not adopted is forgotten at once."""
    ledger = TaskLedger()
    _start(ledger)
    ledger.chunk(KEY, b"x", None)
    other = pb.Task(task_id="t2", attempt=1, model_id="m", method="predict")
    ledger.take(other)
    ledger.finish(("t2", 1), ErrorOut("MODEL_ERROR", "boom"), None)

    runner, control = _tunnel(ledger)  # a lease expired: nothing adopted
    resumed = ledger.resume(runner, set())
    assert resumed.adopted == 0 and resumed.cancel == [KEY]
    assert _pump(runner, control) == []  # neither the held chunk nor the old error goes out
    held = ledger.get(KEY)
    assert held is not None and held.unwanted and held.pending == []
    assert ledger.get(("t2", 1)) is None
    assert not ledger.chunk(KEY, b"y", runner)  # still running until it sees its cancel
    assert ledger.finish(KEY, ErrorOut("CANCELLED", "cancelled"), runner) is Disposal.RELEASED
    assert len(ledger) == 0


def test_a_chunk_lost_with_the_tunnel_becomes_runner_lost() -> None:
    """A chunk sent on a tunnel that died before delivering it leaves a gap: the control
    plane fails the task with RUNNER_LOST, cancels it, and still takes its slot back."""
    ledger = TaskLedger()
    first, _ = _start(ledger)
    assert ledger.chunk(KEY, b"lost", first)  # queued on a tunnel that never delivers it
    ledger.chunk(KEY, b"kept", None)

    runner, control = _tunnel(ledger, {KEY: InflightTask("m", next_seq=0)})
    ledger.resume(runner, {KEY})
    (lost,) = _pump(runner, control)
    assert isinstance(lost, pb.TaskError) and lost.code == "RUNNER_LOST"
    (cancel,) = _pump(control, runner)
    assert isinstance(cancel, pb.Cancel) and (cancel.task_id, cancel.attempt) == KEY
    assert ledger.finish(KEY, ErrorOut("CANCELLED", "cancelled"), runner) is Disposal.SENT
    assert _pump(runner, control) == []  # the abandoned task's error is not handed up again
    assert control.credits["m"] == 1 and control.state is SessionState.OPEN


def test_busy_counts_held_tasks_per_model() -> None:
    """Held tasks keep their model's slots, finished or not, until they leave the ledger."""
    ledger = TaskLedger()
    ledger.take(pb.Task(task_id="a", attempt=1, model_id="m"))
    ledger.take(pb.Task(task_id="b", attempt=1, model_id="m"))
    ledger.take(pb.Task(task_id="c", attempt=1, model_id="n"))
    ledger.finish(("b", 1), ResultOut(b"", None), None)
    assert (ledger.busy("m"), ledger.busy("n"), ledger.busy("other")) == (2, 1, 0)
    assert ("a", 1) in ledger and len(ledger) == 3


def test_a_cancel_while_the_runner_stops_is_retryable() -> None:
    """Cancelled by the runner's own second stop signal: UNAVAILABLE and retryable; any other
    error goes out as it is."""
    assert stopped_error("CANCELLED", "cancelled", False, cancelling=True) == ErrorOut(
        "UNAVAILABLE", "the runner stopped before the task finished", True
    )
    assert stopped_error("CANCELLED", "cancelled", False, cancelling=False) == ErrorOut(
        "CANCELLED", "cancelled", False
    )
    assert stopped_error("MODEL_ERROR", "boom", False, cancelling=True).code == "MODEL_ERROR"


def test_a_stream_in_task_never_outlives_its_tunnel() -> None:
    """When the tunnel goes, running stream-in tasks are given up at once (named for cancelling,
    output dropped), other tasks stay held; one listed as adopted anyway is not resumed."""
    ledger = TaskLedger()
    ledger.take(pb.Task(task_id="in", attempt=1, model_id="m", method="chat", input_stream=True))
    ledger.take(pb.Task(task_id="out", attempt=1, model_id="m", method="generate"))
    ledger.take(pb.Task(task_id="in2", attempt=1, model_id="m", method="chat", input_stream=True))
    assert ledger.drop_input_streams() == [("in", 1), ("in2", 1)]
    assert ledger.drop_input_streams() == []  # once
    assert not ledger.chunk(("in", 1), b"x", None)
    assert ledger.finish(("in", 1), ErrorOut("CANCELLED", "c"), None) is Disposal.RELEASED
    out = ledger.get(("out", 1))
    assert out is not None and not out.unwanted

    again = TaskLedger()
    again.take(pb.Task(task_id="in", attempt=1, model_id="m", method="chat", input_stream=True))
    runner, _ = _tunnel(again)
    assert again.resume(runner, {("in", 1)}).cancel == [("in", 1)]
    assert ("in", 1) not in runner.tasks
