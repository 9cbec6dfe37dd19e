"""The sans-I/O tunnel sessions, driven frame by frame with no sockets or event loop."""

from __future__ import annotations

import pytest

from edge_runner.errors import ProtocolError, VersionMismatch
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import (
    PROTOCOL_VERSION,
    ControlSession,
    RunnerSession,
    SessionState,
    check_version,
    decode_control,
    decode_runner,
    encode,
    format_version,
)


def _pair(pool: int = 2) -> tuple[RunnerSession, ControlSession]:
    runner = RunnerSession(pb.Hello(runner_id="r1", pool_size=pool))
    control = ControlSession(server_version="t", heartbeat_interval_ms=5000, lease_ttl_ms=10000)
    return runner, control


def _pump(src: RunnerSession | ControlSession, dst: RunnerSession | ControlSession) -> list[object]:
    events: list[object] = []
    for frame in src.data_to_send():
        events.extend(dst.receive_frame(frame))
    return events


def _open(pool: int = 2, model: str = "m") -> tuple[RunnerSession, ControlSession]:
    runner, control = _pair(pool)
    (hello,) = _pump(runner, control)
    assert isinstance(hello, pb.Hello) and hello.runner_id == "r1"
    control.accept("r1")
    (welcome,) = _pump(control, runner)
    assert isinstance(welcome, pb.Welcome)
    runner.grant(model, pool)
    _pump(runner, control)
    return runner, control


def test_handshake_opens_both_sides() -> None:
    """Hello then Welcome opens both sessions and carries the protocol version."""
    runner, control = _open()
    assert runner.state is SessionState.OPEN and control.state is SessionState.OPEN
    assert control.hello is not None and control.hello.protocol.major == 1
    assert runner.welcome is not None and runner.welcome.heartbeat_interval_ms == 5000


def test_control_never_sends_beyond_credit() -> None:
    """Tasks spend credits; with none left send_task refuses and has_credit is false."""
    runner, control = _open(pool=2)
    control.send_task("t1", 1, "m", "predict", b"{}")
    control.send_task("t2", 1, "m", "predict", b"{}")
    assert not control.has_credit("m")
    with pytest.raises(ProtocolError, match="no credit"):
        control.send_task("t3", 1, "m", "predict", b"{}")
    assert len(_pump(control, runner)) == 2


def test_terminal_messages_return_the_slot() -> None:
    """A Result or TaskError gives the task's credit back on both sides."""
    runner, control = _open(pool=1)
    control.send_task("t1", 1, "m", "predict", b"{}")
    _pump(control, runner)
    runner.send_result("t1", 1, b'"ok"')
    (result,) = _pump(runner, control)
    assert isinstance(result, pb.Result) and result.payload == b'"ok"'
    assert control.credits["m"] == 1 and not control.inflight
    control.send_task("t2", 1, "m", "predict", b"{}")
    assert _pump(control, runner)[0].task_id == "t2"  # type: ignore[attr-defined]
    runner.send_error("t2", 1, "MODEL_ERROR", "boom")
    (error,) = _pump(runner, control)
    assert isinstance(error, pb.TaskError) and error.message == "boom"
    assert control.credits["m"] == 1


def test_runner_refuses_tasks_over_its_grant() -> None:
    """A control plane that sends more tasks than granted breaks the protocol."""
    runner, _ = _open(pool=1)
    task = encode(pb.ControlMessage(task=pb.Task(task_id="a", attempt=1, model_id="m")))
    runner.receive_frame(task)
    extra = encode(pb.ControlMessage(task=pb.Task(task_id="b", attempt=1, model_id="m")))
    with pytest.raises(ProtocolError, match="exceeds the granted credit"):
        runner.receive_frame(extra)
    assert runner.state is SessionState.CLOSED


def test_duplicate_task_is_dropped() -> None:
    """The same (task_id, attempt) twice runs once; a new attempt is a new task."""
    runner, _ = _open(pool=3)
    frame = encode(pb.ControlMessage(task=pb.Task(task_id="a", attempt=1, model_id="m")))
    assert len(runner.receive_frame(frame)) == 1
    assert runner.receive_frame(frame) == []
    retry = encode(pb.ControlMessage(task=pb.Task(task_id="a", attempt=2, model_id="m")))
    assert len(runner.receive_frame(retry)) == 1


def test_chunks_are_numbered_and_checked() -> None:
    """Chunks carry consecutive seq numbers; a gap is a protocol error."""
    runner, control = _open()
    control.send_task("s", 1, "m", "generate", b"{}")
    _pump(control, runner)
    runner.send_chunk("s", 1, b"1")
    runner.send_chunk("s", 1, b"2")
    chunks = _pump(runner, control)
    assert [c.seq for c in chunks] == [0, 1]  # type: ignore[attr-defined]
    gap = encode(pb.RunnerMessage(chunk=pb.Chunk(task_id="s", attempt=1, seq=5)))
    with pytest.raises(ProtocolError, match="expected 2"):
        control.receive_frame(gap)


