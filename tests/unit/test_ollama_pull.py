"""The one Ollama pull (the backend's and the MCP tool's), against the Ollama fake on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import ollama
import pytest

from edge_runner.backends.ollama_ready import PullStep, pull_model
from edge_runner.errors import BackendUnreachable, EdgeRunnerError, PullFailed
from tests.conftest import MS
from tests.fakes.ollama import FakeModel, FakeOllama

TIMEOUT = 5_000 * MS
SIZE = 397_821_319


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    """A fake with qwen2.5:0.5b known to the registry but not pulled."""
    with FakeOllama(models={"qwen2.5:0.5b": FakeModel(present=False, size=SIZE)}) as server:
        yield server


@pytest.fixture
def client(fake: FakeOllama) -> Iterator[ollama.Client]:
    """The official ollama client pointed at the fake."""
    with ollama.Client(fake.url, timeout=TIMEOUT) as api:
        yield api


def test_a_pull_yields_growing_progress_over_all_layers_then_success(
    fake: FakeOllama, client: ollama.Client
) -> None:
    """Bytes done only grow, the total covers every layer, the last step says success."""
    steps = list(pull_model(client, "qwen2.5:0.5b"))
    assert steps[0] == PullStep(0, 0, "pulling manifest")
    done = [s.done for s in steps]
    assert done == sorted(done)
    assert steps[-1] == PullStep(SIZE, SIZE, "success")
    assert any(0 < s.done < s.total for s in steps)
    assert "qwen2.5:0.5b" in fake.present


def test_an_unknown_name_is_pull_failed_with_ollamas_words(client: ollama.Client) -> None:
    """Ollama's error line becomes PullFailed, chained to the client's ResponseError."""
    with pytest.raises(PullFailed) as caught:
        list(pull_model(client, "no-such-model"))
    assert caught.value.name == "no-such-model"
    assert caught.value.error == "pull model manifest: file does not exist"
    assert isinstance(caught.value.__cause__, ollama.ResponseError)
    assert isinstance(caught.value, EdgeRunnerError)


def test_a_dead_ollama_is_unreachable(fake: FakeOllama, client: ollama.Client) -> None:
    """No Ollama at the address: BackendUnreachable, chained to the connection error."""
    fake.die()
    with pytest.raises(BackendUnreachable) as caught:
        list(pull_model(client, "qwen2.5:0.5b"))
    assert "refused" in str(caught.value).lower()
    assert caught.value.__cause__ is not None
