"""Dispatch over real sessions (no sockets): credit admission, least-loaded choice, re-queue."""

from __future__ import annotations

import asyncio

import pytest

from edge_runner.control.dispatch import Dispatcher, RunnerLink
from edge_runner.control.tasks import Task, TaskDone, TaskFailedEvent, TaskState
from edge_runner.errors import QueueFull
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import ControlSession, RunnerSession


def _link(
    runner_id: str, slots: int, model: str = "m", *, stream_window: int = 0
) -> tuple[RunnerLink, RunnerSession]:
    runner = RunnerSession(pb.Hello(runner_id=runner_id, pool_size=slots))
    control = ControlSession(
        server_version="t",
        heartbeat_interval_ms=1000,
        lease_ttl_ms=1000,
        stream_window=stream_window,
    )
    for frame in runner.data_to_send():
        control.receive_frame(frame)
    control.accept(runner_id)
    for frame in control.data_to_send():
        runner.receive_frame(frame)
    runner.grant(model, slots)
    for frame in runner.data_to_send():
        control.receive_frame(frame)
    return RunnerLink(runner_id, "u", control), runner


def _task(n: int) -> Task:
    return Task(f"t{n}", "u", "m", "predict", b"{}")


def _sent_messages(link: RunnerLink, kind: str) -> list[pb.ControlMessage]:
    """Take what dispatch queued for the runner; keep the messages of ``kind``."""
    out = []
    while not link.outbox.empty():
        frame = link.outbox.get_nowait()
        assert frame is not None
        msg = pb.ControlMessage.FromString(frame)
        if msg.WhichOneof("kind") == kind:
            out.append(msg)
    return out


def _sent(link: RunnerLink) -> list[str]:
    return [msg.task.task_id for msg in _sent_messages(link, "task")]


@pytest.fixture(autouse=True)
def _loop() -> object:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()
    asyncio.set_event_loop(None)


def test_tasks_go_to_the_runner_with_most_free_slots() -> None:
    """Least-loaded choice: the runner with more free slots gets the task."""
    dispatcher = Dispatcher()
    small, _ = _link("small", 1)
    big, _ = _link("big", 3)
    dispatcher.attach(small, ("m",))
    dispatcher.attach(big, ("m",))
    for n in range(4):
        dispatcher.submit(_task(n))
    # 3 vs 1 free -> big, 2 vs 1 -> big, 1 vs 1 -> the first attached, then big's last slot.
    assert _sent(big) == ["t0", "t1", "t3"]
    assert _sent(small) == ["t2"]
    assert big.free_slots("m") == 0 and small.free_slots("m") == 0


def test_overflow_waits_then_flows_when_a_slot_frees() -> None:
    """Beyond the credits tasks queue; a Result sends the next one."""
    dispatcher = Dispatcher()
    link, runner = _link("r", 1)
    dispatcher.attach(link, ("m",))
    first, second = _task(1), _task(2)
    dispatcher.submit(first)
    dispatcher.submit(second)
    assert _sent(link) == ["t1"] and dispatcher.queued("u", "m") == 1
    result = pb.Result(task_id="t1", attempt=1, payload=b"1")
    for event in link.session.receive_frame(pb.RunnerMessage(result=result).SerializeToString()):
        dispatcher.on_event(link, event)
    assert isinstance(first.events.get_nowait(), TaskDone)
    assert _sent(link) == ["t2"] and second.state is TaskState.RUNNING
    del runner


def test_queue_is_bounded() -> None:
    """Past max_queue, submit raises QueueFull."""
    dispatcher = Dispatcher(max_queue=2)
    dispatcher.submit(_task(1))
    dispatcher.submit(_task(2))
    with pytest.raises(QueueFull):
        dispatcher.submit(_task(3))