def test_late_messages_for_finished_tasks_are_ignored() -> None:
    """A chunk or result for a task the control plane no longer tracks is dropped."""
    _, control = _open()
    late = encode(pb.RunnerMessage(result=pb.Result(task_id="gone", attempt=1)))
    assert control.receive_frame(late) == []
    assert control.credits["m"] == 2


@pytest.mark.parametrize(
    "frame", [b"\xff\xff\xff", b"\x0a\x05abc", b"", encode(pb.RunnerMessage())]
)
def test_garbage_frame_closes_with_an_error_frame(frame: bytes) -> None:
    """Malformed or empty frames raise ProtocolError and queue an Error for the peer."""
    _, control = _pair()
    with pytest.raises(ProtocolError):
        control.receive_frame(frame)
    assert control.state is SessionState.CLOSED
    (out,) = control.data_to_send()
    assert decode_control(out).error.code == "MALFORMED_FRAME"


def test_first_message_must_be_hello() -> None:
    """Anything before Hello is refused."""
    _, control = _pair()
    with pytest.raises(ProtocolError, match="expected Hello"):
        control.receive_frame(encode(pb.RunnerMessage(heartbeat=pb.Heartbeat())))


def test_runner_needs_welcome_first() -> None:
    """A task before Welcome is refused by the runner."""
    runner, _ = _pair()
    with pytest.raises(ProtocolError, match="expected Welcome"):
        runner.receive_frame(encode(pb.ControlMessage(task=pb.Task(task_id="x"))))
    assert runner.state is SessionState.CLOSED
    goodbye = decode_runner(runner.data_to_send()[-1])
    assert goodbye.WhichOneof("kind") == "goodbye"


def test_major_mismatch_refused_minor_accepted() -> None:
    """Protocol majors must match (message names both); a minor difference is flagged only."""
    ours = format_version(PROTOCOL_VERSION).replace(".", r"\.")
    with pytest.raises(VersionMismatch, match=rf"2\.3.*{ours}"):
        check_version(pb.ProtocolVersion(major=2, minor=3))
    assert check_version(pb.ProtocolVersion(major=1, minor=PROTOCOL_VERSION[1] + 6)) is True
    same = pb.ProtocolVersion(major=PROTOCOL_VERSION[0], minor=PROTOCOL_VERSION[1])
    assert check_version(same) is False
    assert check_version(pb.ProtocolVersion(major=1, minor=0)) is True  # 1.0 peers still work
    runner = RunnerSession(pb.Hello(runner_id="r", protocol=pb.ProtocolVersion(major=9)))
    _, control = _pair()
    with pytest.raises(VersionMismatch):
        for frame in runner.data_to_send():
            control.receive_frame(frame)


def test_draining_and_goodbye_change_state() -> None:
    """Draining stops credit use; Goodbye closes; the hint travels."""
    runner, control = _open()
    runner.send_draining()
    _pump(runner, control)
    assert control.state is SessionState.DRAINING and not control.has_credit("m")
    control.send_goodbye("restart", reconnect_after_ms=1500)
    (bye,) = _pump(control, runner)
    assert isinstance(bye, pb.Goodbye) and bye.reconnect_after_ms == 1500
    assert runner.state is SessionState.CLOSED


def test_cancel_only_for_held_tasks() -> None:
    """Cancel reaches the runner for tasks it holds; unknown ones are ignored."""
    runner, control = _open()
    control.send_task("c", 1, "m", "predict", b"{}")
    _pump(control, runner)
    control.send_cancel("c", 1, "client went away")
    control.send_cancel("unknown", 1, "x")
    events = _pump(control, runner)
    assert [e.task_id for e in events] == ["c"]  # type: ignore[attr-defined]


def test_model_status_follows_the_hello_and_stops_at_close() -> None:
    """A ModelStatus may follow the Hello before the Welcome; the control plane reads it after."""
    runner, control = _pair()
    failed = pb.ModelStatus(model_id="m", state=pb.FAILED, message="pull failed")
    runner.send_model_status(failed)
    hello, status = runner.data_to_send()
    assert isinstance(control.receive_frame(hello)[0], pb.Hello)
    control.accept("r1")  # the control plane registers the runner before it reads on
    assert control.receive_frame(status) == [failed]
    runner.send_goodbye("bye")
    runner.data_to_send()
    runner.send_model_status(failed)
    assert runner.data_to_send() == []


