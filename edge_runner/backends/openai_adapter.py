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
from collections.abc import Callable, Iterator
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

__all__ = ["CHAT_METHOD", "CompletionWriter", "chat_completion"]

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


class CompletionWriter:
    """Writes one chat completion in OpenAI's wire format, whole or as stream chunks.

    Shared by every backend that answers ``openai.chat.completions`` itself.
    """

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())

    @staticmethod
    def usage(usage: pb.Usage | None) -> dict[str, int]:
        """OpenAI's ``usage`` object."""
        prompt = usage.prompt_tokens if usage else 0
        completion = usage.completion_tokens if usage else 0
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _doc(self, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": kind,
            "created": self.created,
            "model": self.model_id,
            "choices": choices,
        }

    def completion(self, message: dict[str, Any], finish: str, usage: pb.Usage) -> Reply:
        """A whole ``chat.completion``."""
        choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
        doc = self._doc("chat.completion", [choice])
        doc["usage"] = self.usage(usage)
        return Reply(json.dumps(doc).encode(), usage)

    def chunk(self, delta: dict[str, Any], finish: str | None) -> bytes:
        """One ``chat.completion.chunk``."""
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return json.dumps(self._doc("chat.completion.chunk", [choice])).encode()

    def stream(
        self,
        pieces: Iterator[str],
        usage: Callable[[int], pb.Usage | None],
        include_usage: bool,
    ) -> StreamReply:
        """Chunks for ``pieces``: the role, the content, the stop, and usage when asked.

        ``usage`` is called with the number of pieces once they are exhausted.
        """
        reply = StreamReply(iter(()))

        def chunks() -> Iterator[bytes]:
            yield self.chunk({"role": "assistant", "content": ""}, None)
            count = 0
            for piece in pieces:
                count += 1
                yield self.chunk({"content": piece}, None)
            yield self.chunk({}, "stop")
            reply.usage = usage(count)
            if include_usage:
                doc = self._doc("chat.completion.chunk", [])
                doc["usage"] = self.usage(reply.usage)
                yield json.dumps(doc).encode()

        reply.chunks = chunks()
        return reply


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
        bool((body.get("stream_options") or {}).get("include_usage")),
    )
