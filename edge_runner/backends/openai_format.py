"""OpenAI's wire format, written by the backends that answer OpenAI requests themselves.

The control plane forwards an OpenAI request body to the runner as the task payload (methods
``openai.chat.completions``, ``openai.completions``, ``openai.embeddings``); the backend answers
with the JSON OpenAI's clients parse: one object, or for ``stream=True`` one chunk per output
piece (the control plane adds the ``data:`` framing and ``[DONE]``).
"""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence

from edge_runner.backends.base import Reply, StreamReply
from edge_runner.errors import BackendError, ErrorCode
from edge_runner.proto import tunnel_pb2 as pb

__all__ = [
    "CHAT_METHOD",
    "COMPLETIONS_METHOD",
    "EMBEDDINGS_METHOD",
    "OPENAI_METHODS",
    "CompletionWriter",
    "TextCompletionWriter",
    "embeddings_reply",
    "error_message",
    "include_usage",
    "stop_list",
    "usage_doc",
    "without_traceback",
]

CHAT_METHOD = "openai.chat.completions"
COMPLETIONS_METHOD = "openai.completions"
EMBEDDINGS_METHOD = "openai.embeddings"
#: task method -> the operation name a ModelSpec lists in ``openai``
OPENAI_METHODS = {
    CHAT_METHOD: "chat.completions",
    COMPLETIONS_METHOD: "completions",
    EMBEDDINGS_METHOD: "embeddings",
}

#: a delta of a streamed chat answer: text, or a ready-made delta object (tool calls)
Delta = str | dict[str, object]


def usage_doc(usage: pb.Usage | None) -> dict[str, int]:
    """OpenAI's ``usage`` object."""
    prompt = usage.prompt_tokens if usage else 0
    completion = usage.completion_tokens if usage else 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def include_usage(request: Mapping[str, object]) -> bool:
    """Whether a streaming request asked for a final usage chunk."""
    options = request.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def stop_list(value: object) -> list[str] | None:
    """OpenAI's ``stop`` (a string or a list of strings) as a list."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise BackendError(ErrorCode.INVALID_ARGUMENT, "`stop` must be a string or a list of strings")


class _Writer:
    kind = ""
    chunk_kind = ""
    prefix = ""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.completion_id = f"{self.prefix}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def _doc(self, kind: str, choices: list[dict[str, object]]) -> dict[str, object]:
        return {
            "id": self.completion_id,
            "object": kind,
            "created": self.created,
            "model": self.model_id,
            "choices": choices,
        }

    def _usage_chunk(self, usage: pb.Usage | None) -> bytes:
        doc = self._doc(self.chunk_kind, [])
        doc["usage"] = usage_doc(usage)
        return json.dumps(doc).encode()


class CompletionWriter(_Writer):
    """Writes one chat completion, whole (``chat.completion``) or as ``chat.completion.chunk``s."""

    kind = "chat.completion"
    chunk_kind = "chat.completion.chunk"
    prefix = "chatcmpl"

    @staticmethod
    def usage(usage: pb.Usage | None) -> dict[str, int]:
        """OpenAI's ``usage`` object."""
        return usage_doc(usage)

    def completion(self, message: dict[str, object], finish: str, usage: pb.Usage | None) -> Reply:
        """A whole ``chat.completion``."""
        choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
        doc = self._doc(self.kind, [choice])
        doc["usage"] = usage_doc(usage)
        return Reply(json.dumps(doc).encode(), usage)

    def chunk(self, delta: dict[str, object], finish: str | None) -> bytes:
        """One ``chat.completion.chunk``."""
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return json.dumps(self._doc(self.chunk_kind, [choice])).encode()

    def stream(
        self,
        deltas: Iterator[Delta],
        usage: Callable[[int], pb.Usage | None],
        include_usage: bool,
        finish: Callable[[], str] = lambda: "stop",
    ) -> StreamReply:
        """Chunks for ``deltas``: the role, the content, the finish, and usage when asked.

        ``usage`` is called with the number of deltas once they are exhausted, ``finish`` for
        the finish reason then.
        """
        reply = StreamReply(iter(()))

        def chunks() -> Iterator[bytes]:
            yield self.chunk({"role": "assistant", "content": ""}, None)
            count = 0
            for delta in deltas:
                count += 1
                yield self.chunk({"content": delta} if isinstance(delta, str) else delta, None)
            yield self.chunk({}, finish())
            reply.usage = usage(count)
            if include_usage:
                yield self._usage_chunk(reply.usage)

        reply.chunks = chunks()
        return reply


class TextCompletionWriter(_Writer):
    """Writes a legacy completion (``text_completion``), whole or streamed."""

    kind = chunk_kind = "text_completion"
    prefix = "cmpl"

    def _choice(self, text: str, finish: str | None) -> dict[str, object]:
        return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}

    def completion(self, text: str, finish: str, usage: pb.Usage | None) -> Reply:
        """A whole ``text_completion``."""
        doc = self._doc(self.kind, [self._choice(text, finish)])
        doc["usage"] = usage_doc(usage)
        return Reply(json.dumps(doc).encode(), usage)

    def stream(
        self,
        pieces: Iterator[str],
        usage: Callable[[], pb.Usage | None],
        include_usage: bool,
        finish: Callable[[], str] = lambda: "stop",
    ) -> StreamReply:
        """One chunk per piece, a last one with the finish reason, then usage when asked."""
        reply = StreamReply(iter(()))

        def chunks() -> Iterator[bytes]:
            for piece in pieces:
                yield json.dumps(self._doc(self.kind, [self._choice(piece, None)])).encode()
            yield json.dumps(self._doc(self.kind, [self._choice("", finish())])).encode()
            reply.usage = usage()
            if include_usage:
                yield self._usage_chunk(reply.usage)

        reply.chunks = chunks()
        return reply


def embeddings_reply(
    model_id: str, vectors: Sequence[Sequence[float]], prompt_tokens: int, encoding: str
) -> Reply:
    """An embeddings ``list``; ``encoding`` ``base64`` packs little-endian float32, as OpenAI.

    (OpenAI's Python client asks for base64 unless told otherwise.)
    """
    data = []
    for index, vector in enumerate(vectors):
        embedding: list[float] | str = list(vector)
        if encoding == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    usage = pb.Usage(prompt_tokens=prompt_tokens)
    doc = {
        "object": "list",
        "data": data,
        "model": model_id,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
    return Reply(json.dumps(doc).encode(), usage)


def error_message(error: object) -> str:
    """The message of an OpenAI error object (``{"message": ...}``), else the object as text."""
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


def without_traceback(message: str, limit: int = 2000) -> str:
    """An upstream's error message up to ``limit`` characters, cut before any Python traceback:
    llama-cpp-python puts its own in a 500's message, and the server's file paths are not the
    client's business."""
    for marker in ("Traceback (most recent call last)", '\n  File "'):
        message = message.split(marker, 1)[0]
    return message.strip()[:limit]
