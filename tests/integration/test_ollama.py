"""The Ollama backend through the real control plane and tunnel, with the official clients.

Each case runs against the labelled fake (tests/fakes/ollama.py; the Ollama binary cannot run
here) and, marked ``real_ollama``, against a real Ollama when one answers on loopback.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator

import httpx
import openai
import pytest

from edge_runner.backends.ollama import OllamaBackend, normalize_host
from edge_runner.client import Client
from edge_runner.errors import ConfigError
from tests.conftest import MS, Stack, wait_for
from tests.integration.ollama_target import OllamaTarget, ollama_target

__all__ = ["ollama_target"]  # the fixture, imported so pytest finds it here


def _models(target: OllamaTarget) -> list[str]:
    return [target.model] + ([target.embed_model] if target.embed_model else [])


@pytest.fixture
def served(stack: Stack, ollama_target: OllamaTarget) -> Iterator[Stack]:
    """A runner serving the target's models, once they are READY."""
    backend = OllamaBackend(ollama_target.url, _models(ollama_target), num_ctx=2048)
    stack.start_runner(backend=backend)
    with Client(stack.api_base, stack.token) as client:
        wait_for(
            lambda: all(m["status"] == "online" for m in client.models()),
            "the Ollama models to be ready",
        )
    yield stack


def _openai(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.api_base}/v1", api_key=stack.token, max_retries=0)


def _model_id(target: OllamaTarget) -> str:
    return target.model.replace("/", "--")


def test_native_methods(served: Stack, ollama_target: OllamaTarget) -> None:
    """predict, generate and chat answer through the tunnel; num_ctx reaches Ollama."""
    model = _model_id(ollama_target)
    with Client(served.api_base, served.token) as client:
        answer = client.predict(model, prompt="hi there", max_tokens=8)
        pieces = list(client.generate(model, prompt="a b", max_tokens=8))
        chat = list(
            client.generate(
                model, "chat", messages=[{"role": "user", "content": "yo"}], max_tokens=1
            )
        )
    assert isinstance(answer, str) and answer
    assert pieces and all(isinstance(p, str) for p in pieces)
    assert chat
    fake = ollama_target.fake
    if fake is not None:
        assert answer == "echo: hi there" and "".join(pieces) == "echo: a b"
        assert "".join(chat) == "echo:"
        chats = [body for path, body in fake.requests if path == "/api/chat"]
        assert chats[-1]["options"] == {"num_ctx": 2048, "num_predict": 1}


def test_openai_chat_stream_and_usage(served: Stack, ollama_target: OllamaTarget) -> None:
    """The official OpenAI client gets the answer and Ollama's token counts, streamed or not."""
    client = _openai(served)
    reply = client.chat.completions.create(
        model=ollama_target.model,
        messages=[{"role": "user", "content": "hello world"}],
        max_tokens=8,
        temperature=0.1,
        seed=7,
        stop=["zzz"],
    )
    assert reply.choices[0].message.content and reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert reply.usage.prompt_tokens > 0
    stream = client.chat.completions.create(
        model=ollama_target.model,
        messages=[{"role": "user", "content": "one two"}],
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    fake = ollama_target.fake
    if fake is not None:
        assert reply.choices[0].message.content == "echo: hello world"
        assert reply.usage.completion_tokens == 3 and reply.usage.prompt_tokens == 2
        assert text == "echo: one two"
        sent = [body for path, body in fake.requests if path == "/api/chat"][-2]
        assert sent["options"] == {
            "num_predict": 8,
            "temperature": 0.1,
            "seed": 7,
            "stop": ["zzz"],
            "num_ctx": 2048,
        }


def test_openai_completions(served: Stack, ollama_target: OllamaTarget) -> None:
    """/v1/completions answers a text completion, whole and streamed."""
    client = _openai(served)
    whole = client.completions.create(model=ollama_target.model, prompt="say hi", max_tokens=8)
    assert whole.object == "text_completion" and whole.choices[0].text
    assert whole.usage is not None and whole.usage.completion_tokens > 0
    streamed = list(
        client.completions.create(
            model=ollama_target.model, prompt="say hi", max_tokens=8, stream=True
        )
    )
    assert "".join(c.choices[0].text for c in streamed)
    assert streamed[-1].choices[0].finish_reason in ("stop", "length")
    if ollama_target.fake is not None:
        assert whole.choices[0].text == "echo: say hi"


def test_openai_embeddings_float_and_base64(served: Stack, ollama_target: OllamaTarget) -> None:
    """/v1/embeddings answers vectors; the OpenAI client's default base64 decodes to the same."""
    if ollama_target.embed_model is None:
        pytest.skip("set EDGE_RUNNER_TEST_OLLAMA_EMBED_MODEL to an embedding model to test this")
    client = _openai(served)
    floats = client.embeddings.create(
        model=ollama_target.embed_model, input=["sky", "grass"], encoding_format="float"
    )
    assert [d.index for d in floats.data] == [0, 1]
    assert len(floats.data[0].embedding) > 0
    default = client.embeddings.create(model=ollama_target.embed_model, input="sky")
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, rel=1e-6)
    raw = httpx.post(
        f"{served.api_base}/v1/embeddings",
        headers=served.headers,
        json={"model": ollama_target.embed_model, "input": "sky", "encoding_format": "base64"},
    ).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(packed) // 4}f", packed)) == pytest.approx(
        floats.data[0].embedding, rel=1e-6
    )


