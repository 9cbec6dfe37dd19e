"""What the OpenAPI document says, as tables: the routes, the error codes, their headers.

:mod:`.openapi` turns these into the document. A new error code is a member of
:class:`~edge_runner.errors.ErrorCode` and one line in :data:`ERRORS` (its status and meaning),
then it goes in the ``errors`` of the operations that answer it; a code marked ``everywhere`` (a
server limit, answered before any route runs) goes on every route by itself. A new route is one
:class:`Operation` in :data:`OPERATIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge_runner.control.http_errors import TASK_ERROR_STATUS
from edge_runner.control.openapi_shapes import obj, ref, sse_event
from edge_runner.errors import ErrorCode

__all__ = [
    "ERRORS",
    "OPERATIONS",
    "PATH_PARAMS",
    "STATUS_HEADERS",
    "TASK_CODES",
    "WEBSOCKET_PATHS",
    "ErrorDoc",
    "Operation",
    "Query",
]

Schema = dict[str, Any]


@dataclass(frozen=True)
class ErrorDoc:
    """An error code the API answers, at one HTTP status, as the OpenAPI document describes it.

    Attributes:
        status: the HTTP status it comes with.
        code: ``error.code`` in the body.
        when: what it means, for a person reading the schema.
        everywhere: answered by the server before any route runs (a limit), so every route
            documents it.
    """

    status: int
    code: ErrorCode
    when: str
    everywhere: bool = False


#: Every error code, one line each. Runners' TaskError codes (``TASK_ERROR_STATUS``) are here too.
ERRORS: tuple[ErrorDoc, ...] = (
    ErrorDoc(
        400, ErrorCode.INVALID_JSON, "the body is not valid JSON (or is NaN or nested too deep)"
    ),
    ErrorDoc(
        400,
        ErrorCode.INVALID_BODY,
        "the body is JSON but not an object (nor, on predict, a non-empty batch of them)",
    ),
    ErrorDoc(
        400, ErrorCode.INVALID_ARGUMENT, "an argument or field is missing or of the wrong type"
    ),
    ErrorDoc(400, ErrorCode.BAD_REQUEST, "the runner's backend refused the request"),
    ErrorDoc(400, ErrorCode.ALREADY_RUNNER_TOKEN, "a runner token cannot enrol another runner"),
    ErrorDoc(400, ErrorCode.NOT_MCP, "the model is not an MCP server"),
    ErrorDoc(401, ErrorCode.UNAUTHENTICATED, "no valid `Authorization: Bearer` token"),
    ErrorDoc(403, ErrorCode.MISSING_SCOPE, "the token lacks the scope the route needs"),
    ErrorDoc(403, ErrorCode.PERMISSION_DENIED, "the runner id belongs to another user"),
    ErrorDoc(404, ErrorCode.NOT_FOUND, "no such route, or the runner's backend has no such thing"),
    ErrorDoc(404, ErrorCode.UNKNOWN_MODEL, "no model of yours has that id"),
    ErrorDoc(404, ErrorCode.UNKNOWN_METHOD, "the model has no method of that name"),
    ErrorDoc(404, ErrorCode.UNKNOWN_TASK, "no queued or running task of yours has that id"),
    ErrorDoc(404, ErrorCode.UNKNOWN_RUNNER, "no runner of yours has that id"),
    ErrorDoc(404, ErrorCode.UNKNOWN_TOKEN, "no live token of yours has that id"),
    ErrorDoc(404, ErrorCode.MODEL_NOT_FOUND, "no model of yours serves this OpenAI operation"),
    ErrorDoc(405, ErrorCode.METHOD_NOT_ALLOWED, "the route does not take this HTTP method"),
    ErrorDoc(409, ErrorCode.USER_EXISTS, "a user with that id exists already"),
    ErrorDoc(
        409, ErrorCode.CANCELLED, "the task was cancelled (DELETE /v2/tasks/{id}) while waiting"
    ),
    ErrorDoc(400, ErrorCode.CLIENT_DISCONNECTED, "the client left before its whole body arrived"),
    ErrorDoc(
        413,
        ErrorCode.BODY_TOO_LARGE,
        "the body (an NDJSON body: one line of it) is over the control plane's limit",
    ),
    ErrorDoc(
        415,
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        "a stream-in method's body is not NDJSON (`Content-Type: application/x-ndjson`)",
    ),
    ErrorDoc(413, ErrorCode.BATCH_TOO_LARGE, "the batch has more items than --max-batch"),
    ErrorDoc(429, ErrorCode.QUEUE_FULL, "the model's queue is full; retry after `Retry-After`"),
    ErrorDoc(429, ErrorCode.SLOW_READER, "the stream's reader fell too far behind; read faster"),
    ErrorDoc(400, ErrorCode.INVALID_HTTP, "the request is not valid HTTP/1.1", True),
    ErrorDoc(
        408, ErrorCode.HEADER_TIMEOUT, "the headers did not arrive within --header-timeout", True
    ),
    ErrorDoc(408, ErrorCode.BODY_TIMEOUT, "the body paused longer than --body-idle-timeout", True),
    ErrorDoc(431, ErrorCode.HEADERS_TOO_LARGE, "the request's headers are over the limit", True),
    ErrorDoc(500, ErrorCode.INTERNAL_ERROR, "a bug in the control plane (it is logged)", True),
    ErrorDoc(500, ErrorCode.MODEL_ERROR, "the model raised; the message is its exception"),
    ErrorDoc(501, ErrorCode.NOT_IMPLEMENTED, "the runner's backend cannot run this method"),
    ErrorDoc(
        501, ErrorCode.RUNNER_TOO_OLD, "a stream-in method whose runners speak protocol < 1.3"
    ),
    ErrorDoc(502, ErrorCode.RUNNER_LOST, "the runner was lost while it ran the task"),
    ErrorDoc(502, ErrorCode.BAD_RUNNER_ANSWER, "the runner's answer could not be read"),
    ErrorDoc(503, ErrorCode.NO_RUNNER, "no runner serves the model (waited the request deadline)"),
    ErrorDoc(503, ErrorCode.MODEL_LOADING, "the model is loading; `Retry-After` from its ETA"),
    ErrorDoc(503, ErrorCode.MODEL_UNAVAILABLE, "the model's backend is unavailable for now"),
    ErrorDoc(503, ErrorCode.UNAVAILABLE, "the runner or control plane is stopping; retry"),
    ErrorDoc(503, ErrorCode.BACKEND_UNAVAILABLE, "the runner's backend does not answer"),
    ErrorDoc(503, ErrorCode.TOO_MANY_CONNECTIONS, "the server is at its connection cap", True),
    ErrorDoc(504, ErrorCode.DEADLINE_EXCEEDED, "the model did not answer within the deadline"),
)

#: Response headers that come with a status.
STATUS_HEADERS: dict[int, tuple[str, ...]] = {429: ("Retry-After",), 503: ("Retry-After",)}

#: Routes that are WebSocket endpoints, which OpenAPI cannot describe, and what they are.
WEBSOCKET_PATHS: dict[str, str] = {
    "/v2/tunnel": "the runners' tunnel (docs/protocol.md)",
    "/v2/models/{model_id}/{method}/ws": "a stream-in method's call, one JSON message per "
    "input item and per result; the token in the Authorization header or the first message "
    "(docs/stream-in.md)",
}

#: What a route that runs a task may answer once the task is queued.
TASK_CODES = (
    *TASK_ERROR_STATUS,
    ErrorCode.SLOW_READER,  # stream back-pressure (protocol 1.2)
    ErrorCode.QUEUE_FULL,
    ErrorCode.NO_RUNNER,
    ErrorCode.MODEL_LOADING,
    ErrorCode.MODEL_UNAVAILABLE,
    ErrorCode.DEADLINE_EXCEEDED,
)

#: The schema of each path parameter, by name.
PATH_PARAMS: dict[str, Schema] = {
    "model_id": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"},
    "method": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"},
    "task_id": {"type": "string", "pattern": r"^[0-9a-f]{32}$"},
    "runner_id": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"},
    "token_id": {"type": "string", "pattern": r"^[0-9a-f]{12}$"},
}


@dataclass(frozen=True)
class Query:
    """A query parameter."""

    name: str
    schema: Schema
    description: str


@dataclass(frozen=True)
class Operation:
    """One route and method, as the document describes it.

    Attributes:
        method: the HTTP method.
        path: the route's path, with ``{name}`` parameters.
        operation_id: a stable name (OpenAPI links refer to it).
        summary: one line.
        tag: the group it is listed under.
        ok: the 200 answer: media type to schema (``None`` for no body).
        scope: the token scope it needs; ``None`` for any valid token.
        public: whether it needs no token at all.
        errors: error codes its handler may answer beyond auth, task and server-wide ones.
        outer: error codes answered before its handler runs, in the plain error shape even
            on a JSON-RPC route.
        task: whether a request becomes a task (``X-Task-Id``, the task error codes).
        batch: whether a request may instead be a batch of tasks (its 200 answer has no
            ``X-Task-Id``; each result names its task).
        jsonrpc: whether its own errors have the JSON-RPC shape (MCP).
        body: the schema of its JSON body, if it reads one.
        other_bodies: bodies of other media types it takes: media type to schema.
        query: its query parameters.
        extra: more success statuses (a pass-through route), status to description.
        links: OpenAPI links from its 200 answer: name to (operation id, parameters).
        description: more words.
    """

    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    ok: dict[str, Schema | None]
    scope: str | None = None
    public: bool = False
    errors: tuple[str, ...] = ()
    outer: tuple[str, ...] = ()
    task: bool = False
    batch: bool = False
    jsonrpc: bool = False
    body: Schema | None = None
    other_bodies: dict[str, Schema] = field(default_factory=dict)
    query: tuple[Query, ...] = ()
    extra: dict[int, str] = field(default_factory=dict)
    links: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    description: str = ""


_JSON = "application/json"
_SSE = "text/event-stream"
_BODY_CODES = (ErrorCode.INVALID_JSON, ErrorCode.INVALID_BODY, ErrorCode.BODY_TOO_LARGE)
_LIMIT = Query("limit", {"type": "integer", "minimum": 0, "maximum": 1000}, "at most this many")

_NATIVE_EVENTS: Schema = {
    "oneOf": [
        sse_event("chunk", ref("NativeChunk")),
        sse_event("done", ref("NativeDone")),
        sse_event("error", ref("StreamError")),
    ]
}


def _openai_events(chunk: str) -> Schema:
    """OpenAI's stream: ``data: <chunk JSON>`` events, an error object, then ``data: [DONE]``."""
    payload = {"anyOf": [ref(chunk), ref("OpenAIStreamError")]}
    json_data = {"type": "string", "contentMediaType": _JSON, "contentSchema": payload}
    return obj({"event": {"const": "message"}, "data": {"anyOf": [{"const": "[DONE]"}, json_data]}})


