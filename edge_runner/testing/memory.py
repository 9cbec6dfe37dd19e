"""An in-memory tunnel: the two ends of one connection, without a socket.

:func:`transport_pair` gives a runner-side end (what :func:`~edge_runner.runner.transport.
open_transport` yields) and a control-side end (what
:func:`~edge_runner.control.tunnel.serve_tunnel` reads), joined by two queues.
:func:`memory_dialer` makes a new pair for each tunnel a :class:`~edge_runner.runner.Runner`
opens and serves the control end with a :class:`~edge_runner.control.state.ControlState`, so
a real runner and real control-plane state run on one loop with nothing listening. Unit tests
use these; integration tests keep running on real sockets.

    runner = Runner(settings, backend, "r1", dial=memory_dialer(state, principal))
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from edge_runner.errors import TunnelError

if TYPE_CHECKING:
    from edge_runner.control.registry import TokenInfo
    from edge_runner.control.state import ControlState
    from edge_runner.control.tunnel import TunnelEnd

__all__ = ["MemoryEnd", "memory_dialer", "transport_pair"]

_CLOSED = None  # a peer that finished sending, or a dropped connection


class MemoryEnd:
    """One end of an in-memory tunnel connection.

    Frames are delivered in order and whole. ``finish()`` is a clean end of what this side
    sends (the peer's :meth:`recv` returns None); ``abort()`` drops the connection (the peer's
    next :meth:`recv` or :meth:`send` raises, as on a reset socket).
    """

    def __init__(self, name: str, inbox: asyncio.Queue[bytes | None]) -> None:
        self.name = name
        self._inbox = inbox
        self._peer: MemoryEnd | None = None
        self._finished = False
        self.aborted = False
        self.sent: list[bytes] = []

    async def recv(self) -> bytes | None:
        """The next frame from the peer; None once the peer finished sending.

        Raises:
            TunnelError: the connection was dropped (a ConnectionError, as a socket's).
        """
        if self.aborted:
            raise TunnelError(f"the in-memory tunnel was dropped ({self.name} side)")
        frame = await self._inbox.get()
        if frame is _CLOSED and self.aborted:
            raise TunnelError(f"the in-memory tunnel was dropped ({self.name} side)")
        return frame

    async def send(self, frame: bytes) -> None:
        """Deliver ``frame`` to the peer.

        Raises:
            ConnectionResetError: the connection was dropped, or this side finished sending.
        """
        peer = self._peer
        if self.aborted or self._finished or peer is None:
            raise ConnectionResetError(f"the in-memory tunnel is closed ({self.name} side)")
        self.sent.append(frame)
        peer._inbox.put_nowait(bytes(frame))

    async def finish(self) -> None:
        """This side sends nothing more: the peer reads the end of the stream."""
        if not self._finished and self._peer is not None and not self.aborted:
            self._finished = True
            self._peer._inbox.put_nowait(_CLOSED)

    def abort(self) -> None:
        """Drop the connection now, for both sides."""
        for end in (self, self._peer):
            if end is not None and not end.aborted:
                end.aborted = True
                end._inbox.put_nowait(_CLOSED)


def transport_pair() -> tuple[MemoryEnd, MemoryEnd]:
    """A connected (runner end, control-plane end)."""
    runner = MemoryEnd("runner", asyncio.Queue())
    control = MemoryEnd("control", asyncio.Queue())
    runner._peer, control._peer = control, runner
    return runner, control


def memory_dialer(
    state: ControlState, principal: TokenInfo, ends: list[TunnelEnd] | None = None
) -> Callable[[], contextlib.AbstractAsyncContextManager[MemoryEnd]]:
    """A ``dial`` for :class:`~edge_runner.runner.Runner`: each tunnel it opens is a new
    in-memory pair whose control end ``state`` serves as ``principal``'s tunnel.

    Args:
        state: the control plane's state (its registry, dispatcher and catalog).
        principal: who the runner's token belongs to (as the control plane's auth says).
        ends: if given, how each tunnel ended (:class:`~edge_runner.control.tunnel.TunnelEnd`)
            is appended to it.
    """
    from edge_runner.control.tunnel import serve_tunnel

    @contextlib.asynccontextmanager
    async def dial() -> AsyncIterator[MemoryEnd]:
        runner_end, control_end = transport_pair()
        served = asyncio.create_task(serve_tunnel(state, principal, control_end))
        try:
            yield runner_end
        finally:
            await runner_end.finish()
            end = await served
            if ends is not None:
                ends.append(end)

    return dial
