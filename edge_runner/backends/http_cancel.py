"""Cancelling a blocking HTTP call from another thread, at any point of the exchange.

A worker thread blocked reading from a local server (Ollama evaluating a long prompt, a model
loading, a stream between tokens) never polls its task's cancel event. Shutting the socket down
wakes the read at once, and the server sees its client leave and stops generating.

Each worker thread gets its own HTTP client (:class:`PerThread`), so a connection — kept alive
between requests, which saves a connect per task — is only ever used by that thread. The
sockets come from httpcore's documented ``trace`` request extension
(``connection.connect_tcp``); a cancel shuts down the sockets of the thread that runs the task,
which can only be that task's. A connection shut down after its answer was complete is seen as
expired by the pool and replaced.

Usage, in the worker thread::

    clients = PerThread(lambda: httpx.Client(**client_options()))   # once, shared
    with cancel_scope(cancel):                   # cancel: the task's CancelEvent
        clients.get().post(...)                  # or iterate a streaming response
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import httpx

from edge_runner.backends.base import CancelEvent

__all__ = ["PerThread", "cancel_scope", "client_options"]

_C = TypeVar("_C")
_local = threading.local()


def _thread_sockets() -> set[socket.socket]:
    sockets: set[socket.socket] | None = getattr(_local, "sockets", None)
    if sockets is None:
        sockets = _local.sockets = set()
    return sockets


@contextlib.contextmanager
def cancel_scope(cancel: threading.Event) -> Iterator[None]:
    """While inside, setting ``cancel`` shuts down the sockets this thread's clients use."""
    if not isinstance(cancel, CancelEvent):
        yield
        return
    sockets = _thread_sockets()

    def shutdown() -> None:
        for sock in list(sockets):
            with contextlib.suppress(OSError):  # closed meanwhile: nothing to wake
                sock.shutdown(socket.SHUT_RDWR)

    _local.cancel = cancel
    cancel.on_set(shutdown)
    try:
        yield
    finally:
        cancel.discard(shutdown)
        _local.cancel = None


def client_options(timeout: httpx.Timeout | float | None = 600.0) -> dict[str, Any]:
    """httpx client options that let :func:`cancel_scope` find the client's sockets."""
    return {
        "timeout": timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
        "event_hooks": {"request": [_attach_trace]},
    }


def _attach_trace(request: httpx.Request) -> None:
    request.extensions["trace"] = _trace


def _trace(event: str, info: dict[str, Any]) -> None:
    if event != "connection.connect_tcp.complete":
        return
    stream = info.get("return_value")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if not isinstance(sock, socket.socket):
        return
    sockets = _thread_sockets()
    for old in [s for s in sockets if s.fileno() == -1]:
        sockets.discard(old)  # closed connections
    sockets.add(sock)
    cancel = getattr(_local, "cancel", None)
    if cancel is not None and cancel.is_set():
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class PerThread(Generic[_C]):
    """One client per thread, made by ``factory`` on first use; :meth:`close` closes them all."""

    def __init__(self, factory: Callable[[], _C], close: Callable[[_C], object]) -> None:
        self._factory = factory
        self._close = close
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[_C] = []

    def get(self) -> _C:
        """This thread's client."""
        client: _C | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._factory()
            with self._lock:
                self._all.append(client)
        return client

    def close(self) -> None:
        """Close every client made so far."""
        with self._lock:
            clients, self._all = self._all, []
        for client in clients:
            with contextlib.suppress(Exception):  # a client that fails to close is gone anyway
                self._close(client)
