"""The Ollama fake follows the JSON shapes of Ollama's documented REST API (docs/api.md)."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import MS
from tests.fakes.ollama import EMBEDDING_SIZE, FakeModel, FakeOllama

TIMEOUT = 5_000 * MS


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    """A fake with llama3.2 pulled and qwen2.5:0.5b known to the registry but not pulled."""
    models = {"llama3.2": FakeModel(), "qwen2.5:0.5b": FakeModel(present=False, size=397_821_319)}
    with FakeOllama(models=models) as server:
        yield server


@pytest.fixture
def client(fake: FakeOllama) -> Iterator[httpx.Client]:
    """A plain httpx client pointed at the fake."""
    with httpx.Client(base_url=fake.url, timeout=TIMEOUT) as http:
        yield http


def _ndjson(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line]


def _chat(content: str, **extra: Any) -> dict[str, Any]:
    return {"model": "llama3.2", "messages": [{"role": "user", "content": content}], **extra}


def test_root_and_version(client: httpx.Client) -> None:
    """GET / says Ollama is running and /api/version names the fake."""
    assert client.get("/").text == "Ollama is running"
    assert client.get("/api/version").json() == {"version": "0.0.0-fake"}


def test_tags_lists_only_present_models(client: httpx.Client) -> None:
    """GET /api/tags lists pulled models in Ollama's shape, with the default tag added."""
    models = client.get("/api/tags").json()["models"]
    assert [m["name"] for m in models] == ["llama3.2:latest"]
    entry = models[0]
    assert entry["model"] == "llama3.2:latest"
    assert isinstance(entry["size"], int) and len(entry["digest"]) == 64
    assert {"format", "family", "parameter_size", "quantization_level"} <= entry["details"].keys()


