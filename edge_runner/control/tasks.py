"""A request's life in the control plane: :class:`Task`, its state and the events it yields,
and :class:`TaskRecord`, what ``GET /v2/tasks`` keeps of it once it is done."""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.views import TaskView

if TYPE_CHECKING:
    from edge_runner.control.dispatch import RunnerLink

__all__ = [
    "Task",
    "TaskDone",
    "TaskEvent",
    "TaskFailedEvent",
    "TaskOutput",
    "TaskRecord",
    "TaskState",
]


class TaskState(enum.Enum):
    """Where a task is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class TaskOutput:
    """One streamed piece of output (JSON bytes)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class TaskDone:
    """The task finished; ``payload`` is the unary output (JSON bytes), empty for streams."""

    payload: bytes
    usage: pb.Usage | None


@dataclass(frozen=True, slots=True)
class TaskFailedEvent:
    """The task failed with an error code and a message for a person."""

    code: str
    message: str


TaskEvent = TaskOutput | TaskDone | TaskFailedEvent


@dataclass(eq=False, slots=True)
class Task:
    """One request on its way through the control plane."""

    task_id: str
    user_id: str
    model_id: str
    method: str
    payload: bytes
    deadline_unix_ms: int = 0
    attempt: int = 1
    state: TaskState = TaskState.QUEUED
    link: RunnerLink | None = None
    produced_output: bool = False
    #: whether a lost runner's task may run again elsewhere (not an MCP call: tools act)
    retry: bool = True
    created: float = field(default_factory=time.monotonic)
    created_at: float = field(default_factory=time.time)
    started: float | None = None
    runner_id: str = ""
    #: the public id of the token that made the request (paused streams are capped per token)
    token_id: str = ""
    #: stream chunks delivered to ``events``, their bytes, and how many the client took
    received: int = 0
    received_bytes: int = 0
    consumed: int = 0
    #: since when the runner has been waiting for stream credit (monotonic), or None
    paused_since: float | None = None
    events: asyncio.Queue[TaskEvent] = field(default_factory=asyncio.Queue)
    #: the method takes an input stream (protocol 1.3); its items go through
    #: ``Dispatcher.send_input`` as the runner grants input credit
    input_stream: bool = False
    #: input items sent to the runner, and whether the end of input went out
    inputs: int = 0
    input_ended: bool = False
    #: stream-in tasks only (None for the others, so the hot path allocates nothing): set when
    #: input items may be sent (credit arrived, or the task reached a runner) or never will
    #: (the task finished)
    input_wakeup: asyncio.Event | None = None

    @property
    def finished(self) -> bool:
        """Whether a terminal event was delivered (or the task was cancelled)."""
        return self.state in (TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED)


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """A finished task, for ``GET /v2/tasks`` (kept in a bounded list)."""

    task_id: str
    user_id: str
    model_id: str
    method: str
    status: str  # done, failed, cancelled
    code: str  # the error code, "" when done
    created_at: float
    queue_wait_s: float | None
    run_time_s: float | None
    runner_id: str
    completion_tokens: int
    attempts: int
    #: a stream-in task's input items and output chunks (None for other tasks)
    inputs: int | None = None
    outputs: int | None = None

    def to_dict(self) -> TaskView:
        """JSON-ready; tokens/s where the backend counted tokens."""
        doc: TaskView = {
            "task_id": self.task_id,
            "model": self.model_id,
            "method": self.method,
            "status": self.status,
            "code": self.code,
            "created_at": self.created_at,
            "queue_wait_s": self.queue_wait_s,
            "run_time_s": self.run_time_s,
            "runner_id": self.runner_id,
            "attempts": self.attempts,
        }
        if self.inputs is not None:
            doc["inputs"] = self.inputs
            doc["outputs"] = self.outputs or 0
        if self.completion_tokens and self.run_time_s:
            doc["completion_tokens"] = self.completion_tokens
            doc["tokens_per_s"] = round(self.completion_tokens / self.run_time_s, 2)
        return doc