def _open_streaming(
    window: int, runner_minor: int | None = None
) -> tuple[RunnerSession, ControlSession]:
    hello = pb.Hello(runner_id="r1", pool_size=2)
    if runner_minor is not None:
        hello.protocol.major, hello.protocol.minor = 1, runner_minor
    runner = RunnerSession(hello)
    control = ControlSession(
        server_version="t", heartbeat_interval_ms=5000, lease_ttl_ms=10000, stream_window=window
    )
    _pump(runner, control)
    control.accept("r1")
    _pump(control, runner)
    runner.grant("m", 2)
    _pump(runner, control)
    return runner, control


def test_stream_credit_is_used_only_when_both_sides_speak_1_2() -> None:
    """A 1.2 runner is welcomed with a stream window; a 1.1 runner gets none and no credit."""
    runner, control = _open_streaming(4)
    assert control.stream_credit and runner.stream_window == 4
    old_runner, old_control = _open_streaming(4, runner_minor=1)
    assert not old_control.stream_credit and old_runner.stream_window == 0
    old_control.send_task("t1", 1, "m", "generate", b"{}")
    _pump(old_control, old_runner)
    assert not old_control.send_stream_credit("t1", 1, 100)
    assert old_control.data_to_send() == []  # a 1.1 runner could not parse a StreamCredit
    for seq in range(10):  # and its streams are not limited
        old_runner.send_chunk("t1", 1, b"%d" % seq)
    assert len(_pump(old_runner, old_control)) == 10


def test_a_chunk_beyond_the_stream_credit_closes_the_tunnel() -> None:
    """Chunks below the credit pass; the one past it is a protocol error naming the credit."""
    runner, control = _open_streaming(2)
    control.send_task("t1", 1, "m", "generate", b"{}")
    _pump(control, runner)
    runner.send_chunk("t1", 1, b"0")
    runner.send_chunk("t1", 1, b"1")
    assert len(_pump(runner, control)) == 2
    runner.send_chunk("t1", 1, b"2")
    with pytest.raises(ProtocolError, match="exceeds its stream credit"):
        _pump(runner, control)
    assert control.state is SessionState.CLOSED


def test_stream_credit_only_grows_and_reaches_held_tasks_only() -> None:
    """send_stream_credit queues a grant only when it grows; the runner passes up grants for
    tasks it holds, and the credited chunks are accepted."""
    runner, control = _open_streaming(2)
    control.send_task("t1", 1, "m", "generate", b"{}")
    _pump(control, runner)
    assert not control.send_stream_credit("t1", 1, 2)  # not more than the window
    assert control.send_stream_credit("t1", 1, 5)
    assert not control.send_stream_credit("t1", 1, 4)
    assert not control.send_stream_credit("nope", 1, 9)
    (credit,) = _pump(control, runner)
    assert isinstance(credit, pb.StreamCredit) and credit.upto_seq == 5
    stray = pb.StreamCredit(task_id="other", attempt=1, upto_seq=9)
    assert runner.receive_frame(encode(pb.ControlMessage(stream_credit=stray))) == []
    for seq in range(5):
        runner.send_chunk("t1", 1, b"%d" % seq)
    assert len(_pump(runner, control)) == 5


def test_adopted_tasks_are_granted_their_stream_credit_again() -> None:
    """After a reconnect the Welcome is followed by each adopted task's credit."""
    from edge_runner.protocol.session import InflightTask

    runner = RunnerSession(pb.Hello(runner_id="r1", inflight=[pb.TaskRef(task_id="t1", attempt=1)]))
    control = ControlSession(
        server_version="t", heartbeat_interval_ms=5000, lease_ttl_ms=10000, stream_window=4
    )
    _pump(runner, control)
    control.accept("r1", {("t1", 1): InflightTask("m", next_seq=3, credit_upto=9)})
    frames = [decode_control(f) for f in control.data_to_send()]
    assert [f.WhichOneof("kind") for f in frames] == ["welcome", "stream_credit"]
    assert frames[1].stream_credit.upto_seq == 9
    assert control.inflight[("t1", 1)].resumed


# -- stream input (protocol 1.3) -----------------------------------------------------------------


def _open_stream_in(
    runner_minor: int = PROTOCOL_VERSION[1],
) -> tuple[RunnerSession, ControlSession]:
    """Open sessions and send one stream-in task ``t1``, delivered to the runner."""
    runner, control = _open_streaming(4, runner_minor=runner_minor)
    control.send_task("t1", 1, "m", "transcribe", b"{}", input_stream=True)
    (task,) = _pump(control, runner)
    assert isinstance(task, pb.Task) and task.input_stream
    return runner, control