#: What a hosted MCP server itself may answer (the MCP SDK's streamable HTTP transport): a
#: JSON-RPC message, or for a few refusals a bare text
_MCP_PASSTHROUGH = {
    202: "the hosted server accepted a notification or response",
    400: "the hosted server refused the message (no JSON Content-Type, not JSON-RPC)",
    404: "the hosted server knows no such session",
    405: "the hosted server runs stateless: no standalone stream (GET), no session (DELETE)",
    406: "the hosted server wants `Accept: application/json, text/event-stream`",
    409: "the hosted server has a stream for this session already",
    413: "the message is over the hosted server's limit",
    415: "the hosted server takes `Content-Type: application/json` only",
    500: "the hosted server failed",
}


def _mcp(method: str) -> Operation:
    return Operation(
        method,
        "/v2/mcp/{model_id}",
        f"mcp{method.title()}",
        f"MCP streamable HTTP ({method}) to a hosted MCP server",
        "mcp",
        {_JSON: ref("JsonRpcMessage"), _SSE: sse_event(None, ref("JsonRpcMessage"))},
        scope="predict",
        errors=(
            ErrorCode.UNKNOWN_MODEL,
            ErrorCode.NOT_MCP,
            ErrorCode.BODY_TOO_LARGE,
            ErrorCode.BAD_RUNNER_ANSWER,
        )
        + ((ErrorCode.METHOD_NOT_ALLOWED,) if method == "GET" else ()),
        outer=(ErrorCode.METHOD_NOT_ALLOWED,) if method == "GET" else (),
        task=True,
        jsonrpc=True,
        body=ref("JsonRpcMessage") if method == "POST" else None,
        extra=_MCP_PASSTHROUGH,
        description="The exchange goes to a runner of the model as it is and the hosted "
        "server's status, MCP headers and body come back; errors before it are JSON-RPC error "
        "objects at the HTTP status (`error.data` has our code and status). Hosted servers run "
        "stateless, so a GET (no standalone stream) is answered 405.",
    )


