"""The WebSocket tunnel endpoint, ``/v2/tunnel`` on the HTTP port, for networks where only
HTTP/1.1 gets out. Binary messages carry the same frames as the gRPC stream; a text message is
a protocol error."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket, WebSocketDisconnect

from edge_runner.control.tunnel import RUNNER_TOKEN_REFUSED, EndKind, serve_tunnel
from edge_runner.errors import ProtocolError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from edge_runner.control.state import ControlState

__all__ = ["TUNNEL_PATH", "add_tunnel_route"]

logger = logging.getLogger(__name__)

TUNNEL_PATH = "/v2/tunnel"

#: WebSocket close codes (RFC 6455) for how a tunnel ended
_CLOSE_CODES = {
    EndKind.CLOSED: 1000,
    EndKind.PROTOCOL_ERROR: 1002,
    EndKind.REFUSED: 1008,
    EndKind.SILENT: 1001,
    EndKind.REVOKED: 1008,
    EndKind.FORBIDDEN: 1008,  # policy violation; the Error frame before it says which
    EndKind.HANDSHAKE_TIMEOUT: 1008,
}


class _WsConnection:
    """A Starlette WebSocket as a :class:`TunnelConnection`."""

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws

    async def recv(self) -> bytes | None:
        try:
            message = await self._ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            return None
        if message["type"] == "websocket.disconnect":
            return None
        data = message.get("bytes")
        if data is None:
            raise ProtocolError("tunnel frames must be binary WebSocket messages, got text")
        return bytes(data)

    async def send(self, frame: bytes) -> None:
        try:
            await self._ws.send_bytes(frame)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise ConnectionError(f"the runner's WebSocket went away: {exc!r}") from exc


def add_tunnel_route(app: FastAPI, state: ControlState) -> None:
    """Serve the tunnel over WebSocket at :data:`TUNNEL_PATH`."""

    async def tunnel(ws: WebSocket) -> None:
        peer = f"ws:{ws.client.host}:{ws.client.port}" if ws.client else "ws:?"
        principal = state.runner_principal(ws.headers.get("authorization"), peer)
        if principal is None:
            await ws.close(code=1008, reason=RUNNER_TOKEN_REFUSED)  # before accept: HTTP 403
            return
        await ws.accept()
        try:
            end = await serve_tunnel(state, principal, _WsConnection(ws))
        except ProtocolError as exc:  # a text frame before the Hello was even read
            logger.warning("refused a runner tunnel from %s: %s", peer, exc)
            await ws.close(code=1002, reason=str(exc)[:120])
            return
        # The runner may have closed its side already.
        with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
            await ws.close(code=_CLOSE_CODES[end.kind], reason=end.message[:120])

    app.router.add_websocket_route(TUNNEL_PATH, tunnel)
