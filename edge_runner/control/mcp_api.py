"""``/v2/mcp/{model_id}``: MCP streamable HTTP for the MCP servers runners host.

Each HTTP exchange (POST, DELETE) becomes one task (``mcp.http``: the method, the MCP
headers and the body) that goes through the tunnel to a runner of the model, whose hosted
server answers; the answer's status, headers and body are sent back as they are. Hosted servers
run stateless (see :mod:`edge_runner.backends.mcp_server`), so any runner of the model may
answer any request and no session has to be pinned; for the same reason a GET (a client asking
for a server-initiated SSE stream) is answered ``405`` here at once, as the MCP spec allows.
A POST body must be valid JSON (:func:`~.http_common.parse_json`) before it travels.

Only the model's owner's tokens with the ``predict`` scope reach it (another user's catalog
has no such model: 404). An MCP call is never re-run on another runner (tools act on the
world): a runner lost mid-call fails it with ``RUNNER_LOST`` once its lease expires.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from edge_runner.control.http_common import answer, parse_json, read_body, submit_task
from edge_runner.control.registry import TokenInfo
from edge_runner.control.state import ControlState
from edge_runner.control.tasks import TaskDone
from edge_runner.errors import ApiProblem, ErrorCode
from edge_runner.views import JSONValue, ModelSpecView

__all__ = ["MCP_HTTP_METHOD", "MCP_PATH_PREFIX", "add_mcp_routes", "jsonrpc_error_body"]

MCP_HTTP_METHOD = "mcp.http"
MCP_PATH_PREFIX = "/v2/mcp/"
#: request headers the hosted server needs; Authorization (our token) is never forwarded
_FORWARDED = ("accept", "content-type", "last-event-id")
#: response headers worth handing back
_RETURNED = ("content-type", "cache-control")


def _wanted(name: str, allowed: tuple[str, ...]) -> bool:
    name = name.lower()
    return name in allowed or name.startswith("mcp-")


def add_mcp_routes(
    app: FastAPI, state: ControlState, principal: Callable[[Request, str | None], TokenInfo]
) -> None:
    """Register ``/v2/mcp/{model_id}``."""

    async def mcp(request: Request) -> Response:
        request_id: JSONValue = None
        try:
            if request.method in ("GET", "HEAD"):
                # Hosted servers are stateless: no server-initiated stream to open, and the
                # spec's answer for that is 405 (a forwarded GET held a runner slot for 60 s).
                raise ApiProblem(
                    405,
                    ErrorCode.METHOD_NOT_ALLOWED,
                    "hosted MCP servers are stateless and open no SSE stream: send JSON-RPC "
                    "messages with POST",
                )
            caller = principal(request, "predict")  # before the body is read
            body = await read_body(request, state.settings.max_body_bytes)
            if request.method == "POST":
                try:
                    message = parse_json(body)
                except ValueError as exc:
                    raise ApiProblem(
                        400, ErrorCode.INVALID_JSON, f"the request body is not valid JSON: {exc}"
                    ) from exc
                if isinstance(message, dict):
                    request_id = message.get("id")
            return await forward(request, caller, body)
        except ApiProblem as exc:
            return _jsonrpc_error(exc, request_id)

    async def forward(request: Request, caller: TokenInfo, body: bytes) -> Response:
        model_id = request.path_params["model_id"]
        user = caller.user_id
        entry = state.catalog.get(user, model_id)
        if entry is None:
            known = [e.model_id for e in state.catalog.for_user(user) if _is_mcp(e.spec)]
            raise ApiProblem(
                404,
                ErrorCode.UNKNOWN_MODEL,
                f"no MCP model {model_id!r}; MCP models: {', '.join(known) or 'none yet'}",
            )
        if not _is_mcp(entry.spec):
            raise ApiProblem(
                400,
                ErrorCode.NOT_MCP,
                f"model {model_id!r} is not an MCP server (model_type_id "
                f"{entry.spec.get('model_type_id') or 'text-to-text'}); call it at "
                f"/v2/models/{model_id}/METHOD",
            )
        payload = {
            "method": request.method,
            "headers": {k: v for k, v in request.headers.items() if _wanted(k, _FORWARDED)},
            "body": base64.b64encode(body).decode(),
        }
        task = state.new_task(caller, model_id, MCP_HTTP_METHOD, json.dumps(payload).encode())
        task.retry = False
        submit_task(state, task)
        event = await answer(state, task, request)
        assert isinstance(event, TaskDone)
        try:
            reply = json.loads(event.payload)
            status = int(reply["status"])
            content = base64.b64decode(reply["body"])
            headers = {
                k: str(v)
                for k, v in dict(reply.get("headers", {})).items()
                if _wanted(k, _RETURNED)
            }
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise ApiProblem(
                502,
                ErrorCode.BAD_RUNNER_ANSWER,
                f"the runner's MCP answer could not be read: {exc}",
            ) from exc
        if content and "content-type" not in {k.lower() for k in headers}:
            # The MCP SDK refuses some requests (no JSON Content-Type) with a bare string and
            # no Content-Type; say what it is rather than pass on an untyped body.
            headers["Content-Type"] = "text/plain; charset=utf-8"
        headers["X-Task-Id"] = task.task_id
        return Response(content, status, headers=headers)

    app.router.add_route("/v2/mcp/{model_id}", mcp, methods=["GET", "POST", "DELETE"])


#: JSON-RPC error codes for our HTTP statuses (MCP clients read the body of a non-2xx answer)
_JSONRPC_CODES = {400: -32602, 404: -32601, 405: -32600, 413: -32600}


def jsonrpc_error_body(problem: ApiProblem, request_id: JSONValue = None) -> bytes:
    """The problem as a JSON-RPC error document, which MCP clients show."""
    code = (
        -32700
        if problem.code == ErrorCode.INVALID_JSON
        else _JSONRPC_CODES.get(problem.status, -32603)
    )
    error = {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {
            "code": code,
            "message": problem.message,
            "data": {"code": problem.code, "status": problem.status},
        },
    }
    return json.dumps(error).encode()


def _jsonrpc_error(problem: ApiProblem, request_id: JSONValue) -> Response:
    """The problem as a JSON-RPC error answer at its HTTP status."""
    headers = {"Retry-After": str(problem.retry_after)} if problem.retry_after else {}
    if problem.task_id:
        headers["X-Task-Id"] = problem.task_id
    if problem.status == 405:
        headers["Allow"] = "POST, DELETE"
    return Response(
        jsonrpc_error_body(problem, request_id),
        problem.status,
        headers=headers,
        media_type="application/json",
    )


def _is_mcp(spec: ModelSpecView) -> bool:
    return spec.get("backend") == "mcp" or spec.get("model_type_id") == "mcp"
