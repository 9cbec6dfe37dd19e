"""The OpenAI-upstream backend, proxying to a real OpenAI-compatible server.

The upstream here is a second edge-runner control plane (its /v1 is OpenAI-compatible), with
the hello model folder and the labelled fake Ollama behind it: everything is real but Ollama.
The client talks to the first control plane, whose runner proxies through its tunnel.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from threading import Event

import httpx
import openai
import pytest

from edge_runner.backends.base import StreamReply
from edge_runner.backends.ollama import OllamaBackend
from edge_runner.backends.openai_upstream import OpenAIUpstreamBackend, normalize_base_url
from edge_runner.client import Client
from edge_runner.errors import BackendError, ConfigError, ErrorCode
from tests.conftest import HELLO, MS, LoopThread, Stack, wait_for
from tests.fakes.ollama import FakeModel, FakeOllama


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def upstream(loop_thread: LoopThread, tmp_path: Path) -> Iterator[Stack]:
    """A second control plane serving hello and two fake-Ollama models, on a fixed port."""
    models = {"llama3.2": FakeModel(), "nomic-embed-text": FakeModel(capabilities=("embedding",))}
    with FakeOllama(models=models) as fake:
        other = Stack(tmp_path / "upstream", loop_thread, model=HELLO)
        other.start_control(port=_free_port())
        other.start_runner(HELLO)
        ollama = OllamaBackend(fake.url, ["llama3.2", "nomic-embed-text"], preload=False)
        other.start_runner(backend=ollama, runner_id="upstream-ollama")
        with Client(other.api_base, other.token) as client:
            wait_for(lambda: all(m["status"] == "online" for m in client.models()), "upstream")
        yield other
        other.close()


@pytest.fixture
def proxied(stack: Stack, upstream: Stack) -> Stack:
    """The first control plane with a runner proxying to the upstream's /v1."""
    backend = OpenAIUpstreamBackend(
        upstream.api_base, api_key=upstream.token, probe_interval=50 * MS
    )
    stack.start_runner(backend=backend)
    return stack


def _openai(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.api_base}/v1", api_key=stack.token, max_retries=0)


def test_every_upstream_model_is_served(proxied: Stack) -> None:
    """The runner registers what the upstream lists, under the same ids."""
    ids = {m.id for m in _openai(proxied).models.list()}
    assert ids == {"hello", "llama3.2", "nomic-embed-text"}


