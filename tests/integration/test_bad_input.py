"""Malformed HTTP input gets a clear JSON error and loses nothing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from edge_runner.client import AsyncClient, Client
from edge_runner.errors import ApiError, NotFound
from tests.conftest import MS, SLOW_MODEL, Stack, wait_for, write_model


def _post(stack: Stack, path: str, **kwargs: object) -> httpx.Response:
    headers = {**stack.headers, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    return httpx.post(f"{stack.api_base}{path}", headers=headers, **kwargs)  # type: ignore[arg-type]


def _error(r: httpx.Response) -> dict[str, str]:
    assert r.headers["content-type"].startswith("application/json")
    return dict(r.json()["error"])


def test_malformed_json_is_400(hello_stack: Stack) -> None:
    """A body that is not JSON is 400 INVALID_JSON."""
    r = _post(
        hello_stack,
        "/v2/models/hello/predict",
        content=b'{"text": ',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    assert _error(r)["code"] == "INVALID_JSON"
    assert "not valid JSON" in _error(r)["message"]


@pytest.mark.parametrize(
    ("body", "kind"), [(b'"hi"', "JSON string"), (b"3", "JSON number"), (b"null", "JSON null")]
)
def test_body_not_an_object_is_400(hello_stack: Stack, body: bytes, kind: str) -> None:
    """A JSON body that is neither an object nor an array (a batch: test_batch.py) is 400
    naming what it got."""
    r = _post(hello_stack, "/v2/models/hello/predict", content=body)
    assert r.status_code == 400
    assert _error(r)["code"] == "INVALID_BODY"
    assert kind in _error(r)["message"]


def test_unknown_model_is_404_listing_known(hello_stack: Stack) -> None:
    """An unknown model id is 404 and the message lists the known ones."""
    r = _post(hello_stack, "/v2/models/nope/predict", json={})
    assert r.status_code == 404
    assert _error(r)["code"] == "UNKNOWN_MODEL"
    assert "hello" in _error(r)["message"]


def test_unknown_method_is_404_listing_methods(hello_stack: Stack) -> None:
    """An unknown method is 404 and the message lists the model's methods."""
    r = _post(hello_stack, "/v2/models/hello/shout", json={"text": "x"})
    assert r.status_code == 404
    assert _error(r)["code"] == "UNKNOWN_METHOD"
    assert "chat, generate, predict" in _error(r)["message"]


@pytest.mark.parametrize(
    ("args", "param", "words"),
    [
        ({"text": 5}, "text", "must be str"),
        ({"text": "x", "n": "three"}, "n", "must be int"),
        ({"text": "x", "n": True}, "n", "must be int"),
        ({}, "text", "missing"),
        ({"text": "x", "colour": "red"}, "colour", "unknown"),
    ],
)
def test_bad_arguments_are_400_naming_the_argument(
    hello_stack: Stack, args: dict[str, object], param: str, words: str
) -> None:
    """Wrong type, missing or unknown arguments are 400 naming the argument."""
    r = _post(hello_stack, "/v2/models/hello/generate", json=args)
    assert r.status_code == 400
    error = _error(r)
    assert error["code"] == "INVALID_ARGUMENT"
    assert error["param"] == param
    assert param in error["message"] and words in error["message"].lower()


def test_huge_body_is_413(stack: Stack) -> None:
    """A body over the limit is 413 before anything is queued."""
    stack.stop_control()
    stack.start_control(max_body_bytes=1024)
    stack.start_runner()
    r = _post(stack, "/v2/models/hello/predict", json={"text": "x" * 2048})
    assert r.status_code == 413
    assert _error(r)["code"] == "BODY_TOO_LARGE"
    ok = _post(stack, "/v2/models/hello/predict", json={"text": "small"})
    assert ok.json()["output"] == "Hello, small!"


def test_huge_chunked_body_is_413(stack: Stack) -> None:
    """A body without Content-Length is cut off at the limit too."""
    stack.stop_control()
    stack.start_control(max_body_bytes=1024)
    stack.start_runner()

    def pieces():  # type: ignore[no-untyped-def]
        for _ in range(64):
            yield b"x" * 64

    r = _post(stack, "/v2/models/hello/predict", content=pieces())
    assert r.status_code == 413


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer er_pat_wrong"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
    ],
)
def test_missing_or_wrong_token_is_401_json(hello_stack: Stack, headers: dict[str, str]) -> None:
    """Every API route but /healthz needs a valid bearer token."""
    for method, path in (
        ("POST", "/v2/models/hello/predict"),
        ("GET", "/v2/models"),
        ("GET", "/v2/runners"),
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
    ):
        r = httpx.request(method, f"{hello_stack.api_base}{path}", headers=headers, json={})
        assert r.status_code == 401, path
        assert _error(r)["code"] == "UNAUTHENTICATED"


