"""``edge-runner mcp``: serve edge-runner's MCP tools over stdio, or streamable HTTP on 127.0.0.1.

Over HTTP (``--http PORT``) every request needs ``Authorization: Bearer <token>``, a fresh
random token written to a 0600 file (``--token-file``, default ``<runtime dir>/mcp-<port>.token``),
and ``Host``/``Origin`` must name this loopback port, as the MCP specification asks of local
servers, so a web page cannot reach the tools by DNS rebinding.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import secrets
import socket
import sys
from pathlib import Path
from typing import Any

from edge_runner.errors import ConfigError

__all__ = ["register"]

#: connections that may wait to be accepted (uvicorn's default backlog)
_BACKLOG = 2048


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mcp``."""
    mcp = sub.add_parser(
        "mcp",
        help="serve edge-runner's tools to an MCP client (stdio, or --http on 127.0.0.1)",
        description="Serve edge-runner's MCP tools (list_models, predict, chat, runner_status, "
        "gpu_status, recent_logs, pull_model, ...) over stdio for an MCP client to launch, or "
        "over streamable HTTP on 127.0.0.1 with --http.",
    )
    mcp.add_argument("--context", help="context to use (default: the active one)")
    mcp.add_argument(
        "--http", type=int, metavar="PORT", help="streamable HTTP on 127.0.0.1:PORT (0: any free)"
    )
    mcp.add_argument(
        "--token-file",
        type=Path,
        help="with --http: where to write the bearer token (0600; default in the runtime dir)",
    )
    mcp.set_defaults(func=_mcp)


def _server(context: str | None) -> Any:
    try:
        from edge_runner.mcp_tools import build_server
    except ImportError as exc:
        raise ConfigError(
            f"edge-runner mcp needs the MCP SDK ({exc.name} is missing): "
            "pip install 'edge-runner[mcp]'"
        ) from exc
    return build_server(context)


def _mcp(args: argparse.Namespace) -> int:
    server = _server(args.context)
    if args.http is None:
        import anyio

        anyio.run(server.run_stdio_async)
        return 0
    if not 0 <= args.http <= 65535:
        raise ConfigError(f"--http must be a port number 0-65535, got {args.http}")
    asyncio.run(_serve_http(server, args.http, args.token_file))
    return 0


async def _serve_http(server: Any, port: int, token_file: Path | None) -> None:
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    from edge_runner.config import write_private_file
    from edge_runner.config.paths import ensure_private_dir, runtime_dir

    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from exc
    # Listening before the address is announced: a client that connects at once waits in the
    # backlog until uvicorn accepts, rather than being refused while uvicorn still starts up
    # (its imports, a garbage collection: tens of milliseconds).
    sock.listen(_BACKLOG)
    port = int(sock.getsockname()[1])
    token = secrets.token_urlsafe(32)
    if token_file is None:
        token_file = ensure_private_dir(runtime_dir()) / f"mcp-{port}.token"
    token_file = token_file.expanduser()
    token_file.parent.mkdir(parents=True, exist_ok=True)
    write_private_file(token_file, token.encode())
    loopback = [f"127.0.0.1:{port}", f"localhost:{port}"]
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=loopback,
        allowed_origins=[f"http://{h}" for h in loopback],
    )
    app = server.streamable_http_app(
        streamable_http_path="/mcp", host="127.0.0.1", transport_security=security
    )
    config = uvicorn.Config(
        _BearerAuth(app, token), log_config=None, access_log=False, server_header=False
    )
    print(
        f"edge-runner MCP tools at http://127.0.0.1:{port}/mcp (bearer token in {token_file})",
        file=sys.stderr,
        flush=True,
    )
    try:
        await uvicorn.Server(config).serve(sockets=[sock])
    finally:
        token_file.unlink(missing_ok=True)


class _BearerAuth:
    """ASGI middleware: HTTP requests need ``Authorization: Bearer <token>``."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            scheme, _, secret = given.partition(b" ")
            # RFC 7235: the scheme is case-insensitive; the secret is compared in constant time.
            if not (
                scheme.lower() == b"bearer" and hmac.compare_digest(secret.strip(), self.token)
            ):
                body = json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": None,
                        "error": {
                            "code": -32001,
                            "message": "send Authorization: Bearer <the token in edge-runner "
                            "mcp's token file>",
                        },
                    }
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
