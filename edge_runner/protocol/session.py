"""Tunnel session state machines, one per side, with no I/O.

Each side feeds received frames to ``receive_frame()`` and gets back the events they carry (the
protobuf sub-messages themselves: ``pb.Task``, ``pb.Result``, ...); calls like ``send_task()``
queue outgoing frames that the transport collects with ``data_to_send()``.

Flow control is credit-based at two levels. Tasks: the runner *grants* slots per model
(``Credit.grant``, additive), the control plane spends one per ``Task`` and never sends a task
without one, and every terminal message (``Result`` or ``TaskError``) gives its slot back.
Stream output (protocol 1.2): a streaming task may send chunks numbered below its stream
credit, ``Welcome.stream_window`` at first, then whatever the control plane's latest
``StreamCredit`` says (absolute, so it only grows). A violation of these rules — a message
out of order, a task over credit, a chunk beyond its stream credit, a chunk for an unknown
task — queues an ``Error`` frame for the peer, closes the session and raises
:class:`~edge_runner.errors.ProtocolError`; the transport then closes that one tunnel.

Stream input (protocol 1.3) is the mirror image: a ``Task`` with ``input_stream`` set is
followed by ``InputChunk`` frames, numbered from 0, which the control plane sends only below the
task's latest ``InputCredit`` from the runner, then by one ``InputEnd`` that counts them. The
runner grants a window when it takes the task and more as the method consumes items. An item
out of order, beyond the credit or after the end breaks the protocol; a late one for a task the
runner already finished is dropped. A control plane never sends a stream-in task to a runner
older than 1.3 (:attr:`ControlSession.input_streams`).

Stream credit is used only when both sides speak 1.2: the control plane never sends
``StreamCredit`` to an older runner (it could not parse it), and a runner welcomed without a
``stream_window`` streams freely, as in 1.1.

Session states::

    control:  AWAITING_HELLO --Hello/accept()--> OPEN --Draining--> DRAINING --> CLOSED
    runner:   AWAITING_WELCOME --Welcome--> OPEN --draining()--> DRAINING --> CLOSED

Both sides dispatch a received frame the same way: the message that opens the session
(``Hello``, ``Welcome``) is the only one accepted before it is open, then each message kind (the
envelope's oneof name) has one handler in the side's handler table; a kind with no handler
breaks the protocol.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from edge_runner.errors import ErrorCode, ProtocolError, VersionMismatch
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol.codec import decode_control, decode_runner, encode
from edge_runner.protocol.records import (
    ControlEvent,
    InflightTask,
    RunnerEvent,
    RunnerTask,
    SessionState,
    TaskKey,
)
from edge_runner.protocol.version import PROTOCOL_VERSION, check_version

__all__ = [
    "RUNNER_ID_PATTERN",
    "ControlEvent",
    "ControlSession",
    "InflightTask",
    "RunnerEvent",
    "RunnerSession",
    "RunnerTask",
    "SessionState",
]

#: What a runner id looks like (``runner-<12 hex>`` when generated); it is shown in banners,
#: tables and logs, so control characters and unbounded lengths are refused at the Hello.
RUNNER_ID_PATTERN: re.Pattern[str] = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")

_E = TypeVar("_E", pb.RunnerMessage, pb.ControlMessage)

#: the first protocol minor (of major 1) with per-task stream credit
STREAM_CREDIT_MINOR = 2
#: the first protocol minor (of major 1) with stream-in tasks (input chunks and input credit)
INPUT_STREAM_MINOR = 3


def _speaks(version: pb.ProtocolVersion, minor: int) -> bool:
    """Whether a peer of ``version`` speaks protocol ``1.minor`` or later."""
    return version.major > 1 or version.minor >= minor


def _now_ms() -> int:
    return int(time.time() * 1000)


#: a handler of one received message kind: the session and the message in, events out
_Handler = Callable[[Any, Any], list[Any]]


class _Session:
    #: the state before the opening message arrives, and that message's oneof name
    _AWAITING: ClassVar[SessionState]
    _OPENING: ClassVar[str]
    #: message kinds accepted in any state, even before the opening one
    _ANY_STATE: ClassVar[frozenset[str]] = frozenset()
    #: oneof name -> handler, for every kind allowed once the session is open
    _HANDLERS: ClassVar[Mapping[str, _Handler]]

    def __init__(self) -> None:
        self._out: list[bytes] = []
        self.state = SessionState.CLOSED
        self.close_reason = ""
        #: the Error code this side sent when it closed the session ("" for a clean close)
        self.close_code = ""

    def data_to_send(self) -> list[bytes]:
        """Return and clear the frames queued for the peer."""
        out, self._out = self._out, []
        return out

    def _decode(self, data: bytes, decode: Callable[[bytes], _E]) -> _E:
        """Decode a frame; a malformed one closes the session."""
        if self.state is SessionState.CLOSED:
            raise ProtocolError("session is closed")
        try:
            return decode(data)
        except ProtocolError as exc:
            raise self._fail(ErrorCode.MALFORMED_FRAME, str(exc)) from exc

    def _dispatch(self, envelope: pb.RunnerMessage | pb.ControlMessage) -> list[Any]:
        """Hand one decoded envelope to its handler (one dispatch style for both sides)."""
        kind = envelope.WhichOneof("kind")
        if self.state is self._AWAITING and kind not in self._ANY_STATE:
            if kind != self._OPENING:
                expected = self._OPENING.capitalize()
                raise self._fail(
                    ErrorCode.PROTOCOL, f"expected {expected} as the first message, got {kind}"
                )
            return self._open(getattr(envelope, kind))
        handler = self._HANDLERS.get(kind or "")
        if handler is None or kind is None:
            raise self._fail(ErrorCode.PROTOCOL, f"unexpected {kind} on an open tunnel")
        return handler(self, getattr(envelope, kind))

    def _open(self, message: Any) -> list[Any]:
        """Handle the opening message (Hello or Welcome)."""
        raise NotImplementedError

    def _on_passthrough(self, message: Any) -> list[Any]:
        """A message that changes nothing here: hand it up as it is."""
        return [message]

    def _fail(
        self, code: str, message: str, cls: type[ProtocolError] = ProtocolError
    ) -> ProtocolError:
        """Queue an Error for the peer, close, and build the exception to raise."""
        self._queue_error(code, message)
        self.state = SessionState.CLOSED
        self.close_reason = message
        self.close_code = code
        return cls(message)

    def _queue_error(self, code: str, message: str) -> None:
        raise NotImplementedError


class ControlSession(_Session):
    """The control plane's side of one runner's tunnel."""

    _AWAITING = SessionState.AWAITING_HELLO
    _OPENING = "hello"

    def __init__(
        self,
        *,
        server_version: str,
        heartbeat_interval_ms: int,
        lease_ttl_ms: int,
        stream_window: int = 0,
    ) -> None:
        super().__init__()
        self.state = SessionState.AWAITING_HELLO
        self.hello: pb.Hello | None = None
        self.minor_mismatch = False
        self._server_version = server_version
        self._heartbeat_interval_ms = heartbeat_interval_ms
        self._lease_ttl_ms = lease_ttl_ms
        self._stream_window = stream_window
        #: whether this runner's streams are flow-controlled (it speaks 1.2 and a window is set)
        self.stream_credit = False
        #: whether this runner takes stream-in tasks (it speaks 1.3)
        self.input_streams = False
        self.credits: defaultdict[str, int] = defaultdict(int)
        #: tasks sent and not yet finished
        self.inflight: dict[TaskKey, InflightTask] = {}

    # -- receiving --------------------------------------------------------------------------

    def receive_frame(self, data: bytes) -> list[ControlEvent]:
        """Decode one frame from the runner and return the events it carries.

        Raises:
            ProtocolError: the frame is malformed or not allowed now; the session is closed.
        """
        return self._dispatch(self._decode(data, decode_runner))

    def _open(self, hello: pb.Hello) -> list[ControlEvent]:
        try:
            self.minor_mismatch = check_version(hello.protocol)
        except ProtocolError as exc:
            raise self._fail(ErrorCode.VERSION_MISMATCH, str(exc), VersionMismatch) from exc
        if not hello.runner_id:
            raise self._fail(ErrorCode.PROTOCOL, "Hello carries no runner_id")
        if not RUNNER_ID_PATTERN.fullmatch(hello.runner_id):
            shown = ascii(hello.runner_id[:40]) + ("..." if len(hello.runner_id) > 40 else "")
            raise self._fail(
                ErrorCode.INVALID_HELLO,
                f"runner id {shown} ({len(hello.runner_id)} characters) is not valid: use 1-128 "
                "letters, digits and . _ : @ -, starting with a letter or digit",
            )
        self.hello = hello
        self.stream_credit = self._stream_window > 0 and _speaks(
            hello.protocol, STREAM_CREDIT_MINOR
        )
        self.input_streams = _speaks(hello.protocol, INPUT_STREAM_MINOR)
        return [hello]

    def _on_credit(self, credit: pb.Credit) -> list[ControlEvent]:
        for model_id, n in credit.grant.items():
            self.credits[model_id] += n
        return [credit]

    def _on_chunk(self, chunk: pb.Chunk) -> list[ControlEvent]:
        entry = self.inflight.get((chunk.task_id, chunk.attempt))
        if entry is None or entry.abandoned:
            return []  # a late chunk for a task finished, cancelled or abandoned: drop it
        if entry.credit_upto and chunk.seq >= entry.credit_upto:
            raise self._fail(
                ErrorCode.PROTOCOL,
                f"chunk {chunk.seq} of task {chunk.task_id} exceeds its stream credit "
                f"(chunks below {entry.credit_upto})",
            )
        if chunk.seq == entry.next_seq:
            entry.next_seq = chunk.seq + 1
            return [chunk]
        if not entry.resumed:
            raise self._fail(
                ErrorCode.PROTOCOL,
                f"chunk {chunk.seq} of task {chunk.task_id} arrived, expected {entry.next_seq}",
            )
        # A resumed task whose chunks were lost with the old tunnel: the stream has a hole.
        # Fail it for the client, stop it on the runner, and keep the entry until the runner's
        # terminal message gives the slot back.
        entry.abandoned = True
        self._out.append(
            encode(
                pb.ControlMessage(
                    cancel=pb.Cancel(
                        task_id=chunk.task_id, attempt=chunk.attempt, reason="output was lost"
                    )
                )
            )
        )
        lost = pb.TaskError(
            task_id=chunk.task_id,
            attempt=chunk.attempt,
            code=ErrorCode.RUNNER_LOST,
            message="the tunnel to the runner dropped mid-stream and output was lost; "
            "retry the request",
        )
        return [lost]

    def _on_terminal(self, message: pb.Result | pb.TaskError) -> list[ControlEvent]:
        entry = self.inflight.pop((message.task_id, message.attempt), None)
        if entry is None:
            return []
        self.credits[entry.model_id] += 1
        return [] if entry.abandoned else [message]

    def _on_input_credit(self, credit: pb.InputCredit) -> list[ControlEvent]:
        entry = self.inflight.get((credit.task_id, credit.attempt))
        if entry is None or entry.abandoned:
            return []  # the task finished or was cancelled meanwhile
        if not entry.input_stream:
            raise self._fail(
                ErrorCode.PROTOCOL,
                f"input credit for task {credit.task_id}, which takes no input stream",
            )
        if credit.upto_seq <= entry.input_upto:
            return []  # absolute: a repeated or reordered grant changes nothing
        entry.input_upto = credit.upto_seq
        return [credit]

    def _on_draining(self, message: pb.Draining) -> list[ControlEvent]:
        if self.state is SessionState.OPEN:
            self.state = SessionState.DRAINING
        return [message]

    def _on_goodbye(self, message: pb.Goodbye) -> list[ControlEvent]:
        self.state = SessionState.CLOSED
        self.close_reason = message.reason or "runner said goodbye"
        return [message]

    # -- sending ----------------------------------------------------------------------------

    def accept(self, runner_id: str, adopted: dict[TaskKey, InflightTask] | None = None) -> None:
        """Welcome the runner whose Hello the application validated.

        Args:
            runner_id: the id the runner is known by.
            adopted: tasks from ``Hello.inflight`` the control plane still wants, with their
                model, the next chunk number it expects and their stream credit; their results
                count on this session (and give their slots back here). Their stream credit is
                granted again, in case the grant was lost with the old tunnel.
        """
        if self.state is not SessionState.AWAITING_HELLO or self.hello is None:
            raise ProtocolError("accept() needs a received Hello")
        self.state = SessionState.OPEN
        adopted = adopted or {}
        for key, entry in adopted.items():
            entry.resumed, entry.abandoned = True, False
            if not self.stream_credit:
                entry.credit_upto = 0
            self.inflight[key] = entry
        welcome = pb.Welcome(
            runner_id=runner_id,
            protocol=pb.ProtocolVersion(major=PROTOCOL_VERSION[0], minor=PROTOCOL_VERSION[1]),
            heartbeat_interval_ms=self._heartbeat_interval_ms,
            lease_ttl_ms=self._lease_ttl_ms,
            server_version=self._server_version,
            adopted=[pb.TaskRef(task_id=t, attempt=a) for t, a in adopted],
            stream_window=self._stream_window if self.stream_credit else 0,
        )
        self._out.append(encode(pb.ControlMessage(welcome=welcome)))
        for (task_id, attempt), entry in adopted.items():
            if entry.credit_upto:
                self._queue_stream_credit(task_id, attempt, entry.credit_upto)

    def reject(self, code: str, message: str) -> None:
        """Refuse the runner (conflicting signatures, bad Hello, an id it may not use) and close."""
        self._queue_error(code, message)
        self.state = SessionState.CLOSED
        self.close_reason = message
        self.close_code = code

    def has_credit(self, model_id: str) -> bool:
        """Whether a task for ``model_id`` may be sent now."""
        return self.state is SessionState.OPEN and self.credits[model_id] > 0

    def send_task(
        self,
        task_id: str,
        attempt: int,
        model_id: str,
        method: str,
        payload: bytes,
        deadline_unix_ms: int = 0,
        queued_ms: int = 0,
        input_stream: bool = False,
    ) -> None:
        """Queue a task, spending one credit of its model.

        ``input_stream``: the method takes an input stream; send its items with
        :meth:`send_input` as the runner grants credit, then :meth:`send_input_end`.

        Raises:
            ProtocolError: no credit for the model, the session is not open, or a stream-in
                task for a runner older than 1.3 (caller bugs).
        """
        if not self.has_credit(model_id):
            raise ProtocolError(f"no credit for model {model_id!r} on this tunnel")
        if input_stream and not self.input_streams:
            raise ProtocolError("this runner is older than protocol 1.3: no stream-in tasks")
        self.credits[model_id] -= 1
        credit = self._stream_window if self.stream_credit else 0
        self.inflight[(task_id, attempt)] = InflightTask(
            model_id, credit_upto=credit, input_stream=input_stream
        )
        task = pb.Task(
            task_id=task_id,
            attempt=attempt,
            model_id=model_id,
            method=method,
            payload=payload,
            deadline_unix_ms=deadline_unix_ms,
            queued_ms=min(queued_ms, 2**32 - 1),
            input_stream=input_stream,
        )
        self._out.append(encode(pb.ControlMessage(task=task)))

    def input_room(self, task_id: str, attempt: int) -> int:
        """How many input items of a stream-in task may be sent now (0 when none, or when the
        task is not in flight here, its input ended, or the session is closed)."""
        entry = self.inflight.get((task_id, attempt))
        if (
            entry is None
            or entry.abandoned
            or entry.input_ended
            or self.state is SessionState.CLOSED
        ):
            return 0
        return max(0, entry.input_upto - entry.input_sent)

    def send_input(self, task_id: str, attempt: int, payload: bytes) -> int:
        """Queue the next input item of a stream-in task; returns its number.

        Raises:
            ProtocolError: the task has no input credit left, is not a stream-in task in
                flight here, or its input ended (caller bugs: check :meth:`input_room`).
        """
        if self.input_room(task_id, attempt) <= 0:
            raise ProtocolError(f"no input credit for task {task_id} on this tunnel")
        entry = self.inflight[(task_id, attempt)]
        seq = entry.input_sent
        entry.input_sent += 1
        chunk = pb.InputChunk(task_id=task_id, attempt=attempt, seq=seq, payload=payload)
        self._out.append(encode(pb.ControlMessage(input_chunk=chunk)))
        return seq

    def send_input_end(self, task_id: str, attempt: int) -> bool:
        """Queue the end of a stream-in task's input; False when there is nothing to end (the
        task is gone, its input ended already, or the session is closed)."""
        entry = self.inflight.get((task_id, attempt))
        if (
            entry is None
            or not entry.input_stream
            or entry.abandoned
            or entry.input_ended
            or self.state is SessionState.CLOSED
        ):
            return False
        entry.input_ended = True
        end = pb.InputEnd(task_id=task_id, attempt=attempt, count=entry.input_sent)
        self._out.append(encode(pb.ControlMessage(input_end=end)))
        return True

    def send_cancel(self, task_id: str, attempt: int, reason: str) -> None:
        """Ask the runner to cancel a task it holds."""
        entry = self.inflight.get((task_id, attempt))
        if entry is not None and not entry.abandoned and self.state is not SessionState.CLOSED:
            cancel = pb.Cancel(task_id=task_id, attempt=attempt, reason=reason)
            self._out.append(encode(pb.ControlMessage(cancel=cancel)))

    def send_stream_credit(self, task_id: str, attempt: int, upto_seq: int) -> bool:
        """Let a streaming task send its chunks numbered below ``upto_seq``.

        A no-op (False) when the stream is not flow-controlled, the task is not in flight here,
        or the credit would not grow.
        """
        entry = self.inflight.get((task_id, attempt))
        if (
            entry is None
            or entry.abandoned
            or not entry.credit_upto
            or upto_seq <= entry.credit_upto
            or self.state is SessionState.CLOSED
        ):
            return False
        entry.credit_upto = min(upto_seq, 2**32 - 1)
        self._queue_stream_credit(task_id, attempt, entry.credit_upto)
        return True

    def _queue_stream_credit(self, task_id: str, attempt: int, upto_seq: int) -> None:
        credit = pb.StreamCredit(task_id=task_id, attempt=attempt, upto_seq=upto_seq)
        self._out.append(encode(pb.ControlMessage(stream_credit=credit)))

    def send_drain(self, reason: str) -> None:
        """Ask the runner to drain: it stops taking tasks, and finishes those it has."""
        if self.state is not SessionState.CLOSED:
            self._out.append(encode(pb.ControlMessage(drain=pb.Drain(reason=reason))))

    def send_heartbeat(self) -> None:
        """Queue a heartbeat so the runner can detect a half-open tunnel."""
        hb = pb.Heartbeat(sent_unix_ms=_now_ms())
        self._out.append(encode(pb.ControlMessage(heartbeat=hb)))

    def send_goodbye(self, reason: str, reconnect_after_ms: int = 0) -> None:
        """Tell the runner we are going away and when to come back; closes the session."""
        bye = pb.Goodbye(reason=reason, reconnect_after_ms=reconnect_after_ms)
        self._out.append(encode(pb.ControlMessage(goodbye=bye)))
        self.state = SessionState.CLOSED
        self.close_reason = reason

    def _queue_error(self, code: str, message: str) -> None:
        self._out.append(encode(pb.ControlMessage(error=pb.Error(code=code, message=message))))


ControlSession._HANDLERS = {
    "credit": ControlSession._on_credit,
    "heartbeat": ControlSession._on_passthrough,
    "accepted": ControlSession._on_passthrough,
    "chunk": ControlSession._on_chunk,
    "result": ControlSession._on_terminal,
    "task_error": ControlSession._on_terminal,
    "logs": ControlSession._on_passthrough,
    "draining": ControlSession._on_draining,
    "goodbye": ControlSession._on_goodbye,
    "model_status": ControlSession._on_passthrough,
    "input_credit": ControlSession._on_input_credit,
}


class RunnerSession(_Session):
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
        hb = pb.Heartbeat(sent_unix_ms=_now_ms(), busy=busy, gpus=gpus or (), gpu_note=gpu_note)
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