def test_unknown_route_is_json_404(stack: Stack) -> None:
    """Even routing errors answer in the JSON error shape."""
    r = httpx.get(f"{stack.api_base}/v9/nothing", headers=stack.headers)
    assert r.status_code == 404
    assert _error(r)["code"] == "NOT_FOUND"


def test_a_json_body_for_a_stream_in_method_is_415(stack: Stack, tmp_path: Path) -> None:
    """A method that takes an input stream wants an NDJSON body (or the WebSocket route): a
    JSON one is 415, and the message says how to send."""
    folder = write_model(
        tmp_path,
        "duplex",
        "    @ModelClass.method\n"
        "    def stream(self, items: Iterator[str]) -> Iterator[str]:\n"
        "        for item in items:\n"
        "            yield item\n",
    )
    stack.start_runner(folder)
    model = httpx.get(f"{stack.api_base}/v2/models/duplex", headers=stack.headers).json()
    assert model["methods"][0]["kind"] == "bidi"
    r = _post(stack, "/v2/models/duplex/stream", json={"items": ["a"]})
    assert r.status_code == 415
    assert _error(r)["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert "application/x-ndjson" in _error(r)["message"]
    assert "/v2/models/duplex/stream/ws" in _error(r)["message"]


def test_deadline_is_504_and_frees_the_slot(stack: Stack, tmp_path: Path) -> None:
    """A task slower than the deadline is 504; it is cancelled and its slot serves the next."""
    stack.stop_control()
    stack.start_control(request_timeout=300 * MS)
    stack.start_runner(write_model(tmp_path, "slow", SLOW_MODEL), pool_size=1)
    r = _post(stack, "/v2/models/slow/wait", json={"seconds": 30})
    assert r.status_code == 504
    assert _error(r)["code"] == "DEADLINE_EXCEEDED"
    assert "did not answer within" in _error(r)["message"]
    quick = _post(stack, "/v2/models/slow/wait", json={"seconds": 0})
    assert quick.json()["output"] == "done"


def test_no_runner_online_is_503_with_retry_after(stack: Stack) -> None:
    """A known model with no runner waits out the deadline, then 503 + Retry-After."""
    running = stack.start_runner()
    stack.stop_runner(running)
    stack.stop_control()
    stack.start_control(request_timeout=200 * MS)  # same data dir: the model stays known
    r = _post(stack, "/v2/models/hello/predict", json={"text": "x"})
    assert r.status_code == 503
    assert _error(r)["code"] == "NO_RUNNER"
    assert int(r.headers["retry-after"]) > 0


def test_full_queue_is_429_with_retry_after(stack: Stack, tmp_path: Path) -> None:
    """Past max_queue waiting requests, the control plane answers 429 at once."""
    import concurrent.futures

    stack.stop_control()
    stack.start_control(max_queue=1, request_timeout=10_000 * MS)
    stack.start_runner(write_model(tmp_path, "slow", SLOW_MODEL), pool_size=1)
    url = f"{stack.api_base}/v2/models/slow/wait"
    with (
        httpx.Client(headers=stack.headers, timeout=30) as client,
        concurrent.futures.ThreadPoolExecutor(2) as pool,
    ):
        running = pool.submit(client.post, url, json={"seconds": 2})
        from tests.conftest import wait_for

        wait_for(lambda: stack.plane.state.dispatcher.links, "runner link")  # type: ignore[union-attr]
        link = next(iter(stack.plane.state.dispatcher.links.values()))  # type: ignore[union-attr]
        wait_for(lambda: link.tasks, "first task running")
        queued = pool.submit(client.post, url, json={"seconds": 0})
        wait_for(lambda: stack.plane.state.dispatcher.queued("admin", "slow") == 1, "queued task")  # type: ignore[union-attr]
        rejected = client.post(url, json={"seconds": 0})
        assert rejected.status_code == 429
        assert _error(rejected)["code"] == "QUEUE_FULL"
        assert rejected.headers["retry-after"] == "1"
        assert running.result().json()["output"] == "done"
        assert queued.result().json()["output"] == "done"


JSON_ROUTES = [
    "/v2/models/hello/predict",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v2/tokens",
    "/v2/users",
    "/v2/runners/enroll",
    "/v2/mcp/hello",
]


def _json_error(r: httpx.Response, path: str) -> dict[str, object]:
    """The error of a JSON answer, whichever shape the route answers in."""
    doc = r.json()
    if path.startswith("/v2/mcp/"):
        assert doc["jsonrpc"] == "2.0"
        return {"code": doc["error"]["data"]["code"], "message": doc["error"]["message"]}
    return dict(doc["error"])


@pytest.mark.parametrize("depth", [65, 1000, 10_000])
def test_deeply_nested_json_is_400_on_every_route(
    hello_stack: Stack, depth: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Nesting past 64 levels, even past the recursion limit, is 400 on every JSON route."""
    body = b'{"a":' * depth + b"1" + b"}" * depth
    for path in JSON_ROUTES:
        r = _post(hello_stack, path, content=body)
        assert r.status_code == 400, path
        error = _json_error(r, path)
        assert error["code"] == "INVALID_JSON", path
        assert "nested deeper than 64 levels" in str(error["message"])
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]


def test_nested_json_without_a_token_is_401_unread(stack: Stack) -> None:
    """The attack that gave a 500 on /v2/mcp without a token is a 401, body unread."""
    body = b"[" * 1000 + b"]" * 1000
    r = httpx.post(f"{stack.api_base}/v2/mcp/x", content=body)
    assert r.status_code == 401
    assert r.json()["error"]["data"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999"])
@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/v2/models/hello/predict", b'{"text": "x", "n": %s}'),
        ("/v1/chat/completions", b'{"model": "hello", "messages": [], "temperature": %s}'),
        ("/v2/tokens", b'{"name": "t", "expires_in": %s}'),
        ("/v2/mcp/hello", b'{"jsonrpc": "2.0", "id": %s, "method": "tools/list"}'),
    ],
)
def test_non_finite_numbers_are_invalid_json(
    hello_stack: Stack, path: str, template: bytes, value: bytes
) -> None:
    """NaN, Infinity and numbers beyond a float are not JSON (RFC 8259): 400."""
    r = _post(hello_stack, path, content=template % value)
    assert r.status_code == 400
    assert _json_error(r, path)["code"] == "INVALID_JSON"


def test_an_int_too_large_for_a_float_argument_is_400(stack: Stack, tmp_path: Path) -> None:
    """A 400-digit int where a float goes is an argument error, not an OverflowError."""
    folder = write_model(
        tmp_path,
        "scale",
        "    @ModelClass.method\n    def twice(self, x: float) -> float:\n        return 2 * x\n",
    )
    stack.start_runner(folder)
    r = _post(stack, "/v2/models/scale/twice", content=b'{"x": 1' + b"0" * 400 + b"}")
    assert r.status_code == 400
    assert _error(r)["param"] == "x" and "too large for a float" in _error(r)["message"]
    assert _post(stack, "/v2/models/scale/twice", json={"x": 2}).json()["output"] == 4.0


@pytest.mark.parametrize(
    "ttl", [1e-300, 0.5, 0, -1, 315_360_001, 10**30, "60", True, [1], {"s": 1}]
)
def test_expires_in_out_of_bounds_is_400_naming_them(stack: Stack, ttl: object) -> None:
    """expires_in below 1 s, over 10 years, or not a number: 400 naming the bounds."""
    r = _post(stack, "/v2/tokens", json={"name": "t", "expires_in": ttl})
    assert r.status_code == 400
    error = _error(r)
    assert error["param"] == "expires_in"
    assert "from 1 to 315360000 (10 years)" in error["message"]


@pytest.mark.parametrize("ttl", [1, 315_360_000, 3600.5])
def test_expires_in_within_bounds_makes_a_token(stack: Stack, ttl: float) -> None:
    """expires_in from 1 s to 10 years makes a token that works until then."""
    import time

    r = _post(stack, "/v2/tokens", json={"name": "t", "scopes": ["read"], "expires_in": ttl})
    assert r.status_code == 200
    assert abs(r.json()["expires_at"] - (time.time() + ttl)) < 60
    token = r.json()["token"]
    models = httpx.get(f"{stack.api_base}/v2/models", headers={"Authorization": f"Bearer {token}"})
    assert models.status_code == 200
    assert r.json()["id"] in {
        t["id"]
        for t in httpx.get(f"{stack.api_base}/v2/tokens", headers=stack.headers).json()["tokens"]
    }


def test_a_client_leaving_mid_body_is_logged_quietly(
    hello_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that hangs up halfway through its body is a DEBUG line, not a traceback."""
    import socket

    caplog.set_level(logging.DEBUG, logger="edge_runner.control.http_common")
    assert hello_stack.plane is not None
    sock = socket.create_connection(("127.0.0.1", hello_stack.plane.port))
    sock.sendall(
        b"POST /v2/models/hello/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
        + f"Authorization: Bearer {hello_stack.token}\r\n\r\n".encode()
        + b'{"text": '
    )
    sock.close()
    wait_for(
        lambda: any("left mid-body" in rec.getMessage() for rec in caplog.records),
        "the control plane to notice",
    )
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR or rec.exc_info]
    assert not any("Exception in ASGI" in rec.getMessage() for rec in caplog.records)


def test_a_bug_in_a_route_is_a_json_500_logged_once(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception no route handles is our JSON 500, logged once with its traceback."""
    assert stack.plane is not None and stack.plane.state is not None
    with httpx.Client(base_url=stack.api_base, headers=stack.headers) as client:
        assert client.get("/v2/tokens").status_code == 200  # the token is cached now
        stack.loop.call(stack.plane.state.registry.close)  # a real fault: the database is gone
        r = client.get("/v2/tokens")
        assert r.status_code == 500 and r.json()["error"]["code"] == "INTERNAL_ERROR"
        assert client.get("/healthz").status_code == 200  # the connection goes on
    logged = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert len(logged) == 1 and logged[0].exc_info is not None
    assert "GET /v2/tokens" in logged[0].getMessage()


def test_an_unparsable_request_is_json_400(stack: Stack) -> None:
    """A request line the HTTP parser refuses gets our JSON shape, not uvicorn's text."""
    import socket

    assert stack.plane is not None
    sock = socket.create_connection(("127.0.0.1", stack.plane.port), timeout=5)
    sock.sendall(b"GET /v2 models HTTP/1.1\r\nHost: x\r\n\r\n")
    raw = b""
    while chunk := sock.recv(65536):
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head
    assert json.loads(body)["error"]["code"] == "INVALID_HTTP"


@pytest.mark.parametrize(
    ("call", "code", "named"),
    [
        (lambda c: c.model(".."), "UNKNOWN_MODEL", "'..'"),
        (lambda c: c.model("a?b#c"), "UNKNOWN_MODEL", "'a?b#c'"),
        (lambda c: c.predict("..", "predict"), "UNKNOWN_MODEL", "'..'"),
        (lambda c: c.cancel(".."), "UNKNOWN_TASK", "'..'"),
        (lambda c: c.revoke_token(".."), "UNKNOWN_TOKEN", "'..'"),
        (lambda c: c.drain_runner("."), "UNKNOWN_RUNNER", "'.'"),
        (lambda c: c.runner_logs(".."), "UNKNOWN_RUNNER", "'..'"),
    ],
)
def test_client_values_stay_in_their_path_segment(
    hello_stack: Stack, call: object, code: str, named: str
) -> None:
    """Ids like .. or a?b reach the route they were meant for, which names them in its 404."""
    with Client(hello_stack.api_base, hello_stack.token) as client, pytest.raises(NotFound) as got:
        call(client)  # type: ignore[operator]
    assert got.value.code == code and named in str(got.value)


def test_a_client_value_cannot_leave_its_route(hello_stack: Stack) -> None:
    """model("../models") does not list the models: the value stays one path segment."""
    with Client(hello_stack.api_base, hello_stack.token) as client, pytest.raises(ApiError):
        client.model("../models")


def test_async_client_values_stay_in_their_path_segment(hello_stack: Stack) -> None:
    """The async client quotes path segments the same way."""
    import asyncio

    async def ask() -> None:
        async with AsyncClient(hello_stack.api_base, hello_stack.token) as client:
            await client.predict("..", "predict")

    with pytest.raises(NotFound, match="no model '..'"):
        asyncio.run(ask())


def test_mcp_tools_refuse_what_is_not_a_model_id(
    hello_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """describe_model, predict and chat refuse ids that could leave their URL path."""
    import asyncio

    from mcp import Client as McpClient

    from edge_runner.mcp_tools import build_server

    monkeypatch.setenv("EDGE_RUNNER_API_BASE", hello_stack.api_base)
    monkeypatch.setenv("EDGE_RUNNER_PAT", hello_stack.token)

    async def calls() -> list[tuple[bool, str]]:
        async with McpClient(build_server()) as client:
            out = []
            for tool, args in (
                ("describe_model", {"model": "../../x"}),
                ("predict", {"model": "hello/../../v2", "arguments": {}}),
                ("chat", {"model": "..", "messages": []}),
                ("describe_model", {"model": "hello"}),
            ):
                result = await client.call_tool(tool, args)
                text = "".join(getattr(c, "text", "") for c in result.content)
                out.append((result.is_error, text))
            return out

    *refused, fine = asyncio.run(calls())
    for is_error, text in refused:
        assert is_error and "is not a model id" in text
    assert not fine[0] and "predict" in fine[1]
