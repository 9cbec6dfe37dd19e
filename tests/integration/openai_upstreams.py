"""Which OpenAI-compatible server the OpenAI-upstream tests proxy to: the fake, or a real engine.

Tests that take the ``upstream`` fixture run once per upstream:

- ``fake``: a second edge-runner control plane (its /v1 is OpenAI-compatible) with the hello
  model folder and the labelled fake Ollama behind it: everything real but Ollama. It echoes,
  so fake-only tests can check exact texts, and it can be stopped and restarted on its port.
- ``llama``, marked ``engine``: llama.cpp's server (llama-cpp-python) on the tiny generated model
  (tests/engines/), embeddings on, requiring an API key. ``make test-engines`` runs it (and
  fails without the engine); elsewhere it is skipped without the engine.

Assertions that hold for any OpenAI-compatible server run on both; where the real engine departs
from OpenAI's API, the test says so in a commented condition on ``upstream.name``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge_runner.backends.ollama import OllamaBackend
from edge_runner.backends.openai_upstream import OpenAIUpstreamBackend
from edge_runner.client import Client
from tests.conftest import HELLO, MS, LoopThread, Stack, wait_for
from tests.engines.conftest import Engine, need, start_llama, stop_engine
from tests.fakes.ollama import FakeModel, FakeOllama

__all__ = ["UPSTREAMS", "Upstream", "llama_engine", "upstream"]

#: the fixture's params: every test that takes ``upstream`` runs once per id
UPSTREAMS = ["fake", pytest.param("llama", marks=pytest.mark.engine)]
#: the key the llama engine requires (it travels to edge-runner in a variable, never in argv)
ENGINE_KEY = "sk-engine-test"


@dataclass
class Upstream:
    """An OpenAI-compatible server for a runner to proxy.

    Attributes:
        name: ``fake`` or ``llama`` (the test id).
        base_url: its OpenAI base (``…/v1``).
        api_key: the bearer token it requires.
        chat_model: a model id it serves chat and completions with.
        embedding_model: a model id it serves embeddings with.
        models: every model id it lists.
        stack: the fake's control plane (None for the engine).
    """

    name: str
    base_url: str
    api_key: str
    chat_model: str
    embedding_model: str
    models: set[str] = field(default_factory=set)
    stack: Stack | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def llama_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """llama.cpp's server on the tiny model, embeddings on, requiring ``ENGINE_KEY``."""
    need("gguf")
    need("llama_cpp")
    from tests.engines.tiny_gguf import write_tiny_gguf

    model = write_tiny_gguf(tmp_path_factory.mktemp("engine") / "tiny.gguf")
    engine = start_llama(model, "--embedding", api_key=ENGINE_KEY)
    yield engine
    stop_engine(engine)


@pytest.fixture(params=UPSTREAMS)
def upstream(
    request: pytest.FixtureRequest, loop_thread: LoopThread, tmp_path: Path
) -> Iterator[Upstream]:
    """The fake (a second control plane with hello and two fake-Ollama models, on a fixed
    port), or llama.cpp's server."""
    if request.param == "llama":
        engine: Engine = request.getfixturevalue("llama_engine")
        assert engine.api_key is not None
        yield Upstream("llama", engine.base_url, engine.api_key, "tiny", "tiny", {"tiny"})
        return
    models = {"llama3.2": FakeModel(), "nomic-embed-text": FakeModel(capabilities=("embedding",))}
    with FakeOllama(models=models) as fake:
        other = Stack(tmp_path / "upstream", loop_thread, model=HELLO)
        other.start_control(port=_free_port())
        other.start_runner(HELLO)
        ollama = OllamaBackend(fake.url, ["llama3.2", "nomic-embed-text"], preload=False)
        other.start_runner(backend=ollama, runner_id="upstream-ollama")
        with Client(other.api_base, other.token) as client:
            wait_for(lambda: all(m["status"] == "online" for m in client.models()), "upstream")
        yield Upstream(
            "fake",
            f"{other.api_base}/v1",
            other.token,
            "llama3.2",
            "nomic-embed-text",
            {"hello", "llama3.2", "nomic-embed-text"},
            other,
        )
        other.close()


@pytest.fixture
def proxied(stack: Stack, upstream: Upstream) -> Stack:
    """The test's control plane, with a runner proxying to the upstream's /v1."""
    backend = OpenAIUpstreamBackend(
        upstream.base_url, api_key=upstream.api_key, probe_interval=50 * MS
    )
    stack.start_runner(backend=backend)
    return stack
