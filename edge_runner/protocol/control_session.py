"""The control plane's side of a runner's tunnel session (see
:mod:`edge_runner.protocol.session` for the protocol's rules)."""

from __future__ import annotations

from collections import defaultdict

from edge_runner.errors import ErrorCode, ProtocolError, VersionMismatch
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol.codec import decode_runner, encode
from edge_runner.protocol.records import ControlEvent, InflightTask, SessionState, TaskKey
from edge_runner.protocol.session_base import (
    INPUT_STREAM_MINOR,
    RUNNER_ID_PATTERN,
    STREAM_CREDIT_MINOR,
    Session,
    now_ms,
    speaks,
)
from edge_runner.protocol.version import PROTOCOL_VERSION, check_version

__all__ = ["ControlSession"]


class ControlSession(Session):
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
        self.stream_credit = self._stream_window > 0 and speaks(hello.protocol, STREAM_CREDIT_MINOR)
        self.input_streams = speaks(hello.protocol, INPUT_STREAM_MINOR)
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
        hb = pb.Heartbeat(sent_unix_ms=now_ms())
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
