"""edge-runner in front of a real engine, for what only a real engine does: llama.cpp's server on
a tiny generated model, reached through a runner's OpenAI-upstream backend, the tunnel and the
control plane.

What every OpenAI-compatible upstream must do (models, chat whole and streamed, completions,
embeddings, the native API, the Python client, ``edge-runner up``/``chat``, the MCP tools) runs
against this engine and the fake alike: tests/integration/test_openai_upstream.py and
test_openai_upstream_cli.py, their ``llama`` cases (marked ``engine``).
"""

from __future__ import annotations

import httpx
import pytest

from edge_runner.backends.openai_upstream import OpenAIUpstreamBackend
from tests.conftest import MS, Stack
from tests.engines.conftest import Engine
from tests.engines.tiny_gguf import CONTEXT

pytestmark = pytest.mark.engine


@pytest.fixture
def proxied(stack: Stack, llama: Engine) -> Stack:
    """A control plane with a runner proxying to the engine."""
    backend = OpenAIUpstreamBackend(llama.base_url, api_key="", probe_interval=50 * MS)
    stack.start_runner(backend=backend)
    return stack


def test_a_prompt_longer_than_the_context_is_a_clear_400(proxied: Stack, llama: Engine) -> None:
    """More tokens than the model's context: a 400 that says so, not a 500. (The fake cannot
    say it: Ollama, which it imitates, cuts a long prompt to fit instead.)"""
    long_prompt = "a " * (CONTEXT * 2)
    response = httpx.post(
        f"{proxied.api_base}/v1/chat/completions",
        headers=proxied.headers,
        json={"model": llama.model, "messages": [{"role": "user", "content": long_prompt}]},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert "context" in response.json()["error"]["message"].lower()


def test_a_streamed_prompt_longer_than_the_context_is_an_error(
    proxied: Stack, llama: Engine
) -> None:
    """Streamed, the same prompt is an error too, never an empty answer. llama-cpp-python
    answers it with 200 and an empty event stream (no chunk, no ``[DONE]``; OpenAI refuses with
    the 400 before streaming): edge-runner reports the request failed (not the engine gone,
    which a client would retry), saying what the engine did."""
    long_prompt = "a " * (CONTEXT * 2)
    body = {
        "model": llama.model,
        "messages": [{"role": "user", "content": long_prompt}],
        "stream": True,
    }
    response = httpx.post(
        f"{proxied.api_base}/v1/chat/completions", headers=proxied.headers, json=body, timeout=30
    )
    assert response.status_code == 500, response.text
    assert "empty event stream" in response.json()["error"]["message"]
