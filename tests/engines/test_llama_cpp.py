"""edge-runner in front of a real engine: llama.cpp's OpenAI-compatible server on a tiny
generated model, reached through a runner's OpenAI-upstream backend, the tunnel and the control
plane. The answers are gibberish; their shapes, streams, usage and errors are the engine's.

Assertions are about what any OpenAI-compatible engine must do, not about the fake's texts.
"""

from __future__ import annotations

import os

import httpx
import openai
import pytest

from edge_runner.backends.openai_upstream import OpenAIUpstreamBackend
from edge_runner.client import Client
from tests.conftest import MS, Stack
from tests.engines.conftest import Engine
from tests.engines.tiny_gguf import CONTEXT
from tests.integration.test_cli import run_cli

pytestmark = pytest.mark.engine

USER = [{"role": "user", "content": "hi there"}]


@pytest.fixture
def proxied(stack: Stack, llama: Engine) -> Stack:
    """A control plane with a runner proxying to the engine."""
    backend = OpenAIUpstreamBackend(llama.base_url, api_key="", probe_interval=50 * MS)
    stack.start_runner(backend=backend)
    return stack


def _openai(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.api_base}/v1", api_key=stack.token, max_retries=0)


def test_the_engines_model_is_registered_under_its_id(proxied: Stack, llama: Engine) -> None:
    """The runner registers what the engine lists."""
    assert {m.id for m in _openai(proxied).models.list()} == {llama.model}


def test_a_whole_chat_answer_has_the_engines_usage(proxied: Stack, llama: Engine) -> None:
    """Non-streamed: one message, a finish reason, and the engine's token counts."""
    reply = _openai(proxied).chat.completions.create(
        model=llama.model,
        messages=USER,
        max_tokens=6,  # type: ignore[arg-type]
    )
    choice = reply.choices[0]
    assert isinstance(choice.message.content, str) and choice.message.role == "assistant"
    assert choice.finish_reason in ("length", "stop")
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens > 0
    assert reply.model == llama.model


def test_a_streamed_chat_answer_parses_and_ends(proxied: Stack, llama: Engine) -> None:
    """Streamed through edge-runner, the engine's chunks (empty deltas included) parse with the
    official SDK, the last choice chunk carries the finish reason, and the text equals what
    the deltas say."""
    stream = _openai(proxied).chat.completions.create(
        model=llama.model,
        messages=USER,  # type: ignore[arg-type]
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    with_choices = [c for c in chunks if c.choices]
    assert with_choices, chunks
    assert with_choices[-1].choices[0].finish_reason in ("length", "stop")
    text = "".join(c.choices[0].delta.content or "" for c in with_choices)
    assert isinstance(text, str)
    assert all(c.model == llama.model for c in chunks)


def test_completions_and_embeddings_pass_through(proxied: Stack, llama: Engine) -> None:
    """/v1/completions answers text; /v1/embeddings a vector per input."""
    client = _openai(proxied)
    done = client.completions.create(model=llama.model, prompt="abc", max_tokens=4)
    assert isinstance(done.choices[0].text, str) and done.usage is not None
    vectors = client.embeddings.create(model=llama.model, input=["a", "b c"])
    assert [len(v.embedding) > 0 for v in vectors.data] == [True, True]


def test_the_native_api_and_the_python_client(proxied: Stack, llama: Engine) -> None:
    """predict, generate and embed ride on the engine's OpenAI API."""
    with Client(proxied.api_base, proxied.token) as client:
        assert isinstance(client.predict(llama.model, prompt="yo", max_tokens=4), str)
        pieces = list(client.generate(llama.model, prompt="a b", max_tokens=4))
        assert all(isinstance(p, str) for p in pieces)
        (vector,) = client.predict(llama.model, "embed", input=["q"])
        assert len(vector) > 0


def test_a_prompt_longer_than_the_context_is_a_clear_400(proxied: Stack, llama: Engine) -> None:
    """More tokens than the model's context: a 400 that says so, not a 500."""
    long_prompt = "a " * (CONTEXT * 2)
    response = httpx.post(
        f"{proxied.api_base}/v1/chat/completions",
        headers=proxied.headers,
        json={"model": llama.model, "messages": [{"role": "user", "content": long_prompt}]},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert "context" in response.json()["error"]["message"].lower()


def test_edge_runner_chat_talks_to_the_engine(proxied: Stack, llama: Engine) -> None:
    """`edge-runner chat MODEL` with a piped line: one answer from the engine, exit 0."""
    env = dict(os.environ, EDGE_RUNNER_API_BASE=proxied.api_base, EDGE_RUNNER_PAT=proxied.token)
    done = run_cli("chat", llama.model, "--max-tokens", "8", stdin="hi\n", env=env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
