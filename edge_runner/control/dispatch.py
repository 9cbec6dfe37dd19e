"""Dispatch: per-model queues, credit-based admission, least-loaded runner choice.

A request becomes a :class:`Task`. If a runner serving the model has a free slot (credit), the
task goes straight to the runner with the most free slots; otherwise it waits in its model's
bounded FIFO and is sent when a slot frees up. Nothing is ever sent to a runner beyond the slots
it granted, so nothing queues blind on the runner. Events from the runner (chunks, result,
error) are delivered to the task's own queue, which the HTTP handler reads.

Streams are flow-controlled end to end (protocol 1.2): a runner may send a streaming task's
chunks only up to the task's stream credit, and the credit grows as the HTTP client takes
chunks (:meth:`Dispatcher.stream_consumed`), by about ``stream_buffer_bytes`` of output (at
most ``stream_window`` chunks) beyond what the client has read. A client that reads slowly
therefore pauses the model's generator on the runner instead of filling memory anywhere on the
way. A paused stream still holds its runner slot, so each token may have at most
``max_paused_streams`` streams stalled (paused for longer than a grace period) at once: the one
that goes over fails with ``SLOW_READER``, and so does a stream whose reader took nothing for
the stream idle timeout.

A stream-in task (protocol 1.3: the method takes an input stream) also needs input credit: the
HTTP handler sends its items with :meth:`Dispatcher.send_input` only as its runner grants them
(``Task.input_wakeup`` is set when it may), so a model slower than its input holds the client
back. Such a task goes only to runners that speak 1.3; it is refused with
:class:`~edge_runner.errors.RunnerTooOld` when every runner of the model is older. Its input is
consumed as it flows, so it is never re-queued nor resumed on a reconnected tunnel: a lost
runner fails it with ``RUNNER_LOST``.

Queued tasks live in memory only (no write per request). This class is the seam for a
multi-replica dispatcher over a message bus later.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict, deque

from edge_runner.control.runner_link import RunnerLink, TaskKey
from edge_runner.control.tasks import (
    Task,
    TaskDone,
    TaskEvent,
    TaskFailedEvent,
    TaskOutput,
    TaskRecord,
    TaskState,
)
from edge_runner.errors import ErrorCode, ProtocolError, QueueFull, RunnerTooOld
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import (
    PROTOCOL_VERSION,
    ControlEvent,
    SessionState,
    format_version,
)
from edge_runner.protocol.session import InflightTask
from edge_runner.views import TaskView

__all__ = ["Dispatcher", "RunnerLink"]

logger = logging.getLogger(__name__)

#: attempts a task gets when its runner disappears before it produced output
MAX_ATTEMPTS = 3

ModelKey = tuple[str, str]  # (user id, model id)


#: finished tasks kept for ``GET /v2/tasks``
RECENT_TASKS = 1000


#: a stream paused for less than this is only a reader catching up, not a stalled one
STALL_GRACE_S = 1.0


class Dispatcher:
    """Routes tasks to runners by credit; see the module docstring."""

    def __init__(
        self,
        *,
        max_queue: int = 1024,
        stream_buffer_bytes: int = 4 * 1024 * 1024,
        stream_window: int = 64,
        max_paused_streams: int = 16,
    ) -> None:
        self.max_queue = max_queue
        self.stream_buffer_bytes = stream_buffer_bytes
        self.stream_window = stream_window
        self.max_paused_streams = max_paused_streams
        #: streams whose runner is waiting for credit, by task id
        self.paused: dict[str, Task] = {}
        self._queues: defaultdict[ModelKey, deque[Task]] = defaultdict(deque)
        self._links: defaultdict[ModelKey, list[RunnerLink]] = defaultdict(list)
        self.links: dict[str, RunnerLink] = {}
        #: unfinished tasks by id (queued or running)
        self.tasks: dict[str, Task] = {}
        #: finished tasks, newest last
        self.recent: deque[TaskRecord] = deque(maxlen=RECENT_TASKS)
        #: requests and errors per (user, model) since start, for rates
        self.requests: Counter[ModelKey] = Counter()
        self.errors: Counter[ModelKey] = Counter()

    # -- runners ----------------------------------------------------------------------------

    def attach(self, link: RunnerLink, model_ids: tuple[str, ...]) -> None:
        """Start routing ``model_ids`` to a runner whose tunnel just opened."""
        link.model_ids = model_ids
        self.links[link.runner_id] = link
        for model_id in model_ids:
            self._links[(link.user_id, model_id)].append(link)

    def suspend(self, link: RunnerLink) -> None:
        """Stop routing to a runner whose tunnel dropped; its tasks stay leased to it."""
        if self.links.get(link.runner_id) is link:
            del self.links[link.runner_id]
        for model_id in link.model_ids:
            links = self._links[(link.user_id, model_id)]
            if link in links:
                links.remove(link)

    def adopt(
        self, old: RunnerLink, new: RunnerLink, inflight: list[TaskKey]
    ) -> dict[TaskKey, InflightTask]:
        """Move the tasks a reconnected runner still holds from its old link to the new one.

        Returns:
            The adopted tasks' session entries (model, next chunk number, stream credit), for
            ``ControlSession.accept``.
        """
        adopted: dict[TaskKey, InflightTask] = {}
        for key in inflight:
            task = old.tasks.pop(key, None)
            entry = old.session.inflight.get(key)
            if task is None or task.finished or entry is None or entry.abandoned:
                continue
            if task.input_stream:  # input sent on the old tunnel may be lost: not resumable
                old.tasks[key] = task  # detach() fails it with RUNNER_LOST
                continue
            new.tasks[key] = task
            task.link = new
            adopted[key] = InflightTask(
                task.model_id, entry.next_seq, credit_upto=entry.credit_upto
            )
        return adopted

    def detach(self, link: RunnerLink) -> None:
        """Give up on a runner: re-queue its tasks that produced nothing, fail the others."""
        self.suspend(link)
        orphans, link.tasks = list(link.tasks.values()), {}
        for task in orphans:
            if task.finished:
                continue
            if task.retry and not task.produced_output and task.attempt < MAX_ATTEMPTS:
                self._requeue(task, f"runner {link.runner_id} was lost")
            else:
                reason = (
                    "after it had streamed output"
                    if task.produced_output
                    else "(its input stream is consumed as it flows and cannot be replayed)"
                    if task.input_stream
                    else "(a call that is not retried elsewhere)"
                    if not task.retry
                    else f"and the task has had {task.attempt} attempts"
                )
                self._finish(
                    task,
                    TaskState.FAILED,
                    TaskFailedEvent(
                        ErrorCode.RUNNER_LOST,
                        f"runner {link.runner_id} was lost while running the task {reason}; "
                        "retry the request",
                    ),
                )
        for model_id in link.model_ids:
            self._pump((link.user_id, model_id))

    def online(self, user_id: str, model_id: str) -> int:
        """How many runners with an open tunnel serve this model, READY."""
        return sum(1 for link in self._links.get((user_id, model_id), ()) if link.ready(model_id))

    def not_ready(self, user_id: str, model_id: str) -> pb.ModelStatus | None:
        """Why a model served by runners cannot run now, or None when it can (or nobody serves it).

        With several runners preparing it, the one closest to READY speaks: a LOADING one with
        the most progress, else an UNAVAILABLE one.
        """
        links = self._links.get((user_id, model_id), ())
        waiting = []
        for link in links:
            status = link.model_status.get(model_id)
            if status is None:
                if link.session.state is SessionState.OPEN:
                    return None
                continue
            waiting.append(status)
        if not waiting:
            return None
        return max(waiting, key=lambda s: (s.state == pb.LOADING, s.progress))

    def set_model_status(self, link: RunnerLink, status: pb.ModelStatus) -> None:
        """Apply a runner's LOADING/READY/UNAVAILABLE for one of its models."""
        if status.state == pb.READY:
            if link.model_status.pop(status.model_id, None) is not None:
                self._pump((link.user_id, status.model_id))
        else:
            link.model_status[status.model_id] = status

    def withdraw(self, link: RunnerLink, model_id: str, reason: str) -> bool:
        """Stop routing ``model_id`` to a runner that gave it up (FAILED).

        Tasks waiting for the model fail with ``reason`` when no other runner serves it.

        Returns:
            Whether any runner still serves the model.
        """
        key = (link.user_id, model_id)
        link.model_ids = tuple(m for m in link.model_ids if m != model_id)
        link.model_status.pop(model_id, None)
        links = self._links.get(key, [])
        if link in links:
            links.remove(link)
        if links:
            return True
        queue = self._queues.get(key)
        while queue:
            task = queue.popleft()
            if not task.finished:
                self._finish(
                    task, TaskState.FAILED, TaskFailedEvent(ErrorCode.MODEL_UNAVAILABLE, reason)
                )
        return False

    def runners_for(self, user_id: str, model_id: str) -> list[RunnerLink]:
        """Connected runners serving a model (any session state)."""
        return list(self._links.get((user_id, model_id), ()))

    def queued(self, user_id: str, model_id: str) -> int:
        """Tasks waiting for a slot."""
        queue = self._queues.get((user_id, model_id))
        return len(queue) if queue else 0

    # -- tasks ------------------------------------------------------------------------------

    def submit(self, task: Task) -> None:
        """Send the task to a runner now, or queue it.

        Raises:
            QueueFull: the model's queue is at ``max_queue``.
            RunnerTooOld: a stream-in task, and every runner serving the model is older than
                protocol 1.3 (with no runner at all it queues, as any task).
        """
        key = (task.user_id, task.model_id)
        queue = self._queues[key]
        if task.input_stream:
            task.retry = False  # its input is consumed as it flows
            self._check_protocol(task)
        if len(queue) >= self.max_queue:
            raise QueueFull(f"{len(queue)} requests are already waiting for {task.model_id}")
        self.tasks[task.task_id] = task
        self.requests[key] += 1
        if not queue:
            link = self._pick(key, task)
            if link is not None:
                self._send(link, task)
                return
        queue.append(task)

    def _check_protocol(self, task: Task) -> None:
        links = self._links.get((task.user_id, task.model_id), ())
        if not links or any(link.takes(task) for link in links):
            return
        runners = ", ".join(f"{link.runner_id} speaks {link.protocol}" for link in links)
        raise RunnerTooOld(
            f"{task.model_id}.{task.method} takes an input stream, which needs tunnel protocol "
            f"{format_version((1, 3))} or later, and the model's runners are older ({runners}; "
            f"this control plane speaks {format_version(PROTOCOL_VERSION)}); upgrade "
            "edge-runner on the runner's machine"
        )

    def submit_batch(self, tasks: list[Task]) -> None:
        """Submit tasks of one model together: all of them, or none.

        The tasks that find no free slot queue, and the batch is refused whole when they do
        not all fit in what is left of ``max_queue``: a batch is as many requests as it has
        items, and a half-admitted one would leave its caller to work out which items ran.

        Raises:
            QueueFull: the queue has no room for the batch's waiting tasks.
        """
        if not tasks:
            return
        key = (tasks[0].user_id, tasks[0].model_id)
        queue = self._queues[key]
        # _pick serves from free slots only while nothing waits (first come, first served).
        free = 0 if queue else sum(link.free_slots(key[1]) for link in self._links.get(key, ()))
        waiting = max(0, len(tasks) - free)
        room = self.max_queue - len(queue)
        if waiting > room:
            raise QueueFull(
                f"a batch of {len(tasks)} would leave {waiting} waiting for {key[1]}, and its "
                f"queue has room for {max(room, 0)} (the control plane's --max-queue is "
                f"{self.max_queue})"
            )
        for task in tasks:
            self.submit(task)

    def cancel(self, task: Task, reason: str, code: str = ErrorCode.CANCELLED) -> None:
        """Cancel a task: take it out of its queue, or tell its runner to stop it.

        Whoever waits on the task gets a ``code`` failure (``CANCELLED`` unless said otherwise)
        at once; the runner's own answer, when it comes, only gives the slot back.
        """
        if task.finished:
            return
        if task.state is TaskState.QUEUED:
            queue = self._queues.get((task.user_id, task.model_id))
            if queue is not None and task in queue:
                queue.remove(task)
        elif task.link is not None:
            task.link.tasks.pop((task.task_id, task.attempt), None)
            task.link.session.send_cancel(task.task_id, task.attempt, reason)
            task.link.flush()
        self._finish(task, TaskState.CANCELLED, TaskFailedEvent(code, reason))

    # -- stream input (protocol 1.3) --------------------------------------------------------

    def input_room(self, task: Task) -> int:
        """How many input items of a stream-in task may be sent now."""
        link = task.link
        if link is None or task.finished or task.state is not TaskState.RUNNING:
            return 0
        return link.session.input_room(task.task_id, task.attempt)

    def send_input(self, task: Task, payload: bytes) -> None:
        """Send a stream-in task's next input item (check :meth:`input_room` first).

        Raises:
            ProtocolError: no input credit (a caller bug).
        """
        link = task.link
        if link is None:
            raise ProtocolError(f"task {task.task_id} is not on a runner")
        link.session.send_input(task.task_id, task.attempt, payload)
        task.inputs += 1
        link.flush()

    def end_input(self, task: Task) -> None:
        """Send the end of a stream-in task's input (once; no-op for a finished task)."""
        link = task.link
        if task.input_ended or link is None or task.finished:
            return
        task.input_ended = True
        if link.session.send_input_end(task.task_id, task.attempt):
            link.flush()

    # -- stream flow control ----------------------------------------------------------------

    def stream_consumed(self, task: Task) -> None:
        """The client took one chunk of a streaming task: extend its credit when due."""
        task.consumed += 1
        link = task.link
        if link is None or task.finished:
            return
        entry = link.session.inflight.get((task.task_id, task.attempt))
        if entry is None or not entry.credit_upto:
            return
        target = self._credit_target(task)
        if entry.credit_upto - task.consumed > target // 2:
            return
        if link.session.send_stream_credit(task.task_id, task.attempt, task.consumed + target):
            link.flush()
        if task.paused_since is not None:
            task.paused_since = None
            self.paused.pop(task.task_id, None)

    def _credit_target(self, task: Task) -> int:
        """Chunks a stream may have beyond what its client read: the window, fewer when its
        chunks are big (about ``stream_buffer_bytes`` of output)."""
        if not task.received:
            return self.stream_window
        average = max(1, task.received_bytes // task.received)
        return max(1, min(self.stream_window, self.stream_buffer_bytes // average))

    def check_stalled(self, now: float, idle_timeout: float) -> None:
        """Fail streams whose readers stalled: over the per-token cap, or idle too long.

        Called periodically (the control plane's monitor). A stream paused for
        :data:`STALL_GRACE_S` is stalled; per token, the ones beyond ``max_paused_streams``
        (the most recently stalled go first) fail with ``SLOW_READER``, as does any stream
        paused for ``idle_timeout``. Their runners get a Cancel and their slots come back.
        """
        stalled: defaultdict[str, list[Task]] = defaultdict(list)
        for task in list(self.paused.values()):
            paused_since = task.paused_since
            if paused_since is None or now - paused_since < STALL_GRACE_S:
                continue
            if now - paused_since >= idle_timeout:
                self.cancel(
                    task,
                    f"the client read nothing of this stream for {idle_timeout:g} s "
                    "(the control plane's --stream-idle-timeout); the task was cancelled",
                    ErrorCode.SLOW_READER,
                )
                continue
            stalled[task.token_id].append(task)
        for tasks in stalled.values():
            tasks.sort(key=lambda t: t.paused_since or 0.0)
            for task in tasks[self.max_paused_streams :]:
                self.cancel(
                    task,
                    f"this token already has {self.max_paused_streams} streams waiting for "
                    "their readers (the control plane's --max-paused-streams); read streams "
                    "as fast as they arrive, or open fewer at once",
                    ErrorCode.SLOW_READER,
                )

    def fail_all(self, code: str, message: str) -> None:
        """Answer every unfinished task with an error (the control plane is stopping)."""
        for task in list(self.tasks.values()):
            queue = self._queues.get((task.user_id, task.model_id))
            if task.state is TaskState.QUEUED and queue is not None and task in queue:
                queue.remove(task)
            self._finish(task, TaskState.FAILED, TaskFailedEvent(code, message))

    def on_event(self, link: RunnerLink, event: ControlEvent) -> None:
        """Apply one event from a runner's session."""
        link.last_seen = time.monotonic()
        if isinstance(event, pb.Chunk):
            task = link.tasks.get((event.task_id, event.attempt))
            if task is not None and not task.finished:
                task.produced_output = True
                task.received += 1
                task.received_bytes += len(event.payload)
                task.events.put_nowait(TaskOutput(event.payload))
                entry = link.session.inflight.get((event.task_id, event.attempt))
                if entry is not None and entry.credit_upto and event.seq + 1 >= entry.credit_upto:
                    # The runner has used all its credit: its generator waits for the reader.
                    task.paused_since = time.monotonic()
                    self.paused[task.task_id] = task
        elif isinstance(event, pb.Result):
            task = link.tasks.pop((event.task_id, event.attempt), None)
            if task is None:
                self._pump_link(link)
                return
            usage = event.usage if event.HasField("usage") else None
            self._finish(task, TaskState.DONE, TaskDone(event.payload, usage))
            self._pump((task.user_id, task.model_id))
        elif isinstance(event, pb.TaskError):
            task = link.tasks.pop((event.task_id, event.attempt), None)
            if task is None:
                self._pump_link(link)
                return
            retry = event.retryable and task.retry and not task.produced_output
            if retry and task.attempt < MAX_ATTEMPTS:
                # Refused before it ran (a runner that started draining as the task arrived).
                self._requeue(task, f"runner {link.runner_id} refused it: {event.message}")
            else:
                self._finish(task, TaskState.FAILED, TaskFailedEvent(event.code, event.message))
            self._pump((task.user_id, task.model_id))
        elif isinstance(event, pb.InputCredit):
            task = link.tasks.get((event.task_id, event.attempt))
            if task is not None and task.input_wakeup is not None:
                task.input_wakeup.set()
        elif isinstance(event, pb.Credit):
            for model_id in event.grant:
                self._pump((link.user_id, model_id))
        elif isinstance(event, pb.Heartbeat):
            link.busy_reported = event.busy
            link.gpu_samples = list(event.gpus)
            link.gpu_note = event.gpu_note
        elif isinstance(event, pb.Goodbye):
            link.said_goodbye = True

    # -- internals --------------------------------------------------------------------------

    def _requeue(self, task: Task, why: str) -> None:
        """Put a task that produced nothing back at the head of its queue, as a new attempt."""
        task.attempt += 1
        task.state = TaskState.QUEUED
        task.link = None
        self._queues[(task.user_id, task.model_id)].appendleft(task)
        logger.info("task %s re-queued (attempt %d): %s", task.task_id, task.attempt, why)

    def _finish(self, task: Task, state: TaskState, event: TaskEvent) -> None:
        task.state = state
        self.tasks.pop(task.task_id, None)
        if self.paused.pop(task.task_id, None) is not None:
            task.paused_since = None
        task.events.put_nowait(event)
        if task.input_wakeup is not None:  # a producer waiting for credit: there will be none
            task.input_wakeup.set()
        now = time.monotonic()
        if state is TaskState.FAILED:
            self.errors[(task.user_id, task.model_id)] += 1
        usage = event.usage if isinstance(event, TaskDone) else None
        self.recent.append(
            TaskRecord(
                task_id=task.task_id,
                user_id=task.user_id,
                model_id=task.model_id,
                method=task.method,
                status=state.value,
                code=event.code if isinstance(event, TaskFailedEvent) else "",
                created_at=task.created_at,
                queue_wait_s=None
                if task.started is None
                else round(task.started - task.created, 6),
                run_time_s=None if task.started is None else round(now - task.started, 6),
                runner_id=task.runner_id,
                completion_tokens=usage.completion_tokens if usage is not None else 0,
                attempts=task.attempt,
                inputs=task.inputs if task.input_stream else None,
                outputs=task.received if task.input_stream else None,
            )
        )

    def count_rejected(self, user_id: str, model_id: str) -> None:
        """A request refused before it became a task (429, 503): a request and an error."""
        self.requests[(user_id, model_id)] += 1
        self.errors[(user_id, model_id)] += 1

    def task_view(self, task: Task) -> TaskView:
        """A queued or running task as JSON."""
        now = time.monotonic()
        view: TaskView = {
            "task_id": task.task_id,
            "model": task.model_id,
            "method": task.method,
            "status": task.state.value,
            "created_at": task.created_at,
            "age_s": round(now - task.created, 3),
            "queue_wait_s": None if task.started is None else round(task.started - task.created, 6),
            "runner_id": task.runner_id,
            "attempts": task.attempt,
        }
        if task.input_stream:
            view["inputs"] = task.inputs
            view["outputs"] = task.received
        return view

    def _pick(self, key: ModelKey, task: Task) -> RunnerLink | None:
        best: RunnerLink | None = None
        best_free = 0
        for link in self._links.get(key, ()):
            if not link.takes(task):
                continue
            free = link.free_slots(key[1])
            if free > best_free:
                best, best_free = link, free
        return best

    def _send(self, link: RunnerLink, task: Task) -> None:
        link.session.send_task(
            task.task_id,
            task.attempt,
            task.model_id,
            task.method,
            task.payload,
            task.deadline_unix_ms,
            int((time.monotonic() - task.created) * 1000),
            input_stream=task.input_stream,
        )
        task.state = TaskState.RUNNING
        task.link = link
        task.runner_id = link.runner_id
        task.started = time.monotonic()
        link.tasks[(task.task_id, task.attempt)] = task
        if task.input_wakeup is not None:
            task.input_wakeup.set()  # on a runner now: its end of input may go
        link.flush()

    def _pump_link(self, link: RunnerLink) -> None:
        for model_id in link.model_ids:
            self._pump((link.user_id, model_id))

    def _pump(self, key: ModelKey) -> None:
        queue = self._queues.get(key)
        while queue:
            task = queue[0]
            if task.state is not TaskState.QUEUED:
                queue.popleft()
                continue
            link = self._pick(key, task)
            if link is None:
                if task.input_stream:  # the 1.3 runners it waited for may all be gone
                    try:
                        self._check_protocol(task)
                    except RunnerTooOld as exc:
                        queue.popleft()
                        failed = TaskFailedEvent(ErrorCode.RUNNER_TOO_OLD, str(exc))
                        self._finish(task, TaskState.FAILED, failed)
                        continue
                return
            queue.popleft()
            self._send(link, task)
