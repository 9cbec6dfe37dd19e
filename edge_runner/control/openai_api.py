"""OpenAI-compatible routes: ``GET /v1/models`` and ``POST /v1/chat/completions``.

The request body is forwarded as it is to the runner (task method ``openai.chat.completions``);
the runner's backend answers in OpenAI's format, so this module only frames the bytes: a JSON
body, or ``data: <chunk>`` Server-Sent Events closed by ``data: [DONE]``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from edge_runner.control.dispatch import Task, TaskDone, TaskOutput
from edge_runner.control.http_common import (
    SSE_HEADERS,
    answer,
    first_event,
    read_json_object,
    stream_events,
    submit_task,
)
from edge_runner.control.http_errors import ApiProblem
from edge_runner.control.registry import TokenInfo
from edge_runner.control.state import ControlState

__all__ = ["CHAT_METHOD", "add_openai_routes", "normalize_model_id"]

CHAT_METHOD = "openai.chat.completions"


def normalize_model_id(model: str) -> str:
    """Accept both spellings of an Ollama-style name (``a/b`` is registered as ``a--b``)."""
    return model.replace("/", "--")


def add_openai_routes(
    app: FastAPI, state: ControlState, principal: Callable[[Request, str | None], TokenInfo]
) -> None:
    """Register the ``/v1`` routes on ``app``."""

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        user = principal(request, "read").user_id
        data = [
            {
                "id": entry.model_id,
                "object": "model",
                "created": int(state.started),
                "owned_by": user,
            }
            for entry in state.catalog.for_user(user)
            if entry.chat
        ]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        user = principal(request, "predict").user_id
        body = await read_json_object(request, state.settings.max_body_bytes)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ApiProblem(400, "INVALID_ARGUMENT", "`model` must be a model id", param="model")
        model_id = normalize_model_id(model)
        entry = state.catalog.get(user, model_id)
        if entry is None:
            chat_models = [e.model_id for e in state.catalog.for_user(user) if e.chat]
            raise ApiProblem(
                404,
                "model_not_found",
                f"no model {model!r}; chat models: {', '.join(chat_models) or 'none yet'}",
                param="model",
            )
        if not entry.chat:
            raise ApiProblem(
                400,
                "INVALID_ARGUMENT",
                f"model {model!r} does not implement chat (it needs a `chat(messages, ...)` "
                "method); call its methods at /v2/models/{id}/{method}",
                param="model",
            )
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise ApiProblem(
                400,
                "INVALID_ARGUMENT",
                "`messages` must be an array of message objects",
                param="messages",
            )
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise ApiProblem(400, "INVALID_ARGUMENT", "`stream` must be a boolean", param="stream")
        body["model"] = model_id
        task = state.new_task(user, model_id, CHAT_METHOD, json.dumps(body).encode())
        submit_task(state, task)
        headers = {"X-Task-Id": task.task_id}
        if not stream:
            event = await answer(state, task, request)
            assert isinstance(event, TaskDone)
            return Response(event.payload, headers=headers, media_type="application/json")
        first = await first_event(state, task)
        return StreamingResponse(
            _openai_sse(state, task, first),
            media_type="text/event-stream",
            headers={**headers, **SSE_HEADERS},
        )


async def _openai_sse(state: ControlState, task: Task, first: Any) -> AsyncIterator[bytes]:
    async for event in stream_events(state, task, first):
        if isinstance(event, TaskOutput):
            yield b"data: %s\n\n" % event.payload
        elif isinstance(event, TaskDone):
            if event.payload:
                yield b"data: %s\n\n" % event.payload  # a final usage chunk, when asked for
            yield b"data: [DONE]\n\n"
        else:
            error = {"error": {"code": event.code, "message": event.message, "type": "api_error"}}
            yield b"data: %s\n\n" % json.dumps(error).encode()