def test_pull_streams_progress_then_the_model_is_present(
    fake: FakeOllama, client: httpx.Client
) -> None:
    """A streamed pull goes manifest, growing progress per layer, success; then tags list it."""
    response = client.post("/api/pull", json={"model": "qwen2.5:0.5b"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = _ndjson(response)
    assert lines[0] == {"status": "pulling manifest"}
    assert lines[-1] == {"status": "success"}
    progress = [line for line in lines if "digest" in line]
    assert len({line["digest"] for line in progress}) == 2
    for digest in {line["digest"] for line in progress}:
        layer = [line for line in progress if line["digest"] == digest]
        completed = [line["completed"] for line in layer]
        assert completed == sorted(completed) and completed[-1] == layer[0]["total"]
        assert layer[0]["status"] == f"pulling {digest[7:19]}"
    assert fake.present == ["llama3.2:latest", "qwen2.5:0.5b"]
    assert ("/api/pull", {"model": "qwen2.5:0.5b"}) in fake.requests


def test_pull_without_streaming_answers_once(client: httpx.Client) -> None:
    """With stream false a pull answers a single {"status": "success"}."""
    response = client.post("/api/pull", json={"model": "qwen2.5:0.5b", "stream": False})
    assert response.json() == {"status": "success"}


def test_pull_of_an_unknown_model_fails_like_ollama(client: httpx.Client) -> None:
    """Pulling a name the registry lacks streams an error line (500 when not streaming)."""
    lines = _ndjson(client.post("/api/pull", json={"model": "nope"}))
    assert lines == [
        {"status": "pulling manifest"},
        {"error": "pull model manifest: file does not exist"},
    ]
    response = client.post("/api/pull", json={"model": "nope", "stream": False})
    assert response.status_code == 500
    assert "error" in response.json()


def test_fail_pull_answers_the_error_and_leaves_the_model_absent(
    fake: FakeOllama, client: httpx.Client
) -> None:
    """fail_pull makes a pull end with that error, and the model stays unpulled."""
    fake.fail_pull = "registry unreachable"
    lines = _ndjson(client.post("/api/pull", json={"model": "qwen2.5:0.5b"}))
    assert lines[-1] == {"error": "registry unreachable"}
    assert fake.present == ["llama3.2:latest"]


def test_chat_streams_word_chunks_then_a_final_summary(
    fake: FakeOllama, client: httpx.Client
) -> None:
    """A streamed chat sends assistant chunks that join to the echo, then done with counts."""
    body = _chat("hello there", options={"num_ctx": 4096}, keep_alive="5m")
    lines = _ndjson(client.post("/api/chat", json=body))
    chunks, final = lines[:-1], lines[-1]
    assert all(c["done"] is False and c["message"]["role"] == "assistant" for c in chunks)
    assert all(c["model"] == "llama3.2" and c["created_at"].endswith("Z") for c in chunks)
    assert "".join(c["message"]["content"] for c in chunks) == "echo: hello there"
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["prompt_eval_count"] == 2 and final["eval_count"] == 3
    assert final["total_duration"] > 0 and final["eval_duration"] > 0
    assert fake.requests[-1] == ("/api/chat", body)
    assert fake.chunks_sent == 3


def test_chat_without_streaming_and_num_predict(client: httpx.Client) -> None:
    """With stream false one object holds the message; a positive num_predict caps words (reason
    length), 0 or less does not."""
    whole = client.post("/api/chat", json=_chat("a b c", stream=False)).json()
    assert whole["message"] == {"role": "assistant", "content": "echo: a b c"}
    assert whole["done"] is True and whole["done_reason"] == "stop"
    body = _chat("a b c", stream=False, options={"num_predict": 2})
    capped = client.post("/api/chat", json=body).json()
    assert capped["message"]["content"] == "echo: a"
    assert capped["done_reason"] == "length" and capped["eval_count"] == 2
    for unlimited in (0, -1):  # Ollama's runner limits only on a positive num_predict
        body = _chat("a b c", stream=False, options={"num_predict": unlimited})
        assert client.post("/api/chat", json=body).json()["message"]["content"] == "echo: a b c"


def test_chat_with_a_model_not_pulled_is_404(client: httpx.Client) -> None:
    """Chat, generate and embed answer Ollama's 404 for a model that is not pulled."""
    for path, body in (
        ("/api/chat", {"model": "qwen2.5:0.5b", "messages": []}),
        ("/api/generate", {"model": "qwen2.5:0.5b", "prompt": "hi"}),
        ("/api/embed", {"model": "qwen2.5:0.5b", "input": "hi"}),
    ):
        response = client.post(path, json=body)
        assert response.status_code == 404
        assert response.json() == {"error": 'model "qwen2.5:0.5b" not found, try pulling it first'}


def test_generate_streams_response_pieces(client: httpx.Client) -> None:
    """Generate answers with "response" pieces, streamed or in one object."""
    lines = _ndjson(client.post("/api/generate", json={"model": "llama3.2", "prompt": "hi you"}))
    assert "".join(line["response"] for line in lines) == "echo: hi you"
    assert lines[-1]["done"] is True and lines[-1]["response"] == ""
    body = {"model": "llama3.2:latest", "prompt": "hi", "stream": False}
    whole = client.post("/api/generate", json=body).json()
    assert whole["response"] == "echo: hi" and whole["model"] == "llama3.2:latest"


def test_embed_is_deterministic_unit_vectors(client: httpx.Client) -> None:
    """Embed takes a string or a list and returns one deterministic unit vector per input."""
    one = client.post("/api/embed", json={"model": "llama3.2", "input": "sky"}).json()
    many = client.post("/api/embed", json={"model": "llama3.2", "input": ["sky", "grass"]}).json()
    assert one["model"] == "llama3.2" and one["prompt_eval_count"] == 1
    assert len(one["embeddings"]) == 1 and len(many["embeddings"]) == 2
    assert many["embeddings"][0] == one["embeddings"][0] != many["embeddings"][1]
    vector = one["embeddings"][0]
    assert len(vector) == EMBEDDING_SIZE
    assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0)


def test_hold_pauses_a_stream_until_released(fake: FakeOllama, client: httpx.Client) -> None:
    """While hold is set a stream stops after its first chunk; clearing it lets the rest come."""
    fake.hold.set()
    with client.stream("POST", "/api/chat", json=_chat("one two")) as response:
        lines = response.iter_lines()
        assert json.loads(next(lines))["message"]["content"] == "echo:"
        assert fake.paused.wait(TIMEOUT)
        assert fake.chunks_sent == 1
        fake.hold.clear()
        rest = [json.loads(line) for line in lines if line]
    assert [r["done"] for r in rest] == [False, False, True]
    assert fake.disconnects == 0


def test_a_client_leaving_mid_stream_is_counted(fake: FakeOllama, client: httpx.Client) -> None:
    """A client that closes a held stream is seen as a disconnect and no more chunks are sent."""
    fake.hold.set()
    with client.stream("POST", "/api/chat", json=_chat("one two three")) as response:
        next(response.iter_lines())
        assert fake.paused.wait(TIMEOUT)
    assert fake.disconnected.wait(TIMEOUT)
    assert fake.disconnects == 1
    assert fake.chunks_sent == 1


def test_the_ollama_client_understands_the_fake(fake: FakeOllama) -> None:
    """The official ollama Python client can list, pull, chat and embed against the fake."""
    ollama = pytest.importorskip("ollama")
    api = ollama.Client(host=fake.url, timeout=TIMEOUT)
    assert [m.model for m in api.list().models] == ["llama3.2:latest"]
    statuses = [p.status for p in api.pull("qwen2.5:0.5b", stream=True)]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    reply = api.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
    assert reply.message.content == "echo: hi" and reply.done_reason == "stop"
    pieces = api.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert "".join(p.message.content or "" for p in pieces) == "echo: hi"
    assert len(api.embed(model="llama3.2", input=["a", "b"]).embeddings) == 2
    with pytest.raises(ollama.ResponseError) as caught:
        api.chat(model="missing", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 404


def test_ps_lists_what_a_request_loaded_and_keep_alive_zero_unloads(
    fake: FakeOllama, client: httpx.Client
) -> None:
    """An empty generate loads a model (Ollama's docs); keep_alive 0 unloads it; /api/ps shows."""
    assert client.get("/api/ps").json() == {"models": []}
    assert client.post("/api/generate", json={"model": "llama3.2"}).json()["done"] is True
    loaded = client.get("/api/ps").json()["models"]
    assert [m["name"] for m in loaded] == ["llama3.2:latest"]
    assert {"size_vram", "expires_at", "details"} <= loaded[0].keys()
    client.post("/api/generate", json={"model": "llama3.2", "keep_alive": 0})
    assert client.get("/api/ps").json() == {"models": []}


def test_show_and_capabilities(client: httpx.Client) -> None:
    """/api/show names capabilities; an embedding-only model refuses chat with Ollama's 400."""
    with FakeOllama(models={"nomic-embed-text": FakeModel(capabilities=("embedding",))}) as f:
        shown = httpx.post(f"{f.url}/api/show", json={"model": "nomic-embed-text"}).json()
        assert shown["capabilities"] == ["embedding"] and "details" in shown
        refused = httpx.post(f"{f.url}/api/chat", json=_chat("x", model="nomic-embed-text"))
        assert refused.status_code == 400
        assert refused.json() == {"error": '"nomic-embed-text" does not support chat'}
    assert client.post("/api/show", json={"model": "nope"}).status_code == 404


def test_stream_error_ends_a_stream_with_an_error_line(
    fake: FakeOllama, client: httpx.Client
) -> None:
    """stream_error: one chunk, then {"error": ...} and the end, as Ollama does on a crash."""
    fake.stream_error = "llama runner process has terminated"
    lines = _ndjson(client.post("/api/chat", json=_chat("a b c")))
    assert lines[0]["done"] is False and lines[-1] == {
        "error": "llama runner process has terminated"
    }
    assert len(lines) == 2


def test_die_cuts_streams_and_revive_serves_again(fake: FakeOllama) -> None:
    """die() refuses new connections and cuts a held stream; revive() is the same port again."""
    url = fake.url
    fake.hold.set()
    with (
        httpx.Client(timeout=TIMEOUT) as http,
        http.stream("POST", f"{url}/api/chat", json=_chat("one two three")) as response,
    ):
        lines = response.iter_lines()
        next(lines)
        assert fake.paused.wait(TIMEOUT)
        fake.die()
        with pytest.raises(httpx.HTTPError):
            list(lines)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/api/version", timeout=TIMEOUT)
    fake.hold.clear()
    fake.revive()
    assert fake.url == url and httpx.get(f"{url}/api/version").status_code == 200


def test_hold_pull_and_hold_load_pause_until_cleared(
    fake: FakeOllama, client: httpx.Client
) -> None:
    """hold_pull stops a pull after its first progress; hold_load stops a cold start."""
    fake.hold_pull.set()
    with client.stream("POST", "/api/pull", json={"model": "qwen2.5:0.5b"}) as response:
        lines = response.iter_lines()
        first = [json.loads(next(lines)) for _ in range(3)]
        assert first[-1]["completed"] > 0 and fake.pull_paused.wait(TIMEOUT)
        fake.hold_pull.clear()
        assert json.loads(list(lines)[-1]) == {"status": "success"}
    fake.hold_load.set()
    answer: list[str] = []
    request = threading.Thread(
        target=lambda: answer.append(
            client.post("/api/generate", json=_chat("x", stream=False) | {"prompt": "x"}).text
        )
    )
    request.start()
    assert fake.load_paused.wait(TIMEOUT) and "llama3.2:latest" not in fake.loaded
    fake.hold_load.clear()
    request.join(TIMEOUT)
    assert json.loads(answer[0])["response"] == "echo: x"
    assert "llama3.2:latest" in fake.loaded
