"""MCP servers hosted by runners, reached at /v2/mcp/{id} through the tunnel, with the official
MCP client (streamable HTTP): examples/mcp, a tool that raises, auth, and a runner that dies."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from edge_runner.backends.mcp_server import MCPBackend
from edge_runner.errors import ModelFolderError
from tests.conftest import HELLO, MS, ROOT, LoopThread, Stack, spawn_ready, wait_for

SERVER_BODY = """
from edge_runner import MCPModelClass
from mcp.server.mcpserver import MCPServer

server = MCPServer("tricky")


@server.tool(description="Raise on purpose")
def explode() -> str:
    raise RuntimeError("the tool broke")


@server.tool(description="Add")
def add(a: int, b: int) -> int:
    return a + b


@server.tool(description="Sleep a while")
def nap(seconds: float) -> str:
    import time
    time.sleep(seconds)
    return "rested"


class Tricky(MCPModelClass):
    def get_server(self) -> MCPServer:
        return server
"""


def _tricky_folder(root: Path) -> Path:
    folder = root / "tricky"
    (folder / "1").mkdir(parents=True)
    (folder / "config.yaml").write_text("model: {id: tricky, model_type_id: mcp}\n")
    (folder / "1" / "model.py").write_text(SERVER_BODY)
    return folder


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder the files example serves, with a way out it must refuse."""
    root = tmp_path / "shared"
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text("hello from the runner's disk\n")
    (root / "sub" / "a.txt").write_text("a")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for agents")
    (root / "escape").symlink_to(secret)
    (root / "inside").symlink_to(root / "notes.txt")
    monkeypatch.setenv("MCP_FILES_ROOT", str(root))
    return root


@pytest.fixture
def hosted(stack: Stack, shared: Path, tmp_path: Path) -> Stack:
    """A runner hosting examples/mcp (files) and one hosting the tricky server."""
    stack.start_runner(backend=MCPBackend(ROOT / "examples" / "mcp"))
    stack.start_runner(backend=MCPBackend(_tricky_folder(tmp_path)))
    return stack


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30_000 * MS))


async def _session(url: str, token: str, steps: Any) -> Any:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        return await steps(client)


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def test_files_example_lists_and_calls_every_tool(hosted: Stack, shared: Path) -> None:
    """The official client lists the tools and calls each one through the tunnel."""

    async def steps(client: Client) -> dict[str, Any]:
        tools = await client.list_tools()
        return {
            "tools": sorted(t.name for t in tools.tools),
            "read": await client.call_tool("read_file", {"path": "notes.txt"}),
            "inside": await client.call_tool("read_file", {"path": "inside"}),
            "list": await client.call_tool("list_files", {"path": "."}),
            "disk": await client.call_tool("disk_usage", {}),
        }

    out = _run(_session(f"{hosted.api_base}/v2/mcp/files", hosted.token, steps))
    assert out["tools"] == ["disk_usage", "list_files", "read_file"]
    assert _text(out["read"]) == "hello from the runner's disk\n" and not out["read"].is_error
    assert _text(out["inside"]) == "hello from the runner's disk\n"  # a symlink within is fine
    assert out["list"].structured_content["result"] == ["escape", "inside", "notes.txt", "sub/"]
    disk = out["disk"].structured_content
    assert disk["path"] == str(shared.resolve()) and disk["total"] >= disk["free"] > 0


@pytest.mark.parametrize("path", ["../secret.txt", "escape", "sub/../../secret.txt", "/etc/passwd"])
def test_the_file_tool_refuses_paths_outside_its_folder(hosted: Stack, path: str) -> None:
    """../, a symlink out, and absolute paths are MCP tool errors, and nothing leaks."""

    async def steps(client: Client) -> Any:
        return await client.call_tool("read_file", {"path": path})

    result = _run(_session(f"{hosted.api_base}/v2/mcp/files", hosted.token, steps))
    assert result.is_error and "outside the folder" in _text(result)
    assert "not for agents" not in _text(result)


