"""The runner's tunnel transports: a gRPC bidi stream (default) or a WebSocket (``--transport
ws``, for networks where only HTTP/1.1 gets out). Both carry the same frames.

This is the one place that knows grpc's and websockets' errors: :func:`translate` turns them
into :class:`~edge_runner.errors.TunnelError`, or, for a refusal, into
:class:`~edge_runner.errors.Unauthorized` (HTTP 401, ``UNAUTHENTICATED``) or
:class:`~edge_runner.errors.Forbidden` (HTTP 403, ``PERMISSION_DENIED``) alike on both
transports. Whether to retry is decided once, by
:func:`edge_runner.runner.connection.classify`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol

import grpc
import websockets
from websockets.asyncio.client import ClientConnection, connect

from edge_runner.errors import (
    ConfigError,
    EdgeRunnerError,
    ErrorCode,
    Forbidden,
    ProtocolError,
    TunnelError,
    Unauthorized,
)
from edge_runner.protocol.codec import MAX_FRAME_BYTES

__all__ = [
    "CONNECT_METHOD",
    "Transport",
    "TransportKind",
    "open_transport",
    "tls_context",
    "translate",
    "ws_url",
]

CONNECT_METHOD = "/edge_runner.tunnel.v1.RunnerTunnel/Connect"

_GRPC_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", MAX_FRAME_BYTES),
    ("grpc.max_send_message_length", MAX_FRAME_BYTES),
]


class TransportKind(enum.Enum):
    """Which transport carries the tunnel."""

    GRPC = "grpc"
    WS = "ws"


class Transport(Protocol):
    """One open tunnel connection."""

    async def recv(self) -> bytes | None:
        """The next frame; None when the control plane ended the tunnel cleanly."""

    async def send(self, frame: bytes) -> None:
        """Send one frame."""

    async def finish(self) -> None:
        """We are done sending (the peer ends the tunnel after our Goodbye)."""

    def abort(self) -> None:
        """Drop the connection now (a dead, half-open tunnel)."""


def _unauthorized(detail: str) -> Unauthorized:
    return Unauthorized(
        401,
        ErrorCode.UNAUTHENTICATED,
        f"the control plane rejected this runner's token ({detail}); "
        "log in again (`edge-runner up` refreshes the local context)",
    )


def _forbidden(detail: str) -> Forbidden:
    return Forbidden(
        403,
        ErrorCode.PERMISSION_DENIED,
        f"the control plane refused this runner's tunnel ({detail}); its token may not open "
        "tunnels (it lacks the 'runner' scope, or is not valid there): log in again, or ask "
        "for a runner token (`edge-runner up` refreshes the local context)",
    )


def translate(exc: Exception) -> Exception:
    """Our error for one raised by grpc or websockets; any other exception is returned as is.

    The same refusal means the same thing on both transports: HTTP 401 and ``UNAUTHENTICATED``
    are :class:`Unauthorized`, HTTP 403 and ``PERMISSION_DENIED`` are :class:`Forbidden`.
    """
    if isinstance(exc, grpc.aio.AioRpcError):
        return _grpc_error(exc)
    if isinstance(exc, websockets.InvalidStatus):
        status = exc.response.status_code
        if status == 401:
            return _unauthorized("HTTP 401")
        if status == 403:
            return _forbidden("HTTP 403")
        return TunnelError(f"the WebSocket tunnel was refused with HTTP {status}")
    if isinstance(exc, websockets.InvalidURI):
        return ConfigError(f"cannot open a WebSocket tunnel to {exc.uri!r}: {exc.msg}")
    if isinstance(exc, websockets.InvalidHandshake):
        return TunnelError(f"the WebSocket handshake failed: {exc}")
    if isinstance(exc, websockets.ConnectionClosed):
        return TunnelError(f"the WebSocket tunnel closed: {exc}")
    if isinstance(exc, websockets.WebSocketException):
        return TunnelError(f"the WebSocket tunnel failed: {exc}")
    return exc


class _GrpcTransport:
    def __init__(self, call: grpc.aio.StreamStreamCall) -> None:
        self._call = call
        self._aborted = False

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Translate what grpc raises on this call into our errors."""
        try:
            yield
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        except asyncio.InvalidStateError as exc:
            raise TunnelError("the tunnel call already ended") from exc
        except asyncio.CancelledError as exc:
            # grpc raises CancelledError for a call we cancelled ourselves (abort()); only
            # that case is ours to translate, a real task cancellation goes on.
            if self._aborted:
                raise TunnelError("the tunnel was dropped as dead") from exc
            raise

    async def recv(self) -> bytes | None:
        with self._errors():
            frame = await self._call.read()
        if frame is grpc.aio.EOF:
            return None
        return bytes(frame)

    async def send(self, frame: bytes) -> None:
        with self._errors():
            await self._call.write(frame)

    async def finish(self) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            await self._call.done_writing()

    def abort(self) -> None:
        self._aborted = True
        self._call.cancel()


