"""OpenAI-compatible routes: ``GET /v1/models``, ``POST /v1/chat/completions``,
``POST /v1/completions`` and ``POST /v1/embeddings``.

The request body is forwarded as it is to the runner (task methods ``openai.chat.completions``,
``openai.completions``, ``openai.embeddings``) once the model is known to serve that operation;
the runner's backend answers in OpenAI's format, so this module only frames the bytes: a JSON
body, or ``data: <chunk>`` Server-Sent Events closed by ``data: [DONE]``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from edge_runner.control.http_common import (
    JSON_OBJECT,
    TaskStream,
    answer,
    first_event,
    read_json_object,
    stream_events,
    submit_task,
)
from edge_runner.control.registry import TokenInfo
from edge_runner.control.state import ControlState
from edge_runner.control.tasks import Task, TaskDone, TaskEvent, TaskOutput
from edge_runner.errors import ApiProblem, ErrorCode
from edge_runner.views import JSONObject, OpenAIModelList, OpenAIModelView

__all__ = [
    "CHAT_METHOD",
    "COMPLETIONS_METHOD",
    "EMBEDDINGS_METHOD",
    "add_openai_routes",
    "normalize_model_id",
]

CHAT_METHOD = "openai.chat.completions"
COMPLETIONS_METHOD = "openai.completions"
EMBEDDINGS_METHOD = "openai.embeddings"


def normalize_model_id(model: str) -> str:
    """Accept both spellings of an Ollama-style name (``a/b`` is registered as ``a--b``)."""
    return model.replace("/", "--")


def add_openai_routes(
    app: FastAPI, state: ControlState, principal: Callable[[Request, str | None], TokenInfo]
) -> None:
    """Register the ``/v1`` routes on ``app``."""

    @app.get("/v1/models", response_model=JSON_OBJECT)
    async def list_models(request: Request) -> OpenAIModelList:
        user = principal(request, "read").user_id
        data: list[OpenAIModelView] = [
            {
                "id": entry.model_id,
                "object": "model",
                "created": int(state.started),
                "owned_by": user,
            }
            for entry in state.catalog.for_user(user)
            if entry.openai
        ]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        caller = principal(request, "predict")
        user = caller.user_id
        body = await read_json_object(request, state.settings.max_body_bytes)
        model_id = _model_for(state, user, body, "chat.completions")
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise ApiProblem(
                400,
                ErrorCode.INVALID_ARGUMENT,
                "`messages` must be an array of message objects",
                param="messages",
            )
        return await _forward(state, request, caller, model_id, CHAT_METHOD, body)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        caller = principal(request, "predict")
        user = caller.user_id
        body = await read_json_object(request, state.settings.max_body_bytes)
        model_id = _model_for(state, user, body, "completions")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) and not (
            isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt)
        ):
            raise ApiProblem(
                400,
                ErrorCode.INVALID_ARGUMENT,
                "`prompt` must be a string or an array of strings",
                param="prompt",
            )
        return await _forward(state, request, caller, model_id, COMPLETIONS_METHOD, body)

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        caller = principal(request, "predict")
        user = caller.user_id
        body = await read_json_object(request, state.settings.max_body_bytes)
        model_id = _model_for(state, user, body, "embeddings")
        texts = body.get("input")
        if not isinstance(texts, str) and not (
            isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts)
        ):
            raise ApiProblem(
                400,
                ErrorCode.INVALID_ARGUMENT,
                "`input` must be a string or a non-empty array of strings (token arrays are "
                "not supported)",
                param="input",
            )
        if body.get("stream"):
            raise ApiProblem(
                400, ErrorCode.INVALID_ARGUMENT, "embeddings do not stream", param="stream"
            )
        return await _forward(state, request, caller, model_id, EMBEDDINGS_METHOD, body)


def _model_for(state: ControlState, user: str, body: JSONObject, op: str) -> str:
    """The registered model id a request names, checked to serve OpenAI's ``op``."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiProblem(
            400, ErrorCode.INVALID_ARGUMENT, "`model` must be a model id", param="model"
        )
    model_id = normalize_model_id(model)
    entry = state.catalog.get(user, model_id)
    if entry is None:
        serving = [e.model_id for e in state.catalog.for_user(user) if op in e.openai]
        raise ApiProblem(
            404,
            ErrorCode.MODEL_NOT_FOUND,
            f"no model {model!r}; models serving /v1/{op.replace('.', '/')}: "
            f"{', '.join(serving) or 'none yet'}",
            param="model",
        )
    if op not in entry.openai:
        hint = (
            "it needs a `chat(messages, ...)` method; "
            if op == "chat.completions"
            else "serve it with an Ollama or OpenAI-upstream runner for that; "
        )
        raise ApiProblem(
            400,
            ErrorCode.INVALID_ARGUMENT,
            f"model {model!r} does not serve /v1/{op.replace('.', '/')} ({hint}"
            "call its methods at /v2/models/{id}/{method})",
            param="model",
        )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiProblem(
            400, ErrorCode.INVALID_ARGUMENT, "`stream` must be a boolean", param="stream"
        )
    body["model"] = model_id
    return model_id


async def _forward(
    state: ControlState,
    request: Request,
    caller: TokenInfo,
    model_id: str,
    method: str,
    body: JSONObject,
) -> Response:
    """Send the request body to a runner as a task and answer with what it writes."""
    task = state.new_task(caller, model_id, method, json.dumps(body).encode())
    submit_task(state, task)
    headers = {"X-Task-Id": task.task_id}
    if not body.get("stream"):
        event = await answer(state, task, request)
        assert isinstance(event, TaskDone)
        return Response(event.payload, headers=headers, media_type="application/json")
    first = await first_event(state, task)
    return TaskStream(_openai_sse(state, task, first), headers)


async def _openai_sse(state: ControlState, task: Task, first: TaskEvent) -> AsyncIterator[bytes]:
    # Closed with this generator (a client that hangs up cancels the task now, not
    # whenever the garbage collector finalises the inner generator).
    async with contextlib.aclosing(stream_events(state, task, first)) as events:
        async for event in events:
            if isinstance(event, TaskOutput):
                yield b"data: %s\n\n" % event.payload
            elif isinstance(event, TaskDone):
                if event.payload:
                    yield b"data: %s\n\n" % event.payload  # a final usage chunk, when asked for
                yield b"data: [DONE]\n\n"
            else:
                error = {
                    "error": {"code": event.code, "message": event.message, "type": "api_error"}
                }
                yield b"data: %s\n\n" % json.dumps(error).encode()
