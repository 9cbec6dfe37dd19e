"""Limits on the HTTP port that hold before a request reaches the app: size, time, count.

uvicorn's httptools protocol parses with llhttp, which puts no cap on a request's head (h11 has
one, but is slower), and uvicorn arms no timer on a new connection: its keep-alive timer only
runs between requests. So a client could send a 100 MiB header into memory, or hold a socket
open forever by sending nothing, or a byte a second (slowloris). :class:`GuardedHttpProtocol`,
given to uvicorn as ``uvicorn.Config(http=guarded_protocol(limits))``, adds per connection:

- **a header cap** (``max_header_bytes``): the bytes of a head still incomplete are counted as
  they arrive, before they pile up in the parser, and the exact size once the head is complete
  (request line + headers); past the cap the client gets ``431`` and the connection closes. A
  head held in memory is at most the cap plus one socket read (256 KiB).
- **a header timeout** (``header_timeout``): from the connection's opening, and from the first
  byte of each later request on it, to the end of the head. A client that sends nothing is
  closed; one that sent part of a request gets ``408`` first.
- **a body idle limit** (``body_idle_timeout``): the longest pause between two pieces of a
  request body, not a deadline for the whole body (bodies may stream). While the server holds
  the body up, not the client, the clock stands still: uvicorn paused reading until the app
  consumes what it has, or it has a piece the app has not taken yet (below its high-water
  mark), or the request waits behind a pipelined one, or ``100 Continue`` is not sent yet, or
  the app said it holds the body back (:class:`BodyFlow`: a stream-in call whose model is
  slower than its input). Past it: ``408`` and close; an app that streams its answer and said
  it can end it with the error (``BodyFlow.answers_stall``) does so instead.
- **a write stall limit** (``write_stall_timeout``, a little over the stream idle timeout):
  a client that takes none of its answer for that long (uvicorn's writes have been paused on
  it, its socket buffers full) is disconnected. Stream back-pressure has already paused the
  model and the stall cancels the task; this frees the connection too. A stopping server
  drops such connections at once instead of waiting for them to drain.
- **a connection cap** (``max_connections``): a connection opened past it is answered ``503``
  once its head is in (uvicorn's own ``limit_concurrency`` answers in plain text), then
  closed; the others are served as usual. A WebSocket tunnel counts as one connection (uvicorn
  moves it from the HTTP protocol to the WebSocket one in its set of connections).

Both clocks are read by one periodic pass over the server's connections (every tenth of the
shorter timeout), not by a timer per request: a timeout fires up to 10% late, and the hot path
pays a clock read at the start of a request and at the end of its head, nothing more.

Every answer here is our JSON error shape (:func:`~edge_runner.control.http_errors.error_body`),
uvicorn's "Invalid HTTP request" 400 included. The gRPC tunnel port has grpc core's own limits
(:mod:`.tunnel_grpc`); authentication comes next, in :mod:`.http_gate`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from edge_runner.control.http_errors import error_body
from edge_runner.errors import ErrorCode

__all__ = ["BODY_FLOW", "BodyFlow", "GuardedHttpProtocol", "HttpLimits", "guarded_protocol"]

logger = logging.getLogger(__name__)

#: The ASGI scope extension (``scope["extensions"][BODY_FLOW]``) holding a request's
#: :class:`BodyFlow`.
BODY_FLOW = "edge_runner.body_flow"


class BodyFlow:
    """What the protocol and an app that consumes a request body as it streams tell each other.

    ASGI gives an app one way to learn that its client left, ``receive()``, which also hands it
    the next piece of body; an app that must not read further (its consumer has no room) would
    not notice a disconnect until it had room again. And the protocol cannot tell an app that
    holds pieces back on purpose from a client that stopped sending. So each request's scope
    carries one of these.

    Attributes:
        held: set by the app while it holds the body back on purpose (the body idle clock
            stands still).
        gone: set by the protocol when the connection is lost before the answer ended.
        answers_stall: set by an app whose answer is a stream it can end with an error: a body
            that stalls after the answer started is then not cut off at once, but ``stalled``
            is set and the app's ``receive()`` returns (an empty piece), so it ends the answer
            with that error (the connection is closed an idle period later if it does not).
        stalled: the protocol's message when the body stalled, for an app that answers it.
    """

    __slots__ = ("answers_stall", "gone", "held", "stalled")

    def __init__(self) -> None:
        self.held = False
        self.gone = asyncio.Event()
        self.answers_stall = False
        self.stalled: str | None = None


@dataclass(frozen=True)
class HttpLimits:
    """The limits :class:`GuardedHttpProtocol` enforces; durations in seconds."""

    max_connections: int = 1024
    max_header_bytes: int = 16 * 1024
    header_timeout: float = 10.0
    body_idle_timeout: float = 30.0
    write_stall_timeout: float = 60.0


class _Refusal(Exception):  # noqa: N818 - a signal out of a parser callback, not an error
    """Raised in a parser callback to answer at once and close (httptools re-raises it)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _Sweeper:
    """One periodic pass over a server's connections that checks both clocks.

    A timer per request (armed at its first byte, cancelled at the end of its head) cost a
    measurable share of the HTTP stack on the hot path; a pass every tenth of the shortest
    timeout costs a few microseconds per connection and fires at most that late.
    """

    def __init__(self, limits: HttpLimits) -> None:
        shortest = min(limits.header_timeout, limits.body_idle_timeout, limits.write_stall_timeout)
        self.tick = shortest / 10
        self.protocols: set[GuardedHttpProtocol] = set()
        self._handle: asyncio.TimerHandle | None = None

    def add(self, protocol: GuardedHttpProtocol) -> None:
        self.protocols.add(protocol)
        if self._handle is None:
            self._handle = protocol.loop.call_later(self.tick, self._sweep, protocol.loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for protocol in list(self.protocols):
            protocol.check_clocks(now)
        self._handle = loop.call_later(self.tick, self._sweep, loop) if self.protocols else None


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; see the module docstring."""

    limits: ClassVar[HttpLimits] = HttpLimits()
    sweeper: ClassVar[_Sweeper] = _Sweeper(limits)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = True  # a request head is awaited or arriving
        self._head_started = False  # a byte of it arrived (a timeout then answers 408)
        self._head_since = 0.0  # loop time the header clock started
        self._head_bytes = 0  # bytes of reads that left the head incomplete
        self._last_read = 0
        self._body_seen = 0.0  # loop time of the current body's last piece
        self._over_cap = False
        self._write_paused_since: float | None = None  # loop time the client stopped reading

    # -- connection ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection against the cap and start the header clock."""
        super().connection_made(transport)
        self._over_cap = len(self.connections) > self.limits.max_connections
        self._head_since = self.loop.time()
        self.sweeper.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop watching the clocks; tell an app streaming the body that its client left."""
        self.sweeper.protocols.discard(self)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            _body_flow(cycle.scope).gone.set()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        """The client is not taking what we send: start the write stall clock."""
        super().pause_writing()
        self._write_paused_since = self.loop.time()

    def resume_writing(self) -> None:
        """The client reads again."""
        super().resume_writing()
        self._write_paused_since = None

    def shutdown(self) -> None:
        """A stopping server: drop a connection whose client stopped reading, close others."""
        if self._write_paused_since is not None and not self.transport.is_closing():
            self.transport.abort()
            return
        super().shutdown()

    def handle_websocket_upgrade(self) -> None:
        """The connection becomes a WebSocket tunnel: our clocks must not close it later."""
        self.sweeper.protocols.discard(self)
        super().handle_websocket_upgrade()

    def data_received(self, data: bytes) -> None:
        """Feed the parser, counting the bytes of a head that is still incomplete."""
        self._unset_keepalive_if_required()
        counting = self._head_open
        self._last_read = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._refuse_upgrade()
            return
        except httptools.HttpParserError as exc:
            refusal = exc.__context__
            if isinstance(refusal, _Refusal):
                self._answer_and_close(refusal.status, refusal.code, refusal.message)
            else:
                logger.debug("invalid HTTP request from %s: %s", self.client, exc)
                self.send_400_response("Invalid HTTP request received.")
            return
        if counting and self._head_open:
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._answer_and_close(*_too_large(self.limits.max_header_bytes))

    def _refuse_upgrade(self) -> None:
        """An Upgrade we do not speak: llhttp parses nothing after it, so answer and close.

        uvicorn would log a warning per read and keep the socket as long as the client sends.
        """
        logger.debug("unsupported Upgrade from %s; closing after the answer", self.client)
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self.transport.close()
        else:
            cycle.keep_alive = False
            self.flow.pause_reading()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, in our JSON shape."""
        self._answer_and_close(
            400, ErrorCode.INVALID_HTTP, f"{msg} (malformed request line or headers)"
        )

    # -- parser callbacks ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        """A request starts: a later one on the connection has the header timeout from here."""
        super().on_message_begin()
        if not self._head_open:  # the first request's clock runs from the connection's opening
            self._head_since = self.loop.time()
            self._head_open = True
        self._head_started = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        """Check the head's exact size and the connection cap, then hand it to uvicorn."""
        self._head_open = self._head_started = False
        limit = self.limits.max_header_bytes
        if self._head_bytes + self._last_read > limit and self._head_size() > limit:
            raise _Refusal(*_too_large(limit))
        if self._over_cap:
            raise _Refusal(
                503,
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"the control plane has {self.limits.max_connections} connections open, its "
                "limit; retry in a moment (raise it with `edge-runner control --max-connections`)",
            )
        self._body_seen = self.loop.time()
        # ASGI types an extension's value as a dict; ours is an object the app updates.
        extensions = cast("dict[str, Any]", self.scope.setdefault("extensions", {}))
        extensions[BODY_FLOW] = BodyFlow()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        """A piece of body: the idle clock restarts."""
        self._body_seen = self.loop.time()
        super().on_body(body)

    # -- limits --------------------------------------------------------------------------------

    def _head_size(self) -> int:
        """Request line and headers as sent (names, values, separators, line ends)."""
        size = len(self.url) + 16  # method, version, spaces, CRLF
        for name, value in self.headers:
            size += len(name) + len(value) + 4
        return size

    def check_clocks(self, now: float) -> None:
        """Called by the sweeper: cut off a head or a body that took too long."""
        if self.transport.is_closing():
            return
        limits = self.limits
        paused = self._write_paused_since
        if paused is not None and now - paused >= limits.write_stall_timeout:
            logger.debug("closing %s: it read nothing for %g s", self.client, now - paused)
            self.transport.abort()  # nothing can be sent to it: no answer, no lingering
            return
        if self._head_open:
            if now - self._head_since >= limits.header_timeout:
                self._head_timed_out()
            return
        cycle = self.cycle
        if cycle is None or not cycle.more_body or cycle.disconnected:
            return  # no body is arriving
        if (
            self.flow.read_paused
            or cycle.body
            or _body_flow(cycle.scope).held
            or self.pipeline
            or cycle.waiting_for_100_continue
        ):
            # We hold the body up, not the client: the app has not taken what arrived (uvicorn
            # paused reading, or the piece is below its high-water mark), or holds it back on
            # purpose; the request waits behind a pipelined one, or 100 Continue is unsent.
            self._body_seen = now
        elif now - self._body_seen >= limits.body_idle_timeout:
            message = (
                f"the request body stalled: nothing arrived for {limits.body_idle_timeout:g} s "
                "(`edge-runner control --body-idle-timeout`)"
            )
            flow = _body_flow(cycle.scope)
            if cycle.response_started and flow.answers_stall and flow.stalled is None:
                # The app streams its answer and ends it with this error itself (a 408 cannot
                # follow a started answer); if it has not within another idle period, close.
                logger.debug("request body of %s idle: the app ends its answer", self.client)
                flow.stalled = message
                cycle.message_event.set()  # its receive() returns (an empty piece) and sees it
                self._body_seen = now
                return
            logger.debug(
                "closing %s: request body idle for %g s", self.client, now - self._body_seen
            )
            self._answer_and_close(408, ErrorCode.BODY_TIMEOUT, message, current=True)

    def _head_timed_out(self) -> None:
        seconds = self.limits.header_timeout
        if not self._head_started:
            logger.debug("closing %s: no request within %g s", self.client, seconds)
            self.transport.close()
            return
        logger.debug("closing %s: request headers incomplete after %g s", self.client, seconds)
        self._answer_and_close(
            408,
            ErrorCode.HEADER_TIMEOUT,
            f"the request headers did not arrive within {seconds:g} s "
            "(`edge-runner control --header-timeout`)",
        )

    def _answer_and_close(
        self, status: int, code: str, message: str, *, current: bool = False
    ) -> None:
        """Answer in our JSON shape and close; ``current``: the app is serving this request."""
        self._head_open = False
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started or not current:
                # A half-sent answer (this request's, or a pipelined predecessor's) cannot be
                # followed by ours.
                self.transport.close()
                return
            # The app may still wait for the body: it sees a disconnect, and uvicorn drops
            # anything it sends from now on.
            cycle.disconnected = True
            cycle.message_event.set()
        elif current:
            self.transport.close()  # the app answered already; only the body was left
            return
        if self.transport.is_closing():
            return
        body = error_body(code, message, status)
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        if status == 503:
            head.append(b"retry-after: 1\r\n")  # connections come and go all the time
        head.append(
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % len(body)
        )
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def _body_flow(scope: Any) -> BodyFlow:
    """The request's :class:`BodyFlow` (a request refused before its head completed has a
    stand-in nobody reads)."""
    flow = scope.get("extensions", {}).get(BODY_FLOW)
    return flow if flow is not None else BodyFlow()


def _too_large(limit: int) -> tuple[int, str, str]:
    return (
        431,
        ErrorCode.HEADERS_TOO_LARGE,
        f"the request line and headers are over the {limit}-byte limit "
        "(`edge-runner control --max-header-bytes`)",
    )


def guarded_protocol(limits: HttpLimits) -> type[GuardedHttpProtocol]:
    """A :class:`GuardedHttpProtocol` class bound to ``limits``, for ``uvicorn.Config(http=)``."""
    attributes = {"limits": limits, "sweeper": _Sweeper(limits)}
    cls = type("GuardedHttpProtocol", (GuardedHttpProtocol,), attributes)
    return cast("type[GuardedHttpProtocol]", cls)