def test_a_tool_that_raises_is_an_error_and_the_next_call_works(hosted: Stack) -> None:
    """An exception in a tool is an MCP error result; the same client calls on."""

    async def steps(client: Client) -> tuple[Any, Any, Any]:
        broken = await client.call_tool("explode", {})
        bad_args = await client.call_tool("add", {"a": "x", "b": 1})
        fine = await client.call_tool("add", {"a": 2, "b": 3})
        return broken, bad_args, fine

    broken, bad_args, fine = _run(_session(f"{hosted.api_base}/v2/mcp/tricky", hosted.token, steps))
    assert broken.is_error and "explode" in _text(broken)
    assert bad_args.is_error and "a" in _text(bad_args)
    assert not fine.is_error and fine.structured_content == {"result": 5}


def test_only_the_owners_predict_tokens_reach_it(hosted: Stack) -> None:
    """No token: 401; a token without predict: 403; another user's token: 404; not MCP: 400."""
    url = f"{hosted.api_base}/v2/mcp/files"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    assert httpx.post(url, json=body).status_code == 401
    with httpx.Client(base_url=hosted.api_base, headers=hosted.headers) as admin:
        read_only = admin.post("/v2/tokens", json={"name": "ro", "scopes": ["read"]}).json()
        bob = admin.post("/v2/users", json={"id": "bob"}).json()
    denied = httpx.post(url, json=body, headers={"Authorization": f"Bearer {read_only['token']}"})
    assert denied.status_code == 403
    other = httpx.post(url, json=body, headers={"Authorization": f"Bearer {bob['token']}"})
    assert other.status_code == 404 and "no MCP model 'files'" in other.text
    assert other.json()["id"] == 1 and other.json()["error"]["data"]["code"] == "UNKNOWN_MODEL"
    hosted.start_runner()  # hello, not an MCP server
    not_mcp = httpx.post(f"{hosted.api_base}/v2/mcp/hello", json=body, headers=hosted.headers)
    assert not_mcp.status_code == 400 and "not an MCP server" in not_mcp.text


@pytest.fixture
def short_lease(loop_thread: LoopThread, tmp_path: Path) -> Iterator[Stack]:
    """A control plane whose lease is short, so a lost runner is found out quickly."""
    stack = Stack(tmp_path / "control", loop_thread, model=HELLO)
    stack.start_control(
        lease_ttl=1_000 * MS, heartbeat_interval=200 * MS, silence_timeout=2_000 * MS
    )
    yield stack
    stack.close()


@pytest.mark.slow
def test_a_runner_dying_mid_call_is_an_error_within_the_lease(
    short_lease: Stack, tmp_path: Path, er_home: Path
) -> None:
    """SIGKILL the runner during a tool call: the client gets an error after the lease, not a
    hang, and the call is not re-run elsewhere."""
    env = dict(
        os.environ,
        EDGE_RUNNER_API_BASE=short_lease.api_base,
        EDGE_RUNNER_PAT=short_lease.token,
        EDGE_RUNNER_TIME_SCALE="0.1",
    )
    proc, _ = spawn_ready(["runner", str(_tricky_folder(tmp_path))], env)
    started = time.monotonic()

    async def steps(client: Client) -> Any:
        call = asyncio.ensure_future(client.call_tool("nap", {"seconds": 30}))
        await asyncio.sleep(0)
        await asyncio.to_thread(_kill_when_busy, short_lease, proc.pid)
        return await call

    with pytest.raises(Exception) as caught:
        _run(_session(f"{short_lease.api_base}/v2/mcp/tricky", short_lease.token, steps))
    elapsed = time.monotonic() - started
    proc.wait()
    assert elapsed < 15, f"the error took {elapsed:.1f} s"
    assert "was lost while running the task" in repr(caught.value), caught.value


def _kill_when_busy(stack: Stack, pid: int) -> None:
    def busy() -> bool:
        runners = httpx.get(f"{stack.api_base}/v2/runners", headers=stack.headers).json()
        return any(r.get("busy") for r in runners["runners"])

    wait_for(busy, "the tool call to be running")
    os.kill(pid, signal.SIGKILL)