def test_lost_runner_requeues_silent_tasks_and_fails_streaming_ones() -> None:
    """A runner that goes away: tasks without output re-queue (attempt+1), others fail."""
    dispatcher = Dispatcher()
    link, _ = _link("r", 2)
    dispatcher.attach(link, ("m",))
    quiet, chatty = _task(1), _task(2)
    dispatcher.submit(quiet)
    dispatcher.submit(chatty)
    chunk = pb.RunnerMessage(chunk=pb.Chunk(task_id="t2", attempt=1, seq=0, payload=b"1"))
    for event in link.session.receive_frame(chunk.SerializeToString()):
        dispatcher.on_event(link, event)
    dispatcher.detach(link)
    assert quiet.state is TaskState.QUEUED and quiet.attempt == 2
    assert dispatcher.queued("u", "m") == 1
    chatty.events.get_nowait()  # the chunk
    failure = chatty.events.get_nowait()
    assert isinstance(failure, TaskFailedEvent) and failure.code == "RUNNER_LOST"
    replacement, _ = _link("r2", 1)
    dispatcher.attach(replacement, ("m",))
    dispatcher.on_event(replacement, pb.Credit(grant={"m": 1}))
    assert _sent(replacement) == ["t1"]


def test_cancel_removes_a_queued_task() -> None:
    """Cancelling a queued task takes it out of the queue."""
    dispatcher = Dispatcher()
    task = _task(1)
    dispatcher.submit(task)
    dispatcher.cancel(task, "client went away")
    assert dispatcher.queued("u", "m") == 0 and task.state is TaskState.CANCELLED


def _status(state: int, progress: float = 0.0, message: str = "") -> pb.ModelStatus:
    return pb.ModelStatus(model_id="m", state=state, progress=progress, message=message)  # type: ignore[arg-type]


def test_a_loading_model_gets_no_tasks_until_it_is_ready() -> None:
    """Credit is not enough: a LOADING model's tasks wait, and READY sends them."""
    dispatcher = Dispatcher()
    link, _ = _link("r", 2)
    dispatcher.attach(link, ("m",))
    dispatcher.set_model_status(link, _status(pb.LOADING, 0.4, "m is downloading: 40 %"))
    task = _task(1)
    dispatcher.submit(task)
    assert _sent(link) == [] and dispatcher.queued("u", "m") == 1
    assert dispatcher.online("u", "m") == 0
    dispatcher.set_model_status(link, _status(pb.READY))
    assert _sent(link) == ["t1"] and task.state is TaskState.RUNNING


def test_not_ready_speaks_for_the_runner_closest_to_ready() -> None:
    """With no READY runner the most advanced LOADING one answers; any READY one means None."""
    dispatcher = Dispatcher()
    slow, _ = _link("slow", 1)
    fast, _ = _link("fast", 1)
    down, _ = _link("down", 1)
    for link in (slow, fast, down):
        dispatcher.attach(link, ("m",))
    dispatcher.set_model_status(slow, _status(pb.LOADING, 0.1, "slow"))
    dispatcher.set_model_status(fast, _status(pb.LOADING, 0.9, "fast"))
    dispatcher.set_model_status(down, _status(pb.UNAVAILABLE, 0.0, "down"))
    waiting = dispatcher.not_ready("u", "m")
    assert waiting is not None and waiting.message == "fast"
    dispatcher.set_model_status(down, _status(pb.READY))
    assert dispatcher.not_ready("u", "m") is None
    assert dispatcher.not_ready("u", "unknown") is None


def test_withdrawn_model_fails_waiting_tasks_only_when_nobody_else_serves_it() -> None:
    """FAILED on one runner keeps the queue for the others; on the last one it fails it."""
    dispatcher = Dispatcher()
    first, _ = _link("first", 1)
    second, _ = _link("second", 1)
    dispatcher.attach(first, ("m",))
    dispatcher.attach(second, ("m",))
    for link in (first, second):
        dispatcher.set_model_status(link, _status(pb.LOADING))
    task = _task(1)
    dispatcher.submit(task)
    assert dispatcher.withdraw(first, "m", "pull failed") is True
    assert task.state is TaskState.QUEUED and first.model_ids == ()
    assert dispatcher.withdraw(second, "m", "pull failed: disk full") is False
    failure = task.events.get_nowait()
    assert isinstance(failure, TaskFailedEvent)
    assert (failure.code, failure.message) == ("MODEL_UNAVAILABLE", "pull failed: disk full")


def _credits(link: RunnerLink) -> list[int]:
    return [msg.stream_credit.upto_seq for msg in _sent_messages(link, "stream_credit")]


def _chunks(
    dispatcher: Dispatcher, link: RunnerLink, runner: RunnerSession, sizes: list[int]
) -> None:
    for size in sizes:
        runner.send_chunk("t1", 1, b"x" * size)
    for frame in runner.data_to_send():
        for event in link.session.receive_frame(frame):
            dispatcher.on_event(link, event)


