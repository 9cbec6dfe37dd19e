"""The control plane's OpenAPI 3.1 document, built from the tables of :mod:`.openapi_routes`
and the schemas of :mod:`.openapi_shapes`, and served at ``GET /openapi.json``.

FastAPI's own schema misses the hot path (a plain Starlette route), the streams and the one
error shape, so it is switched off (``openapi_url=None``) and this document describes every
route instead, to any valid token. ``tests/unit/test_openapi.py`` fails when the app registers
a route the tables do not describe, or they describe one the app lacks, or an ``ApiProblem``
anywhere in the control plane names a code missing from them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from edge_runner.control.http_errors import error_type
from edge_runner.control.openapi_routes import (
    ERRORS,
    OPERATIONS,
    PATH_PARAMS,
    STATUS_HEADERS,
    TASK_CODES,
    WEBSOCKET_PATHS,
    ErrorDoc,
    Operation,
)
from edge_runner.control.openapi_shapes import SCHEMAS, obj, ref
from edge_runner.control.registry import TokenInfo
from edge_runner.errors import ErrorCode

__all__ = ["add_openapi_route", "build_document"]

Schema = dict[str, Any]

_JSON = "application/json"
_BY_CODE: dict[str, ErrorDoc] = {e.code: e for e in ERRORS}
_EVERYWHERE = tuple(e.code for e in ERRORS if e.everywhere)

_HEADERS: dict[str, Schema] = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "schema": {"type": "string", "pattern": r"^\d+$"},
    },
    "X-Task-Id": {
        "description": "the task the request became (DELETE /v2/tasks/{id} cancels it)",
        "schema": {"type": "string"},
    },
}


def build_document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a control plane of ``version``."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "edge-runner control plane",
            "version": version,
            "description": "Every route of the control plane's HTTP API. Errors share one "
            'shape: `{"error": {"code", "message", "type", "param"?}}` (MCP routes: '
            "JSON-RPC error objects). Streams are Server-Sent Events; the schema of a "
            "`text/event-stream` answer describes one event. WebSocket routes, which OpenAPI "
            "does not describe: "
            + "; ".join(f"{path}: {what}" for path, what in WEBSOCKET_PATHS.items())
            + " (also under `x-websockets`).",
        },
        "x-websockets": {
            path: {"description": what, "security": [{"bearer": []}]}
            for path, what in WEBSOCKET_PATHS.items()
        },
        "security": [{"bearer": []}],
        "tags": [{"name": name} for name in dict.fromkeys(op.tag for op in OPERATIONS)],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token: `edge-runner token create`, or the admin token",
                }
            },
        },
    }


def _operation(op: Operation) -> Schema:
    doc: Schema = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "responses": _responses(op),
    }
    if op.description:
        doc["description"] = op.description
    if op.public:
        doc["security"] = []
    else:
        doc["x-scope"] = op.scope
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": PATH_PARAMS[name]}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    parameters += [
        {
            "name": q.name,
            "in": "query",
            "required": False,
            "schema": q.schema,
            "description": q.description,
        }
        for q in op.query
    ]
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        content = {_JSON: {"schema": op.body}}
        content |= {media: {"schema": schema} for media, schema in op.other_bodies.items()}
        doc["requestBody"] = {"required": False, "content": content}
    return doc


def _responses(op: Operation) -> Schema:
    headers: Schema = {}
    if op.task:
        # A batch answer has no one task: each of its results names its own.
        headers["X-Task-Id"] = {**_HEADERS["X-Task-Id"], "required": not op.batch}
        if op.batch:
            headers["X-Task-Id"]["description"] += "; absent on a batch answer"
    ok: Schema = {"description": "OK", "headers": headers}
    content = {media: {"schema": schema} for media, schema in op.ok.items() if schema is not None}
    if content:
        ok["content"] = content
    if op.links:
        ok["links"] = {
            name: {"operationId": target, "parameters": parameters}
            for name, (target, parameters) in op.links.items()
        }
    responses: Schema = {"200": ok}
    for status, description in op.extra.items():
        responses[str(status)] = {"description": description}
        if status != 202:
            responses[str(status)]["content"] = _passthrough_content(None)
    # Codes the route's handler answers, and codes the server or router answers before it
    # (in the plain shape even on the JSON-RPC route).
    own = list(op.errors)
    if not op.public:
        own.append(ErrorCode.UNAUTHENTICATED)
    if op.scope is not None:
        own.append(ErrorCode.MISSING_SCOPE)
    if op.task:
        own.extend(TASK_CODES)
    outer = [*op.outer, *_EVERYWHERE]
    if "{" in op.path:
        outer.append(ErrorCode.NOT_FOUND)  # a parameter with a `/` in it matches no route
    statuses = sorted({_BY_CODE[code].status for code in own + outer})
    for status in statuses:
        responses[str(status)] = _error_response(
            op,
            status,
            [c for c in dict.fromkeys(own) if _BY_CODE[c].status == status],
            [c for c in dict.fromkeys(outer) if _BY_CODE[c].status == status],
        )
    return responses


def _error_response(op: Operation, status: int, own: list[str], outer: list[str]) -> Schema:
    # A runner may report any TaskError code; the ones not in TASK_ERROR_STATUS come as 500.
    open_code = op.task and status == 500
    if not op.jsonrpc:
        own, outer = [], list(dict.fromkeys(own + outer))
    shapes = []
    if own:
        shapes.append(_jsonrpc_error(status, None if open_code else own))
    if outer:
        shapes.append(_error_schema(status, None if open_code else outer))
    names = list(STATUS_HEADERS.get(status, ())) + (["X-Task-Id"] if op.task else [])
    description = "; ".join(f"`{c}`: {_BY_CODE[c].when}" for c in dict.fromkeys(own + outer))
    schema = shapes[0] if len(shapes) == 1 else {"anyOf": shapes}
    content: Schema = {_JSON: {"schema": schema}}
    if status in op.extra:  # or the hosted server's own answer at this status
        description += f"; or {op.extra[status]}"
        content = _passthrough_content(schema)
    return {
        "description": description,
        "headers": {name: _HEADERS[name] for name in names},
        "content": content,
    }


def _passthrough_content(ours: Schema | None) -> Schema:
    """A hosted MCP server's answer (a JSON-RPC message or text), or ours."""
    message = ref("JsonRpcMessage")
    return {
        _JSON: {"schema": message if ours is None else {"anyOf": [ours, message]}},
        "text/plain": {"schema": {"type": "string"}},
    }


def _error_schema(status: int, codes: list[str] | None) -> Schema:
    code: Schema = {"type": "string"} if codes is None else {"enum": codes}
    error = obj(
        {"code": code, "message": {"type": "string"}, "type": {"const": error_type(status)}},
        {"param": {"type": ["string", "null"]}},
        closed=True,
    )
    return obj({"error": error}, closed=True)


def _jsonrpc_error(status: int, codes: list[str] | None) -> Schema:
    code: Schema = {"type": "string"} if codes is None else {"enum": codes}
    data = obj({"code": code, "status": {"const": status}}, closed=True)
    error = obj({"code": {"type": "integer"}, "message": {"type": "string"}}, {"data": data})
    return obj({"jsonrpc": {"const": "2.0"}, "id": {}, "error": error})


def add_openapi_route(
    app: FastAPI, principal: Callable[[Request, str | None], TokenInfo], version: str
) -> None:
    """Serve the document at ``GET /openapi.json`` to any valid token (401 without one)."""
    document = json.dumps(build_document(version)).encode()

    @app.get("/openapi.json")
    async def openapi(request: Request) -> Response:
        principal(request, None)
        return Response(document, media_type=_JSON)
