"""Ollama models getting ready, and Ollama failing, through the real control plane and tunnel.

These need a server the test can steer (hold a pull, hold a load, die mid-stream), so they run
against the labelled fake only (tests/fakes/ollama.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from edge_runner.backends.ollama import OllamaBackend
from edge_runner.client import parse_sse
from edge_runner.errors import ConfigError
from tests.conftest import MS, Stack, model_record, model_status, post_predict, wait_for
from tests.fakes.ollama import FakeModel, FakeOllama


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    """llama3.2 pulled; qwen2.5 known to the registry but not pulled."""
    with FakeOllama(models={"llama3.2": FakeModel(), "qwen2.5": FakeModel(present=False)}) as f:
        yield f


def _backend(fake: FakeOllama, *models: str, **options: Any) -> OllamaBackend:
    return OllamaBackend(fake.url, list(models), probe_interval=50 * MS, **options)


def test_a_pull_in_progress_answers_503_with_progress(stack: Stack, fake: FakeOllama) -> None:
    """While a model downloads, calls get 503 + Retry-After + the percentage, then it serves."""
    fake.hold_pull.set()
    stack.start_runner(backend=_backend(fake, "qwen2.5"))
    wait_for(fake.pull_paused.is_set, "the pull to be under way")
    wait_for(lambda: "%" in str((model_record(stack, "qwen2.5") or {}).get("message")), "progress")
    model = model_record(stack, "qwen2.5")
    assert model is not None and model["status"] == "loading"
    assert 0 < model["progress"] < 1 and model["message"].startswith("qwen2.5 is downloading: ")
    response = post_predict(stack, "qwen2.5")
    assert response.status_code == 503
    assert 1 <= int(response.headers["retry-after"]) <= 30
    error = response.json()["error"]
    assert error["code"] == "MODEL_LOADING" and "qwen2.5 is downloading: " in error["message"]
    assert " %" in error["message"]
    client = openai.OpenAI(base_url=f"{stack.api_base}/v1", api_key=stack.token, max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="qwen2.5", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 503
    fake.hold_pull.clear()
    wait_for(lambda: model_status(stack, "qwen2.5") == "online", "the model to be ready")
    assert post_predict(stack, "qwen2.5").json()["output"] == "echo: hi"


def test_a_cold_model_is_loading_until_ollama_has_loaded_it(stack: Stack, fake: FakeOllama) -> None:
    """A present model is loaded into memory before it is READY; meanwhile 503 'loading'."""
    fake.hold_load.set()
    stack.start_runner(backend=_backend(fake, "llama3.2", keep_alive="10m", num_ctx=4096))
    wait_for(fake.load_paused.is_set, "Ollama to be loading the model")
    response = post_predict(stack, "llama3.2")
    assert response.status_code == 503
    assert "llama3.2 is loading into memory" in response.json()["error"]["message"]
    fake.hold_load.clear()
    wait_for(lambda: model_status(stack, "llama3.2") == "online", "the model to be ready")
    assert "llama3.2:latest" in fake.loaded
    load = next(body for path, body in fake.requests if path == "/api/generate")
    assert "prompt" not in load  # an empty request loads the model (Ollama's docs)
    assert load["keep_alive"] == "10m" and load["options"] == {"num_ctx": 4096}
    assert post_predict(stack, "llama3.2").status_code == 200


def test_a_loaded_model_is_ready_at_once(stack: Stack, fake: FakeOllama) -> None:
    """A model /api/ps already lists is not loaded again."""
    fake.loaded.add("llama3.2:latest")
    stack.start_runner(backend=_backend(fake, "llama3.2"))
    wait_for(lambda: model_status(stack, "llama3.2") == "online", "the model to be ready")
    assert [p for p, _ in fake.requests if p == "/api/generate"] == []


def test_an_unknown_model_is_withdrawn_with_the_local_models_named(
    stack: Stack, fake: FakeOllama, caplog: pytest.LogCaptureFixture
) -> None:
    """A name Ollama's registry lacks is not registered; the error lists what exists and how."""
    caplog.set_level(logging.ERROR, logger="edge_runner.backends.ollama")
    stack.start_runner(backend=_backend(fake, "llama3.2", "no-such-model"))
    wait_for(lambda: model_status(stack, "no-such-model") == "absent", "the model to be withdrawn")
    assert model_status(stack, "llama3.2") in ("loading", "online")
    message = next(r.getMessage() for r in caplog.records if "no-such-model" in r.getMessage())
    assert "registry has no model 'no-such-model'" in message
    assert "llama3.2:latest" in message and "ollama pull" in message
    wait_for(lambda: model_status(stack, "llama3.2") == "online", "llama3.2 to be ready")
    assert post_predict(stack, "llama3.2").status_code == 200
    assert post_predict(stack, "no-such-model").status_code == 404


