"""The gRPC tunnel endpoint: moves frames between a runner and its :class:`ControlSession`.

The RPC is registered with identity (de)serializers, so frames reach the session as raw bytes:
the session's codec decides what is malformed, and a garbage frame closes that one tunnel with
``INVALID_ARGUMENT`` and an ``Error`` frame, never the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc

from edge_runner._version import __version__
from edge_runner.control.dispatch import RunnerLink
from edge_runner.errors import ProtocolError
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import ControlSession, SessionState
from edge_runner.protocol.codec import MAX_FRAME_BYTES

if TYPE_CHECKING:
    from edge_runner.control.state import ControlState

__all__ = ["SERVICE_NAME", "GrpcTunnelServer", "grpc_server_options"]

logger = logging.getLogger(__name__)

SERVICE_NAME = "edge_runner.tunnel.v1.RunnerTunnel"


def grpc_server_options() -> list[tuple[str, int]]:
    """Server options: accept the runners' keepalive pings, large frames, no port sharing."""
    return [
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.max_receive_message_length", MAX_FRAME_BYTES),
        ("grpc.max_send_message_length", MAX_FRAME_BYTES),
        ("grpc.so_reuseport", 0),
    ]


class GrpcTunnelServer:
    """Serves ``RunnerTunnel.Connect`` on a ``grpc.aio`` server."""

    def __init__(self, state: ControlState) -> None:
        self._state = state
        self._server: grpc.aio.Server | None = None
        self._rejected_tokens: set[str] = set()
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        """Bind and start; returns the bound port."""
        server = grpc.aio.server(options=grpc_server_options())
        handler = grpc.method_handlers_generic_handler(
            SERVICE_NAME, {"Connect": grpc.stream_stream_rpc_method_handler(self._connect)}
        )
        server.add_generic_rpc_handlers((handler,))
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.port = server.add_insecure_port(address)
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
        principal = state.auth.verify_header(metadata.get("authorization"))
        if principal is None or "runner" not in principal.scopes:
            fingerprint = str(metadata.get("authorization", ""))[-8:]
            log = logger.debug if fingerprint in self._rejected_tokens else logger.warning
            self._rejected_tokens.add(fingerprint)
            log("refused a runner tunnel from %s: missing or invalid token", context.peer())
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "invalid or missing runner token; log in again or check the context's token",
            )
            return
        session = ControlSession(
            server_version=__version__,
            heartbeat_interval_ms=int(state.settings.heartbeat_interval * 1000),
            lease_ttl_ms=int(state.settings.lease_ttl * 1000),
        )
        link: RunnerLink | None = None
        iterator = requests.__aiter__()
        try:
            try:
                first = await anext(iterator)
            except StopAsyncIteration:
                return
            session.receive_frame(first)
            link = state.register_runner(principal.user_id, session)
            if link is None:
                await self._write_pending(session, context)
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, session.close_reason)
                return
            link.flush()
            reader = asyncio.create_task(self._read(iterator, session, link))
            await self._write_loop(link, context)
            if not reader.done():
                reader.cancel()
            error: str | None = None
            with contextlib.suppress(asyncio.CancelledError):
                error = await reader
            if error is not None:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, error)
        except ProtocolError as exc:
            logger.warning("refused a runner tunnel from %s: %s", context.peer(), exc)
            await self._write_pending(session, context)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        finally:
            if link is not None:
                state.unregister_runner(link)

    async def _write_pending(
        self, session: ControlSession, context: grpc.aio.ServicerContext
    ) -> None:
        for frame in session.data_to_send():
            await context.write(frame)

    async def _write_loop(self, link: RunnerLink, context: grpc.aio.ServicerContext) -> None:
        outbox = link.outbox
        while True:
            frame = await outbox.get()
            if frame is None:
                return
            await context.write(frame)

    async def _read(
        self, iterator: AsyncIterator[bytes], session: ControlSession, link: RunnerLink
    ) -> str | None:
        """Feed frames to the session until the stream ends; returns a protocol error, if any."""
        dispatcher = self._state.dispatcher
        try:
            async for frame in iterator:
                for event in session.receive_frame(frame):
                    dispatcher.on_event(link, event)
                    if isinstance(event, pb.Draining):
                        logger.info("runner %s is draining", link.runner_id)
                if session.state is SessionState.CLOSED:
                    break
        except ProtocolError as exc:
            logger.warning("closing the tunnel of runner %s: %s", link.runner_id, exc)
            link.flush()  # the Error frame for the runner
            return str(exc)
        except grpc.aio.AioRpcError:
            pass  # the runner's side broke; unregistering handles its tasks
        finally:
            link.outbox.put_nowait(None)
        return None