def test_bad_mcp_folders_are_one_clear_error(tmp_path: Path) -> None:
    """model_type_id mcp without an MCPModelClass, or get_server returning something else."""
    folder = _tricky_folder(tmp_path)
    model = folder / "1" / "model.py"
    model.write_text(SERVER_BODY.replace("return server", "return 42"))
    backend = MCPBackend(folder)
    with pytest.raises(ModelFolderError, match="returned a int, not an MCP server"):
        backend.load()
    model.write_text(
        "from edge_runner import ModelClass\n"
        "class M(ModelClass):\n"
        "    @ModelClass.method\n"
        "    def predict(self) -> str:\n"
        "        return 'x'\n"
    )
    with pytest.raises(ModelFolderError, match="must subclass MCPModelClass"):
        MCPBackend(folder)
    shutil.rmtree(folder)


def test_a_legacy_client_works_too(hosted: Stack) -> None:
    """Clients of the initialize-handshake era (2025 protocol) are served the same way."""

    async def steps(client: Client) -> Any:
        await client.list_tools()
        return await client.call_tool("add", {"a": 40, "b": 2})

    async def legacy() -> Any:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {hosted.token}"}) as http,
            Client(
                streamable_http_client(f"{hosted.api_base}/v2/mcp/tricky", http_client=http),
                mode="legacy",
            ) as client,
        ):
            return await steps(client)

    result = _run(legacy())
    assert not result.is_error and result.structured_content == {"result": 42}


def test_model_init_writes_a_working_mcp_folder(stack: Stack, tmp_path: Path) -> None:
    """`model init --model-type-id mcp` writes a server whose three tools answer."""
    from edge_runner.cli.main import main

    folder = tmp_path / "tools"
    assert main(["model", "init", str(folder), "--model-type-id", "mcp"]) == 0
    stack.start_runner(backend=MCPBackend(folder))

    async def steps(client: Client) -> tuple[Any, Any, Any]:
        return (
            await client.call_tool("add", {"a": 1.5, "b": 2}),
            await client.call_tool("divide", {"a": 1, "b": 0}),
            await client.call_tool("machine", {}),
        )

    added, divided, machine = _run(_session(f"{stack.api_base}/v2/mcp/tools", stack.token, steps))
    assert added.structured_content == {"result": 3.5}
    assert divided.is_error and "b must not be 0" in _text(divided)
    assert machine.structured_content["python"].count(".") == 2


def test_get_is_405_at_once_and_delete_answers(hosted: Stack) -> None:
    """Stateless servers open no SSE stream: GET is 405 at once; DELETE is answered quickly."""
    url = f"{hosted.api_base}/v2/mcp/tricky"
    headers = {**hosted.headers, "Accept": "text/event-stream"}
    start = time.monotonic()
    r = httpx.get(url, headers=headers, timeout=30_000 * MS)
    assert time.monotonic() - start < 2000 * MS
    assert r.status_code == 405 and r.headers["allow"] == "POST, DELETE"
    assert r.json()["error"]["data"]["code"] == "METHOD_NOT_ALLOWED"
    start = time.monotonic()
    gone = httpx.delete(url, headers={**hosted.headers, "Mcp-Session-Id": "abc"}, timeout=30)
    assert time.monotonic() - start < 5000 * MS
    assert gone.status_code == 405  # the stateless SDK: "Session termination not supported"
    assert hosted.plane is not None and not hosted.plane.state.dispatcher.tasks  # type: ignore[union-attr]


def test_the_runner_answers_a_forwarded_get_with_405(tmp_path: Path) -> None:
    """An older control plane forwards GET: the hosted server answers 405 at once itself."""
    import base64
    import json
    import threading

    backend = MCPBackend(_tricky_folder(tmp_path))
    backend.load()
    try:
        payload = {"method": "GET", "headers": {"accept": "text/event-stream"}, "body": ""}
        start = time.monotonic()
        reply = backend.call("tricky", "mcp.http", json.dumps(payload).encode(), threading.Event())
        assert time.monotonic() - start < 2000 * MS
        doc = json.loads(reply.payload)  # type: ignore[union-attr]
        assert doc["status"] == 405 and doc["headers"]["allow"] == "POST, DELETE"
        assert json.loads(base64.b64decode(doc["body"]))["error"]["code"] == -32600
    finally:
        backend.close()
