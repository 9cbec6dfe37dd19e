"""The Backend interface the runner's executor calls from its worker threads."""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from edge_runner.proto import tunnel_pb2 as pb

logger = logging.getLogger(__name__)

__all__ = ["Backend", "BackendError", "CancelEvent", "Reply", "StreamReply"]


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


class BackendError(Exception):
    """A task failure with a tunnel error code (``INVALID_ARGUMENT``, ``NOT_FOUND``, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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
    """Something that serves models: loads them, describes them, runs their methods."""

    #: short name shown in the registry ("python", "ollama", ...)
    name: str = ""

    @abc.abstractmethod
    def load(self) -> None:
        """Load models (blocking; called once in a worker thread before registering)."""

    @abc.abstractmethod
    def specs(self) -> list[pb.ModelSpec]:
        """The models served, with their method signatures."""

    @abc.abstractmethod
    def call(
        self, model_id: str, method: str, payload: bytes, cancel: threading.Event
    ) -> Reply | StreamReply:
        """Run one task in the calling worker thread.

        Args:
            model_id: which model.
            method: the method name, or ``openai.chat.completions`` for the OpenAI adapter.
            payload: the JSON body (keyword arguments, or the OpenAI request).
            cancel: set when the task is cancelled; long work should check it.

        Raises:
            BackendError: the task failed in a way the client should see by code.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release resources when the runner stops."""

    def slots(self, model_id: str) -> int | None:
        """How many tasks of ``model_id`` may run at once, or None for the whole pool."""
        del model_id
        return None
