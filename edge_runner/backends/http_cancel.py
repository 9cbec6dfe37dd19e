"""Cancelling a blocking HTTP call from another thread, at any point of the exchange.

A worker thread blocked reading from a local server (Ollama evaluating a long prompt, a model
loading, a stream between tokens) never polls its task's cancel event. Shutting the socket down
wakes the read at once, and the server sees its client leave and stops generating. The socket
comes from httpcore's documented ``trace`` request extension (``connection.connect_tcp``);
clients built with :func:`client_options` open one connection per request (no keep-alive), so
the socket a cancel shuts down is that request's alone, never a pooled one another task reuses.
Loopback connects cost tens of microseconds.

Usage, in the worker thread::

    http = httpx.Client(**client_options())      # or ollama.Client(host, **client_options())
    with cancel_scope(cancel):                   # cancel: the task's CancelEvent
        http.post(...)                           # or iterate a streaming response
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from edge_runner.backends.base import CancelEvent

__all__ = ["cancel_scope", "client_options"]

_local = threading.local()


@contextlib.contextmanager
def cancel_scope(cancel: threading.Event) -> Iterator[None]:
    """Make requests this thread starts inside the block abortable by ``cancel``."""
    previous = getattr(_local, "scope", None)
    scope = _Scope(cancel) if isinstance(cancel, CancelEvent) else None
    _local.scope = scope
    try:
        yield
    finally:
        _local.scope = previous
        if scope is not None:
            scope.close()


def client_options(timeout: httpx.Timeout | float | None = 600.0) -> dict[str, Any]:
    """httpx client options that make requests cancellable by :func:`cancel_scope`."""
    return {
        "timeout": timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
        "limits": httpx.Limits(max_keepalive_connections=0),
        "event_hooks": {"request": [_attach_trace]},
    }


class _Scope:
    """The sockets opened inside one ``cancel_scope``; shut down when the event is set."""

    def __init__(self, cancel: CancelEvent) -> None:
        self.cancel = cancel
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        cancel.on_set(self.shutdown)

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event != "connection.connect_tcp.complete":
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self.lock:
            self.sockets.append(sock)
        if self.cancel.is_set():
            self.shutdown()

    def shutdown(self) -> None:
        with self.lock:
            sockets = list(self.sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):  # already closed: nothing to wake
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.cancel.discard(self.shutdown)
        with self.lock:
            self.sockets.clear()


def _attach_trace(request: httpx.Request) -> None:
    scope = getattr(_local, "scope", None)
    if scope is not None:
        request.extensions["trace"] = scope.trace