def test_input_items_flow_only_within_the_runners_input_credit() -> None:
    """No item may go before the runner's InputCredit; then exactly as many as it granted,
    numbered in order, and an InputEnd that counts them ends the input."""
    runner, control = _open_stream_in()
    assert control.input_room("t1", 1) == 0
    with pytest.raises(ProtocolError, match="no input credit"):
        control.send_input("t1", 1, b'"a"')
    assert runner.send_input_credit("t1", 1, 2)
    assert not runner.send_input_credit("t1", 1, 2)  # absolute: it only grows
    (credit,) = _pump(runner, control)
    assert isinstance(credit, pb.InputCredit) and control.input_room("t1", 1) == 2
    assert [control.send_input("t1", 1, b'"%d"' % i) for i in range(2)] == [0, 1]
    assert control.input_room("t1", 1) == 0
    assert control.send_input_end("t1", 1)
    assert not control.send_input_end("t1", 1)  # only once
    events = _pump(control, runner)
    assert [type(e) for e in events] == [pb.InputChunk, pb.InputChunk, pb.InputEnd]
    assert [e.payload for e in events[:2]] == [b'"0"', b'"1"'] and events[2].count == 2
    assert not runner.send_input_credit("t1", 1, 10)  # nothing more can come


def _control_frame(**kind: object) -> bytes:
    return encode(pb.ControlMessage(**kind))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        (pb.InputChunk(task_id="t1", attempt=1, seq=0), "exceeds its input credit"),
        (pb.InputChunk(task_id="t1", attempt=1, seq=1), "expected 0"),
        (pb.InputEnd(task_id="t1", attempt=1, count=3), "counts 3 items, 0 arrived"),
    ],
)
def test_bad_input_frames_close_the_runners_session(
    frame: pb.InputChunk | pb.InputEnd, words: str
) -> None:
    """An item beyond the credit or out of order, or an end that miscounts, breaks the
    protocol: the runner's session closes and tells the control plane why."""
    runner, _control = _open_stream_in()
    kind = "input_chunk" if isinstance(frame, pb.InputChunk) else "input_end"
    with pytest.raises(ProtocolError, match=words):
        runner.receive_frame(_control_frame(**{kind: frame}))
    assert runner.state is SessionState.CLOSED
    (goodbye,) = [decode_runner(f) for f in runner.data_to_send()]
    assert words in goodbye.goodbye.reason


def test_input_for_a_task_without_an_input_stream_breaks_the_protocol() -> None:
    """Input frames or input credit for a task that takes no input close the session."""
    runner, control = _open_streaming(4)
    control.send_task("t2", 1, "m", "generate", b"{}")
    _pump(control, runner)
    chunk = pb.InputChunk(task_id="t2", attempt=1, seq=0)
    with pytest.raises(ProtocolError, match="takes no input stream"):
        runner.receive_frame(_control_frame(input_chunk=chunk))
    runner2, control2 = _open_streaming(4)
    control2.send_task("t2", 1, "m", "generate", b"{}")
    credit = pb.InputCredit(task_id="t2", attempt=1, upto_seq=3)
    with pytest.raises(ProtocolError, match="takes no input stream"):
        control2.receive_frame(encode(pb.RunnerMessage(input_credit=credit)))


def test_input_after_the_end_breaks_the_protocol_and_late_input_is_dropped() -> None:
    """An item after the InputEnd is a protocol error; items for a task the runner already
    finished (in flight as it returned) are dropped quietly, as is credit for a finished task."""
    runner, control = _open_stream_in()
    runner.send_input_credit("t1", 1, 4)
    _pump(runner, control)
    control.send_input("t1", 1, b"1")
    runner.send_result("t1", 1, b"")  # the method returned before reading everything
    assert _pump(control, runner) == []
    late_credit = pb.InputCredit(task_id="t1", attempt=1, upto_seq=9)
    assert [type(e) for e in _pump(runner, control)] == [pb.Result]
    assert control.receive_frame(encode(pb.RunnerMessage(input_credit=late_credit))) == []
    runner2, control2 = _open_stream_in()
    runner2.send_input_credit("t1", 1, 4)
    _pump(runner2, control2)
    control2.send_input_end("t1", 1)
    _pump(control2, runner2)
    with pytest.raises(ProtocolError, match="after its InputEnd"):
        runner2.receive_frame(_control_frame(input_chunk=pb.InputChunk(task_id="t1", attempt=1)))


def test_stream_in_tasks_go_only_to_runners_that_speak_1_3() -> None:
    """A 1.2 runner's session says it takes no input streams, and refuses to send one."""
    runner, control = _open_streaming(4, runner_minor=2)
    assert control.stream_credit and not control.input_streams
    with pytest.raises(ProtocolError, match="older than protocol 1.3"):
        control.send_task("t1", 1, "m", "transcribe", b"{}", input_stream=True)
    assert control.has_credit("m")  # nothing was spent
    new_runner, new_control = _open_streaming(4)
    assert new_control.input_streams
