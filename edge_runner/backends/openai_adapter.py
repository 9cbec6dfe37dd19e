"""OpenAI chat completions over a model folder's ``chat(messages, ...)`` method.

The control plane forwards the OpenAI request body unchanged; this adapter maps the parameters
the ``chat`` signature accepts, calls it, and answers in OpenAI's wire format: one
``chat.completion`` object, or ``chat.completion.chunk`` objects for ``stream=True`` (the control
plane adds the ``data:`` framing and ``[DONE]``).

Python models report no token counts, so ``usage`` is an estimate: whitespace-separated words of
the prompt, and chunks (or words, for a unary ``chat``) of the answer.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from edge_runner.backends.base import BackendError, Reply, StreamReply
from edge_runner.errors import InvalidArgument
from edge_runner.models.model_class import (
    ModelClass,
    iterate_with_cancel_event,
    run_with_cancel_event,
)
from edge_runner.models.signatures import MethodKind, MethodSignature, validate_arguments
from edge_runner.proto import tunnel_pb2 as pb

__all__ = ["CHAT_METHOD", "chat_completion"]

CHAT_METHOD = "openai.chat.completions"

#: OpenAI request field -> chat() parameter it maps to (when the signature has it)
_PARAM_MAP = (
    ("max_tokens", "max_tokens"),
    ("max_completion_tokens", "max_tokens"),
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("stop", "stop"),
    ("seed", "seed"),
    ("tools", "tools"),
    ("tool_choice", "tool_choice"),
)


def _prompt_words(messages: list[Any]) -> int:
    words = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            words += len(content.split())
    return words


def chat_completion(
    instance: ModelClass,
    sig: MethodSignature,
    body: dict[str, Any],
    cancel: threading.Event,
    *,
    model_id: str,
    completion_id: str | None,
) -> Reply | StreamReply:
    """Serve one ``/v1/chat/completions`` request with ``instance.chat``."""
    accepted = {p.name for p in sig.params}
    kwargs: dict[str, Any] = {"messages": body.get("messages")}
    for field, param in _PARAM_MAP:
        if body.get(field) is not None and param in accepted and param not in kwargs:
            kwargs[param] = body[field]
    try:
        kwargs = validate_arguments(sig, kwargs)
    except InvalidArgument as exc:
        raise BackendError("INVALID_ARGUMENT", str(exc)) from exc
    completion_id = completion_id or f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    prompt_tokens = _prompt_words(kwargs["messages"])
    result = run_with_cancel_event(cancel, instance.chat, **kwargs)  # type: ignore[attr-defined]
    streamed = sig.kind is MethodKind.SERVER_STREAM
    if not body.get("stream"):
        if streamed:
            pieces = [str(p) for p in iterate_with_cancel_event(cancel, result)]
            text, completion_tokens = "".join(pieces), len(pieces)
        else:
            text = str(result)
            completion_tokens = len(text.split())
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        completion = {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model_id,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": usage,
        }
        return Reply(
            json.dumps(completion).encode(),
            pb.Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
        )
    pieces_iter = iterate_with_cancel_event(cancel, result) if streamed else iter([str(result)])
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    reply = StreamReply(iter(()))
    reply.chunks = _chunks(
        reply, pieces_iter, completion_id, created, model_id, prompt_tokens, include_usage
    )
    return reply


def _chunks(
    reply: StreamReply,
    pieces: Iterator[Any],
    completion_id: str,
    created: int,
    model_id: str,
    prompt_tokens: int,
    include_usage: bool,
) -> Iterator[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None, usage: Any = None) -> bytes:
        doc: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model_id,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
            if usage is None
            else [],
        }
        if usage is not None or include_usage:
            doc["usage"] = usage
        return json.dumps(doc).encode()

    yield chunk({"role": "assistant", "content": ""}, None)
    count = 0
    for piece in pieces:
        count += 1
        yield chunk({"content": str(piece)}, None)
    yield chunk({}, "stop")
    reply.usage = pb.Usage(prompt_tokens=prompt_tokens, completion_tokens=count)
    if include_usage:
        yield chunk(
            {},
            None,
            {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": count,
                "total_tokens": prompt_tokens + count,
            },
        )