def test_chat_completions_and_embeddings_pass_through(proxied: Stack) -> None:
    """Chat (whole and streamed, usage included), completions and embeddings go upstream."""
    client = _openai(proxied)
    reply = client.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": "hi there"}]
    )
    assert reply.choices[0].message.content == "echo: hi there" and reply.model == "llama3.2"
    assert reply.usage is not None and reply.usage.completion_tokens == 3
    chunks = list(
        client.chat.completions.create(
            model="hello",
            messages=[{"role": "user", "content": "bob"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None
    text = client.completions.create(model="llama3.2", prompt="a b").choices[0].text
    assert text == "echo: a b"
    vectors = client.embeddings.create(model="nomic-embed-text", input=["x", "y"]).data
    assert len(vectors) == 2 and len(vectors[0].embedding) > 0


def test_native_methods_ride_on_chat_completions(proxied: Stack) -> None:
    """predict, generate and chat work for upstream models (edge-runner predict/chat)."""
    with Client(proxied.api_base, proxied.token) as client:
        assert client.predict("llama3.2", prompt="yo") == "echo: yo"
        assert "".join(client.generate("llama3.2", prompt="a b")) == "echo: a b"
        chat = client.generate("llama3.2", "chat", messages=[{"role": "user", "content": "z"}])
        assert "".join(chat) == "echo: z"
        assert len(client.predict("nomic-embed-text", "embed", input=["q"])[0]) > 0


def test_upstream_errors_keep_their_status_and_message(proxied: Stack) -> None:
    """A 400 upstream is a 400 here, with the upstream's message."""
    response = httpx.post(
        f"{proxied.api_base}/v1/chat/completions",
        headers=proxied.headers,
        json={"model": "hello", "messages": [{"role": "user", "content": "x"}], "max_tokens": "x"},
    )
    assert response.status_code == 400
    assert "max_tokens" in response.json()["error"]["message"]


def test_an_upstream_outage_is_503_then_heals(proxied: Stack, upstream: Stack) -> None:
    """Upstream gone: its models are unavailable (503); once it is back they serve again."""
    port = upstream.plane.settings.port  # type: ignore[union-attr]
    upstream.stop_control()

    def status() -> str:
        with Client(proxied.api_base, proxied.token) as client:
            return str(client.model("llama3.2")["status"])

    wait_for(lambda: status() == "unavailable", "the upstream models to be unavailable")
    response = httpx.post(
        f"{proxied.api_base}/v2/models/llama3.2/predict",
        headers=proxied.headers,
        json={"prompt": "x"},
    )
    assert response.status_code == 503 and response.json()["error"]["code"] == "MODEL_UNAVAILABLE"
    upstream.start_control(port=port)
    wait_for(lambda: status() == "online", "the upstream models to be back")


def test_load_errors_say_what_was_tried() -> None:
    """Nothing listening, or a model the upstream lacks: a ConfigError naming both."""
    with pytest.raises(ConfigError, match="no OpenAI-compatible server answers") as caught:
        OpenAIUpstreamBackend("http://127.0.0.1:9/v1").load()
    assert "127.0.0.1:9/v1/models" in str(caught.value)
    assert normalize_base_url("127.0.0.1:8000") == "http://127.0.0.1:8000/v1"
    assert normalize_base_url("http://h:1/api/v1/") == "http://h:1/api/v1"


def test_a_model_the_upstream_lacks_is_refused(upstream: Stack) -> None:
    """--models naming something the upstream does not list fails at start, listing what it has."""
    backend = OpenAIUpstreamBackend(upstream.api_base, ["gpt-9"], api_key=upstream.token)
    with pytest.raises(ConfigError, match="does not serve 'gpt-9'") as caught:
        backend.load()
    assert "hello" in str(caught.value)
    backend.close()


class _CutStream(http.server.BaseHTTPRequestHandler):
    """An upstream that lists one model and cuts every stream before its ``data: [DONE]``
    (``ending`` appended: an interrupted answer that says nothing of why it ended)."""

    ending = b""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the handler's API
        self._send(b'{"object":"list","data":[{"id":"m","object":"model"}]}', "application/json")

    def do_POST(self) -> None:  # noqa: N802 - the handler's API
        self.rfile.read(int(self.headers["Content-Length"]))
        chunk = (
            b'{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a"}}]}'
        )
        self._send(b"data: " + chunk + b"\n\n" + self.ending, "text/event-stream")

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Interrupted(_CutStream):
    ending = b"data: [DONE]\n\n"


@pytest.mark.parametrize(
    ("handler", "code", "words"),
    [
        (_CutStream, ErrorCode.BACKEND_UNAVAILABLE, r"without \[DONE\]"),
        (_Interrupted, ErrorCode.MODEL_ERROR, "no finish_reason"),
    ],
    ids=["no-done", "no-finish-reason"],
)
def test_a_stream_cut_short_is_an_error_not_a_short_answer(
    handler: type[_CutStream], code: str, words: str
) -> None:
    """A stream that ends without ``data: [DONE]`` (a server that died mid-answer), or with it
    but without any ``finish_reason`` (llama-cpp-python interrupting an answer for another
    request), fails the task instead of passing for a complete answer."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    backend = OpenAIUpstreamBackend(f"http://127.0.0.1:{server.server_port}/v1")
    try:
        backend.load()
        body = {"messages": [{"role": "user", "content": "x"}], "stream": True}
        reply = backend.call("m", "openai.chat.completions", json.dumps(body).encode(), Event())
        assert isinstance(reply, StreamReply)
        with pytest.raises(BackendError, match=words) as caught:
            list(reply.chunks)
        assert caught.value.code == code
    finally:
        backend.close()
        server.shutdown()
        server.server_close()