#: Every HTTP route the control plane serves.
OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/healthz", "health", "Liveness", "meta", {_JSON: ref("Health")}, public=True),
    Operation(
        "GET",
        "/readyz",
        "ready",
        "Readiness: 503 while stopping, or while the registry or the task bus does not answer",
        "meta",
        {_JSON: ref("Readiness")},
        public=True,
        errors=(ErrorCode.UNAVAILABLE,),
    ),
    Operation(
        "GET",
        "/openapi.json",
        "openapi",
        "This document",
        "meta",
        {_JSON: obj({"openapi": {"const": "3.1.0"}, "paths": {"type": "object"}})},
    ),
    Operation(
        "GET",
        "/v2/info",
        "info",
        "Version, protocol version and tunnel addresses",
        "meta",
        {_JSON: ref("Info")},
    ),
    Operation(
        "GET",
        "/v2/models",
        "listModels",
        "Your models",
        "models",
        {_JSON: ref("ModelList")},
        scope="read",
        links={"getModel": ("getModel", {"model_id": "$response.body#/models/0/id"})},
    ),
    Operation(
        "GET",
        "/v2/models/{model_id}",
        "getModel",
        "One model: signatures and status",
        "models",
        {_JSON: ref("Model")},
        scope="read",
        errors=(ErrorCode.UNKNOWN_MODEL,),
        links={
            "predict": (
                "predict",
                {"model_id": "$response.body#/id", "method": "$response.body#/methods/0/name"},
            )
        },
    ),
    Operation(
        "POST",
        "/v2/models/{model_id}/{method}",
        "predict",
        "Call a model's method",
        "models",
        {
            _JSON: {"anyOf": [ref("PredictAnswer"), ref("BatchAnswer")]},
            _SSE: _NATIVE_EVENTS,
        },
        scope="predict",
        errors=(
            ErrorCode.UNKNOWN_MODEL,
            ErrorCode.UNKNOWN_METHOD,
            ErrorCode.INVALID_ARGUMENT,
            ErrorCode.BATCH_TOO_LARGE,
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            ErrorCode.RUNNER_TOO_OLD,
            *_BODY_CODES,
        ),
        task=True,
        batch=True,
        body={"anyOf": [ref("Arguments"), ref("BatchArguments")]},
        other_bodies={"application/x-ndjson": ref("NdjsonArguments")},
        links={"cancel": ("cancelTask", {"task_id": "$response.header.X-Task-Id"})},
        description="A unary method answers JSON; a streaming one answers Server-Sent Events: "
        "`chunk` events, then `done` or `error`. Errors before the first event have their "
        "status; a stream that fails later ends with an `error` event. A JSON array of "
        "argument objects on a unary method is a batch (at most `--max-batch` items, each "
        "counted against `--max-queue`): its items run in parallel and the answer lists one "
        "result per item, in order, a failed item with its error in its place. A stream-in "
        "method (an `Iterator[...]` parameter) takes an NDJSON body instead "
        "(`application/x-ndjson` or `application/jsonl`; a JSON body is 415): its answer is "
        "the stream's events, `done` with the counts of `inputs` and `outputs`; it starts with "
        "the task's first event, and a line that fails after that (its number in the "
        "message) ends the stream with an `error` event and cancels the task. Its other route "
        "is the WebSocket /v2/models/{model_id}/{method}/ws (docs/stream-in.md).",
    ),
    Operation(
        "GET",
        "/v2/tasks",
        "listTasks",
        "Your queued and running tasks, then the recent finished ones",
        "tasks",
        {_JSON: ref("TaskList")},
        scope="read",
        errors=(ErrorCode.INVALID_ARGUMENT,),
        query=(_LIMIT,),
    ),
    Operation(
        "DELETE",
        "/v2/tasks/{task_id}",
        "cancelTask",
        "Cancel a queued or running task",
        "tasks",
        {_JSON: ref("Cancelled")},
        scope="predict",
        errors=(ErrorCode.UNKNOWN_TASK,),
    ),
    Operation(
        "GET",
        "/v2/runners",
        "listRunners",
        "Your runners",
        "runners",
        {_JSON: ref("RunnerList")},
        scope="read",
        links={"logs": ("runnerLogs", {"runner_id": "$response.body#/runners/0/id"})},
    ),
    Operation(
        "GET",
        "/v2/replicas",
        "listReplicas",
        "The live control-plane replicas (one for an embedded control plane)",
        "meta",
        {_JSON: ref("ReplicaList")},
        scope="read",
    ),
    Operation(
        "POST",
        "/v2/runners/{runner_id}/drain",
        "drainRunner",
        "Stop routing to a runner; it finishes what it has",
        "runners",
        {_JSON: ref("Draining")},
        scope="manage",
        errors=(ErrorCode.UNKNOWN_RUNNER,),
    ),
    Operation(
        "GET",
        "/v2/runners/{runner_id}/logs",
        "runnerLogs",
        "The logs a runner sent over its tunnel",
        "runners",
        {
            _JSON: ref("LogList"),
            _SSE: {
                "oneOf": [
                    sse_event("log", ref("LogRecord")),
                    sse_event("dropped", obj({"count": {"type": "integer", "minimum": 1}})),
                ]
            },
        },
        scope="read",
        errors=(ErrorCode.UNKNOWN_RUNNER, ErrorCode.INVALID_ARGUMENT),
        query=(
            _LIMIT,
            Query(
                "level",
                {"type": "string", "examples": ["warning"]},
                "the lowest level shown: debug, info, warning, error (any case)",
            ),
            Query("grep", {"type": "string"}, "only records containing this text"),
            Query(
                "follow",
                {"type": "string", "examples": ["1"]},
                "`1` or `true`: stream new records as Server-Sent Events",
            ),
        ),
    ),
    Operation(
        "POST",
        "/v2/runners/enroll",
        "enrollRunner",
        "Mint a runner token for a runner id",
        "runners",
        {_JSON: ref("Enrolled")},
        scope="runner",
        errors=(
            ErrorCode.INVALID_ARGUMENT,
            ErrorCode.ALREADY_RUNNER_TOKEN,
            ErrorCode.PERMISSION_DENIED,
            *_BODY_CODES,
        ),
        body=ref("EnrollRequest"),
    ),
    Operation(
        "POST",
        "/v2/tokens",
        "createToken",
        "Create a token (its secret is shown once)",
        "tokens",
        {_JSON: ref("NewToken")},
        scope="manage",
        errors=(ErrorCode.INVALID_ARGUMENT, *_BODY_CODES),
        body=ref("TokenRequest"),
        links={"revoke": ("revokeToken", {"token_id": "$response.body#/id"})},
    ),
    Operation(
        "GET",
        "/v2/tokens",
        "listTokens",
        "Your tokens (never their secrets)",
        "tokens",
        {_JSON: ref("TokenList")},
        scope="manage",
    ),
    Operation(
        "GET",
        "/v2/tokens/self",
        "tokenSelf",
        "The calling token",
        "tokens",
        {_JSON: ref("TokenSelf")},
    ),
    Operation(
        "DELETE",
        "/v2/tokens/{token_id}",
        "revokeToken",
        "Revoke a token; tunnels opened with it close",
        "tokens",
        {_JSON: ref("Revoked")},
        scope="manage",
        errors=(ErrorCode.UNKNOWN_TOKEN,),
    ),
    Operation(
        "POST",
        "/v2/users",
        "createUser",
        "Create a user and its first token",
        "tokens",
        {_JSON: ref("NewUser")},
        scope="admin",
        errors=(ErrorCode.INVALID_ARGUMENT, ErrorCode.USER_EXISTS, *_BODY_CODES),
        body=ref("UserRequest"),
    ),
    Operation(
        "GET",
        "/v1/models",
        "openaiModels",
        "OpenAI: the chat-capable models",
        "openai",
        {_JSON: ref("OpenAIModelList")},
        scope="read",
    ),
    Operation(
        "POST",
        "/v1/chat/completions",
        "chatCompletions",
        "OpenAI: chat completions, streamed or not",
        "openai",
        {_JSON: ref("ChatCompletion"), _SSE: _openai_events("ChatCompletionChunk")},
        scope="predict",
        errors=(ErrorCode.INVALID_ARGUMENT, ErrorCode.MODEL_NOT_FOUND, *_BODY_CODES),
        task=True,
        body=ref("ChatRequest"),
    ),
    Operation(
        "POST",
        "/v1/completions",
        "completions",
        "OpenAI: text completions, streamed or not",
        "openai",
        {_JSON: ref("Completion"), _SSE: _openai_events("Completion")},
        scope="predict",
        errors=(ErrorCode.INVALID_ARGUMENT, ErrorCode.MODEL_NOT_FOUND, *_BODY_CODES),
        task=True,
        body=ref("CompletionRequest"),
    ),
    Operation(
        "POST",
        "/v1/embeddings",
        "embeddings",
        "OpenAI: embeddings",
        "openai",
        {_JSON: ref("EmbeddingList")},
        scope="predict",
        errors=(ErrorCode.INVALID_ARGUMENT, ErrorCode.MODEL_NOT_FOUND, *_BODY_CODES),
        task=True,
        body=ref("EmbeddingRequest"),
    ),
    _mcp("GET"),
    _mcp("POST"),
    _mcp("DELETE"),
)