def test_v1_models_lists_the_served_models(served: Stack, ollama_target: OllamaTarget) -> None:
    """GET /v1/models names every model the Ollama runner serves."""
    ids = {m.id for m in _openai(served).models.list()}
    assert {m.replace("/", "--") for m in _models(ollama_target)} <= ids


def test_cancel_stops_the_generation(served: Stack, ollama_target: OllamaTarget) -> None:
    """A client leaving a stream frees the runner's slot; Ollama sees its request closed."""
    fake = ollama_target.fake
    if fake is not None:
        fake.hold.set()
    with (
        httpx.Client(headers=served.headers, timeout=30) as client,
        client.stream(
            "POST",
            f"{served.api_base}/v2/models/{_model_id(ollama_target)}/generate",
            json={"prompt": "count from one to one thousand, one number a line"},
        ) as r,
    ):
        for line in r.iter_lines():
            if line.startswith("event: chunk"):
                break
    executor = served.runners[0].runner._executor
    assert executor is not None
    if fake is not None:
        wait_for(fake.paused.is_set, "Ollama to be holding the stream")
        # Still held: only the runner closing its request can end it now.
        wait_for(fake.disconnected.is_set, "the runner to close Ollama's stream", 5000 * MS)
        assert fake.chunks_sent == 1
    wait_for(lambda: executor.busy == 0, "the slot to be free", 5000 * MS)


def test_unreachable_ollama_is_a_clear_error() -> None:
    """No Ollama at the address: loading says where it looked and how to install or start it."""
    backend = OllamaBackend("http://127.0.0.1:9", ["llama3.2"])
    with pytest.raises(ConfigError, match="no Ollama answers at http://127.0.0.1:9") as caught:
        backend.load()
    assert "ollama.com/download" in str(caught.value) and "ollama serve" in str(caught.value)
    backend.close()


@pytest.mark.parametrize(
    ("given", "url"),
    [
        (None, "http://127.0.0.1:11434"),
        ("", "http://127.0.0.1:11434"),
        (":23333", "http://127.0.0.1:23333"),
        ("localhost", "http://localhost:11434"),
        ("10.0.0.5:8000", "http://10.0.0.5:8000"),
        ("[::1]", "http://[::1]:11434"),
        ("[::1]:5", "http://[::1]:5"),
        ("https://ollama.lab/", "https://ollama.lab"),
    ],
)
def test_ollama_host_forms(given: str | None, url: str) -> None:
    """OLLAMA_HOST is read the way Ollama reads it (host, host:port, :port, or a URL)."""
    assert normalize_host(given) == url
