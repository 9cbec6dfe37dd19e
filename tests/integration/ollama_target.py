"""Which Ollama the Ollama tests talk to: the labelled fake, or a real one when reachable.

Tests that take the ``ollama`` fixture run once against :class:`tests.fakes.ollama.FakeOllama`
and once, marked ``real_ollama``, against the Ollama at ``$OLLAMA_HOST`` (default
127.0.0.1:11434) when one answers there on loopback; otherwise that run is skipped with the
reason. The real run uses ``$EDGE_RUNNER_TEST_OLLAMA_MODEL`` (default: the smallest model it
has that can chat) and, for embeddings, ``$EDGE_RUNNER_TEST_OLLAMA_EMBED_MODEL``.

Assertions that hold for any model (non-empty answers, token counts) run on both; exact answers
(the fake echoes) only on the fake (``target.fake is not None``).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest

from edge_runner.backends.ollama import normalize_host
from tests.fakes.ollama import FakeModel, FakeOllama

__all__ = ["OllamaTarget", "ollama_target"]

FAKE_MODELS = {
    "llama3.2": FakeModel(),
    "library/qwen2.5": FakeModel(present=False),
    "nomic-embed-text": FakeModel(capabilities=("embedding",), family="nomic-bert"),
}


@dataclass
class OllamaTarget:
    """An Ollama to test against.

    Attributes:
        url: its address.
        model: a chat model it has.
        embed_model: an embedding model it has, or None (embedding cases are skipped).
        fake: the fake when this is the fake, else None.
    """

    url: str
    model: str
    embed_model: str | None
    fake: FakeOllama | None


def _real_target() -> OllamaTarget:
    url = normalize_host(os.environ.get("OLLAMA_HOST"))
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        pytest.skip(f"OLLAMA_HOST={url} is not on loopback; tests talk to loopback only")
    try:
        with httpx.Client(base_url=url, timeout=1.0) as http:
            http.get("/api/version").raise_for_status()
            tags = http.get("/api/tags").json().get("models", [])
    except httpx.HTTPError as exc:
        pytest.skip(f"no real Ollama answers at {url} ({type(exc).__name__})")
    names = [m["model"] for m in sorted(tags, key=lambda m: m.get("size", 0))]
    model = os.environ.get("EDGE_RUNNER_TEST_OLLAMA_MODEL")
    if model is None:
        chat = [n for n in names if "embed" not in n]
        if not chat:
            pytest.skip(f"the Ollama at {url} has no chat model; `ollama pull qwen2.5:0.5b`")
        model = chat[0]
    embed = os.environ.get("EDGE_RUNNER_TEST_OLLAMA_EMBED_MODEL")
    return OllamaTarget(url, model, embed, None)


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.real_ollama)])
def ollama_target(request: pytest.FixtureRequest) -> Iterator[OllamaTarget]:
    """The fake Ollama, then (marked real_ollama) a real one if reachable."""
    if request.param == "real":
        yield _real_target()
        return
    with FakeOllama(models=FAKE_MODELS) as fake:
        yield OllamaTarget(fake.url, "llama3.2", "nomic-embed-text", fake)
