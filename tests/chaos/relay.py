"""A TCP relay on loopback that can freeze: stop forwarding without closing either socket.

It stands in for a network path that silently stops delivering (a stalled NAT entry, a peer
whose host froze): both ends keep their sockets open and nothing is reset, so only keepalives or
missed heartbeats can reveal the dead connection. An asyncio loop in a daemon thread moves the
bytes; the public methods are called from the test's thread and return once they took effect.

    with Relay(target_port) as relay:   # listens on 127.0.0.1:relay.port
        relay.freeze()                  # nothing moves, in either direction, on any connection
        relay.thaw()                    # everything held back is delivered
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["Relay"]

T = TypeVar("T")

_CHUNK = 64 * 1024
#: how long a call into the relay's loop may take (it only flips flags and closes sockets)
_CALL_TIMEOUT_S = 10.0


class Relay:
    """Forwards every connection to ``127.0.0.1:PORT`` to ``target_host:target_port``.

    Attributes:
        port: the port the relay listens on.
        accepted: connections accepted so far (a frozen relay still accepts, like a blackhole
            whose SYNs the kernel answers, but forwards nothing until thawed).
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="relay", daemon=True)
        self._thread.start()
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._closed = False
        self.accepted = 0
        self.port = self._call(self._start())

    def freeze(self) -> None:
        """Stop moving bytes on every connection, current and new; close nothing."""
        self._call(self._set_flowing(False))

    def thaw(self) -> None:
        """Resume forwarding, delivering what was held back (end-of-stream included)."""
        self._call(self._set_flowing(True))

    def close(self) -> None:
        """Close the listener and every connection, then stop the loop thread."""
        if self._closed:
            return
        self._closed = True
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_CALL_TIMEOUT_S)
        self._loop.close()

    def __enter__(self) -> Relay:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- on the relay's loop ----------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(_CALL_TIMEOUT_S)

    async def _start(self) -> int:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _set_flowing(self, flowing: bool) -> None:
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self._writers.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            await self._flowing.wait()  # a frozen path does not even reach the target
            if self._closed:
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self._target)
            except OSError:
                return  # the target is down: the client sees its connection close
            self._writers.add(up_writer)
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._handlers.discard(handler)
            for end in (writer, up_writer):
                if end is not None:
                    end.close()
                    self._writers.discard(end)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction until end-of-stream, then close the other side's socket."""
        try:
            while True:
                await self._flowing.wait()
                try:
                    data = await reader.read(_CHUNK)
                except OSError:
                    data = b""
                # What arrived while frozen, end-of-stream included, waits for the thaw: a
                # close leaking through would let the peer notice, which a frozen path never does.
                await self._flowing.wait()
                if not data or self._closed:
                    return
                writer.write(data)
                await writer.drain()
        except OSError:
            return
        finally:
            writer.close()

    async def _shutdown(self) -> None:
        # Close sockets and let the pumps run out rather than cancel the handlers: Python
        # 3.11's start_server callback logs a traceback for every cancelled handler.
        self._server.close()
        writers = list(self._writers)
        for writer in writers:
            writer.close()
        self._flowing.set()
        handlers = list(self._handlers)
        if handlers:
            _, stragglers = await asyncio.wait(handlers, timeout=_CALL_TIMEOUT_S / 2)
            for handler in stragglers:
                handler.cancel()
        for writer in writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await self._server.wait_closed()
