"""The bounded thread pool that runs tasks, with a cancel event and a stream gate per task.

Workers never touch the event loop's objects: they hand each chunk and the final outcome to
``loop.call_soon_threadsafe``, and the daemon's callbacks (on the loop) put them on the tunnel.

A streaming task's worker asks its :class:`StreamGate` before it pulls each next item from the
model's generator: with no stream credit left (the client reads slowly) it waits there, so the
generator is paused, not buffered; a credit from the control plane or a cancel wakes it.

A stream-in task also gets an :class:`~edge_runner.runner.input_feed.InputFeed`, which the daemon
fills on the loop (:meth:`Executor.feed`, :meth:`Executor.end_input`) and the model reads on the
worker; the feed's credit grants reach the tunnel through :meth:`TaskSink.input_credit`.

Workers are daemon threads: a model that ignores its cancel event cannot hold the process once
the runner has given up on it (after the grace period, or at a third stop signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import threading
from collections.abc import Callable

from edge_runner.backends.base import Backend, CancelEvent, Reply
from edge_runner.errors import BackendError, ErrorCode
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.runner.input_feed import DEFAULT_INPUT_WINDOW, InputFeed

__all__ = ["Executor", "StreamGate", "TaskSink"]

logger = logging.getLogger(__name__)

TaskKey = tuple[str, int]


class TaskSink:
    """Where outcomes go, called on the event loop. The daemon implements these."""

    def chunk(self, key: TaskKey, payload: bytes) -> None:
        """One streamed piece."""
        raise NotImplementedError

    def result(self, key: TaskKey, payload: bytes, usage: pb.Usage | None) -> None:
        """The task finished."""
        raise NotImplementedError

    def error(self, key: TaskKey, code: str, message: str, retryable: bool = False) -> None:
        """The task failed or was cancelled; ``retryable`` when it may run again."""
        raise NotImplementedError

    def input_credit(self, key: TaskKey, upto: int) -> None:
        """A stream-in task may be sent input items numbered below ``upto`` (absolute)."""
        raise NotImplementedError


class StreamGate:
    """How many chunks a streaming task may produce; its worker waits here for more credit.

    ``allowed`` is the number of chunks (counted from 0) the task may produce, or None when the
    stream is not flow-controlled. Credit is absolute and only grows, as on the tunnel.
    """

    #: how often a waiting worker looks at its cancel event even if nobody wakes it
    _POLL_S = 1.0

    def __init__(self, allowed: int | None) -> None:
        self._allowed = allowed
        self._cond = threading.Condition()

    @property
    def allowed(self) -> int | None:
        """Chunks the task may produce in all (None: no limit)."""
        return self._allowed

    def grant(self, upto: int) -> None:
        """Let the task produce chunks numbered below ``upto`` (any thread)."""
        with self._cond:
            if self._allowed is not None and upto > self._allowed:
                self._allowed = upto
                self._cond.notify_all()

    def wake(self) -> None:
        """Wake a waiting worker (its task was cancelled)."""
        with self._cond:
            self._cond.notify_all()

    def wait_turn(self, produced: int, cancel: threading.Event) -> bool:
        """Block until chunk number ``produced`` may be produced; False once cancelled."""
        with self._cond:
            while self._allowed is not None and produced >= self._allowed and not cancel.is_set():
                self._cond.wait(self._POLL_S)
        return not cancel.is_set()


class _DaemonPool:
    """A bounded pool of daemon worker threads, started as work arrives.

    ``concurrent.futures.ThreadPoolExecutor`` joins its workers at interpreter exit, so one
    worker stuck in a model would keep a stopped runner's process alive.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._work: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)
        self._closed = False

    def submit(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on a worker; a new worker starts when none is idle and the pool has room."""
        if self._closed:
            raise RuntimeError("the worker pool is shut down")
        self._work.put(fn)
        if not self._idle.acquire(blocking=False) and len(self._threads) < self._size:
            thread = threading.Thread(
                target=self._worker, name=f"{self._name}_{len(self._threads)}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def shutdown(self) -> None:
        """Drop the work not started yet and let idle workers end; never waits."""
        self._closed = True
        with contextlib.suppress(queue.Empty):
            while True:
                self._work.get_nowait()
        for _ in self._threads:
            self._work.put(None)

    def _worker(self) -> None:
        while (fn := self._work.get()) is not None:
            try:
                fn()
            except BaseException:  # noqa: B036 - the task reported it already; keep the worker
                logger.debug("a worker's task raised past its own handler", exc_info=True)
            del fn  # the finished work must not stay alive while this worker waits
            self._idle.release()


class Executor:
    """Runs tasks on ``pool_size`` worker threads."""

    def __init__(
        self, pool_size: int, backend: Backend, sink: TaskSink, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.pool_size = pool_size
        self._backend = backend
        self._sink = sink
        self._loop = loop
        self._pool = _DaemonPool(pool_size, "edge-runner-worker")
        self._cancel: dict[TaskKey, threading.Event] = {}
        self._gates: dict[TaskKey, StreamGate] = {}
        self._feeds: dict[TaskKey, InputFeed] = {}
        self.idle = asyncio.Event()
        self.idle.set()

    @property
    def busy(self) -> int:
        """Tasks running now."""
        return len(self._cancel)

    def submit(self, task: pb.Task, stream_window: int = 0) -> None:
        """Start a task on a worker thread (the caller guarantees a free slot).

        ``stream_window``: chunks it may stream before its first credit (0: no flow control).
        A stream-in task (``task.input_stream``) gets an input feed of that many items too
        (:data:`~edge_runner.runner.input_feed.DEFAULT_INPUT_WINDOW` when 0), and its first
        input credit goes to the sink at once.
        """
        key = (task.task_id, task.attempt)
        event = CancelEvent()
        gate = StreamGate(stream_window or None)
        event.on_set(gate.wake)
        feed = None
        if task.input_stream:
            feed = InputFeed(
                stream_window or DEFAULT_INPUT_WINDOW, event, functools.partial(self._grant, key)
            )
            event.on_set(feed.wake)
            self._feeds[key] = feed
        self._cancel[key] = event
        self._gates[key] = gate
        self.idle.clear()
        if feed is not None:
            self._sink.input_credit(key, feed.granted)
        self._pool.submit(
            functools.partial(
                self._run, key, task.model_id, task.method, task.payload, event, gate, feed
            )
        )

    def grant(self, key: TaskKey, upto: int) -> None:
        """Apply a stream credit to a running task (no-op for one that is gone)."""
        gate = self._gates.get(key)
        if gate is not None:
            gate.grant(upto)

    def feed(self, key: TaskKey, payload: bytes) -> None:
        """Hand a stream-in task its next input item (no-op for a task that is gone)."""
        feed = self._feeds.get(key)
        if feed is not None:
            feed.put(payload)

    def end_input(self, key: TaskKey) -> None:
        """End a stream-in task's input (no-op for a task that is gone)."""
        feed = self._feeds.get(key)
        if feed is not None:
            feed.end()

    def input_feed(self, key: TaskKey) -> InputFeed | None:
        """A running stream-in task's input feed (for its counts), or None."""
        return self._feeds.get(key)

    def cancel(self, key: TaskKey) -> bool:
        """Set a task's cancel event; returns whether the task was running."""
        event = self._cancel.get(key)
        if event is None:
            return False
        event.set()
        return True

    def cancel_all(self) -> None:
        """Cancel every running task (second stop signal)."""
        for event in self._cancel.values():
            event.set()

    def finished(self, key: TaskKey) -> None:
        """Forget a task once its terminal message went out (on the loop)."""
        self._cancel.pop(key, None)
        self._gates.pop(key, None)
        self._feeds.pop(key, None)
        if not self._cancel:
            self.idle.set()

    def shutdown(self) -> None:
        """Stop the pool without waiting for stuck workers."""
        self._pool.shutdown()

    # -- worker thread ----------------------------------------------------------------------

    def _grant(self, key: TaskKey, upto: int) -> None:
        """An input feed's credit grew (on its worker): hand it to the sink on the loop."""
        with contextlib.suppress(RuntimeError):  # the loop is gone: the runner stopped
            self._loop.call_soon_threadsafe(self._sink.input_credit, key, upto)

    def _run(
        self,
        key: TaskKey,
        model_id: str,
        method: str,
        payload: bytes,
        cancel: threading.Event,
        gate: StreamGate,
        inputs: InputFeed | None,
    ) -> None:
        post: Callable[..., object] = self._loop.call_soon_threadsafe
        sink = self._sink
        try:
            outcome = self._backend.call(model_id, method, payload, cancel, inputs=inputs)
            if isinstance(outcome, Reply):
                if cancel.is_set():  # whatever it returned after a cancel is not wanted
                    post(sink.error, key, ErrorCode.CANCELLED, "the task was cancelled")
                else:
                    post(sink.result, key, outcome.payload, outcome.usage)
                return
            chunks = iter(outcome.chunks)
            produced = 0
            try:
                # Ask for credit before each item: a paused reader pauses the generator here.
                while gate.wait_turn(produced, cancel):
                    try:
                        chunk = next(chunks)
                    except StopIteration:
                        break
                    post(sink.chunk, key, chunk)
                    produced += 1
            finally:
                # Run the generator's own clean-up (finally blocks, closing a file) now, in
                # this thread, rather than whenever the garbage collector gets to it.
                close = getattr(outcome.chunks, "close", None)
                if close is not None:
                    close()
            if cancel.is_set():
                post(sink.error, key, ErrorCode.CANCELLED, "the task was cancelled")
            else:
                post(sink.result, key, b"", outcome.usage)
        except BackendError as exc:
            post(sink.error, key, exc.code, exc.message, exc.retryable)
        except Exception as exc:
            logger.warning(
                "task %s: %s.%s raised %s: %s",
                key[0],
                model_id,
                method,
                type(exc).__name__,
                exc,
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )
            post(sink.error, key, ErrorCode.MODEL_ERROR, f"{type(exc).__name__}: {exc}")
        except BaseException:
            post(sink.error, key, ErrorCode.MODEL_ERROR, "the worker thread was interrupted")
            raise
