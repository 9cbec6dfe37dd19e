"""JSON Schemas of what the control plane's HTTP API reads and writes, for :mod:`.openapi`.

Plain data: :data:`SCHEMAS` becomes ``components.schemas`` of the OpenAPI document. Objects the
API builds from dicts that grow over time (a model's spec, a runner's info) allow extra
properties; answers the API spells out byte by byte (the error shape, the native predict
answer) do not.
"""

from __future__ import annotations

from typing import Any

from edge_runner.models.json_schema import DATA_TYPE_SCHEMAS

__all__ = ["SCHEMAS", "obj", "ref", "sse_event"]

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    """A reference to ``components.schemas[name]``."""
    return {"$ref": f"#/components/schemas/{name}"}


def obj(
    required: dict[str, Schema], optional: dict[str, Schema] | None = None, *, closed: bool = False
) -> Schema:
    """An object schema with ``required`` and ``optional`` properties."""
    schema: Schema = {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


def sse_event(event: str | None, data: Schema | None) -> Schema:
    """One Server-Sent Event: its ``event`` field and its ``data`` (JSON matching ``data``).

    OpenAPI 3.1 has no word for event streams; as Schemathesis reads it (and OpenAPI 3.2's
    ``itemSchema`` says), the schema of a ``text/event-stream`` response describes each event.
    """
    fields: Schema = {"event": {"const": event or "message"}}
    if data is not None:
        fields["data"] = {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": data,
        }
    return obj(fields, {"id": {"type": "string"}, "retry": {"type": "integer"}})


_STR: Schema = {"type": "string"}
_INT: Schema = {"type": "integer"}
_NUM: Schema = {"type": "number"}
_BOOL: Schema = {"type": "boolean"}
_ANY: Schema = {}
_COUNT: Schema = {"type": "integer", "minimum": 0}
_STRS: Schema = {"type": "array", "items": _STR}
_TIME: Schema = {"type": "number", "description": "seconds since the Unix epoch"}
_NULLABLE_NUM: Schema = {"type": ["number", "null"]}
_INDEX: Schema = {"type": "integer", "minimum": 0}

_USAGE = obj(
    {"prompt_tokens": {"type": "integer", "minimum": 0}},
    {"completion_tokens": {"type": "integer", "minimum": 0}},
)

_PARAM = obj(
    {"name": _STR, "type": _STR, "required": _BOOL, "default": _ANY},
    {
        "description": _STR,
        "choices": {"type": "array", "description": "the values allowed (any when absent)"},
        "min_value": {"type": "number", "description": "the smallest number allowed"},
        "max_value": {"type": "number", "description": "the largest number allowed"},
    },
)
_METHOD = obj(
    {
        "name": _STR,
        "kind": {"enum": ["unary", "server_stream", "bidi"]},
        "params": {"type": "array", "items": _PARAM},
        "returns": _STR,
        "description": _STR,
    }
)

_MODEL = obj(
    {
        "id": _STR,
        "backend": _STR,
        "model_type_id": _STR,
        "chat": _BOOL,
        "openai": _STRS,
        "signature_hash": _STR,
        "methods": {"type": "array", "items": _METHOD},
        "status": {"enum": ["online", "offline", "loading", "unavailable", "failed"]},
        "runners": {"type": "integer", "minimum": 0},
        "queued": {"type": "integer", "minimum": 0},
        "requests": {"type": "integer", "minimum": 0},
        "errors": {"type": "integer", "minimum": 0},
    },
    {
        "message": _STR,
        "progress": {"type": "number", "minimum": 0, "maximum": 1},
        "eta_s": _NUM,
    },
)

_RUNNER = obj(
    {
        "id": _STR,
        "status": {"enum": ["connected", "draining", "suspect", "disconnected"]},
        "busy": {"type": "integer", "minimum": 0},
        "free": {"type": "integer", "minimum": 0},
        "last_seen": _TIME,
    },
    {
        "hostname": _STR,
        "version": _STR,
        "nodepool": _STR,
        "labels": {"type": "object", "additionalProperties": _STR},
        "pool_size": _INT,
        "models": _STRS,
        "gpus": {"type": "array", "items": {"type": "object"}},
        "gpu_note": _STR,
    },
)

_TASK = obj(
    {
        "task_id": _STR,
        "model": _STR,
        "method": _STR,
        "status": {"enum": ["queued", "running", "done", "failed", "cancelled"]},
        "created_at": _TIME,
        "queue_wait_s": _NULLABLE_NUM,
        "runner_id": _STR,
        "attempts": {"type": "integer", "minimum": 1},
    },
    {
        "age_s": _NUM,
        "code": _STR,
        "run_time_s": _NULLABLE_NUM,
        "completion_tokens": _INT,
        "tokens_per_s": _NUM,
    },
)

_TOKEN = obj(
    {
        "id": _STR,
        "name": _STR,
        "scopes": _STRS,
        "kind": {"enum": ["pat", "runner"]},
        "created_at": _TIME,
        "revoked": _BOOL,
        "expires_at": _NULLABLE_NUM,
    }
)

_LOG_RECORD = obj(
    {
        "time": _TIME,
        "level": _STR,
        "logger": _STR,
        "message": _STR,
        "task_id": _STR,
        "runner_id": _STR,
    }
)

_OPENAI_ERROR = obj({"error": obj({"code": _STR, "message": _STR, "type": _STR})})

#: ``components.schemas``
SCHEMAS: dict[str, Schema] = {
    "Usage": _USAGE,
    "Model": _MODEL,
    "ModelList": obj({"models": {"type": "array", "items": ref("Model")}}),
    "Runner": _RUNNER,
    "RunnerList": obj({"runners": {"type": "array", "items": ref("Runner")}}),
    "Task": _TASK,
    "TaskList": obj({"tasks": {"type": "array", "items": ref("Task")}}),
    "Token": _TOKEN,
    "TokenList": obj({"tokens": {"type": "array", "items": ref("Token")}}),
    "LogRecord": _LOG_RECORD,
    "LogList": obj({"records": {"type": "array", "items": ref("LogRecord")}}),
    "Arguments": {
        "type": "object",
        "description": "the method's keyword arguments, checked against its signature; "
        "data types (bytes, Image, Concept, ...) in the JSON forms of the schemas named after "
        "them (docs/data-types.md)",
        "examples": [{"text": "world"}, {"image": {"base64": "iVBORw0KGgo="}}],
    },
    "NdjsonArguments": {
        "type": "string",
        "description": "a stream-in method's call (a method with an `Iterator[...]` parameter): "
        "NDJSON, one JSON text per line. Line 1 is a JSON object of the other keyword "
        "arguments (`{}` for none); each later line is one item of the input stream, checked "
        "against the stream's element type; blank lines are ignored; the body's end is the end "
        "of the input. Send it as it comes (`Transfer-Encoding: chunked`) and read the answer "
        "meanwhile. No size cap on the whole body; each line has `--max-body-bytes`.",
        "examples": ['{"prefix": "> "}\n"a"\n"b"\n'],
    },
    "PredictAnswer": obj({"task_id": _STR, "output": _ANY}, {"usage": ref("Usage")}, closed=True),
    "BatchArguments": {
        "type": "array",
        "minItems": 1,
        "items": ref("Arguments"),
        "description": "a batch: one object of keyword arguments per item (unary methods)",
        "examples": [[{"text": "a"}, {"text": "b"}]],
    },
    "BatchAnswer": obj(
        {
            "results": {
                "type": "array",
                "items": {"anyOf": [ref("BatchOutput"), ref("BatchError")]},
                "description": "one per item of the request, in its order",
            },
            "failed": {"type": "integer", "minimum": 0},
        },
        closed=True,
    ),
    "BatchOutput": obj(
        {"index": _INDEX, "task_id": _STR, "output": _ANY}, {"usage": ref("Usage")}, closed=True
    ),
    "BatchError": obj(
        {
            "index": _INDEX,
            "error": obj(
                {"code": _STR, "message": _STR, "type": _STR, "status": _INT},
                {"param": _STR},
                closed=True,
            ),
        },
        {"task_id": _STR},
        closed=True,
    ),
    "NativeChunk": obj({"index": {"type": "integer", "minimum": 0}, "output": _ANY}, closed=True),
    "NativeDone": obj(
        {"task_id": _STR},
        {
            "usage": ref("Usage"),
            "inputs": {**_COUNT, "description": "input items the task took (stream-in)"},
            "outputs": {**_COUNT, "description": "chunks it sent (stream-in)"},
        },
        closed=True,
    ),
    "StreamError": obj({"code": _STR, "message": _STR}, closed=True),
    "Info": obj(
        {
            "version": _STR,
            "protocol_version": {"type": "string", "pattern": r"^\d+\.\d+$"},
            "tunnel": obj({"grpc": _STR, "websocket": _STR, "tls": _BOOL}),
            "uptime_s": _NUM,
            "time": _TIME,
        }
    ),
    "Health": obj({"status": {"const": "ok"}}),
    "Readiness": obj(
        {
            "status": {"const": "ready"},
            "checks": {"type": "object", "additionalProperties": {"const": "ok"}},
        }
    ),
    "Replica": obj(
        {
            "id": _STR,
            "api_base": _STR,
            "tunnel": _STR,
            "runners": {"type": "integer", "minimum": 0},
            "tasks": {"type": "integer", "minimum": 0},
            "registry": _STR,
            "bus": _STR,
            "started_at": _TIME,
            "last_seen": _TIME,
            "self": _BOOL,
        }
    ),
    "ReplicaList": obj({"replicas": {"type": "array", "items": ref("Replica")}}),
    "TokenRequest": obj(
        {"name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._:@ -]{0,63}$"}},
        {
            "scopes": {
                "type": "array",
                "minItems": 1,
                "items": {"enum": ["predict", "read", "manage", "runner", "admin"]},
            },
            "expires_in": {
                "type": ["number", "null"],
                "exclusiveMinimum": 0,
                "description": "seconds until it expires; null or absent: never",
            },
        },
    ),
    "NewToken": obj(
        {
            "id": _STR,
            "token": _STR,
            "name": _STR,
            "scopes": _STRS,
            "kind": {"enum": ["pat", "runner"]},
            "expires_at": _NULLABLE_NUM,
        }
    ),
    "TokenSelf": obj(
        {
            "id": _STR,
            "name": _STR,
            "kind": {"enum": ["pat", "runner"]},
            "scopes": _STRS,
            "user_id": _STR,
            "expires_at": _NULLABLE_NUM,
        }
    ),
    "Revoked": obj({"id": _STR, "revoked": {"const": True}, "tunnels_closed": _INT}),
    "EnrollRequest": obj(
        {"runner_id": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$"}}
    ),
    "Enrolled": obj({"id": _STR, "token": _STR, "runner_id": _STR}),
    "UserRequest": obj({"id": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9._-]{0,63}$"}}),
    "NewUser": obj({"id": _STR, "token": _STR, "scopes": _STRS}),
    "Draining": obj({"runner_id": _STR, "status": {"const": "draining"}}),
    "Cancelled": obj({"task_id": _STR, "status": {"const": "cancelled"}}),
    # OpenAI's shapes, as far as this API relies on them: the runner's backend writes the rest
    "ChatRequest": obj(
        {
            "model": {"type": "string", "examples": ["hello"]},
            "messages": {
                "type": "array",
                "items": {"type": "object", "examples": [{"role": "user", "content": "hi"}]},
            },
        },
        {"stream": _BOOL},
    ),
    "CompletionRequest": obj(
        {
            "model": _STR,
            "prompt": {"anyOf": [_STR, {"type": "array", "items": _STR, "minItems": 1}]},
        },
        {"stream": _BOOL},
    ),
    "EmbeddingRequest": obj(
        {
            "model": _STR,
            "input": {"anyOf": [_STR, {"type": "array", "items": _STR, "minItems": 1}]},
        },
        {"stream": {"const": False}},
    ),
    "ChatCompletion": obj(
        {"object": {"const": "chat.completion"}, "choices": {"type": "array"}},
        {"id": _STR, "model": _STR, "created": _INT, "usage": {"type": "object"}},
    ),
    "ChatCompletionChunk": obj(
        {"object": {"const": "chat.completion.chunk"}, "choices": {"type": "array"}},
        {"id": _STR, "model": _STR, "created": _INT, "usage": {"type": ["object", "null"]}},
    ),
    "Completion": obj(
        {"object": {"const": "text_completion"}, "choices": {"type": "array"}},
        {"id": _STR, "model": _STR, "created": _INT, "usage": {"type": ["object", "null"]}},
    ),
    "EmbeddingList": obj(
        {"object": {"const": "list"}, "data": {"type": "array", "items": {"type": "object"}}},
        {"model": _STR, "usage": {"type": "object"}},
    ),
    "OpenAIModelList": obj(
        {
            "object": {"const": "list"},
            "data": {
                "type": "array",
                "items": obj(
                    {"id": _STR, "object": {"const": "model"}, "created": _INT, "owned_by": _STR}
                ),
            },
        }
    ),
    "OpenAIStreamError": _OPENAI_ERROR,
    "JsonRpcMessage": {
        "type": "object",
        "description": "a JSON-RPC 2.0 message (MCP streamable HTTP)",
        "examples": [{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}],
    },
    # the data types' JSON forms, as method arguments and results carry them
    **{
        ("Bytes" if name == "bytes" else name): schema for name, schema in DATA_TYPE_SCHEMAS.items()
    },
}
