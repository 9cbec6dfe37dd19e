"""`edge-runner mcp` with the official MCP client: stdio (the client launches it) and streamable
HTTP on 127.0.0.1 (bearer token, Host and Origin checks). Real control plane and runner; the
GPUs are recorded NVML answers and Ollama is the labelled fake."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from edge_runner.config.contexts import Context, ContextsFile
from edge_runner.config.secrets import secret_store
from tests.conftest import MS, ROOT, Stack, spawn_ready, stop_process, wait_for
from tests.fakes.ollama import FakeModel, FakeOllama

pytestmark = pytest.mark.slow
SHIM = ROOT / "tests" / "fakes" / "nvml_shim"


@pytest.fixture
def world(stack: Stack, er_home: Path) -> Iterator[dict[str, Any]]:
    """A control plane, a hello runner process on this machine, a context, a fake Ollama."""
    store = secret_store()
    store.set("lab", stack.token)
    contexts = ContextsFile.load()
    contexts.put(Context("lab", stack.api_base, "admin"), make_current=True)
    contexts.save()
    env = dict(os.environ)
    proc, ready = spawn_ready(["runner", str(ROOT / "examples" / "hello")], env)
    with FakeOllama(models={"llama3.2": FakeModel(), "qwen2.5": FakeModel(present=False)}) as fake:
        yield {"env": env, "runner_id": ready["runner_id"], "ollama": fake}
    stop_process(proc)


def _stdio(world: dict[str, Any]) -> StdioServerParameters:
    env = {
        key: value
        for key, value in world["env"].items()
        if key.startswith(("EDGE_RUNNER_", "PYTHON")) or key in ("PATH", "HOME")
    }
    env.update(
        PYTHONPATH=str(SHIM),
        FAKE_NVML="one_gpu",
        OLLAMA_HOST=world["ollama"].url,
        PYTHONUNBUFFERED="1",
    )
    return StdioServerParameters(
        command=sys.executable, args=["-m", "edge_runner", "mcp"], env=env, cwd=str(ROOT)
    )


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60_000 * MS))


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def test_every_tool_over_stdio(world: dict[str, Any]) -> None:
    """The client launches `edge-runner mcp`, lists the tools and calls each one."""
    progress: list[tuple[float, float | None, str | None]] = []
    stray: list[Any] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async def on_message(message: Any) -> None:
        if isinstance(message, Exception):  # a line on stdout that is not the protocol
            stray.append(message)

    async def session() -> dict[str, Any]:
        async with Client(_stdio(world), message_handler=on_message) as client:
            tools = await client.list_tools()
            call = client.call_tool
            return {
                "tools": {t.name: t for t in tools.tools},
                "contexts": await call("list_contexts", {}),
                "models": await call("list_models", {}),
                "describe": await call("describe_model", {"model": "hello"}),
                "predict": await call("predict", {"model": "hello", "arguments": {"text": "mcp"}}),
                "stream": await call(
                    "predict",
                    {"model": "hello", "method": "generate", "arguments": {"text": "x", "n": 2}},
                ),
                "chat": await call(
                    "chat", {"model": "hello", "messages": [{"role": "user", "content": "yo"}]}
                ),
                "runners": await call("list_runners", {}),
                "status": await call("runner_status", {}),
                "gpus": await call("gpu_status", {}),
                "logs": await call("recent_logs", {"limit": 20}),
                "pull": await call(
                    "pull_model", {"name": "qwen2.5"}, progress_callback=on_progress
                ),
            }

    out = _run(session())
    assert set(out["tools"]) == {
        "list_contexts", "list_models", "describe_model", "predict", "chat", "list_runners",
        "runner_status", "gpu_status", "recent_logs", "pull_model",
    }  # fmt: skip
    for tool in out["tools"].values():
        assert tool.description and tool.input_schema["type"] == "object"
    errors = [name for name, result in out.items() if name != "tools" and result.is_error]
    assert errors == [], {name: _text(out[name]) for name in errors}
    (context,) = out["contexts"].structured_content["result"]
    assert context["name"] == "lab" and context["active"] and context["token"].endswith("****")
    assert [m["id"] for m in out["models"].structured_content["result"]] == ["hello"]
    methods = {m["name"]: m for m in out["describe"].structured_content["methods"]}
    assert methods["generate"]["streams"] and methods["predict"]["parameters"][0]["name"] == "text"
    assert methods["predict"]["parameters"][0]["schema"] == {"type": "string"}
    assert methods["generate"]["returns_schema"] == {"type": "string"}  # each piece
    assert out["predict"].structured_content["output"] == "Hello, mcp!"
    assert out["stream"].structured_content["output"] == "0: Hello, x!\n1: Hello, x!\n"
    assert "You said: yo" in out["chat"].structured_content["content"]
    assert out["runners"].structured_content["result"][0]["id"] == world["runner_id"]
    assert out["status"].structured_content["tunnel"]["state"] == "connected"
    assert out["gpus"].structured_content["gpus"][0]["name"] == "NVIDIA H200"
    assert any("connected to" in r["message"] for r in out["logs"].structured_content["result"])
    assert out["pull"].structured_content["status"] == "success"
    assert "qwen2.5:latest" in world["ollama"].present
    assert progress and progress[-1][2] == "qwen2.5: success"
    assert any(total and 0 < done < total for done, total, _ in progress)
    assert stray == []


def test_tool_errors_are_tool_errors_and_the_server_goes_on(world: dict[str, Any]) -> None:
    """Unknown models, bad arguments, bounds, an unknown Ollama model: errors, then it works."""

    async def session() -> dict[str, Any]:
        async with Client(_stdio(world)) as client:
            call = client.call_tool
            return {
                "unknown": await call("describe_model", {"model": "nope"}),
                "method": await call("predict", {"model": "hello", "method": "fly"}),
                "args": await call("predict", {"model": "hello", "arguments": {"txt": "x"}}),
                "limit": await call("recent_logs", {"limit": 0}),
                "runner": await call("runner_status", {"runner": "runner-none"}),
                "pull": await call("pull_model", {"name": "no-such-model"}),
                "after": await call("predict", {"model": "hello", "arguments": {"text": "ok"}}),
            }

    out = _run(session())
    assert out["unknown"].is_error and "no model 'nope'" in _text(out["unknown"])
    assert out["method"].is_error and "has no method 'fly'" in _text(out["method"])
    assert out["args"].is_error and "txt" in _text(out["args"])
    assert out["limit"].is_error and "between 1 and 500" in _text(out["limit"])
    assert out["runner"].is_error and "no local runner 'runner-none'" in _text(out["runner"])
    assert out["pull"].is_error and "file does not exist" in _text(out["pull"])
    assert out["after"].structured_content["output"] == "Hello, ok!"


def test_stdout_carries_nothing_but_the_protocol(world: dict[str, Any]) -> None:
    """Started and stopped with no client talking, it writes nothing to stdout (logs: stderr)."""
    params = _stdio(world)
    result = subprocess.run(
        [params.command, *params.args, "--debug"],
        input="",
        capture_output=True,
        text=True,
        env={**params.env, "EDGE_RUNNER_LOG_LEVEL": "DEBUG"},  # type: ignore[dict-item]
        timeout=30_000 * MS,
    )
    assert result.stdout == ""


@pytest.fixture
def http_server(world: dict[str, Any], tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`edge-runner mcp --http 0` and its URL and bearer token."""
    token_file = tmp_path / "mcp.token"
    params = _stdio(world)
    proc = subprocess.Popen(
        [params.command, *params.args, "--http", "0", "--token-file", str(token_file)],
        stderr=subprocess.PIPE,
        text=True,
        env=params.env,
    )
    assert proc.stderr is not None
    url = ""
    for line in proc.stderr:
        if match := re.search(r"at (http://127\.0\.0\.1:\d+/mcp)", line):
            url = match.group(1)
            break
    try:
        assert url, "edge-runner mcp --http did not say where it listens"
        wait_for(token_file.exists, "the token file")
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        yield url, token_file.read_text()
    finally:
        stop_process(proc)  # type: ignore[arg-type]


