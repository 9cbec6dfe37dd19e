"""The MCP backend: host a model folder's MCP server, reachable through the tunnel.

A folder with ``model_type_id: mcp`` has an :class:`~edge_runner.MCPModelClass` whose
``get_server()`` returns an MCP server: the MCP SDK's ``mcp.server.mcpserver.MCPServer`` or a
``fastmcp.FastMCP`` (fastmcp 4.x; see :mod:`~edge_runner.backends.mcp_apps`). The runner builds
the server's streamable-HTTP ASGI app **stateless, with JSON answers** and drives it in-process
on an event loop of its own: each HTTP exchange a client has with the control plane's
``/v2/mcp/{model_id}`` arrives as one task (``mcp.http``: method, MCP headers, body) and is
answered with the app's status, headers and body. Nothing listens on the runner's machine.

Stateless means no MCP session lives on a runner (no ``Mcp-Session-Id``, no server-initiated
GET stream), so any runner serving the id can answer any request and a runner restart loses
nothing. Tools that need a conversation with the client mid-call (elicitation, sampling) use
the protocol's request-state round trips, which stateless servers carry in the request itself.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge_runner.backends.base import (
    Backend,
    CancelEvent,
    Reply,
    StreamReply,
    json_arguments,
    no_input_stream,
)
from edge_runner.backends.mcp_apps import (
    accept_transport_options,
    build_app,
    fastmcp_problem,
    sdk_missing,
)
from edge_runner.errors import BackendError, ErrorCode, ModelFolderError
from edge_runner.models.loader import MODEL_FILE, ModelFolder, load_model_folder
from edge_runner.models.wire import model_spec
from edge_runner.proto import tunnel_pb2 as pb

__all__ = ["MCP_HTTP_METHOD", "MCP_PATH", "MCPBackend"]

logger = logging.getLogger(__name__)

#: the task method carrying one HTTP exchange with the hosted server
MCP_HTTP_METHOD = "mcp.http"
#: where the hosted app serves MCP (in-process; the control plane's path is /v2/mcp/{id})
MCP_PATH = "/mcp"
_MAX_BODY = 4 * 1024 * 1024
_START_TIMEOUT_S = 30.0


class MCPBackend(Backend):
    """Hosts one MCP model folder."""

    name = "mcp"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        try:
            import mcp.server.mcpserver  # noqa: F401 - checked before the folder imports it
        except ImportError as exc:
            raise ModelFolderError(sdk_missing(Path(path))) from exc
        accept_transport_options(Path(path).expanduser() / MODEL_FILE)
        try:
            self.folder: ModelFolder = load_model_folder(path)
        except ModelFolderError as exc:
            message = fastmcp_problem(exc, Path(path).expanduser().resolve() / MODEL_FILE)
            if message is None:
                raise
            raise ModelFolderError(message) from exc
        self.model_id = self.folder.config.model_id
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._host: _AsgiHost | None = None

    def load(self) -> None:
        """Instantiate the class, get its server, start the app on a loop of its own.

        Raises:
            ModelFolderError: ``get_server()`` failed or returned no MCP server (or a fastmcp
                edge-runner cannot host).
        """
        instance = self.folder.instantiate()
        try:
            server = instance.get_server()  # type: ignore[attr-defined]
        except Exception as exc:
            raise ModelFolderError(
                f"get_server() of {self.folder.model_file} failed: {type(exc).__name__}: {exc}"
            ) from exc
        app = build_app(
            server, path=MCP_PATH, max_body=_MAX_BODY, model_file=self.folder.model_file
        )
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=f"mcp {self.model_id}", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        host = _AsgiHost(app)
        asyncio.run_coroutine_threadsafe(host.start(), loop).result(_START_TIMEOUT_S)
        self._host = host
        logger.info("MCP server %s ready (%s)", self.model_id, type(server).__name__)

    def close(self) -> None:
        """Shut the app down and stop its loop."""
        loop, host = self._loop, self._host
        if loop is None:
            return
        if host is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(host.stop(), loop).result(5.0)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5.0)
        loop.close()
        self._loop = None

    def specs(self) -> list[pb.ModelSpec]:
        """One spec with no methods: its tools are reached through ``/v2/mcp/{id}``."""
        return [model_spec(self.model_id, (), backend=self.name, chat=False, model_type_id="mcp")]

    def call(
        self,
        model_id: str,
        method: str,
        payload: bytes,
        cancel: threading.Event,
        inputs: Iterator[bytes] | None = None,
    ) -> Reply | StreamReply:
        """Answer one HTTP exchange (``mcp.http``) with the hosted app."""
        no_input_stream(inputs, model_id, method)
        if model_id != self.model_id:
            raise BackendError(ErrorCode.NOT_FOUND, f"this runner does not serve {model_id!r}")
        if method != MCP_HTTP_METHOD:
            raise BackendError(
                ErrorCode.NOT_FOUND, f"{model_id} is an MCP server; call it at /v2/mcp/{model_id}"
            )
        request = json_arguments(payload)
        try:
            http_method = str(request["method"]).upper()
            given = request.get("headers", {})
            if not isinstance(given, dict):
                raise TypeError(f"headers must be an object, not {type(given).__name__}")
            headers = {str(k).lower(): str(v) for k, v in given.items()}
            body = base64.b64decode(str(request.get("body", "")), validate=True)
        except (KeyError, TypeError, ValueError) as exc:
            raise BackendError(
                ErrorCode.INVALID_ARGUMENT, f"malformed mcp.http task: {exc}"
            ) from exc
        if http_method in ("GET", "HEAD"):
            return _no_stream()
        loop, host = self._loop, self._host
        if loop is None or host is None:
            raise BackendError(
                ErrorCode.UNAVAILABLE, f"MCP server {model_id} is not running", retryable=True
            )
        future = asyncio.run_coroutine_threadsafe(host.request(http_method, headers, body), loop)
        if isinstance(cancel, CancelEvent):

            def abort() -> None:
                future.cancel()  # cancels the request's task in the app's loop

            cancel.on_set(abort)
        try:
            status, out_headers, out_body = future.result()
        except concurrent.futures.CancelledError as exc:
            raise BackendError(ErrorCode.CANCELLED, "the task was cancelled") from exc
        doc = {
            "status": status,
            "headers": out_headers,
            "body": base64.b64encode(out_body).decode(),
        }
        return Reply(json.dumps(doc).encode())


def _no_stream() -> Reply:
    """405 for a GET at once: a stateless server opens no SSE stream (the app would hold the
    request, and a runner slot, until the control plane's deadline). Control planes answer
    GET themselves since; this is for older ones that forward it."""
    error = {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32600, "message": "this stateless MCP server opens no SSE stream"},
    }
    doc = {
        "status": 405,
        "headers": {"content-type": "application/json", "allow": "POST, DELETE"},
        "body": base64.b64encode(json.dumps(error).encode()).decode(),
    }
    return Reply(json.dumps(doc).encode())


class _AsgiHost:
    """Runs an ASGI app's lifespan and feeds it requests, as a server would, in-process."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state: dict[str, object] = {}
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._started: asyncio.Future[None] | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._started, self._stopped = loop.create_future(), loop.create_future()
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        self._task = asyncio.create_task(self._lifespan(scope))
        await self._to_app.put({"type": "lifespan.startup"})
        await self._started

    async def _lifespan(self, scope: dict[str, Any]) -> None:
        async def receive() -> dict[str, Any]:
            return await self._to_app.get()

        async def send(message: dict[str, Any]) -> None:
            kind = message["type"]
            target = self._started if kind.startswith("lifespan.startup") else self._stopped
            if target is None or target.done():
                return
            if kind.endswith(".failed"):
                target.set_exception(RuntimeError(message.get("message") or kind))
            else:
                target.set_result(None)

        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            for future in (self._started, self._stopped):
                if future is not None and not future.done():
                    future.set_exception(exc)

    async def stop(self) -> None:
        await self._to_app.put({"type": "lifespan.shutdown"})
        if self._stopped is not None:
            await asyncio.wait_for(self._stopped, 5.0)

    async def request(
        self, method: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP exchange with the app: status, response headers, the whole body."""
        raw_headers = [(b"host", b"127.0.0.1:0")] + [
            (k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items() if k != "host"
        ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": MCP_PATH,
            "raw_path": MCP_PATH.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": raw_headers,
            "client": ("127.0.0.1", 0),
            "server": ("127.0.0.1", 0),
            "state": dict(self.state),
        }
        sent = False
        done = asyncio.Event()
        status = 500
        out_headers: dict[str, str] = {}
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()  # then the exchange is over: the client "disconnects"
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for key, value in message.get("headers", []):
                    out_headers[key.decode("latin-1").lower()] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    done.set()

        try:
            await self.app(scope, receive, send)
        finally:
            done.set()
        return status, out_headers, b"".join(chunks)
