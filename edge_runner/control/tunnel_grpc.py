"""The gRPC tunnel endpoint: moves frames between a runner and its :class:`ControlSession`.

The RPC is registered with identity (de)serializers, so frames reach the session as raw bytes:
the session's codec decides what is malformed, and a garbage frame closes that one tunnel with
``INVALID_ARGUMENT`` and an ``Error`` frame, never the server. Everything after authentication
is :func:`~edge_runner.control.tunnel.serve_tunnel`, shared with the WebSocket endpoint.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc

from edge_runner.control.tunnel import RUNNER_TOKEN_REFUSED, EndKind, serve_tunnel
from edge_runner.protocol.codec import MAX_FRAME_BYTES

if TYPE_CHECKING:
    from edge_runner.control.config import ControlConfig
    from edge_runner.control.state import ControlState

__all__ = ["SERVICE_NAME", "GrpcTunnelServer", "grpc_server_options"]

logger = logging.getLogger(__name__)

SERVICE_NAME = "edge_runner.tunnel.v1.RunnerTunnel"


def grpc_server_options(settings: ControlConfig) -> list[tuple[str, int]]:
    """Server options: keepalive pings accepted, large frames, no port sharing, and limits.

    Names are grpc core's channel arguments (``include/grpc/impl/channel_arg_names.h``); an
    unknown name is ignored without a word, so each one here was checked against that file.
    """
    handshake_ms = int(settings.handshake_timeout * 1000)
    return [
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.max_receive_message_length", MAX_FRAME_BYTES),
        ("grpc.max_send_message_length", MAX_FRAME_BYTES),
        ("grpc.so_reuseport", 0),
        # Metadata (the runner token and a few headers) over the cap is refused, not buffered:
        # the soft limit rejects some requests above it, the absolute one all of them.
        ("grpc.max_metadata_size", settings.max_header_bytes),
        ("grpc.absolute_max_metadata_size", settings.max_header_bytes),
        # TLS and HTTP/2 set-up of a new connection (grpc's default is 120 s).
        ("grpc.server_handshake_timeout_ms", handshake_ms),
        # A connection with no RPC (never started a tunnel, or its tunnel ended) is closed.
        ("grpc.max_connection_idle_ms", handshake_ms),
    ]


class GrpcTunnelServer:
    """Serves ``RunnerTunnel.Connect`` on a ``grpc.aio`` server."""

    def __init__(self, state: ControlState) -> None:
        self._state = state
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int, tls: tuple[bytes, bytes] | None = None) -> int:
        """Bind and start; returns the bound port."""
        settings = self._state.settings
        server = grpc.aio.server(
            options=grpc_server_options(settings),
            # One RPC per tunnel: past this many, RESOURCE_EXHAUSTED.
            maximum_concurrent_rpcs=settings.max_connections,
        )
        handler = grpc.method_handlers_generic_handler(
            SERVICE_NAME, {"Connect": grpc.stream_stream_rpc_method_handler(self._connect)}
        )
        server.add_generic_rpc_handlers((handler,))
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if tls is None:
            self.port = server.add_insecure_port(address)
        else:
            key, cert = tls
            self.port = server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
        if self.port == 0:
            raise OSError(f"cannot bind the gRPC tunnel port on {address}")
        await server.start()
        self._server = server
        return self.port

    async def stop(self, grace: float) -> None:
        """Stop accepting tunnels and close the open ones after ``grace`` seconds."""
        if self._server is not None:
            await self._server.stop(grace)

    async def _connect(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> None:
        state = self._state
        metadata = dict(context.invocation_metadata() or ())
        principal = state.runner_principal(metadata.get("authorization"), context.peer())
        if principal is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, RUNNER_TOKEN_REFUSED)
            return
        end = await serve_tunnel(state, principal, _GrpcConnection(requests, context))
        status = _END_STATUS.get(end.kind)
        if status is not None:
            await context.abort(status, end.message)


_END_STATUS = {
    EndKind.PROTOCOL_ERROR: grpc.StatusCode.INVALID_ARGUMENT,
    EndKind.REFUSED: grpc.StatusCode.FAILED_PRECONDITION,
    EndKind.SILENT: grpc.StatusCode.UNAVAILABLE,
    EndKind.REVOKED: grpc.StatusCode.UNAUTHENTICATED,
    EndKind.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
    EndKind.HANDSHAKE_TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
}


class _GrpcConnection:
    """A ``RunnerTunnel.Connect`` call as a :class:`TunnelConnection`."""

    def __init__(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> None:
        self._requests = requests.__aiter__()
        self._context = context

    async def recv(self) -> bytes | None:
        try:
            return await anext(self._requests)
        except StopAsyncIteration:
            return None
        except grpc.aio.AioRpcError as exc:  # the runner's side broke
            logger.debug("tunnel read ended: %s", exc.code())
            return None

    async def send(self, frame: bytes) -> None:
        try:
            await self._context.write(frame)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
            raise ConnectionError(f"the runner's gRPC stream went away: {exc!r}") from exc
