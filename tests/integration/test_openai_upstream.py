"""The OpenAI-upstream backend, proxying to a real OpenAI-compatible server.

The shared tests run once per upstream (tests/integration/openai_upstreams.py): the fake (a
second edge-runner control plane with the labelled fake Ollama behind it) and, marked
``engine``, llama.cpp's server on a tiny generated model. The client talks to the first control
plane, whose runner proxies through its tunnel. They assert what any OpenAI-compatible server
must do (shapes, a finish reason at the end, usage where the API promises it, the same text
whole and streamed at temperature 0, errors' statuses), never the fake's texts; where the real
engine departs from OpenAI's API, a commented condition on ``upstream.name`` says so.

Fake-only tests follow: exact texts, an upstream outage and restart, streams cut short.
"""

from __future__ import annotations

import http.server
import json
import threading
from threading import Event
from typing import Literal

import httpx
import openai
import pytest

from edge_runner.backends.base import StreamReply
from edge_runner.backends.openai_upstream import OpenAIUpstreamBackend, normalize_base_url
from edge_runner.client import Client
from edge_runner.errors import BackendError, ConfigError, ErrorCode
from tests.conftest import Stack, wait_for
from tests.integration.openai_upstreams import Upstream, llama_engine, proxied, upstream

__all__ = [
    "llama_engine",
    "proxied",
    "upstream",
]  # the fixtures, imported so pytest finds them here

#: the fake-only tests: the shared fixture, with its fake param alone
FAKE_ONLY = pytest.mark.parametrize("upstream", ["fake"], indirect=True)
USER = [{"role": "user", "content": "hi there"}]
#: short, reproducible answers (greedy sampling: the same text whole and streamed)
SAMPLING = {"max_tokens": 8, "temperature": 0}


def _openai(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.api_base}/v1", api_key=stack.token, max_retries=0)


def _whole_chat(stack: Stack, model: str) -> openai.types.chat.ChatCompletion:
    return _openai(stack).chat.completions.create(model=model, messages=USER, **SAMPLING)  # type: ignore[call-overload, no-any-return]


def _check_completion_tokens(upstream: Upstream, tokens: int) -> None:
    """Some tokens, and no more than max_tokens."""
    assert tokens > 0
    if upstream.name == "llama":
        # llama-cpp-python 0.3.36 generates past max_tokens when the answer is made of byte
        # tokens that do not end on a whole UTF-8 character (the tiny model's random bytes):
        # 12 tokens for max_tokens 8, say, and counts them. OpenAI never exceeds max_tokens.
        return
    assert tokens <= SAMPLING["max_tokens"]


# -- every upstream -------------------------------------------------------------------------


def test_every_upstream_model_is_served(proxied: Stack, upstream: Upstream) -> None:
    """The runner registers what the upstream lists, under the same ids."""
    assert {m.id for m in _openai(proxied).models.list()} == upstream.models


def test_a_whole_chat_answer(proxied: Stack, upstream: Upstream) -> None:
    """Non-streamed: one assistant message, why it ended, the upstream's token counts (no more
    completion tokens than max_tokens), our model id."""
    reply = _whole_chat(proxied, upstream.chat_model)
    assert reply.object == "chat.completion" and reply.model == upstream.chat_model
    (choice,) = reply.choices
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    usage = reply.usage
    assert usage is not None and usage.prompt_tokens > 0
    _check_completion_tokens(upstream, usage.completion_tokens)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_a_streamed_chat_answer_is_the_whole_answer_in_pieces(
    proxied: Stack, upstream: Upstream
) -> None:
    """Streamed with include_usage: chunks of one id and our model id, the role first, the
    finish reason on the last choice chunk only, the text of the whole answer, then usage."""
    whole = _whole_chat(proxied, upstream.chat_model)
    chunks = list(
        _openai(proxied).chat.completions.create(
            model=upstream.chat_model,
            messages=USER,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
            **SAMPLING,  # type: ignore[arg-type]
        )
    )
    assert {(c.object, c.model, c.id) for c in chunks} == {
        ("chat.completion.chunk", upstream.chat_model, chunks[0].id)
    }
    with_choices = [c for c in chunks if c.choices]
    assert with_choices[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in with_choices]
    assert finishes[:-1] == [None] * (len(finishes) - 1)
    assert finishes[-1] == whole.choices[0].finish_reason
    text = "".join(c.choices[0].delta.content or "" for c in with_choices)
    assert text == whole.choices[0].message.content
    if upstream.name == "llama":
        # llama-cpp-python 0.3.36 ignores stream_options.include_usage: no usage chunk (OpenAI
        # ends with one, choices empty). edge-runner passes the upstream's stream on as it is.
        assert all(c.usage is None for c in chunks)
        return
    last = chunks[-1]
    assert last.choices == [] and last.usage == whole.usage


