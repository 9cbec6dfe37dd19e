"""OpenAIModelClass folders: a Clarifai-style folder wrapping an OpenAI-compatible server.

The folder is tests/clarifai_corpus/openai-wrapper, as Clarifai's templates write it (config.yaml
with ``model_type_id: openai``, ``client = OpenAI(base_url=...)`` from the environment, a
``predict``/``generate`` building messages with ``build_openai_messages``), served unchanged by a
real runner through the real tunnel. The shared tests run once per upstream
(tests/integration/openai_upstreams.py): the fake (a second edge-runner control plane) and,
marked ``engine``, llama.cpp's server on the tiny generated model. They check what holds for
any OpenAI-compatible server: shapes, usage passed on, the same text whole and streamed at
temperature 0.

``make test-clarifai`` runs this file with the clarifai package installed too: the same folders,
their classes derived from the package's OpenAIModelClass and adapted.

The error tests use a labelled stub server (:class:`_Stub`, http.server on 127.0.0.1:0) that
lists one model and answers every completion with a fixed status, so a 4xx passthrough and a
refused connection are exact.
"""

from __future__ import annotations

import base64
import http.server
import json
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from edge_runner.cli.main import main
from edge_runner.compat import clarifai as compat
from edge_runner.errors import ModelFolderError
from tests.conftest import ROOT, Stack
from tests.integration.openai_upstreams import Upstream, llama_engine, upstream

__all__ = ["llama_engine", "upstream"]  # the fixtures, imported so pytest finds them here

FOLDER = ROOT / "tests" / "clarifai_corpus" / "openai-wrapper"
MODEL = "local-llm"
USER = [{"role": "user", "content": "hi there"}]
SAMPLING = {"max_tokens": 8, "temperature": 0}


def _point_at(monkeypatch: pytest.MonkeyPatch, base_url: str, key: str, model: str | None) -> None:
    """The folder's environment: its server (it reads these at import, as a user's would)."""
    monkeypatch.setenv("LOCAL_LLM_BASE_URL", base_url)
    monkeypatch.setenv("LOCAL_LLM_API_KEY", key)
    if model is None:
        monkeypatch.delenv("LOCAL_LLM_MODEL", raising=False)
    else:
        monkeypatch.setenv("LOCAL_LLM_MODEL", model)


