"""The Backend interface the runner's executor calls from its worker threads."""

from __future__ import annotations

import abc
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from edge_runner.errors import BackendError, ErrorCode
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.views import JSONObject

logger = logging.getLogger(__name__)

__all__ = [
    "READY",
    "Backend",
    "BackendError",
    "CancelEvent",
    "Reply",
    "StatusListener",
    "StreamReply",
    "json_arguments",
    "no_input_stream",
]

READY = pb.READY

#: called with each change of a model's readiness, from whatever thread made it
StatusListener = Callable[[pb.ModelStatus], None]


class CancelEvent(threading.Event):
    """A task's cancel event that can also run callbacks when set.

    A backend blocked reading from a socket cannot poll the event; it registers a callback
    that closes the socket instead (``on_set``), which wakes the read at once.
    """

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def on_set(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the event is set (now, if it already is)."""
        with self._lock:
            if not self.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def discard(self, callback: Callable[[], None]) -> None:
        """Forget a callback registered with :meth:`on_set` (its resource is gone)."""
        with self._lock, contextlib.suppress(ValueError):
            self._callbacks.remove(callback)

    def set(self) -> None:
        """Set the event and run the callbacks once."""
        with self._lock:
            super().set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a failing clean-up must not stop the others
                logger.exception("a cancel callback failed")


@dataclass(frozen=True, slots=True)
class Reply:
    """A unary answer: JSON bytes and, where known, token usage."""

    payload: bytes
    usage: pb.Usage | None = None


@dataclass(slots=True)
class StreamReply:
    """A streaming answer: an iterator of JSON chunks; ``usage`` may be set once it ends."""

    chunks: Iterator[bytes]
    usage: pb.Usage | None = None


class Backend(abc.ABC):
    """Something that serves models: loads them, describes them, runs their methods.

    A model is READY unless its backend says otherwise with :meth:`set_status` (an Ollama model
    that is downloading is LOADING, one whose server stopped answering is UNAVAILABLE, one that
    could not be pulled is FAILED and leaves :meth:`specs`). The runner forwards every change to
    the control plane, which routes tasks only to READY models.
    """

    #: short name shown in the registry ("python", "ollama", ...)
    name: str = ""

    def __init__(self) -> None:
        self._status_lock = threading.Lock()
        self._statuses: dict[str, pb.ModelStatus] = {}
        self._listeners: list[StatusListener] = []

    def add_status_listener(self, listener: StatusListener) -> None:
        """Call ``listener`` with every status change from now on (from any thread)."""
        with self._status_lock:
            self._listeners.append(listener)

    def statuses(self) -> list[pb.ModelStatus]:
        """The latest status of each model that reported one."""
        with self._status_lock:
            return [_copy(s) for s in self._statuses.values()]

    def status(self, model_id: str) -> pb.ModelStatus | None:
        """The latest status of ``model_id``, or None when it never reported one (READY)."""
        with self._status_lock:
            status = self._statuses.get(model_id)
            return None if status is None else _copy(status)

    def set_status(
        self,
        model_id: str,
        state: pb.ModelState,
        message: str = "",
        *,
        progress: float = 0.0,
        eta_s: float = 0.0,
    ) -> None:
        """Record a model's readiness and tell the listeners, unless nothing changed."""
        status = pb.ModelStatus(
            model_id=model_id,
            state=state,
            message=message,
            progress=progress,
            eta_ms=int(max(0.0, min(eta_s, 86_400.0)) * 1000),
        )
        with self._status_lock:
            if self._statuses.get(model_id) == status:
                return
            self._statuses[model_id] = status
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(_copy(status))
            except Exception:  # a broken display must not stop the backend
                logger.exception("a model status listener failed")

    def is_ready(self, model_id: str) -> bool:
        """Whether tasks for ``model_id`` can run now."""
        status = self.status(model_id)
        return status is None or status.state == pb.READY

    def check_ready(self, model_id: str) -> None:
        """Refuse a task for a model that is not READY, retryably, with its status message.

        Raises:
            BackendError: ``MODEL_LOADING`` while it loads (the control plane answers 503
                with ``Retry-After``), ``BACKEND_UNAVAILABLE`` otherwise.
        """
        status = self.status(model_id)
        if status is None or status.state == pb.READY:
            return
        code = (
            ErrorCode.MODEL_LOADING if status.state == pb.LOADING else ErrorCode.BACKEND_UNAVAILABLE
        )
        raise BackendError(code, status.message, retryable=True)

    @abc.abstractmethod
    def load(self) -> None:
        """Load models (blocking; called once in a worker thread before registering)."""

    def interrupt_load(self) -> None:  # noqa: B027 - optional hook, empty by default
        """The runner was told to stop while :meth:`load` runs: make it return soon.

        Called on the event loop, so it must not block. A load that waits (for a server to
        start) returns early, with nothing to serve; the runner then stops without
        registering. By default nothing happens: the load runs to its end first.
        """

    @abc.abstractmethod
    def specs(self) -> list[pb.ModelSpec]:
        """The models served, with their method signatures."""

    @abc.abstractmethod
    def call(
        self,
        model_id: str,
        method: str,
        payload: bytes,
        cancel: threading.Event,
        inputs: Iterator[bytes] | None = None,
    ) -> Reply | StreamReply:
        """Run one task in the calling worker thread.

        Args:
            model_id: which model.
            method: the method name, or ``openai.chat.completions`` for the OpenAI adapter.
            payload: the JSON body (keyword arguments, or the OpenAI request); for a stream-in
                method, the arguments other than the input stream.
            cancel: set when the task is cancelled; long work should check it.
            inputs: a stream-in task's input items, each the JSON of one element of the
                method's ``Iterator[...]`` parameter; ``next()`` blocks for the next one and
                the iterator ends at the input's end or when the task is cancelled. None for
                every other task.

        Raises:
            BackendError: the task failed in a way the client should see by code.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release resources when the runner stops."""

    def slots(self, model_id: str) -> int | None:
        """How many tasks of ``model_id`` may run at once, or None for the whole pool."""
        del model_id
        return None

    #: how :meth:`slots` is set, for a warning about ``--pool-size`` ("OLLAMA_NUM_PARALLEL=1")
    slots_setting: str = ""

    def default_pool_size(self) -> int | None:
        """Tasks the runner should run at once when ``--pool-size`` is not given, or None for
        the runner's own default."""
        return None


def json_arguments(payload: bytes) -> JSONObject:
    """A task's JSON object payload (empty means no arguments).

    Raises:
        BackendError: ``INVALID_ARGUMENT`` when it is not a JSON object.
    """
    try:
        args = json.loads(payload or b"{}")
    except ValueError as exc:
        raise BackendError(ErrorCode.INVALID_ARGUMENT, f"task payload is not JSON: {exc}") from exc
    if not isinstance(args, dict):
        raise BackendError(ErrorCode.INVALID_ARGUMENT, "task payload must be a JSON object")
    return args


def no_input_stream(inputs: Iterator[bytes] | None, model_id: str, method: str) -> None:
    """Refuse an input stream sent to a backend whose methods take none.

    Raises:
        BackendError: ``INVALID_ARGUMENT`` when ``inputs`` is not None.
    """
    if inputs is not None:
        raise BackendError(
            ErrorCode.INVALID_ARGUMENT,
            f"{model_id}.{method} takes no input stream; call it without one",
        )


def _copy(status: pb.ModelStatus) -> pb.ModelStatus:
    clone = pb.ModelStatus()
    clone.CopyFrom(status)
    return clone