def test_completions_whole_and_streamed(proxied: Stack, upstream: Upstream) -> None:
    """/v1/completions: text, why it ended and usage; streamed, the same text in pieces with
    the finish reason last."""
    client = _openai(proxied)
    whole = client.completions.create(model=upstream.chat_model, prompt="a b", **SAMPLING)  # type: ignore[call-overload]
    assert whole.object == "text_completion" and whole.model == upstream.chat_model
    assert whole.choices[0].finish_reason in ("stop", "length")
    assert whole.usage is not None and whole.usage.prompt_tokens > 0
    _check_completion_tokens(upstream, whole.usage.completion_tokens)
    chunks = list(
        client.completions.create(
            model=upstream.chat_model,
            prompt="a b",
            stream=True,
            **SAMPLING,  # type: ignore[arg-type]
        )
    )
    assert all(c.model == upstream.chat_model and len(c.choices) == 1 for c in chunks)
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks][-1] == whole.choices[0].finish_reason


@pytest.mark.parametrize("floats", [False, True], ids=["sdk-default", "float"])
def test_embeddings_are_a_vector_per_input(
    proxied: Stack, upstream: Upstream, floats: bool
) -> None:
    """/v1/embeddings: one vector of floats per input, in order, all of one length; with the
    SDK's default (it asks for base64 and decodes it) and as floats."""
    encoding: dict[str, Literal["float"]] = {"encoding_format": "float"} if floats else {}
    reply = _openai(proxied).embeddings.create(
        model=upstream.embedding_model, input=["a", "b c"], **encoding
    )
    assert reply.model == upstream.embedding_model
    assert [item.index for item in reply.data] == [0, 1]
    sizes = {len(item.embedding) for item in reply.data}
    assert len(sizes) == 1 and sizes.pop() > 0
    assert all(isinstance(x, float) for item in reply.data for x in item.embedding)
    assert reply.usage.prompt_tokens > 0


def test_the_native_api_and_the_python_client(proxied: Stack, upstream: Upstream) -> None:
    """predict, generate and chat ride on the upstream's chat completions (the same answer as
    /v1 for the same messages), embed on its embeddings."""
    whole = _whole_chat(proxied, upstream.chat_model).choices[0].message.content
    with Client(proxied.api_base, proxied.token) as client:
        assert client.predict(upstream.chat_model, prompt="hi there", **SAMPLING) == whole
        assert "".join(client.generate(upstream.chat_model, prompt="hi there", **SAMPLING)) == (
            whole
        )
        chat = client.generate(upstream.chat_model, "chat", messages=USER, **SAMPLING)
        assert "".join(chat) == whole
        (vector,) = client.predict(upstream.embedding_model, "embed", input=["q"])
    expected = _openai(proxied).embeddings.create(
        model=upstream.embedding_model, input=["q"], encoding_format="float"
    )
    assert vector == pytest.approx(expected.data[0].embedding)
    native = httpx.post(
        f"{proxied.api_base}/v2/models/{upstream.chat_model}/predict",
        headers=proxied.headers,
        json={"prompt": "hi there", **SAMPLING},
        timeout=30,
    ).json()
    if upstream.name == "llama":
        # llama-cpp-python 0.3.36 ignores stream_options.include_usage, which the runner asks
        # for on the native methods' streams: no counts to pass on.
        assert "usage" not in native
    else:
        assert native["usage"]["prompt_tokens"] > 0
        _check_completion_tokens(upstream, native["usage"]["completion_tokens"])


def test_errors_keep_their_status(proxied: Stack, upstream: Upstream) -> None:
    """A model nobody serves is a 404 from edge-runner; a bad field is the upstream's
    refusal, passed on with its message."""
    post = {"headers": proxied.headers, "timeout": 30}
    url = f"{proxied.api_base}/v1/chat/completions"
    missing = httpx.post(url, json={"model": "gpt-9", "messages": USER}, **post)  # type: ignore[arg-type]
    assert missing.status_code == 404 and "gpt-9" in missing.json()["error"]["message"]
    body = {"model": upstream.chat_model, "messages": USER, "max_tokens": "x"}
    refused = httpx.post(url, json=body, **post)  # type: ignore[arg-type]
    assert "max_tokens" in refused.json()["error"]["message"]
    if upstream.name == "llama":
        # llama-cpp-python answers its request validation errors with 500 (OpenAI: 400); the
        # runner cannot tell that from a crash, so it stays a server error here.
        assert refused.status_code >= 500, refused.text
    else:
        assert refused.status_code == 400, refused.text


# -- the fake only --------------------------------------------------------------------------