def test_a_failed_pull_registers_nothing_and_a_runner_left_empty_stops(
    stack: Stack, fake: FakeOllama
) -> None:
    """Disk full during the only pull: the runner stops with the message; no model remains."""
    fake.fail_pull = "write /root/.ollama/models/blobs: no space left on device"
    running = stack.start_runner(backend=_backend(fake, "qwen2.5"), wait=False)
    wait_for(running.task.done, "the runner to stop")
    with pytest.raises(ConfigError, match="no space left on device") as caught:
        running.task.result()
    assert "nothing was registered" in str(caught.value)
    assert model_record(stack, "qwen2.5") is None
    assert fake.present == ["llama3.2:latest"]


def test_ollama_dying_mid_stream_fails_that_task_and_the_runner_recovers(
    stack: Stack, fake: FakeOllama
) -> None:
    """BACKEND_UNAVAILABLE for the stream, 503 while Ollama is down, serving once it is back."""
    running = stack.start_runner(backend=_backend(fake, "llama3.2"))
    wait_for(lambda: model_status(stack, "llama3.2") == "online", "the model to be ready")
    fake.hold.set()
    with (
        httpx.Client(headers=stack.headers, timeout=30) as client,
        client.stream(
            "POST",
            f"{stack.api_base}/v2/models/llama3.2/generate",
            json={"prompt": "a b c d"},
        ) as r,
    ):
        events = parse_sse(r.iter_lines())
        assert next(events)[0] == "chunk"
        wait_for(fake.paused.is_set, "Ollama to be holding the stream")
        fake.die()
        kind, data = next(events)
    assert kind == "error" and json.loads(data)["code"] == "BACKEND_UNAVAILABLE"
    fake.hold.clear()
    wait_for(
        lambda: model_status(stack, "llama3.2") == "unavailable", "the model to be unavailable"
    )
    response = post_predict(stack, "llama3.2")
    assert response.status_code == 503 and response.json()["error"]["code"] == "MODEL_UNAVAILABLE"
    assert "not answering" in response.json()["error"]["message"]
    assert not running.task.done()
    fake.revive()
    wait_for(lambda: model_status(stack, "llama3.2") == "online", "the runner to recover")
    assert post_predict(stack, "llama3.2").json()["output"] == "echo: hi"


def test_an_error_inside_a_stream_reaches_the_client(stack: Stack, fake: FakeOllama) -> None:
    """Ollama's {"error"} mid-stream is an error event (native) and an error (OpenAI client)."""
    stack.start_runner(backend=_backend(fake, "llama3.2"))
    wait_for(lambda: model_status(stack, "llama3.2") == "online", "the model to be ready")
    fake.stream_error = "llama runner process has terminated: signal: killed"
    with httpx.Client(headers=stack.headers, timeout=30) as client:
        r = client.post(f"{stack.api_base}/v2/models/llama3.2/generate", json={"prompt": "a b"})
    events = list(parse_sse(iter(r.text.splitlines())))
    assert events[0][0] == "chunk" and events[-1][0] == "error"
    error = json.loads(events[-1][1])
    assert error["code"] == "MODEL_ERROR" and "signal: killed" in error["message"]
    client_ = openai.OpenAI(base_url=f"{stack.api_base}/v1", api_key=stack.token, max_retries=0)
    stream = client_.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": "a b"}], stream=True
    )
    with pytest.raises(openai.APIError, match="signal: killed"):
        list(stream)
    assert model_status(stack, "llama3.2") == "online"  # a model error is not an outage