def _grpc_error(exc: grpc.aio.AioRpcError) -> EdgeRunnerError:
    if exc.code() is grpc.StatusCode.UNAUTHENTICATED:
        return _unauthorized(exc.details() or ErrorCode.UNAUTHENTICATED)
    if exc.code() is grpc.StatusCode.PERMISSION_DENIED:
        # A grpc-aware proxy's HTTP 403 arrives as PERMISSION_DENIED too.
        return _forbidden(exc.details() or ErrorCode.PERMISSION_DENIED)
    return TunnelError(f"{exc.code().name}: {exc.details()}")


class _WsTransport:
    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    async def recv(self) -> bytes | None:
        try:
            message = await self._ws.recv()
        except websockets.ConnectionClosedOK:
            return None
        except websockets.ConnectionClosedError as exc:
            raise translate(exc) from exc
        if isinstance(message, str):
            raise ProtocolError("the control plane sent a text WebSocket message")
        return message

    async def send(self, frame: bytes) -> None:
        try:
            await self._ws.send(frame)
        except websockets.ConnectionClosed as exc:
            raise translate(exc) from exc

    async def finish(self) -> None:
        """WebSockets have no half-close: the control plane closes after our Goodbye."""

    def abort(self) -> None:
        self._ws.transport.abort()


def ws_url(api_base: str, path: str) -> str:
    """``http://h:p`` + ``/v2/tunnel`` → ``ws://h:p/v2/tunnel`` (https → wss)."""
    base = api_base.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://") + path
    return "ws://" + base.removeprefix("http://") + path


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verify servers against ``ca_file`` (a private CA) or, without one, the system store."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def _grpc_channel(address: str, tls: bool, ca_file: Path | None) -> grpc.aio.Channel:
    if not tls:
        return grpc.aio.insecure_channel(address, options=_GRPC_OPTIONS)
    roots = ca_file.read_bytes() if ca_file else None
    credentials = grpc.ssl_channel_credentials(root_certificates=roots)
    return grpc.aio.secure_channel(address, credentials, options=_GRPC_OPTIONS)


@contextlib.asynccontextmanager
async def open_transport(
    kind: TransportKind,
    *,
    grpc_address: str,
    ws_url: str,
    token: str,
    tls: bool = False,
    ca_file: Path | None = None,
) -> AsyncIterator[Transport]:
    """Open the tunnel connection; closing the context drops it."""
    auth = f"Bearer {token}"
    if kind is TransportKind.GRPC:
        async with _grpc_channel(grpc_address, tls, ca_file) as channel:
            call = channel.stream_stream(CONNECT_METHOD)(metadata=(("authorization", auth),))
            yield _GrpcTransport(call)
        return
    try:
        ws = await connect(
            ws_url,
            ssl=tls_context(ca_file) if ws_url.startswith("wss://") else None,
            additional_headers={"Authorization": auth},
            max_size=MAX_FRAME_BYTES,
            ping_interval=None,  # tunnel heartbeats detect a dead connection on both transports
            open_timeout=10,
            close_timeout=2,
        )
    except websockets.WebSocketException as exc:
        raise translate(exc) from exc
    except (TimeoutError, ssl.SSLError) as exc:
        raise TunnelError(f"the WebSocket handshake failed: {exc}") from exc
    try:
        yield _WsTransport(ws)
    finally:
        await ws.close()