def test_http_needs_the_token_and_a_loopback_host_and_origin(http_server: tuple[str, str]) -> None:
    """No or a wrong token: 401; a foreign Host or Origin: refused; the right ones (the scheme
    in any case): served."""
    url, token = http_server
    body = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    assert httpx.post(url, json=body, headers=headers).status_code == 401
    wrong = {**headers, "Authorization": "Bearer nope"}
    assert httpx.post(url, json=body, headers=wrong).status_code == 401
    good = {**headers, "Authorization": f"Bearer {token}"}
    for scheme in ("bearer", "BEARER"):  # RFC 7235: the scheme is case-insensitive
        any_case = {**headers, "Authorization": f"{scheme} {token}"}
        assert httpx.post(url, json=body, headers=any_case).status_code != 401, scheme
    rebind = httpx.post(url, json=body, headers={**good, "Host": "evil.example:80"})
    assert rebind.status_code in (400, 403, 421)
    origin = httpx.post(url, json=body, headers={**good, "Origin": "http://evil.example"})
    assert origin.status_code in (400, 403)

    async def session() -> list[str]:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            tools = await client.list_tools()
            result = await client.call_tool(
                "predict", {"model": "hello", "arguments": {"text": "h"}}
            )
            return [*(t.name for t in tools.tools), str(result.structured_content["output"])]

    names = _run(session())
    assert "list_models" in names and names[-1] == "Hello, h!"
