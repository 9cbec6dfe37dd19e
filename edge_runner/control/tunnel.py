"""Serving one runner's tunnel, whatever carries it (gRPC stream or WebSocket).

A transport adapts its connection to :class:`TunnelConnection` (receive a frame, send a frame)
and calls :func:`serve_tunnel`, which drives the :class:`ControlSession`, registers the runner
and hands events to dispatch. It returns how the tunnel ended so the transport can close with
the right status (gRPC status code, WebSocket close code).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from edge_runner._version import __version__
from edge_runner.control.dispatch import RunnerLink
from edge_runner.control.state import ControlState
from edge_runner.errors import ErrorCode, ProtocolError
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import ControlSession, SessionState

if TYPE_CHECKING:
    from edge_runner.control.registry import TokenInfo

__all__ = [
    "RUNNER_TOKEN_REFUSED",
    "EndKind",
    "TunnelConnection",
    "TunnelEnd",
    "apply_frame",
    "serve_tunnel",
]

RUNNER_TOKEN_REFUSED = "invalid or missing runner token; log in again or check the context's token"

logger = logging.getLogger(__name__)


class TunnelConnection(Protocol):
    """What a transport offers: frames in and out."""

    async def recv(self) -> bytes | None:
        """The next frame, or None when the runner finished sending."""

    async def send(self, frame: bytes) -> None:
        """Send one frame; raises ConnectionError when the runner is gone."""


class EndKind(enum.Enum):
    """How a tunnel ended, for the transport's close status."""

    CLOSED = "closed"  # the runner left, or the control plane said Goodbye
    PROTOCOL_ERROR = "protocol_error"  # malformed or out-of-order frames
    REFUSED = "refused"  # the Hello was valid but not acceptable (conflict, bad spec)
    SILENT = "silent"  # nothing arrived within the silence timeout
    REVOKED = "revoked"  # the token the tunnel authenticated with was revoked
    FORBIDDEN = "forbidden"  # the runner id belongs to another user
    HANDSHAKE_TIMEOUT = "handshake_timeout"  # no Hello within the handshake timeout


@dataclass(frozen=True)
class TunnelEnd:
    """The outcome of :func:`serve_tunnel`."""

    kind: EndKind
    message: str = ""


async def serve_tunnel(
    state: ControlState, principal: TokenInfo, conn: TunnelConnection
) -> TunnelEnd:
    """Run one runner's tunnel until it closes."""
    settings = state.settings
    session = ControlSession(
        server_version=__version__,
        heartbeat_interval_ms=int(settings.heartbeat_interval * 1000),
        lease_ttl_ms=int(settings.lease_ttl * 1000),
        stream_window=settings.stream_window,
    )
    try:
        # An authenticated runner that never says Hello must not hold a tunnel slot.
        async with asyncio.timeout(settings.handshake_timeout):
            first = await conn.recv()
    except TimeoutError:
        logger.info("closed a runner tunnel: no Hello within %g s", settings.handshake_timeout)
        return TunnelEnd(
            EndKind.HANDSHAKE_TIMEOUT,
            f"no Hello within {settings.handshake_timeout:g} s of connecting",
        )
    if first is None:
        return TunnelEnd(EndKind.CLOSED)
    try:
        session.receive_frame(first)
    except ProtocolError as exc:
        logger.warning("refused a runner tunnel: %s", exc)
        await _send_pending(session, conn)
        return TunnelEnd(EndKind.PROTOCOL_ERROR, str(exc))
    link = state.register_runner(principal.user_id, session, principal.token_id)
    if link is None:
        await _send_pending(session, conn)
        kind = (
            EndKind.FORBIDDEN
            if session.close_code == ErrorCode.PERMISSION_DENIED
            else EndKind.REFUSED
        )
        return TunnelEnd(kind, session.close_reason)
    link.flush()
    reader = asyncio.create_task(_read(state, conn, session, link))
    try:
        outbox = link.outbox
        while (frame := await outbox.get()) is not None:
            await conn.send(frame)
    except ConnectionError as exc:
        logger.info("the tunnel of runner %s broke: %s", link.runner_id, exc)
    finally:
        if not reader.done():
            reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        state.tunnel_closed(link)
    if link.revoked:
        return TunnelEnd(EndKind.REVOKED, "the token this runner connected with was revoked")
    if link.close_error is not None:
        return TunnelEnd(EndKind.PROTOCOL_ERROR, link.close_error)
    if link.silent:
        return TunnelEnd(EndKind.SILENT, "no message from the runner within the silence timeout")
    return TunnelEnd(EndKind.CLOSED)


async def _send_pending(session: ControlSession, conn: TunnelConnection) -> None:
    """Send what the session queued (an Error or a Welcome) unless the runner is gone."""
    with contextlib.suppress(ConnectionError):
        for frame in session.data_to_send():
            await conn.send(frame)


def apply_frame(
    state: ControlState, session: ControlSession, link: RunnerLink, frame: bytes
) -> None:
    """Feed one frame from a registered runner to its session and apply what it carries.

    The one path every frame after the Hello takes (the tunnel's reader, and the isolation
    property tests in tests/unit/test_fuzz_isolation.py).

    Raises:
        ProtocolError: the frame broke the protocol; the session is closed and holds an Error
            frame for the runner.
    """
    for event in session.receive_frame(frame):
        if isinstance(event, pb.ModelStatus):
            state.model_status(link, event)
        elif isinstance(event, pb.Logs):
            state.logs.add(link.runner_id, link.user_id, event)
        state.dispatcher.on_event(link, event)
        if isinstance(event, pb.Draining):
            logger.info("runner %s is draining", link.runner_id)


async def _read(
    state: ControlState, conn: TunnelConnection, session: ControlSession, link: RunnerLink
) -> None:
    """Feed frames to the session and dispatch until the stream ends or breaks the protocol."""
    try:
        while (frame := await conn.recv()) is not None:
            apply_frame(state, session, link, frame)
            if session.state is SessionState.CLOSED:
                break
    except ProtocolError as exc:
        logger.warning("closing the tunnel of runner %s: %s", link.runner_id, exc)
        link.flush()  # the Error frame for the runner
        link.close_error = str(exc)
    except Exception:  # a bug must end this one tunnel, never the control plane
        logger.exception("internal error on the tunnel of runner %s", link.runner_id)
    finally:
        link.outbox.put_nowait(None)