def test_stream_credit_grows_as_the_client_reads_and_shrinks_for_big_chunks() -> None:
    """Credit is extended once half the window is read; big chunks get a smaller window."""
    dispatcher = Dispatcher(stream_window=8, stream_buffer_bytes=4096)
    link, runner = _link("r", 4, stream_window=8)
    dispatcher.attach(link, ("m",))
    task = _task(1)
    dispatcher.submit(task)
    frame = link.outbox.get_nowait()
    assert frame is not None
    runner.receive_frame(frame)  # the task
    _chunks(dispatcher, link, runner, [10] * 8)
    assert task.received == 8 and task.task_id in dispatcher.paused  # the runner waits now
    for _ in range(3):
        dispatcher.stream_consumed(task)
    assert _credits(link) == []  # 5 of 8 still unread: more than half the window
    dispatcher.stream_consumed(task)
    assert _credits(link) == [4 + 8] and task.task_id not in dispatcher.paused
    for _ in range(4):
        dispatcher.stream_consumed(task)
    assert _credits(link) == [8 + 8]
    _chunks(dispatcher, link, runner, [2048] * 4)  # bigger chunks: ~690 B on average now
    target = 4096 // (task.received_bytes // task.received)
    assert target == 5
    for _ in range(6):
        dispatcher.stream_consumed(task)
    assert _credits(link) == [14 + target]  # extended once 16 - 14 <= 5 // 2


def test_stalled_streams_over_the_per_token_cap_fail_newest_first() -> None:
    """Per token, stalled streams beyond max_paused_streams fail SLOW_READER, the most
    recently stalled first; another token's are untouched; brief pauses do not count."""
    from edge_runner.control.dispatch import STALL_GRACE_S

    dispatcher = Dispatcher(max_paused_streams=1)
    tasks = [
        Task(f"t{n}", "u", "m", "generate", b"{}", token_id=tok)
        for n, tok in enumerate(["a", "a", "a", "b", "b"])
    ]
    for n, task in enumerate(tasks):
        task.paused_since = 100.0 + n
        dispatcher.paused[task.task_id] = task
    dispatcher.check_stalled(100.5 + STALL_GRACE_S, idle_timeout=60)  # t1.. not stalled yet
    assert all(not t.finished for t in tasks)
    dispatcher.check_stalled(105.0 + STALL_GRACE_S, idle_timeout=60)
    failed = {t.task_id: t.events.get_nowait().code for t in tasks if t.finished}  # type: ignore[union-attr]
    assert failed == {"t1": "SLOW_READER", "t2": "SLOW_READER", "t4": "SLOW_READER"}
    assert set(dispatcher.paused) == {"t0", "t3"}
    dispatcher.check_stalled(100.0 + 60, idle_timeout=60)  # t0 has read nothing for 60 s
    assert set(dispatcher.paused) == {"t3"}


def test_a_batch_is_admitted_whole_or_not_at_all() -> None:
    """submit_batch counts the free slots of every runner: the rest must fit in what is left of
    max_queue, or nothing is submitted; while tasks wait, a batch's items all wait."""
    dispatcher = Dispatcher(max_queue=3)
    one, _ = _link("one", 1)
    two, _ = _link("two", 2)
    dispatcher.attach(one, ("m",))
    dispatcher.attach(two, ("m",))
    with pytest.raises(QueueFull, match="a batch of 7 would leave 4 waiting"):
        dispatcher.submit_batch([_task(n) for n in range(7)])  # 3 slots + 3 places
    assert dispatcher.tasks == {} and dispatcher.queued("u", "m") == 0
    assert _sent(one) == [] and _sent(two) == []

    dispatcher.submit_batch([_task(n) for n in range(4)])  # 3 run on both runners, 1 waits
    assert sorted(_sent(one) + _sent(two)) == ["t0", "t1", "t2"]
    assert dispatcher.queued("u", "m") == 1
    with pytest.raises(QueueFull, match="room for 2"):
        dispatcher.submit_batch([_task(n) for n in range(10, 13)])  # slots are all taken
    dispatcher.submit_batch([_task(n) for n in range(10, 12)])
    assert dispatcher.queued("u", "m") == 3
    assert len(dispatcher.tasks) == 6
