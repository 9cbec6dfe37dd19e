"""The bounded thread pool that runs tasks, with a cancel event per task.

Workers never touch the event loop's objects: they hand each chunk and the final outcome to
``loop.call_soon_threadsafe``, and the daemon's callbacks (on the loop) put them on the tunnel.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from edge_runner.backends.base import Backend, BackendError, CancelEvent, Reply
from edge_runner.proto import tunnel_pb2 as pb

__all__ = ["Executor", "TaskSink"]

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


class Executor:
    """Runs tasks on ``pool_size`` worker threads."""

    def __init__(
        self, pool_size: int, backend: Backend, sink: TaskSink, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.pool_size = pool_size
        self._backend = backend
        self._sink = sink
        self._loop = loop
        self._pool = ThreadPoolExecutor(pool_size, thread_name_prefix="edge-runner-worker")
        self._cancel: dict[TaskKey, threading.Event] = {}
        self.idle = asyncio.Event()
        self.idle.set()

    @property
    def busy(self) -> int:
        """Tasks running now."""
        return len(self._cancel)

    def submit(self, task: pb.Task) -> None:
        """Start a task on a worker thread (the caller guarantees a free slot)."""
        key = (task.task_id, task.attempt)
        event = CancelEvent()
        self._cancel[key] = event
        self.idle.clear()
        self._pool.submit(self._run, key, task.model_id, task.method, task.payload, event)

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
        if not self._cancel:
            self.idle.set()

    def shutdown(self) -> None:
        """Stop the pool without waiting for stuck workers."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- worker thread ----------------------------------------------------------------------

    def _run(
        self, key: TaskKey, model_id: str, method: str, payload: bytes, cancel: threading.Event
    ) -> None:
        post: Callable[..., object] = self._loop.call_soon_threadsafe
        sink = self._sink
        try:
            outcome = self._backend.call(model_id, method, payload, cancel)
            if isinstance(outcome, Reply):
                if cancel.is_set():  # whatever it returned after a cancel is not wanted
                    post(sink.error, key, "CANCELLED", "the task was cancelled")
                else:
                    post(sink.result, key, outcome.payload, outcome.usage)
                return
            try:
                for chunk in outcome.chunks:
                    post(sink.chunk, key, chunk)
                    if cancel.is_set():
                        break
            finally:
                # Run the generator's own clean-up (finally blocks, closing a file) now, in
                # this thread, rather than whenever the garbage collector gets to it.
                close = getattr(outcome.chunks, "close", None)
                if close is not None:
                    close()
            if cancel.is_set():
                post(sink.error, key, "CANCELLED", "the task was cancelled")
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
            post(sink.error, key, "MODEL_ERROR", f"{type(exc).__name__}: {exc}")
        except BaseException:
            post(sink.error, key, "MODEL_ERROR", "the worker thread was interrupted")
            raise
