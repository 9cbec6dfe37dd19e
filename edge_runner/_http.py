"""The one boundary for httpx's errors, as httpx itself has one for httpcore's.

httpx turns every httpcore exception into its own in one place (``map_httpcore_exceptions``).
Ours is :func:`map_httpx_errors`: code that talks HTTP through httpx runs the request inside it
and says which error of the :mod:`edge_runner.errors` tree an httpx error becomes there (the
client's :class:`~edge_runner.errors.ConnectionFailed`, naming the address it tried).
:func:`describe_http_error` is the few words every such message uses for what went wrong.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import httpx

__all__ = ["describe_http_error", "map_httpx_errors"]


def describe_http_error(exc: BaseException) -> str:
    """``ConnectError: [Errno 111] Connection refused``; the type alone when it says nothing."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextlib.contextmanager
def map_httpx_errors(translate: Callable[[httpx.HTTPError], Exception]) -> Iterator[None]:
    """Run the block; an httpx error raised in it is raised as ``translate(exc)``, chained.

    Works around a ``yield`` too (a streaming generator, sync or async): only httpx's errors
    are translated, so a consumer that stops early closes the stream as usual.

    Args:
        translate: builds our error from httpx's; its message says what was tried.
    """
    try:
        yield
    except httpx.HTTPError as exc:
        raise translate(exc) from exc