@pytest.fixture
def wrapped(stack: Stack, upstream: Upstream, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """A runner serving the folder, pointed at the upstream.

    The fake lists several models, so the folder names one; the engine lists one, so the
    folder leaves ``model`` unset and the class picks what the server lists.
    """
    model = upstream.chat_model if upstream.name == "fake" else None
    _point_at(monkeypatch, upstream.base_url, upstream.api_key, model)
    stack.start_runner(FOLDER)
    return stack


def _openai(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.api_base}/v1", api_key=stack.token, max_retries=0)


def _v2(stack: Stack, method: str, **args: object) -> httpx.Response:
    return httpx.post(
        f"{stack.api_base}/v2/models/{MODEL}/{method}",
        headers=stack.headers,
        json=args,
        timeout=60,
    )


def _events(stack: Stack, method: str, **args: object) -> list[object]:
    with stack.client() as client:
        return list(client.generate(MODEL, method, **args))


def test_v1_models_and_spec(wrapped: Stack) -> None:
    """The folder is listed on /v1/models and declared as serving chat and embeddings."""
    listed = [m.id for m in _openai(wrapped).models.list().data]
    assert MODEL in listed
    with wrapped.client() as client:
        model = client.model(MODEL)
    assert model["model_type_id"] == "openai"
    assert set(model["openai"]) == {"chat.completions", "embeddings"}
    names = {m["name"] for m in model["methods"]}
    assert {"openai_transport", "openai_stream_transport", "predict", "generate"} <= names


def test_v1_chat_whole_and_streamed(wrapped: Stack, upstream: Upstream) -> None:
    """/v1 chat through openai_transport and openai_stream_transport: same text, usage kept."""
    client = _openai(wrapped)
    whole = client.chat.completions.create(model=MODEL, messages=USER, **SAMPLING)  # type: ignore[call-overload]
    assert whole.model == MODEL
    assert whole.choices[0].finish_reason in ("stop", "length")
    text = whole.choices[0].message.content
    assert isinstance(text, str) and text
    assert whole.usage is not None and whole.usage.prompt_tokens > 0
    chunks = list(
        client.chat.completions.create(  # type: ignore[call-overload]
            model=MODEL,
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
            **SAMPLING,
        )
    )
    assert all(c.model == MODEL for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)
    if upstream.name == "llama":
        # llama-cpp-python 0.3.36 ignores stream_options.include_usage: no usage to pass on
        assert all(c.usage is None for c in chunks)
        return
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0
    assert chunks[-1].choices == []


def test_v1_stream_without_usage_has_no_usage_chunk(wrapped: Stack) -> None:
    """The class always asks its server for usage; a client that did not ask gets none."""
    stream = _openai(wrapped).chat.completions.create(
        model=MODEL, messages=USER, stream=True, **SAMPLING
    )
    chunks = list(stream)
    assert chunks and all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_v1_embeddings(wrapped: Stack, upstream: Upstream) -> None:
    """/v1/embeddings through openai_transport, where the served model embeds."""
    if upstream.embedding_model != upstream.chat_model:
        pytest.skip("the fake's chat model does not embed (the folder serves one model)")
    answer = _openai(wrapped).embeddings.create(model=MODEL, input=["a", "b"])
    assert [d.index for d in answer.data] == [0, 1]
    assert all(len(d.embedding) > 0 for d in answer.data)


def test_transport_methods_on_v2(wrapped: Stack, upstream: Upstream) -> None:
    """openai_transport and openai_stream_transport are methods: JSON in, JSON out."""
    msg = json.dumps({"messages": USER, **SAMPLING})
    r = _v2(wrapped, "openai_transport", msg=msg)
    assert r.status_code == 200, r.text
    answer = json.loads(r.json()["output"])
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"]
    stream_msg = json.dumps({"messages": USER, "stream": True, **SAMPLING})
    docs = [json.loads(str(e)) for e in _events(wrapped, "openai_stream_transport", msg=stream_msg)]
    if upstream.name != "llama":  # llama-cpp-python 0.3.36 ignores include_usage
        assert docs[-1]["usage"]["prompt_tokens"] > 0  # the class asks its server for usage
    text = "".join(d["choices"][0]["delta"].get("content") or "" for d in docs if d.get("choices"))
    assert text == answer["choices"][0]["message"]["content"]


def test_folder_predict_and_generate(wrapped: Stack) -> None:
    """The folder's own methods build messages (prompt + chat_history) and report usage."""
    history = [{"role": "system", "content": "Be brief."}]
    args = {"prompt": "hi there", "chat_history": history, "max_tokens": 8, "temperature": 0}
    r = _v2(wrapped, "predict", **args)
    assert r.status_code == 200, r.text
    text = r.json()["output"]
    assert isinstance(text, str) and text
    assert r.json()["usage"]["prompt_tokens"] > 0
    assert "".join(str(p) for p in _events(wrapped, "generate", **args)) == text


@pytest.mark.parametrize("upstream", ["fake"], indirect=True)  # the tiny engine has no vision
def test_folder_predict_with_an_image_and_tools(wrapped: Stack) -> None:
    """predict(prompt, image, tools, ...) as the reference's template takes them: an Image and
    a tool list pass the signature, build_openai_messages makes the multimodal message, the
    server accepts it, and the answer to the prompt comes back (the fake echoes the text part;
    what it did with the image is not checked here)."""
    png = base64.b64encode(_tiny_png()).decode()
    tools = [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "The weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    r = _v2(
        wrapped,
        "predict",
        prompt="what is this",
        image={"base64": png},
        tools=tools,
        max_tokens=8,
        temperature=0,
    )
    assert r.status_code == 200, r.text
    assert "what is this" in r.json()["output"]


def _tiny_png() -> bytes:
    """A 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def test_model_init_writes_a_folder_that_wraps_the_server(
    stack: Stack, upstream: Upstream, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`model init --model-type-id openai` writes an OpenAIModelClass folder: pointed at the
    server by its variables, it serves /v1 chat and its own predict and generate."""
    folder = tmp_path / "wrapper"
    assert main(["model", "init", str(folder), "--model-type-id", "openai"]) == 0
    assert "openai" in (folder / "requirements.txt").read_text()
    monkeypatch.setenv("LLM_BASE_URL", upstream.base_url)
    monkeypatch.setenv("LLM_API_KEY", upstream.api_key or "notset")
    monkeypatch.setenv("LLM_MODEL", upstream.chat_model)
    stack.start_runner(folder)
    reply = _openai(stack).chat.completions.create(
        model="wrapper",
        messages=[{"role": "user", "content": "hi there"}],
        max_tokens=8,
        temperature=0,
    )
    whole = reply.choices[0].message.content
    assert isinstance(whole, str) and reply.model == "wrapper"
    sampling = {"max_tokens": 8, "temperature": 0}
    with stack.client() as client:
        assert client.predict("wrapper", prompt="hi there", **sampling) == whole
        assert "".join(client.generate("wrapper", prompt="hi there", **sampling)) == whole


@pytest.mark.parametrize("upstream", ["fake"], indirect=True)  # exact texts: the fake echoes
def test_fake_texts_are_the_upstreams(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, upstream: Upstream
) -> None:
    """Against the fake (it echoes): the prompt the folder built is what reached the server."""
    _point_at(monkeypatch, upstream.base_url, upstream.api_key, upstream.chat_model)
    stack.start_runner(FOLDER)
    r = _v2(stack, "predict", prompt="ping pong")
    assert r.status_code == 200, r.text
    assert "ping pong" in r.json()["output"]


# -- a folder that overrides the transport ---------------------------------------------------

OVERRIDE = """
import json
import os
from typing import Iterator

from openai import OpenAI

from clarifai.runners.models.openai_class import OpenAIModelClass


class Tagged(OpenAIModelClass):
    client = OpenAI(base_url=os.environ["LOCAL_LLM_BASE_URL"], api_key="notset", max_retries=0)
    model = "stub-model"

    @OpenAIModelClass.method
    def openai_transport(self, msg: str) -> str:
        answer = json.loads(super().openai_transport(msg))
        if "choices" in answer:
            answer["choices"][0]["message"]["content"] += " [tagged]"
        return json.dumps(answer)

    @OpenAIModelClass.method
    def openai_stream_transport(self, msg: str) -> Iterator[str]:
        yield from super().openai_stream_transport(msg)
        yield json.dumps({"object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": {"content": " [tagged]"}, "finish_reason": None}]})

    @OpenAIModelClass.method
    def predict(self, prompt: str = "") -> str:
        answer = self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": prompt}]
        )
        return answer.choices[0].message.content
"""


class _Stub:
    """A labelled stub OpenAI server: lists ``stub-model``; answers chat with ``status``
    (200: a fixed completion, whole or streamed with usage)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                listing = {"object": "list", "data": [{"id": "stub-model", "object": "model"}]}
                self._send(200, json.dumps(listing).encode())

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if stub.status != 200:
                    error = {"error": {"message": "max_tokens is too large", "type": "invalid"}}
                    self._send(stub.status, json.dumps(error).encode())
                    return
                usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
                if not request.get("stream"):
                    message = {"role": "assistant", "content": "stub answer"}
                    doc = {
                        "id": "c1",
                        "object": "chat.completion",
                        "created": 1,
                        "model": "stub-model",
                        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                        "usage": usage,
                    }
                    self._send(200, json.dumps(doc).encode())
                    return
                base = {"id": "c1", "object": "chat.completion.chunk", "created": 1}
                events = [
                    {**base, "choices": [{"index": 0, "delta": {"content": "stub"}}]},
                    {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                    {**base, "choices": [], "usage": usage},
                ]
                body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
                self._send(200, body.encode(), "text/event-stream")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Stub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Stub]:
    """The stub server, and the folder's environment pointing at it."""
    with _Stub() as server:
        _point_at(monkeypatch, server.base_url, "notset", "stub-model")
        yield server


def _folder(root: Path, source: str, model_type: str = "openai") -> Path:
    folder = root / "wrapped"
    (folder / "1").mkdir(parents=True)
    (folder / "config.yaml").write_text(f"model:\n  id: {MODEL}\n  model_type_id: {model_type}\n")
    (folder / "requirements.txt").write_text("clarifai\nopenai\n")
    (folder / "1" / "model.py").write_text(source)
    return folder


def test_an_override_of_the_transport_is_obeyed(stack: Stack, stub: _Stub, tmp_path: Path) -> None:
    """/v1 goes through the folder's own openai_transport / openai_stream_transport."""
    stack.start_runner(_folder(tmp_path, OVERRIDE))
    client = _openai(stack)
    whole = client.chat.completions.create(model=MODEL, messages=USER)
    assert whole.choices[0].message.content == "stub answer [tagged]"
    assert whole.usage is not None and whole.usage.prompt_tokens == 3
    chunks = list(client.chat.completions.create(model=MODEL, messages=USER, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "stub [tagged]"
    )


def test_upstream_4xx_is_a_4xx_with_its_message(stack: Stack, stub: _Stub) -> None:
    """The server's 400 comes back as a 400 carrying its message, whole and streamed."""
    stack.start_runner(FOLDER)
    stub.status = 400
    client = _openai(stack)
    with pytest.raises(openai.BadRequestError) as whole:
        client.chat.completions.create(model=MODEL, messages=USER)
    assert "max_tokens is too large" in str(whole.value)
    assert "Traceback" not in str(whole.value)
    r = httpx.post(
        f"{stack.api_base}/v1/chat/completions",
        headers=stack.headers,
        json={"model": MODEL, "messages": USER, "stream": True},
    )
    assert r.status_code == 400, r.text
    assert "max_tokens is too large" in r.text
    r = _v2(stack, "predict", prompt="x")  # the folder's own method, its client's error
    assert r.status_code == 400, r.text
    assert "upstream (400): max_tokens is too large" in r.json()["error"]["message"]


def test_unreachable_upstream_is_a_retryable_503(stack: Stack, stub: _Stub, tmp_path: Path) -> None:
    """A server that stopped answering: 503 BACKEND_UNAVAILABLE, naming the server."""
    stack.start_runner(_folder(tmp_path, OVERRIDE))  # its client: max_retries=0, no backoff
    stub.__exit__()
    r = httpx.post(
        f"{stack.api_base}/v1/chat/completions",
        headers=stack.headers,
        json={"model": MODEL, "messages": USER},
        timeout=30,
    )
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "BACKEND_UNAVAILABLE"
    assert "Traceback" not in r.text
    r = _v2(stack, "predict", prompt="x")
    assert r.status_code == 503, r.text
    assert stub.base_url in r.json()["error"]["message"]


def test_transport_bad_json_and_unknown_endpoint_are_400(stack: Stack, stub: _Stub) -> None:
    """/v2 openai_transport: JSON that does not parse, or an openai_endpoint it does not
    route, is the request's fault (400), not an error object answered as output."""
    stack.start_runner(FOLDER)
    ours = not compat.real_clarifai_installed()  # the package words its messages its own way
    r = _v2(stack, "openai_transport", msg="{not json")
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "INVALID_ARGUMENT"
    assert "openai_transport()" in r.json()["error"]["message"]
    assert "not JSON" in r.json()["error"]["message"] or not ours
    r = _v2(stack, "openai_transport", msg=json.dumps({"openai_endpoint": "/audio/speech"}))
    assert r.status_code == 400, r.text
    assert "/audio/speech" in r.json()["error"]["message"]
    assert "/chat/completions" in r.json()["error"]["message"] or not ours


def test_client_not_set_names_the_class(stack: Stack, tmp_path: Path) -> None:
    """No client: the load fails naming the class and what to set."""
    source = (
        "from clarifai.runners.models.openai_class import OpenAIModelClass\n\n\n"
        "class NoClient(OpenAIModelClass):\n    model = 'x'\n"
    )
    with pytest.raises(ModelFolderError, match=r"NoClient\.client is not set.*OpenAI\("):
        stack.start_runner(_folder(tmp_path, source))


def test_model_the_server_does_not_list(
    stack: Stack, stub: _Stub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model the server does not list fails the load, naming what it lists."""
    monkeypatch.setenv("LOCAL_LLM_MODEL", "no-such-model")
    with pytest.raises(ModelFolderError, match=r"'no-such-model'.*it lists: stub-model"):
        stack.start_runner(FOLDER)


def test_model_type_openai_on_a_plain_class_is_served_with_a_warning(
    stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """model_type_id: openai on a plain ModelClass serves it as Clarifai does, and says what
    serving /v1 through a server needs."""
    source = (
        "from clarifai.runners.models.model_class import ModelClass\n\n\n"
        "class Plain(ModelClass):\n"
        "    @ModelClass.method\n"
        "    def predict(self, text: str) -> str:\n        return text\n"
    )
    stack.start_runner(_folder(tmp_path, source))
    assert "subclass OpenAIModelClass" in caplog.text
    r = _v2(stack, "predict", text="as is")
    assert r.status_code == 200 and r.json()["output"] == "as is"
