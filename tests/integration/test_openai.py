"""The OpenAI-compatible API, driven by the official ``openai`` package."""

from __future__ import annotations

import httpx
import openai
import pytest

from edge_runner.client import parse_sse
from tests.conftest import Stack


def _client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.api_base}/v1", api_key=stack.token, max_retries=0)


def test_chat_completion_non_stream(hello_stack: Stack) -> None:
    """chat.completions.create(stream=False) gets the model's answer with usage."""
    reply = _client(hello_stack).chat.completions.create(
        model="hello", messages=[{"role": "user", "content": "how are you"}]
    )
    assert reply.object == "chat.completion"
    assert reply.model == "hello"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == "Hello! You said: how are you"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens > 0


def test_chat_completion_stream(hello_stack: Stack) -> None:
    """chat.completions.create(stream=True) streams deltas that add up to the answer."""
    stream = _client(hello_stack).chat.completions.create(
        model="hello",
        messages=[{"role": "user", "content": "stream me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello! You said: stream me"
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_max_tokens_reaches_the_chat_method(hello_stack: Stack) -> None:
    """OpenAI's max_tokens maps onto the chat() parameter of the same name."""
    reply = _client(hello_stack).chat.completions.create(
        model="hello", messages=[{"role": "user", "content": "one two three"}], max_tokens=2
    )
    assert reply.choices[0].message.content == "Hello! You"


def test_stream_wire_format_ends_with_done(hello_stack: Stack) -> None:
    """The raw SSE stream is `data: {json}` events closed by `data: [DONE]`."""
    with httpx.stream(
        "POST",
        f"{hello_stack.api_base}/v1/chat/completions",
        headers=hello_stack.headers,
        json={"model": "hello", "stream": True, "messages": [{"role": "user", "content": "x"}]},
    ) as r:
        events = list(parse_sse(r.iter_lines()))
    assert all(name == "message" for name, _ in events)
    assert events[-1][1] == "[DONE]"
    assert sum(1 for _, data in events if data == "[DONE]") == 1


def test_models_lists_chat_models_only(hello_stack: Stack, tmp_path: object) -> None:
    """/v1/models lists the models that implement chat."""
    ids = [m.id for m in _client(hello_stack).models.list()]
    assert ids == ["hello"]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"messages": []}, 400, "model"),
        ({"model": "missing", "messages": []}, 404, "model"),
        ({"model": "hello", "messages": "hi"}, 400, "messages"),
        ({"model": "hello", "messages": [], "stream": "yes"}, 400, "stream"),
    ],
)
def test_bad_chat_requests_get_openai_style_errors(
    hello_stack: Stack, body: dict[str, object], status: int, param: str
) -> None:
    """Malformed chat requests answer with OpenAI's error shape and the offending param."""
    r = httpx.post(
        f"{hello_stack.api_base}/v1/chat/completions", headers=hello_stack.headers, json=body
    )
    assert r.status_code == status
    error = r.json()["error"]
    assert error["param"] == param and error["message"] and error["type"]


def test_openai_client_raises_on_unknown_model(hello_stack: Stack) -> None:
    """The official client surfaces a 404 for an unknown model as NotFoundError."""
    with pytest.raises(openai.NotFoundError):
        _client(hello_stack).chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}]
        )
