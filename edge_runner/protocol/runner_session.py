"""The runner's side of its tunnel session (see :mod:`edge_runner.protocol.session` for the
protocol's rules)."""

from __future__ import annotations

from collections import defaultdict

from edge_runner.errors import ErrorCode, ProtocolError, VersionMismatch
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol.codec import decode_control, encode
from edge_runner.protocol.records import RunnerEvent, RunnerTask, SessionState, TaskKey
from edge_runner.protocol.session_base import Session, now_ms
from edge_runner.protocol.version import PROTOCOL_VERSION, check_version

__all__ = ["RunnerSession"]


class RunnerSession(Session):
    """The runner's side of its tunnel; ``hello`` is sent as soon as the session starts."""

    _AWAITING = SessionState.AWAITING_WELCOME
    _OPENING = "welcome"
    #: the control plane's refusal may come before any Welcome
    _ANY_STATE = frozenset({"error"})

    def __init__(self, hello: pb.Hello) -> None:
        super().__init__()
        if not hello.HasField("protocol"):
            hello.protocol.major, hello.protocol.minor = PROTOCOL_VERSION
        self.state = SessionState.AWAITING_WELCOME
        self.welcome: pb.Welcome | None = None
        self.minor_mismatch = False
        #: chunks a new streaming task may send before its first StreamCredit; 0 when the
        #: control plane does not flow-control streams (it speaks 1.1)
        self.stream_window = 0
        self._granted: defaultdict[str, int] = defaultdict(int)
        #: the tasks this session holds
        self.tasks: dict[TaskKey, RunnerTask] = {}
        self._out.append(encode(pb.RunnerMessage(hello=hello)))

    # -- receiving --------------------------------------------------------------------------

    def receive_frame(self, data: bytes) -> list[RunnerEvent]:
        """Decode one frame from the control plane and return the events it carries.

        A duplicate ``(task_id, attempt)`` is dropped here, so a task never runs twice.

        Raises:
            ProtocolError: the frame is malformed or not allowed now; the session is closed.
        """
        return self._dispatch(self._decode(data, decode_control))

    def _open(self, welcome: pb.Welcome) -> list[RunnerEvent]:
        try:
            self.minor_mismatch = check_version(welcome.protocol)
        except ProtocolError as exc:
            raise self._fail(ErrorCode.VERSION_MISMATCH, str(exc), VersionMismatch) from exc
        self.welcome = welcome
        self.state = SessionState.OPEN
        self.stream_window = welcome.stream_window
        return [welcome]

    def _on_error(self, error: pb.Error) -> list[RunnerEvent]:
        self.state = SessionState.CLOSED
        self.close_reason = error.message
        return [error]

    def _on_cancel(self, cancel: pb.Cancel) -> list[RunnerEvent]:
        return [cancel] if (cancel.task_id, cancel.attempt) in self.tasks else []

    def _on_goodbye(self, goodbye: pb.Goodbye) -> list[RunnerEvent]:
        self.state = SessionState.CLOSED
        self.close_reason = goodbye.reason or "control plane said goodbye"
        return [goodbye]

    def _on_stream_credit(self, credit: pb.StreamCredit) -> list[RunnerEvent]:
        held = (credit.task_id, credit.attempt) in self.tasks
        return [credit] if held and self.stream_window else []

    def _on_task(self, task: pb.Task) -> list[RunnerEvent]:
        key = (task.task_id, task.attempt)
        if key in self.tasks:
            return []  # at-least-once delivery: a duplicate never runs twice
        if self._granted[task.model_id] <= 0:
            raise self._fail(
                ErrorCode.PROTOCOL,
                f"task {task.task_id} for {task.model_id!r} exceeds the granted credit",
            )
        self._granted[task.model_id] -= 1
        self.tasks[key] = RunnerTask(task.model_id, input_stream=task.input_stream)
        return [task]

    def _input_entry(self, what: str, task_id: str, attempt: int) -> RunnerTask | None:
        """The held stream-in task an input frame is for; None for a task that finished
        (its late input is dropped); a task that takes no input breaks the protocol."""
        entry = self.tasks.get((task_id, attempt))
        if entry is None:
            return None
        if not entry.input_stream:
            raise self._fail(
                ErrorCode.PROTOCOL, f"{what} for task {task_id}, which takes no input stream"
            )
        if entry.input_ended:
            raise self._fail(ErrorCode.PROTOCOL, f"{what} for task {task_id} after its InputEnd")
        return entry

    def _on_input_chunk(self, chunk: pb.InputChunk) -> list[RunnerEvent]:
        entry = self._input_entry(f"input item {chunk.seq}", chunk.task_id, chunk.attempt)
        if entry is None:
            return []
        if chunk.seq != entry.input_next:
            raise self._fail(
                ErrorCode.PROTOCOL,
                f"input item {chunk.seq} of task {chunk.task_id} arrived, "
                f"expected {entry.input_next}",
            )
        if chunk.seq >= entry.input_upto:
            raise self._fail(
                ErrorCode.PROTOCOL,
                f"input item {chunk.seq} of task {chunk.task_id} exceeds its input credit "
                f"(items below {entry.input_upto})",
            )
        entry.input_next += 1
        return [chunk]

    def _on_input_end(self, end: pb.InputEnd) -> list[RunnerEvent]:
        entry = self._input_entry("InputEnd", end.task_id, end.attempt)
        if entry is None:
            return []
        if end.count != entry.input_next:
            raise self._fail(
                ErrorCode.PROTOCOL,
                f"InputEnd of task {end.task_id} counts {end.count} items, "
                f"{entry.input_next} arrived",
            )
        entry.input_ended = True
        return [end]

    # -- sending ----------------------------------------------------------------------------

    def adopt(self, task_id: str, attempt: int, model_id: str, next_seq: int) -> None:
        """Hold a task carried over from an earlier tunnel (listed in ``Welcome.adopted``)."""
        self.tasks[(task_id, attempt)] = RunnerTask(model_id, next_seq)

    def grant(self, model_id: str, slots: int) -> None:
        """Grant the control plane ``slots`` more tasks for ``model_id``."""
        if slots <= 0 or self.state is SessionState.CLOSED:
            return
        self._granted[model_id] += slots
        self._out.append(encode(pb.RunnerMessage(credit=pb.Credit(grant={model_id: slots}))))

    def send_input_credit(self, task_id: str, attempt: int, upto_seq: int) -> bool:
        """Let the control plane send a stream-in task's input items numbered below
        ``upto_seq``. A no-op (False) for a task not held here, not stream-in, whose input
        ended, or when the credit would not grow."""
        entry = self.tasks.get((task_id, attempt))
        if (
            entry is None
            or not entry.input_stream
            or entry.input_ended
            or upto_seq <= entry.input_upto
            or self.state is SessionState.CLOSED
        ):
            return False
        entry.input_upto = min(upto_seq, 2**32 - 1)
        credit = pb.InputCredit(task_id=task_id, attempt=attempt, upto_seq=entry.input_upto)
        self._out.append(encode(pb.RunnerMessage(input_credit=credit)))
        return True

    def send_chunk(
        self, task_id: str, attempt: int, payload: bytes, seq: int | None = None
    ) -> None:
        """Queue the next piece of a streaming task's output.

        ``seq`` numbers the piece explicitly (a runner resuming held output keeps the numbers
        it gave pieces when they were produced); by default pieces are numbered in order.
        """
        entry = self.tasks.get((task_id, attempt))
        if entry is None:
            return
        if seq is None:
            seq = entry.next_seq
        entry.next_seq = seq + 1
        chunk = pb.Chunk(task_id=task_id, attempt=attempt, seq=seq, payload=payload)
        self._out.append(encode(pb.RunnerMessage(chunk=chunk)))

    def send_result(
        self, task_id: str, attempt: int, payload: bytes, usage: pb.Usage | None = None
    ) -> None:
        """Finish a task with its output; its slot goes back to the control plane."""
        entry = self.tasks.pop((task_id, attempt), None)
        if entry is None:
            return
        result = pb.Result(task_id=task_id, attempt=attempt, payload=payload, usage=usage)
        self._granted[entry.model_id] += 1  # the slot returns with the terminal message
        self._out.append(encode(pb.RunnerMessage(result=result)))

    def send_error(
        self, task_id: str, attempt: int, code: str, message: str, retryable: bool = False
    ) -> None:
        """Finish a task with an error; its slot goes back to the control plane."""
        entry = self.tasks.pop((task_id, attempt), None)
        if entry is None:
            return
        err = pb.TaskError(
            task_id=task_id, attempt=attempt, code=code, message=message, retryable=retryable
        )
        self._granted[entry.model_id] += 1  # the slot returns with the terminal message
        self._out.append(encode(pb.RunnerMessage(task_error=err)))

    def send_heartbeat(
        self, busy: int, gpus: list[pb.GpuSample] | None = None, gpu_note: str = ""
    ) -> None:
        """Queue a heartbeat carrying the number of busy slots and the machine's GPUs."""
        hb = pb.Heartbeat(sent_unix_ms=now_ms(), busy=busy, gpus=gpus or (), gpu_note=gpu_note)
        self._out.append(encode(pb.RunnerMessage(heartbeat=hb)))

    def send_model_status(self, status: pb.ModelStatus) -> None:
        """Tell the control plane a model's readiness (loading, ready, unavailable, failed).

        Allowed as soon as the Hello is out: the control plane reads the Hello (and registers
        the models) before anything that follows it, so a model that fails before the Welcome
        is withdrawn all the same.
        """
        if self.state is not SessionState.CLOSED:
            self._out.append(encode(pb.RunnerMessage(model_status=status)))

    def send_logs(self, records: list[pb.LogRecord], dropped: int = 0) -> None:
        """Send a batch of log records (and how many were dropped since the last batch)."""
        if self.state is not SessionState.CLOSED and (records or dropped):
            logs = pb.Logs(records=records, dropped=dropped)
            self._out.append(encode(pb.RunnerMessage(logs=logs)))

    def send_draining(self) -> None:
        """Tell the control plane to stop routing here; in-flight tasks still finish."""
        if self.state is SessionState.OPEN:
            self.state = SessionState.DRAINING
        msg = pb.Draining(inflight=len(self.tasks))
        self._out.append(encode(pb.RunnerMessage(draining=msg)))

    def send_goodbye(self, reason: str) -> None:
        """Close the session politely."""
        self._out.append(encode(pb.RunnerMessage(goodbye=pb.Goodbye(reason=reason))))
        self.state = SessionState.CLOSED
        self.close_reason = reason

    def _queue_error(self, code: str, message: str) -> None:
        # The runner has no Error message; a Goodbye with the reason tells the control plane why.
        bye = pb.Goodbye(reason=f"{code}: {message}")
        self._out.append(encode(pb.RunnerMessage(goodbye=bye)))


RunnerSession._HANDLERS = {
    "error": RunnerSession._on_error,
    "task": RunnerSession._on_task,
    "cancel": RunnerSession._on_cancel,
    "goodbye": RunnerSession._on_goodbye,
    "drain": RunnerSession._on_passthrough,
    "heartbeat": RunnerSession._on_passthrough,
    "stream_credit": RunnerSession._on_stream_credit,
    "input_chunk": RunnerSession._on_input_chunk,
    "input_end": RunnerSession._on_input_end,
}
