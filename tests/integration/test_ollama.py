"""The Ollama backend through the real control plane and tunnel, against the fake Ollama
(tests/fakes/ollama.py: the Ollama binary cannot run here)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from edge_runner.backends.ollama import OllamaBackend
from edge_runner.client import Client
from edge_runner.errors import ConfigError
from tests.conftest import MS, Stack, wait_for
from tests.fakes.ollama import FakeModel, FakeOllama


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    """A fake Ollama with one model present and one to pull."""
    with FakeOllama(
        models={"llama3.2": FakeModel(), "library/qwen2.5": FakeModel(present=False)}
    ) as server:
        yield server


@pytest.fixture
def ollama_stack(stack: Stack, fake: FakeOllama) -> Stack:
    """A runner serving both fake models."""
    backend = OllamaBackend(fake.url, ["llama3.2", "library/qwen2.5"], num_ctx=8192)
    stack.start_runner(backend=backend)
    return stack


def test_missing_model_is_pulled_and_both_are_registered(
    ollama_stack: Stack, fake: FakeOllama
) -> None:
    """A model Ollama lacks is pulled at start; a / in its name registers as --."""
    assert "library/qwen2.5:latest" in fake.present
    with Client(ollama_stack.api_base, ollama_stack.token) as client:
        ids = sorted(m["id"] for m in client.models())
    assert ids == ["library--qwen2.5", "llama3.2"]


def test_native_methods(ollama_stack: Stack, fake: FakeOllama) -> None:
    """predict, generate and chat reach /api/generate and /api/chat with num_ctx."""
    with Client(ollama_stack.api_base, ollama_stack.token) as client:
        assert client.predict("llama3.2", prompt="hi there") == "echo: hi there"
        assert "".join(client.generate("llama3.2", prompt="a b")) == "echo: a b"
        chat = client.generate(
            "llama3.2", "chat", messages=[{"role": "user", "content": "yo"}], max_tokens=1
        )
        assert "".join(chat) == "echo:"
    chats = [body for path, body in fake.requests if path == "/api/chat"]
    assert chats[-1]["options"]["num_ctx"] == 8192 and chats[-1]["options"]["num_predict"] == 1


def test_openai_chat_with_usage_from_ollama(ollama_stack: Stack) -> None:
    """The official OpenAI client gets Ollama's answer and token counts, both spellings."""
    client = openai.OpenAI(
        base_url=f"{ollama_stack.api_base}/v1", api_key=ollama_stack.token, max_retries=0
    )
    reply = client.chat.completions.create(
        model="library/qwen2.5", messages=[{"role": "user", "content": "hello world"}]
    )
    assert reply.choices[0].message.content == "echo: hello world"
    assert reply.usage is not None and reply.usage.completion_tokens == 3
    stream = client.chat.completions.create(
        model="llama3.2",
        messages=[{"role": "user", "content": "one two"}],
        stream=True,
        stream_options={"include_usage": True},
        temperature=0.1,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 2


def test_cancel_closes_the_ollama_stream(ollama_stack: Stack, fake: FakeOllama) -> None:
    """A client that leaves a stream makes the runner close its Ollama request."""
    fake.hold.set()
    with (
        httpx.Client(headers=ollama_stack.headers, timeout=30) as client,
        client.stream(
            "POST",
            f"{ollama_stack.api_base}/v2/models/llama3.2/generate",
            json={"prompt": "a b c d e f"},
        ) as r,
    ):
        for line in r.iter_lines():
            if line.startswith("event: chunk"):
                break
    wait_for(fake.paused.is_set, "Ollama to be holding the stream")
    # Still held: only the runner closing its request can end it now.
    wait_for(fake.disconnected.is_set, "the runner to close Ollama's stream", 5000 * MS)
    assert fake.chunks_sent == 1
    executor = ollama_stack.runners[0].runner._executor
    assert executor is not None
    wait_for(lambda: executor.busy == 0, "the slot to be free")


def test_unreachable_ollama_is_a_clear_error() -> None:
    """No Ollama at the address: loading says where it looked and what to do."""
    backend = OllamaBackend("http://127.0.0.1:9", ["llama3.2"])
    with pytest.raises(ConfigError, match="no Ollama answers at http://127.0.0.1:9"):
        backend.load()
