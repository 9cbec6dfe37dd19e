"""OpenAI-shaped requests mapped onto Ollama's API (pure functions), and OpenAI's wire format."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest

from edge_runner.backends.ollama_mapping import (
    chat_options,
    ollama_messages,
    openai_tool_calls,
    response_format,
)
from edge_runner.backends.openai_format import TextCompletionWriter, embeddings_reply
from edge_runner.errors import BackendError
from edge_runner.proto import tunnel_pb2 as pb


def test_messages_map_roles_parts_images_and_tool_calls() -> None:
    """developer→system, text parts joined, data: images as bytes, tool call ids to names."""
    png = base64.b64encode(b"\x89PNG").decode()
    messages = ollama_messages(
        [
            {"role": "developer", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what "},
                    {"type": "text", "text": "is it"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "function": {"name": "look", "arguments": '{"where": "up"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sky"},
        ]
    )
    dumped = [m.model_dump(exclude_none=True) for m in messages]
    assert dumped[0] == {"role": "system", "content": "be brief"}
    assert dumped[1]["content"] == "what is it" and dumped[1]["images"] == [png]
    assert dumped[2]["tool_calls"] == [{"function": {"name": "look", "arguments": {"where": "up"}}}]
    assert dumped[3] == {"role": "tool", "content": "sky", "tool_name": "look"}


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        ([], "non-empty array"),
        ("hi", "non-empty array"),
        ([3], "messages[0] must be an object"),
        ([{"role": "wizard", "content": "x"}], "role must be one of"),
        ([{"role": "user", "content": 5}], "content must be a string or an array"),
        ([{"role": "user", "content": [{"type": "audio"}]}], "unsupported type 'audio'"),
        ([{"role": "user", "images": ["/etc/passwd"]}], "not valid base64"),
        ([{"role": "user", "images": [7]}], "must be a base64 string"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": "http://x/y.png"}]}],
            "data: URLs",
        ),
        (
            [{"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}],
            "function.name",
        ),
        (
            [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{"}}]}],
            "not JSON",
        ),
    ],
)
def test_bad_messages_name_what_is_wrong(messages: Any, fragment: str) -> None:
    """Every malformed message is INVALID_ARGUMENT with a message naming the field."""
    with pytest.raises(BackendError) as caught:
        ollama_messages(messages)
    assert caught.value.code == "INVALID_ARGUMENT" and fragment in caught.value.message


def test_options_and_formats() -> None:
    """Sampling fields map to Ollama options; stop may be a string; num_ctx always rides along."""
    options = chat_options(
        {"max_completion_tokens": 5, "max_tokens": 9, "temperature": 0, "stop": "END"}, 4096
    )
    assert options == {"num_predict": 9, "temperature": 0, "stop": ["END"], "num_ctx": 4096}
    with pytest.raises(BackendError, match="`seed` must be a number"):
        chat_options({"seed": True}, None)
    with pytest.raises(BackendError, match="`stop` must be"):
        chat_options({"stop": [1]}, None)
    assert response_format({}) is None
    assert response_format({"response_format": {"type": "json_object"}}) == "json"
    schema = {"type": "object"}
    spec = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    assert response_format({"response_format": spec}) == schema


def test_tool_calls_back_to_openai() -> None:
    """Ollama's argument objects become OpenAI's JSON strings."""
    from ollama import Message

    calls = Message(
        role="assistant",
        tool_calls=[
            Message.ToolCall(function=Message.ToolCall.Function(name="f", arguments={"a": 1}))
        ],
    ).tool_calls
    out = openai_tool_calls(calls)
    assert out[0]["type"] == "function" and json.loads(out[0]["function"]["arguments"]) == {"a": 1}


def test_embeddings_in_both_encodings() -> None:
    """base64 is little-endian float32, as OpenAI's client decodes it."""
    vectors = [[0.5, -1.0, 2.25]]
    as_float = json.loads(embeddings_reply("e", vectors, 3, "float").payload)
    assert (
        as_float["data"][0]["embedding"] == vectors[0] and as_float["usage"]["prompt_tokens"] == 3
    )
    packed = json.loads(embeddings_reply("e", vectors, 3, "base64").payload)["data"][0]["embedding"]
    assert list(struct.unpack("<3f", base64.b64decode(packed))) == vectors[0]


def test_text_completion_stream_ends_with_reason_and_usage() -> None:
    """Streamed completions: a chunk per piece, the finish reason, then usage when asked."""
    usage = pb.Usage(prompt_tokens=2, completion_tokens=2)
    reply = TextCompletionWriter("m").stream(
        iter(["a", "b"]), lambda: usage, True, lambda: "length"
    )
    docs = [json.loads(c) for c in reply.chunks]
    assert [d["choices"][0]["text"] for d in docs[:3]] == ["a", "b", ""]
    assert docs[2]["choices"][0]["finish_reason"] == "length"
    assert docs[3]["choices"] == [] and docs[3]["usage"]["total_tokens"] == 4
