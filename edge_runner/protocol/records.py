"""What the tunnel sessions keep and hand up: session states, per-task records, event types.

Plain data, shared by :mod:`edge_runner.protocol.session`'s two sides and by the code that
drives them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from edge_runner.proto import tunnel_pb2 as pb

__all__ = [
    "ControlEvent",
    "InflightTask",
    "RunnerEvent",
    "RunnerTask",
    "SessionState",
    "TaskKey",
]

#: a task's identity on the tunnel: ``(task_id, attempt)``
TaskKey = tuple[str, int]

#: What the control plane's session hands up: messages sent by a runner.
ControlEvent = (
    pb.Hello
    | pb.Credit
    | pb.Heartbeat
    | pb.Accepted
    | pb.Chunk
    | pb.Result
    | pb.TaskError
    | pb.Logs
    | pb.Draining
    | pb.Goodbye
    | pb.ModelStatus
    | pb.InputCredit
)
#: What the runner's session hands up: messages sent by the control plane.
RunnerEvent = (
    pb.Welcome
    | pb.Task
    | pb.Cancel
    | pb.Drain
    | pb.Goodbye
    | pb.Error
    | pb.Heartbeat
    | pb.StreamCredit
    | pb.InputChunk
    | pb.InputEnd
)


@dataclass(slots=True)
class InflightTask:
    """A task the control plane sent and has not seen finish.

    Attributes:
        next_seq: the chunk number expected next.
        resumed: carried over from an earlier tunnel (a gap in its chunks is lost output, not a
            protocol error).
        abandoned: given up (lost output); kept until the runner's terminal message returns
            the slot.
        credit_upto: chunks numbered below this may be sent; 0 when the stream is not
            flow-controlled (a 1.1 runner).
        input_stream: the method takes an input stream (protocol 1.3).
        input_sent: input items sent so far (the next one's number).
        input_upto: input items numbered below this may be sent (the runner's InputCredit).
        input_ended: the InputEnd went out.
    """

    model_id: str
    next_seq: int = 0
    resumed: bool = False
    abandoned: bool = False
    credit_upto: int = 0
    input_stream: bool = False
    input_sent: int = 0
    input_upto: int = 0
    input_ended: bool = False


@dataclass(slots=True)
class RunnerTask:
    """A task the runner holds on its session: sent to it, and not yet finished there.

    Attributes:
        model_id: the model it runs on; its slot goes back to this model when it finishes.
        next_seq: the number the next chunk of its output gets.
        input_stream: the method takes an input stream (protocol 1.3).
        input_next: the number the next input item must have.
        input_upto: input items numbered below this were granted (InputCredit sent).
        input_ended: the InputEnd arrived.
    """

    model_id: str
    next_seq: int = 0
    input_stream: bool = False
    input_next: int = 0
    input_upto: int = 0
    input_ended: bool = False


class SessionState(enum.Enum):
    """Lifecycle of one tunnel session."""

    AWAITING_HELLO = "awaiting_hello"
    AWAITING_WELCOME = "awaiting_welcome"
    OPEN = "open"
    DRAINING = "draining"
    CLOSED = "closed"
