"""The native methods every LLM backend (Ollama, an OpenAI-compatible upstream) registers.

One set, so that ``edge-runner predict MODEL --prompt ...``, ``generate`` and ``chat`` work the
same whatever serves the model, and a client can move between them without a signature change.
"""

from __future__ import annotations

import json

from edge_runner.backends.base import Reply, StreamReply
from edge_runner.models.signatures import MethodKind, MethodSignature, Param

__all__ = ["LLM_SIGNATURES", "collect"]

_OPTIONS = (
    Param("max_tokens", "int | None", False, None),
    Param("temperature", "float | None", False, None),
)

LLM_SIGNATURES = (
    MethodSignature(
        "chat",
        MethodKind.SERVER_STREAM,
        (Param("messages", "list[dict]", True), *_OPTIONS),
        "Iterator[str]",
        "Chat with the model; streams the answer.",
    ),
    MethodSignature(
        "embed",
        MethodKind.UNARY,
        (Param("input", "list[str]", True),),
        "list[list[float]]",
        "Embed texts (needs an embedding model).",
    ),
    MethodSignature(
        "generate",
        MethodKind.SERVER_STREAM,
        (Param("prompt", "str", True), *_OPTIONS),
        "Iterator[str]",
        "Answer a prompt; streams the answer.",
    ),
    MethodSignature(
        "predict",
        MethodKind.UNARY,
        (Param("prompt", "str", True), *_OPTIONS),
        "str",
        "Answer a prompt.",
    ),
)


def collect(stream: StreamReply) -> Reply:
    """A unary answer from a stream of JSON strings (streamed underneath, so a cancel can cut
    it between tokens)."""
    text = "".join(json.loads(piece) for piece in stream.chunks)
    return Reply(json.dumps(text).encode(), stream.usage)
