"""The native /v2 API through the real control plane, tunnel and runner."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from edge_runner.client import Client, parse_sse
from edge_runner.errors import TaskFailed
from edge_runner.protocol import PROTOCOL_VERSION, format_version
from tests.conftest import Stack, write_model


def test_predict_returns_output_and_task_id(hello_stack: Stack) -> None:
    """A unary call answers {task_id, output} with the X-Task-Id header."""
    r = httpx.post(
        f"{hello_stack.api_base}/v2/models/hello/predict",
        json={"text": "hi"},
        headers=hello_stack.headers,
    )
    assert r.status_code == 200
    body = r.json()
    assert body["output"] == "Hello, hi!"
    assert body["task_id"] == r.headers["x-task-id"]


def test_generate_streams_sse_chunks_then_done(hello_stack: Stack) -> None:
    """A streaming method answers SSE: chunk events with an index, then done."""
    with httpx.stream(
        "POST",
        f"{hello_stack.api_base}/v2/models/hello/generate",
        json={"text": "x", "n": 3},
        headers=hello_stack.headers,
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = list(parse_sse(r.iter_lines()))
    kinds = [e for e, _ in events]
    assert kinds == ["chunk", "chunk", "chunk", "done"]
    chunks = [json.loads(d) for e, d in events if e == "chunk"]
    assert [c["index"] for c in chunks] == [0, 1, 2]
    assert [c["output"] for c in chunks] == [f"{i}: Hello, x!\n" for i in range(3)]
    assert json.loads(events[-1][1])["task_id"] == r.headers["x-task-id"]


def test_client_predict_generate_models_runners(hello_stack: Stack) -> None:
    """The Python client covers predict, generate, models and runners."""
    with Client(hello_stack.api_base, hello_stack.token) as client:
        assert client.predict("hello", text="a") == "Hello, a!"
        assert list(client.generate("hello", text="b", n=2)) == ["0: Hello, b!\n", "1: Hello, b!\n"]
        models = client.models()
        assert [m["id"] for m in models] == ["hello"]
        assert models[0]["status"] == "online"
        assert {m["name"] for m in models[0]["methods"]} == {
            "predict",
            "generate",
            "chat",
            "stream",
        }
        runners = client.runners()
        assert len(runners) == 1
        assert runners[0]["status"] == "connected"
        assert runners[0]["models"] == ["hello"]
        assert runners[0]["pool_size"] == 4


def test_model_describes_signatures(hello_stack: Stack) -> None:
    """GET /v2/models/{id} lists methods with kinds, params and defaults."""
    r = httpx.get(f"{hello_stack.api_base}/v2/models/hello", headers=hello_stack.headers)
    methods = {m["name"]: m for m in r.json()["methods"]}
    assert methods["predict"]["kind"] == "unary"
    assert methods["generate"]["kind"] == "server_stream"
    params = {p["name"]: p for p in methods["generate"]["params"]}
    assert params["n"] == {"name": "n", "type": "int", "required": False, "default": 5}
    assert params["text"]["required"] is True


def test_model_exception_is_500_and_runner_keeps_serving(stack: Stack, tmp_path: Path) -> None:
    """A method that raises gives 500 with the exception's message; the next call works."""
    folder = write_model(
        tmp_path,
        "flaky",
        "    @ModelClass.method\n"
        "    def predict(self, text: str) -> str:\n"
        "        if text == 'boom':\n"
        "            raise ValueError('the model exploded')\n"
        "        return text.upper()\n",
    )
    stack.start_runner(folder)
    url = f"{stack.api_base}/v2/models/flaky/predict"
    bad = httpx.post(url, json={"text": "boom"}, headers=stack.headers)
    assert bad.status_code == 500
    assert bad.json()["error"]["code"] == "MODEL_ERROR"
    assert "ValueError: the model exploded" in bad.json()["error"]["message"]
    good = httpx.post(url, json={"text": "ok"}, headers=stack.headers)
    assert good.json()["output"] == "OK"


def test_stream_exception_after_output_is_an_error_event(stack: Stack, tmp_path: Path) -> None:
    """A generator that raises mid-stream ends the SSE with an error event."""
    folder = write_model(
        tmp_path,
        "halfway",
        "    @ModelClass.method\n"
        "    def generate(self, n: int) -> Iterator[int]:\n"
        "        for i in range(n):\n"
        "            yield i\n"
        "        raise RuntimeError('ran dry')\n",
    )
    stack.start_runner(folder)
    with Client(stack.api_base, stack.token) as client:
        seen = []
        try:
            for item in client.generate("halfway", n=2):
                seen.append(item)
        except TaskFailed as exc:
            assert exc.code == "MODEL_ERROR"
            assert "ran dry" in exc.message
        else:
            raise AssertionError("the stream should have ended with an error")
    assert seen == [0, 1]


def test_concurrent_calls_beyond_pool_size_all_complete(hello_stack: Stack) -> None:
    """More concurrent calls than worker slots queue at the control plane and all finish."""
    import concurrent.futures

    with (
        Client(hello_stack.api_base, hello_stack.token) as client,
        concurrent.futures.ThreadPoolExecutor(16) as pool,
    ):
        answers = list(pool.map(lambda i: client.predict("hello", text=str(i)), range(64)))
    assert answers == [f"Hello, {i}!" for i in range(64)]


def test_healthz_needs_no_token_and_info_does(stack: Stack) -> None:
    """/healthz is open; /v2/info needs a token and names the tunnel address."""
    assert httpx.get(f"{stack.api_base}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{stack.api_base}/v2/info").status_code == 401
    info = httpx.get(f"{stack.api_base}/v2/info", headers=stack.headers).json()
    assert info["protocol_version"] == format_version(PROTOCOL_VERSION)
    assert info["tunnel"]["grpc"].endswith(f":{stack.plane.grpc_port}")  # type: ignore[union-attr]


def test_async_client_matches_the_sync_one(hello_stack: Stack) -> None:
    """AsyncClient does predict, generate, models and runners on its own event loop."""
    import asyncio

    from edge_runner.client import AsyncClient

    async def use() -> tuple[object, list[object], list[str], int]:
        async with AsyncClient(hello_stack.api_base, hello_stack.token) as client:
            answer = await client.predict("hello", text="async")
            pieces = [p async for p in client.generate("hello", text="s", n=2)]
            models = [m["id"] for m in await client.models()]
            runners = len(await client.runners())
        return answer, pieces, models, runners

    answer, pieces, models, runners = asyncio.run(use())
    assert answer == "Hello, async!"
    assert pieces == ["0: Hello, s!\n", "1: Hello, s!\n"]
    assert models == ["hello"] and runners == 1


def test_client_errors_map_to_the_error_tree(hello_stack: Stack) -> None:
    """HTTP errors become typed exceptions carrying status, code and message."""
    from edge_runner.errors import BadRequest, ConnectionFailed, NotFound, Unauthorized

    with Client(hello_stack.api_base, hello_stack.token) as client:
        with pytest.raises(BadRequest) as bad:
            client.predict("hello", text=1)
        assert bad.value.status == 400 and bad.value.code == "INVALID_ARGUMENT"
        with pytest.raises(NotFound, match="hello"):
            client.predict("nope")
    with Client(hello_stack.api_base, "er_pat_wrong") as client, pytest.raises(Unauthorized):
        client.models()
    with (
        Client("http://127.0.0.1:9", "x") as client,
        pytest.raises(
            ConnectionFailed, match=r"cannot reach the control plane at http://127\.0\.0\.1:9"
        ),
    ):
        client.models()
