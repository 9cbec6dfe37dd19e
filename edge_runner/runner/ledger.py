"""The tasks a runner holds across tunnels, as plain bookkeeping: no I/O, no event loop.

A task outlives the tunnel it came on. While it runs, its output goes out on the current
session if that session holds it, or waits here if the tunnel is down. Every chunk gets its
number here, once, from the one counter of its task, so a chunk held across a reconnect keeps
the number it was produced with. After a reconnect the control plane lists in
``Welcome.adopted`` the tasks it still wants: :meth:`TaskLedger.resume` sends their held output
on the new session and names the others for the caller to cancel. A chunk lost with the old
tunnel leaves a gap that the control plane reports to the client as ``RUNNER_LOST``.

A stream-in task cannot outlive its tunnel: its input came on that tunnel and no other will
carry the rest, so the control plane fails it with ``RUNNER_LOST`` and never adopts it. When
the tunnel goes, :meth:`TaskLedger.drop_input_streams` gives such tasks up at once, so the
caller cancels them instead of leaving them waiting for input that cannot come.

The caller hands in the :class:`~edge_runner.protocol.RunnerSession` (itself sans-I/O) or
``None`` while there is none, and moves the frames the session queued.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from edge_runner.errors import ErrorCode
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import RunnerSession, SessionState
from edge_runner.protocol.records import TaskKey

__all__ = [
    "ChunkOut",
    "Disposal",
    "ErrorOut",
    "HeldTask",
    "Outcome",
    "ResultOut",
    "Resumed",
    "TaskLedger",
    "stopped_error",
]


@dataclass(frozen=True, slots=True)
class ChunkOut:
    """A streamed piece, numbered when it was produced."""

    seq: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class ResultOut:
    """A task's result (its last message)."""

    payload: bytes
    usage: pb.Usage | None


@dataclass(frozen=True, slots=True)
class ErrorOut:
    """A task's error (its last message)."""

    code: str
    message: str
    retryable: bool = False


Outcome = ChunkOut | ResultOut | ErrorOut


@dataclass(slots=True)
class HeldTask:
    """A task the runner holds: its numbering, and any output not yet sent.

    Attributes:
        started: ``time.monotonic()`` when it arrived.
        next_seq: the number its next chunk gets (the one counter, across tunnels).
        pending: output produced while no session held the task, in order.
        finished: its last message is in ``pending``.
        unwanted: the control plane gave it up; its output is dropped.
        timed: its run time was recorded (once).
        input_stream: a stream-in task (bound to the tunnel it came on).
        inputs: the input items it received so far (a stream-in task).
    """

    model_id: str
    method: str = ""
    queue_wait: float = 0.0
    started: float = field(default_factory=time.monotonic)
    next_seq: int = 0
    pending: list[Outcome] = field(default_factory=list)
    finished: bool = False
    unwanted: bool = False
    timed: bool = False
    input_stream: bool = False
    inputs: int = 0


class Disposal(enum.Enum):
    """What became of a task's last message."""

    #: queued on the live session; the caller flushes it
    SENT = "sent"
    #: kept for the next tunnel
    HELD = "held"
    #: dropped: the control plane had given the task up, so its slot is free again
    RELEASED = "released"


@dataclass(frozen=True, slots=True)
class Resumed:
    """What :meth:`TaskLedger.resume` did.

    Attributes:
        adopted: how many tasks the control plane took back.
        cancel: the running tasks it gave up; the caller cancels them.
    """

    adopted: int
    cancel: list[TaskKey]


def stopped_error(code: str, message: str, retryable: bool, *, cancelling: bool) -> ErrorOut:
    """A task's error as the control plane should see it.

    A task cancelled because this runner is stopping (its second stop signal), not because
    anyone asked, is ``UNAVAILABLE`` and retryable: the control plane may run it elsewhere (it
    does when the task streamed nothing yet).
    """
    if code == ErrorCode.CANCELLED and cancelling:
        return ErrorOut(ErrorCode.UNAVAILABLE, "the runner stopped before the task finished", True)
    return ErrorOut(code, message, retryable)


