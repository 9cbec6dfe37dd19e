"""The token check in front of every HTTP route, before any body is read: :class:`AuthGate`.

A pure ASGI middleware that :func:`~edge_runner.control.api.create_app` installs around the
routes, so a route added later cannot forget it (and cannot read a body first). It verifies
``Authorization: Bearer <token>`` before the app runs: a request without a valid token gets
``401`` in our JSON error shape (the JSON-RPC error shape under ``/v2/mcp/``, which MCP clients
show) and, when a body was announced, ``Connection: close``, so the body is never read. The
verified :class:`~edge_runner.control.registry.TokenInfo` travels in the ASGI scope under
:data:`TOKEN_KEY` to the routes' ``principal()``, which checks scopes.

Exempt: ``/healthz`` and ``/readyz`` (probes), and the WebSocket tunnel ``/v2/tunnel``, which
checks its runner token at the upgrade (:mod:`.tunnel_ws`). A WebSocket to a stream-in method
(:mod:`.stream_in_ws`) without an ``Authorization`` header passes too, with no token in the
scope: a browser cannot set that header, so the route takes the token from the first message
(an invalid header is still refused here, before the upgrade).

The gate is also where an exception no route handled becomes our JSON ``500``, logged once
with its traceback: that is a bug, as failures caused by input are answered with a 4xx.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge_runner.control.http_errors import UNAUTHENTICATED_MESSAGE, error_body
from edge_runner.control.mcp_api import MCP_PATH_PREFIX, jsonrpc_error_body
from edge_runner.control.tunnel_ws import TUNNEL_PATH
from edge_runner.errors import ApiProblem, ErrorCode

if TYPE_CHECKING:
    from edge_runner.control.auth import Authenticator

__all__ = ["EXEMPT_PATHS", "TOKEN_IN_MESSAGE", "TOKEN_KEY", "AuthGate"]

logger = logging.getLogger(__name__)

#: the ASGI scope key holding the request's verified TokenInfo
TOKEN_KEY = "edge_runner.token"
#: paths that need no token here
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", TUNNEL_PATH})
#: WebSocket paths whose route takes the token from the first message when there is no header
#: (``/v2/models/{model_id}/{method}/ws``, :mod:`.stream_in_ws`)
TOKEN_IN_MESSAGE = re.compile(r"/v2/models/[^/]+/[^/]+/ws")

_INTERNAL_ERROR = error_body(
    ErrorCode.INTERNAL_ERROR,
    "the control plane failed on this request (a bug: its log has the details); "
    "retry, and report it if it persists",
    500,
)


class AuthGate:
    """ASGI middleware: a valid bearer token before anything else, and JSON 500s."""

    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        if header is None and kind == "websocket" and TOKEN_IN_MESSAGE.fullmatch(scope["path"]):
            await self.app(scope, receive, send)
            return
        info = self.auth.verify_header(header)
        if info is None:
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": "unauthenticated"})
            else:
                await _unauthenticated(scope, send)
            return
        scope[TOKEN_KEY] = info
        if kind != "http":
            await self.app(scope, receive, send)
            return
        await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = complete = False

        async def tracked(message: Message) -> None:
            nonlocal started, complete
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                complete = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            if started and not complete:
                raise  # uvicorn logs it and closes the connection: the answer is cut short
            logger.exception("internal error on %s %s", scope["method"], scope["path"])
            if not started:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(_INTERNAL_ERROR)),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": _INTERNAL_ERROR})


async def _unauthenticated(scope: Scope, send: Send) -> None:
    problem = ApiProblem(401, ErrorCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)
    if scope["path"].startswith(MCP_PATH_PREFIX):
        body = jsonrpc_error_body(problem)
    else:
        body = error_body(problem.code, problem.message, problem.status)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"www-authenticate", b"Bearer"),
    ]
    if _body_pending(scope):
        headers.append((b"connection", b"close"))  # we will not read it
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _body_pending(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False
