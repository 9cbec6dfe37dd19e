"""OpenAI chat completions over a model folder's ``chat(messages, ...)`` method.

The control plane forwards the OpenAI request body unchanged; this adapter maps the parameters
the ``chat`` signature accepts, calls it, and answers in OpenAI's wire format: one
``chat.completion`` object, or ``chat.completion.chunk`` objects for ``stream=True`` (the control
plane adds the ``data:`` framing and ``[DONE]``).

Python models report no token counts, so ``usage`` is an estimate: whitespace-separated words of
the prompt, and chunks (or words, for a unary ``chat``) of the answer.
"""

from __future__ import annotations

import threading
from typing import Any

from edge_runner.backends.base import Reply, StreamReply
from edge_runner.backends.openai_format import CHAT_METHOD, CompletionWriter, include_usage
from edge_runner.errors import BackendError, ErrorCode, InvalidArgument
from edge_runner.models.model_class import (
    ModelClass,
    iterate_with_cancel_event,
    run_with_cancel_event,
)
from edge_runner.models.signatures import MethodKind, MethodSignature, validate_arguments
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.views import JSONValue

__all__ = ["CHAT_METHOD", "chat_completion"]

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


def _prompt_words(messages: JSONValue) -> int:
    words = 0
    for message in messages if isinstance(messages, list) else ():
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
        raise BackendError(ErrorCode.INVALID_ARGUMENT, str(exc)) from exc
    writer = CompletionWriter(model_id)
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
        usage = pb.Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        return writer.completion({"role": "assistant", "content": text}, "stop", usage)
    pieces_iter = (
        (str(p) for p in iterate_with_cancel_event(cancel, result))
        if streamed
        else iter([str(result)])
    )
    return writer.stream(
        pieces_iter,
        lambda count: pb.Usage(prompt_tokens=prompt_tokens, completion_tokens=count),
        include_usage(body),
    )