def test_ollama_parallelism_caps_the_credit(
    stack: Stack, fake: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With OLLAMA_NUM_PARALLEL=1 a second request waits at the control plane, not in Ollama."""
    monkeypatch.setenv("OLLAMA_NUM_PARALLEL", "1")
    stack.start_runner(backend=_backend(fake, "llama3.2"), pool_size=8)
    wait_for(lambda: model_status(stack, "llama3.2") == "online", "the model to be ready")
    fake.hold.set()
    with (
        httpx.Client(headers=stack.headers, timeout=30) as first,
        first.stream(
            "POST", f"{stack.api_base}/v2/models/llama3.2/generate", json={"prompt": "a b"}
        ) as r,
    ):
        lines = r.iter_lines()  # held: dropping the iterator would close the stream
        assert next(lines) == "event: chunk"
        second = stack.loop.submit(_async_predict(stack))
        wait_for(
            lambda: (model_record(stack, "llama3.2") or {}).get("queued") == 1, "a queued task"
        )
        prompts = [b["prompt"] for p, b in fake.requests if p == "/api/generate" and "prompt" in b]
        assert prompts == ["a b"]  # the second request is not in Ollama
        fake.hold.clear()
    assert second.result(10).status_code == 200


async def _async_predict(stack: Stack) -> httpx.Response:
    async with httpx.AsyncClient(headers=stack.headers, timeout=30) as client:
        return await client.post(
            f"{stack.api_base}/v2/models/llama3.2/predict", json={"prompt": "x"}
        )


def test_openai_tools_and_tool_calls(stack: Stack, fake: FakeOllama) -> None:
    """Tools reach Ollama; its tool calls come back in OpenAI's shape, whole and streamed."""
    stack.start_runner(backend=_backend(fake, "llama3.2"))
    wait_for(lambda: model_status(stack, "llama3.2") == "online", "the model to be ready")
    client = openai.OpenAI(base_url=f"{stack.api_base}/v1", api_key=stack.token, max_retries=0)
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "shout",
                "description": "Shout a text",
                "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
            },
        }
    ]
    messages: Any = [{"role": "user", "content": "please use the tool"}]
    reply = client.chat.completions.create(model="llama3.2", messages=messages, tools=tools)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.function.name == "shout"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"text": "please use the tool"}  # type: ignore[union-attr]
    sent = [body for path, body in fake.requests if path == "/api/chat"][-1]
    assert sent["tools"][0]["function"]["name"] == "shout"
    chunks = list(
        client.chat.completions.create(
            model="llama3.2", messages=messages, tools=tools, stream=True
        )
    )
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert [tc.function.name for tc in calls] == ["shout"]  # type: ignore[union-attr]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # The conversation goes on with the tool's answer, mapped to Ollama's tool message.
    follow = [
        *messages,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "DONE"},
    ]
    client.chat.completions.create(model="llama3.2", messages=follow, tools=tools)
    sent = [body for path, body in fake.requests if path == "/api/chat"][-1]
    assert sent["messages"][1]["tool_calls"][0]["function"]["arguments"] == {
        "text": "please use the tool"
    }
    assert sent["messages"][2] == {"role": "tool", "content": "DONE", "tool_name": "shout"}


def test_images_must_be_inline_data(stack: Stack, fake: FakeOllama) -> None:
    """data: images reach Ollama; a path or a remote URL is refused before Ollama sees it."""
    stack.start_runner(backend=_backend(fake, "llama3.2"))
    wait_for(lambda: model_status(stack, "llama3.2") == "online", "the model to be ready")
    png = "iVBORw0KGgo="
    client = openai.OpenAI(base_url=f"{stack.api_base}/v1", api_key=stack.token, max_retries=0)
    content: Any = [
        {"type": "text", "text": "what is it"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
    ]
    reply = client.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": content}]
    )
    assert reply.choices[0].message.content == "echo: what is it (1 images)"
    sent = [body for path, body in fake.requests if path == "/api/chat"][-1]
    assert sent["messages"][0]["images"] == [png]

    def chats() -> int:  # not all requests: the runner's health probes come at any time
        return sum(path == "/api/chat" for path, _ in fake.requests)

    before = chats()
    for url in ("data:image/png;base64,/etc/passwd", "https://example.invalid/cat.png"):
        bad: Any = [{"type": "image_url", "image_url": {"url": url}}]
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(
                model="llama3.2", messages=[{"role": "user", "content": bad}]
            )
    native = httpx.post(
        f"{stack.api_base}/v2/models/llama3.2/chat",
        headers=stack.headers,
        json={"messages": [{"role": "user", "content": "x", "images": ["/etc/passwd"]}]},
    )
    assert native.status_code == 400 and "base64" in native.json()["error"]["message"]
    assert chats() == before


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/v1/chat/completions", {"messages": "hi"}, "`messages` must be an array"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "x"}], "max_tokens": "many"},
            "`max_tokens` must be a number",
        ),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "robot", "content": "x"}]},
            "messages[0].role must be one of",
        ),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}},
            "`response_format` must be",
        ),
        ("/v1/completions", {"prompt": 5}, "`prompt` must be a string"),
        ("/v1/completions", {"prompt": ["a", "b"]}, "one at a time"),
        ("/v1/embeddings", {"input": [1, 2]}, "`input` must be a string"),
        ("/v1/embeddings", {"input": "x", "encoding_format": "hex"}, "`encoding_format` must"),
    ],
)
def test_malformed_openai_requests_are_400(
    stack: Stack, fake: FakeOllama, path: str, body: dict[str, Any], fragment: str
) -> None:
    """Bad OpenAI fields get a 400 naming the field; the runner keeps serving."""
    stack.start_runner(backend=_backend(fake, "llama3.2"))
    wait_for(lambda: model_status(stack, "llama3.2") == "online", "the model to be ready")
    response = httpx.post(
        f"{stack.api_base}{path}", headers=stack.headers, json={"model": "llama3.2", **body}
    )
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]["message"]
    assert post_predict(stack, "llama3.2").status_code == 200