@FAKE_ONLY
def test_the_fakes_exact_answers_pass_through(proxied: Stack) -> None:
    """The fake's echoes and word counts come back unchanged: chat (whole and streamed, usage
    included), completions, embeddings, the native methods, and the hello model folder."""
    client = _openai(proxied)
    reply = client.chat.completions.create(model="llama3.2", messages=USER)  # type: ignore[arg-type]
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
    with Client(proxied.api_base, proxied.token) as native:
        assert native.predict("llama3.2", prompt="yo") == "echo: yo"
        assert "".join(native.generate("llama3.2", prompt="a b")) == "echo: a b"
        chat = native.generate("llama3.2", "chat", messages=[{"role": "user", "content": "z"}])
        assert "".join(chat) == "echo: z"


@FAKE_ONLY
def test_upstream_errors_keep_their_message(proxied: Stack) -> None:
    """A 400 upstream is a 400 here, with the upstream's own message."""
    response = httpx.post(
        f"{proxied.api_base}/v1/chat/completions",
        headers=proxied.headers,
        json={"model": "hello", "messages": [{"role": "user", "content": "x"}], "max_tokens": "x"},
    )
    assert response.status_code == 400
    assert "max_tokens" in response.json()["error"]["message"]


@FAKE_ONLY
def test_an_upstream_outage_is_503_then_heals(proxied: Stack, upstream: Upstream) -> None:
    """Upstream gone: its models are unavailable (503); once it is back they serve again."""
    fake = upstream.stack
    assert fake is not None
    port = fake.plane.settings.port  # type: ignore[union-attr]
    fake.stop_control()

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
    fake.start_control(port=port)
    wait_for(lambda: status() == "online", "the upstream models to be back")


def test_load_errors_say_what_was_tried() -> None:
    """Nothing listening, or a model the upstream lacks: a ConfigError naming both."""
    with pytest.raises(ConfigError, match="no OpenAI-compatible server answers") as caught:
        OpenAIUpstreamBackend("http://127.0.0.1:9/v1").load()
    assert "127.0.0.1:9/v1/models" in str(caught.value)
    assert normalize_base_url("127.0.0.1:8000") == "http://127.0.0.1:8000/v1"
    assert normalize_base_url("http://h:1/api/v1/") == "http://h:1/api/v1"


@FAKE_ONLY
def test_a_model_the_upstream_lacks_is_refused(upstream: Upstream) -> None:
    """--models naming something the upstream does not list fails at start, listing what it has."""
    backend = OpenAIUpstreamBackend(upstream.base_url, ["gpt-9"], api_key=upstream.api_key)
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


class _Empty(_CutStream):
    """llama-cpp-python's answer to a streamed prompt longer than its context: 200, an event
    stream, and nothing in it."""

    def do_POST(self) -> None:  # noqa: N802 - the handler's API
        self.rfile.read(int(self.headers["Content-Length"]))
        self._send(b"", "text/event-stream")


class _Crashes(_CutStream):
    """llama-cpp-python's 500: the message, then its traceback with the server's paths."""

    def do_POST(self) -> None:  # noqa: N802 - the handler's API
        self.rfile.read(int(self.headers["Content-Length"]))
        message = 'bad role\n\n  File "/srv/llama_cpp/server/app.py", line 376, in create\n'
        body = json.dumps({"error": {"message": message, "type": "internal_server_error"}})
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())


@pytest.mark.parametrize(
    ("handler", "code", "words"),
    [
        (_CutStream, ErrorCode.BACKEND_UNAVAILABLE, r"without \[DONE\]"),
        (_Interrupted, ErrorCode.MODEL_ERROR, "no finish_reason"),
        (_Empty, ErrorCode.MODEL_ERROR, "empty event stream"),
    ],
    ids=["no-done", "no-finish-reason", "empty"],
)
def test_a_stream_cut_short_is_an_error_not_a_short_answer(
    handler: type[_CutStream], code: str, words: str
) -> None:
    """A stream that ends without ``data: [DONE]`` (a server that died mid-answer), or with it
    but without any ``finish_reason`` (llama-cpp-python interrupting an answer for another
    request), fails the task instead of passing for a complete answer; so does an empty one,
    but as the request's failure, not as the server gone (it answered in good order)."""
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


def test_an_upstream_crash_reports_its_message_without_its_traceback() -> None:
    """A 500 whose message carries the server's traceback: the client gets the message, not
    the server's file paths."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Crashes)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    backend = OpenAIUpstreamBackend(f"http://127.0.0.1:{server.server_port}/v1")
    try:
        backend.load()
        body = {"messages": [{"role": "user", "content": "x"}]}
        with pytest.raises(BackendError) as caught:
            backend.call("m", "openai.chat.completions", json.dumps(body).encode(), Event())
        assert caught.value.code == ErrorCode.MODEL_ERROR
        assert str(caught.value) == "upstream (500): bad role"
    finally:
        backend.close()
        server.shutdown()
        server.server_close()