class TaskLedger:
    """The held tasks, by ``(task_id, attempt)``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._held: dict[TaskKey, HeldTask] = {}

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, key: object) -> bool:
        return key in self._held

    def get(self, key: TaskKey) -> HeldTask | None:
        """The held task, or None."""
        return self._held.get(key)

    def items(self) -> Iterator[tuple[TaskKey, HeldTask]]:
        """Every held task, the unwanted ones too, oldest first."""
        return iter(list(self._held.items()))

    def refs(self) -> list[pb.TaskRef]:
        """What the next ``Hello.inflight`` lists: every task still held."""
        return [pb.TaskRef(task_id=t, attempt=a) for t, a in self._held]

    def busy(self, model_id: str) -> int:
        """Tasks held for ``model_id`` (they hold its slots)."""
        return sum(1 for held in self._held.values() if held.model_id == model_id)

    def take(self, task: pb.Task) -> HeldTask:
        """Hold a task that just arrived."""
        held = HeldTask(
            task.model_id,
            task.method,
            task.queued_ms / 1000,
            started=self._clock(),
            input_stream=task.input_stream,
        )
        self._held[(task.task_id, task.attempt)] = held
        return held

    def chunk(self, key: TaskKey, payload: bytes, session: RunnerSession | None) -> bool:
        """Number a streamed piece and send it, or hold it; True when it went on ``session``."""
        held = self._held.get(key)
        if held is None or held.unwanted:
            return False
        seq = held.next_seq
        held.next_seq += 1
        if _holds(session, key):
            assert session is not None
            session.send_chunk(key[0], key[1], payload, seq)
            return True
        held.pending.append(ChunkOut(seq, payload))
        return False

    def finish(
        self, key: TaskKey, outcome: ResultOut | ErrorOut, session: RunnerSession | None
    ) -> Disposal | None:
        """Send a task's last message, hold it for the next tunnel, or drop it.

        Returns None for a task not held.
        """
        held = self._held.get(key)
        if held is None:
            return None
        if _holds(session, key):
            assert session is not None
            del self._held[key]
            send(session, key, outcome)
            return Disposal.SENT
        if held.unwanted:
            del self._held[key]
            return Disposal.RELEASED
        held.pending.append(outcome)
        held.finished = True
        return Disposal.HELD

    def resume(self, session: RunnerSession, adopted: set[TaskKey]) -> Resumed:
        """After a Welcome: send the held output of adopted tasks, give up the others.

        Adopted tasks are held on ``session`` again from their next chunk number; a finished
        one is forgotten once its output is out. A finished task the control plane did not
        adopt is forgotten; a running one is marked unwanted and named for cancelling. A
        stream-in task is never resumed, even if listed (its input is gone with its tunnel).
        """
        cancel: list[TaskKey] = []
        for key, held in list(self._held.items()):
            if held.unwanted:
                continue
            if key in adopted and not held.input_stream:
                session.adopt(key[0], key[1], held.model_id, held.next_seq)
                for outcome in held.pending:
                    send(session, key, outcome)
                held.pending.clear()
                if held.finished:
                    del self._held[key]
            elif held.finished:
                del self._held[key]
            else:
                held.unwanted = True
                held.pending.clear()
                cancel.append(key)
        return Resumed(len(adopted), cancel)

    def drop_input_streams(self) -> list[TaskKey]:
        """The tunnel is gone: give up the running stream-in tasks and name them for
        cancelling (their output is dropped, their slots free once they stop)."""
        cancel: list[TaskKey] = []
        for key, held in self._held.items():
            if held.input_stream and not held.unwanted and not held.finished:
                held.unwanted = True
                held.pending.clear()
                cancel.append(key)
        return cancel


def send(session: RunnerSession, key: TaskKey, outcome: Outcome) -> None:
    """Queue one outcome of task ``key`` on ``session``."""
    task_id, attempt = key
    match outcome:
        case ChunkOut(seq, payload):
            session.send_chunk(task_id, attempt, payload, seq)
        case ResultOut(payload, usage):
            session.send_result(task_id, attempt, payload, usage)
        case ErrorOut(code, message, retryable):
            session.send_error(task_id, attempt, code, message, retryable)


def _holds(session: RunnerSession | None, key: TaskKey) -> bool:
    """Whether ``session`` is live and holds the task (its output may go out now)."""
    return session is not None and session.state is not SessionState.CLOSED and key in session.tasks
