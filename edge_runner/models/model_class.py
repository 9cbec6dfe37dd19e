"""The base class of user models, the ``@ModelClass.method`` marker and cooperative cancel.

A model folder's ``1/model.py`` defines one subclass of :class:`ModelClass`; the methods it
serves are marked with ``@ModelClass.method``. The runner's executor runs each call in a worker
thread with a :class:`threading.Event` of its own installed in :data:`current_cancel_event`, so
:meth:`ModelClass.cancelled` can answer without the model knowing anything about tasks::

    class MyModel(ModelClass):
        def load_model(self) -> None:
            self.prefix = "Hello"

        @ModelClass.method
        def generate(self, text: str, n: int = 5) -> Iterator[str]:
            for i in range(n):
                if self.cancelled():
                    return
                yield f"{self.prefix} {text} {i}"

A generator's body runs on each ``next()``, not when the method is called, so the executor must
install the event around every ``next()`` too: :func:`iterate_with_cancel_event` does that.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar, overload

__all__ = [
    "METHOD_MARKER",
    "CallRecord",
    "MCPModelClass",
    "ModelClass",
    "current_cancel_event",
    "current_call",
    "recording_call",
    "is_model_method",
    "iterate_with_cancel_event",
    "run_with_cancel_event",
]

#: Attribute set to ``True`` on functions marked with ``@ModelClass.method``.
METHOD_MARKER = "_edge_runner_method"

#: The cancel event of the task running in this thread (``None`` outside a task).
current_cancel_event: ContextVar[threading.Event | None] = ContextVar(
    "edge_runner_current_cancel_event", default=None
)


@dataclass
class CallRecord:
    """What a model reported during one call, for the runner to pass on.

    Attributes:
        prompt_tokens: from :meth:`ModelClass.set_output_context` (None: not reported).
        completion_tokens: likewise.
        errors: exceptions a base class caught and answered in-band (an OpenAIModelClass's
            transport answers an error object, as Clarifai's does); the runner turns them
            into task errors of the right kind.
    """

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    errors: list[BaseException] = field(default_factory=list)


#: The record of the call running in this thread (``None`` outside a runner's call).
current_call: ContextVar[CallRecord | None] = ContextVar("edge_runner_current_call", default=None)


@contextmanager
def recording_call(record: CallRecord) -> Iterator[CallRecord]:
    """Install ``record`` as :data:`current_call` for the block (one call, or one ``next()``)."""
    token = current_call.set(record)
    try:
        yield record
    finally:
        current_call.reset(token)


_F = TypeVar("_F", bound=Callable[..., Any])
_P = ParamSpec("_P")
_T = TypeVar("_T")


class ModelClass:
    """Base class for user models served by a runner.

    Subclasses override :meth:`load_model` for one-time setup (weights, clients) and mark the
    methods they serve with ``@ModelClass.method``. Method signatures come from type hints.
    """

    def load_model(self) -> None:
        """Load weights or open clients once, before the first call; the default does nothing."""

    @overload
    @staticmethod
    def method(func: _F, /) -> _F: ...

    @overload
    @staticmethod
    def method(func: None = None, /) -> Callable[[_F], _F]: ...

    @staticmethod
    def method(func: _F | None = None, /) -> _F | Callable[[_F], _F]:
        """Mark a function as a model method served by the runner.

        Works bare (``@ModelClass.method``) and called (``@ModelClass.method()``).

        Args:
            func: the function to mark.

        Returns:
            The same function with :data:`METHOD_MARKER` set, or a decorator when called bare.
        """

        def mark(f: _F) -> _F:
            setattr(f, METHOD_MARKER, True)
            return f

        if func is None:
            return mark
        return mark(func)

    def cancelled(self) -> bool:
        """Return True when the task this thread is running was cancelled.

        Long loops and generators should check it and stop early; outside a task it is False.
        """
        event = current_cancel_event.get()
        return event is not None and event.is_set()

    def set_output_context(
        self,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        cached_tokens: int | None = None,
    ) -> None:
        """Report the token counts of the answer being produced (as Clarifai's ModelClass).

        The runner passes them on as the task's usage (``usage`` of an OpenAI answer, the
        token metrics); the last report of a call wins. ``cached_tokens`` is accepted and not
        used. Outside a runner's call it does nothing.
        """
        record = current_call.get()
        if record is None:
            return
        record.prompt_tokens = prompt_tokens
        record.completion_tokens = completion_tokens


class MCPModelClass(ModelClass):
    """Base class of an MCP model folder (``model_type_id: mcp``): it serves an MCP server.

    ``get_server()`` returns the server, an ``mcp.server.mcpserver.MCPServer`` with its
    ``@server.tool`` functions; the runner hosts it and the control plane exposes it at
    ``/v2/mcp/{model_id}``. No ``@ModelClass.method`` is needed::

        server = MCPServer("files")

        @server.tool(description="Read a text file")
        def read_file(path: str) -> str: ...

        class FilesModel(MCPModelClass):
            def get_server(self) -> MCPServer:
                return server
    """

    def get_server(self) -> Any:
        """The MCP server to host (called once, after :meth:`load_model`)."""
        raise NotImplementedError(f"{type(self).__name__} must define get_server()")


def is_model_method(obj: object) -> bool:
    """Return True when ``obj`` (a function, or a static/class method) is marked as a method."""
    if getattr(obj, METHOD_MARKER, False) is True:
        return True
    inner = getattr(obj, "__func__", None)
    return inner is not None and getattr(inner, METHOD_MARKER, False) is True


def run_with_cancel_event(
    event: threading.Event, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
) -> _T:
    """Call ``fn`` with ``event`` installed as :data:`current_cancel_event`, then restore it.

    When ``fn`` returns a generator, its body has not run yet: iterate it with
    :func:`iterate_with_cancel_event` so the event is visible inside it.
    """
    token = current_cancel_event.set(event)
    try:
        return fn(*args, **kwargs)
    finally:
        current_cancel_event.reset(token)


def iterate_with_cancel_event(
    event: threading.Event, iterator: Iterator[_T]
) -> Generator[_T, None, None]:
    """Yield from ``iterator`` with ``event`` installed around each ``next()`` and the close.

    Closing this generator closes ``iterator`` (when it has ``close()``) with the event still
    installed, so a model's ``finally`` blocks see the same cancel state.
    """
    try:
        while True:
            token = current_cancel_event.set(event)
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                current_cancel_event.reset(token)
            yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            run_with_cancel_event(event, close)
