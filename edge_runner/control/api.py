"""The HTTP API: native ``/v2`` routes and ``/healthz``; OpenAI routes live in :mod:`.openai_api`.

Every route sits behind :class:`~.http_gate.AuthGate` (the token is checked before a body is
read; ``principal()`` then checks scopes), and uvicorn runs it with the connection limits of
:mod:`.http_guard`.

Handlers take the raw :class:`Request` and build bytes themselves: the predict path is the hot
path, and FastAPI's body models and response validation would cost more than the tunnel.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette import routing
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from edge_runner._version import __version__
from edge_runner.control.batch_api import call_batch
from edge_runner.control.http_common import (
    JSON_OBJECT,
    TaskStream,
    answer,
    first_event,
    json_kind,
    read_json,
    stream_events,
    submit_task,
    usage_json,
)
from edge_runner.control.http_errors import (
    UNAUTHENTICATED_MESSAGE,
    error_body,
    problem_response,
)
from edge_runner.control.http_gate import TOKEN_KEY, AuthGate
from edge_runner.control.mcp_api import add_mcp_routes
from edge_runner.control.ndjson_api import call_ndjson
from edge_runner.control.openai_api import add_openai_routes
from edge_runner.control.openapi import add_openapi_route
from edge_runner.control.ops_api import add_ops_routes
from edge_runner.control.registry import TokenInfo
from edge_runner.control.replicas_api import add_replica_routes
from edge_runner.control.state import ControlState
from edge_runner.control.stream_in_ws import add_stream_in_ws_route
from edge_runner.control.tasks import Task, TaskDone, TaskEvent, TaskOutput
from edge_runner.control.tokens_api import add_token_routes
from edge_runner.control.tunnel_ws import add_tunnel_route
from edge_runner.errors import ApiProblem, ErrorCode, InvalidArgument
from edge_runner.models.signatures import MethodKind, validate_arguments
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import PROTOCOL_VERSION, format_version
from edge_runner.views import ControlInfo, ModelSpecView, ModelView, RunnerView

__all__ = ["create_app"]


def create_app(state: ControlState) -> FastAPI:
    """Build the FastAPI application over a :class:`ControlState`."""
    app = FastAPI(
        title="edge-runner control plane",
        version=__version__,
        docs_url=None,  # the Swagger UI loads assets from a CDN; offline sites have none
        redoc_url=None,
        openapi_url=None,  # ours (edge_runner.control.openapi) documents every route
    )
    app.add_exception_handler(ApiProblem, problem_response)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    settings = state.settings

    app.add_middleware(AuthGate, auth=state.auth)  # a token before any route reads a body

    def principal(request: Request, scope: str | None) -> TokenInfo:
        """Who is calling (the gate verified it); 403 without ``scope``."""
        info: TokenInfo | None = request.scope.get(TOKEN_KEY)
        if info is None:  # a route the gate exempts: check here
            info = state.auth.verify_header(request.headers.get("authorization"))
        if info is None:
            raise ApiProblem(401, ErrorCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)
        if scope is not None and scope not in info.scopes:
            raise ApiProblem(
                403,
                ErrorCode.MISSING_SCOPE,
                f"this token lacks the {scope!r} scope (it has: {', '.join(sorted(info.scopes))}); "
                f"create one with `edge-runner token create --scope {scope}`",
            )
        return info

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v2/info", response_model=JSON_OBJECT)
    async def info(request: Request) -> ControlInfo:
        principal(request, None)  # any valid token: runners discover the tunnel here
        return {
            "version": __version__,
            "protocol_version": format_version(PROTOCOL_VERSION),
            "tunnel": {
                "grpc": state.grpc_address,
                "websocket": "/v2/tunnel",
                "tls": state.settings.tls,
            },
            "uptime_s": round(time.time() - state.started, 3),
            "time": time.time(),  # the server's clock, so clients can measure skew (doctor)
        }

    @app.get("/v2/models", response_model=JSON_OBJECT)
    async def list_models(request: Request) -> dict[str, list[ModelView]]:
        user = principal(request, "read").user_id
        return {
            "models": [_model_view(state, e.user_id, e.spec) for e in state.catalog.for_user(user)]
        }

    @app.get("/v2/models/{model_id}", response_model=JSON_OBJECT)
    async def get_model(model_id: str, request: Request) -> ModelView:
        user = principal(request, "read").user_id
        entry = state.catalog.get(user, model_id)
        if entry is None:
            raise _unknown_model(state, user, model_id)
        return _model_view(state, user, entry.spec)

    @app.delete("/v2/tasks/{task_id}")
    async def cancel_task(task_id: str, request: Request) -> dict[str, str]:
        user = principal(request, "predict").user_id
        task = state.dispatcher.tasks.get(task_id)
        if task is None or task.user_id != user:
            raise ApiProblem(
                404,
                ErrorCode.UNKNOWN_TASK,
                f"no queued or running task {task_id!r} (it may have finished already)",
            )
        state.dispatcher.cancel(task, "cancelled by DELETE /v2/tasks")
        return {"task_id": task_id, "status": "cancelled"}

    @app.get("/v2/runners", response_model=JSON_OBJECT)
    async def list_runners(request: Request) -> dict[str, list[RunnerView]]:
        return {"runners": state.runners_view(principal(request, "read").user_id)}

    async def call_method(request: Request) -> Response:
        model_id = request.path_params["model_id"]
        method = request.path_params["method"]
        caller = principal(request, "predict")
        user = caller.user_id
        entry = state.catalog.get(user, model_id)
        if entry is None:
            raise _unknown_model(state, user, model_id)
        signature = entry.methods.get(method)
        if signature is None:
            raise ApiProblem(
                404,
                ErrorCode.UNKNOWN_METHOD,
                f"model {model_id!r} has no method {method!r}; "
                f"its methods: {', '.join(sorted(entry.methods))}",
            )
        if signature.kind is MethodKind.BIDI:
            return await call_ndjson(state, caller, model_id, signature, request)
        body = await read_json(request, settings.max_body_bytes)
        if isinstance(body, list):
            return await call_batch(state, caller, model_id, signature, body, request)
        if not isinstance(body, dict):
            raise ApiProblem(
                400,
                ErrorCode.INVALID_BODY,
                "the request body must be a JSON object of keyword arguments (or, for a unary "
                f"method, a JSON array of them: a batch), got a JSON {json_kind(body)}",
            )
        try:
            args = validate_arguments(signature, body)
        except InvalidArgument as exc:
            raise ApiProblem(400, ErrorCode.INVALID_ARGUMENT, str(exc), param=exc.argument) from exc
        task = state.new_task(caller, model_id, method, json.dumps(args).encode())
        submit_task(state, task)
        headers = {"X-Task-Id": task.task_id}
        if signature.kind is MethodKind.UNARY:
            event = await answer(state, task, request)
            assert isinstance(event, TaskDone)
            answer_body = b'{"task_id":"%s","output":%s%s}' % (
                task.task_id.encode(),
                event.payload or b"null",
                usage_json(event),
            )
            return Response(answer_body, headers=headers, media_type="application/json")
        first = await first_event(state, task)
        return TaskStream(_native_sse(state, task, first), headers)

    # The hot path is a plain Starlette route: FastAPI's parameter machinery would cost more
    # per request than the tunnel does (measured with bench/tunnel.py).
    app.router.add_route("/v2/models/{model_id}/{method}", call_method, methods=["POST"])
    add_openai_routes(app, state, principal)
    add_mcp_routes(app, state, principal)
    add_ops_routes(app, state, principal)
    add_replica_routes(app, state, principal)
    add_tunnel_route(app, state)
    add_stream_in_ws_route(app, state)
    add_token_routes(app, state, principal)
    add_openapi_route(app, principal, __version__)
    return app


def _unknown_model(state: ControlState, user_id: str, model_id: str) -> ApiProblem:
    known = [e.model_id for e in state.catalog.for_user(user_id)]
    hint = f"known models: {', '.join(known)}" if known else "no model is registered yet"
    return ApiProblem(404, ErrorCode.UNKNOWN_MODEL, f"no model {model_id!r}; {hint}")


def _model_view(state: ControlState, user_id: str, spec: ModelSpecView) -> ModelView:
    online = state.dispatcher.online(user_id, spec["id"])
    key = (user_id, spec["id"])
    view: ModelView = {
        **spec,
        "status": "online" if online else "offline",
        "runners": online,
        "queued": state.dispatcher.queued(user_id, spec["id"]),
        "requests": state.dispatcher.requests[key],
        "errors": state.dispatcher.errors[key],
    }
    waiting = state.dispatcher.not_ready(user_id, spec["id"])
    if waiting is not None:
        view["status"] = pb.ModelState.Name(waiting.state).lower()
        view["message"] = waiting.message
        if waiting.state == pb.LOADING:
            view["progress"] = round(waiting.progress, 4)
            view["eta_s"] = waiting.eta_ms / 1000
    return view


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}.get(
        exc.status_code, ErrorCode.HTTP_ERROR
    )
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return Response(
        error_body(code, str(exc.detail), exc.status_code),
        exc.status_code,
        headers=headers,
        media_type="application/json",
    )


def _allowed_methods(request: Request) -> list[str]:
    """The methods of the resource Starlette matched. Its 405 names only those of the first
    route that matched the path, while ``GET /v2/tokens`` and ``POST /v2/tokens`` are two
    routes; routes of another template that also match (``/v2/tokens/{token_id}`` for
    ``/v2/tokens/self``) are another resource."""
    template = None
    methods: set[str] = set()
    partial = routing.Match.PARTIAL  # the path matched, the method did not
    for route in request.app.router.routes:
        if not isinstance(route, routing.Route) or route.matches(request.scope)[0] is not partial:
            continue
        template = template or route.path
        if route.path == template:
            methods |= route.methods or set()
    return sorted(methods)


async def _native_sse(state: ControlState, task: Task, first: TaskEvent) -> AsyncIterator[bytes]:
    index = 0
    # Closed with this generator (a client that hangs up cancels the task now, not
    # whenever the garbage collector finalises the inner generator).
    async with contextlib.aclosing(stream_events(state, task, first)) as events:
        async for event in events:
            if isinstance(event, TaskOutput):
                yield b'event: chunk\ndata: {"index":%d,"output":%s}\n\n' % (index, event.payload)
                index += 1
            elif isinstance(event, TaskDone):
                yield b'event: done\ndata: {"task_id":"%s"%s}\n\n' % (
                    task.task_id.encode(),
                    usage_json(event),
                )
            else:
                data = json.dumps({"code": event.code, "message": event.message}).encode()
                yield b"event: error\ndata: %s\n\n" % data
