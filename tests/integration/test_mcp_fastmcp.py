"""MCP folders whose server is a ``fastmcp.FastMCP``, hosted like the MCP SDK's ``MCPServer``:
the same tools written with each answer alike at /v2/mcp/{id} (errors, Context and progress,
structured output, resource templates, prompts); and the folders that cannot be hosted (another
return value, an unsupported or missing fastmcp, FastMCP's own auth) are one clear error.

The Clarifai-shaped FastMCP folder (``clarifai.runners.models.mcp_class``) is in the corpus:
tests/integration/test_clarifai_corpus.py serves it with and without the clarifai package."""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from edge_runner.backends.factory import backend_for_folder
from edge_runner.backends.mcp_apps import (
    FASTMCP_SUPPORTED,
    fastmcp_version,
    sdk_missing,
    unsupported_fastmcp,
)
from edge_runner.backends.mcp_server import MCPBackend
from edge_runner.errors import ModelFolderError
from edge_runner.testing import LoopThread
from tests.conftest import MS, ROOT, Stack

pytest.importorskip("fastmcp")

#: one server, written for either framework: the lines that differ are filled in
SAME_SERVER = """
{imports}
from pydantic import BaseModel
from edge_runner import MCPModelClass

server = {make}


class Forecast(BaseModel):
    city: str
    celsius: float


@server.tool(description="Add two integers")
def add(a: int, b: int) -> int:
    return a + b


@server.tool(description="Raise on purpose")
def explode() -> str:
    raise RuntimeError("the tool broke")


@server.tool(description="Refuse, saying why")
def refuse() -> str:
    raise ToolError("not today")


@server.tool(description="A structured forecast")
def forecast(city: str) -> Forecast:
    return Forecast(city=city, celsius=21.5)


@server.tool(description="Count, reporting progress through the context")
async def count(n: int, ctx: Context) -> dict[str, int]:
    for i in range(n):
        await ctx.report_progress(i + 1, n)
    return {{"counted": n}}


@server.resource("notes://{{name}}")
def note(name: str) -> str:
    return f"note {{name}}"


@server.prompt()
def greet(name: str) -> str:
    return f"Say hello to {{name}}"


class Same(MCPModelClass):
    def get_server(self):
        return server
"""

KINDS = {
    "mcpserver": {
        "imports": "from mcp.server.mcpserver import Context, MCPServer\n"
        "from mcp.server.mcpserver.exceptions import ToolError",
        "make": 'MCPServer("same")',
    },
    "fastmcp": {
        "imports": "from fastmcp import Context, FastMCP\nfrom fastmcp.exceptions import ToolError",
        "make": 'FastMCP("same", instructions="the same tools as the MCPServer folder")',
    },
}


def _folder(root: Path, model_id: str, body: str) -> Path:
    folder = root / model_id
    (folder / "1").mkdir(parents=True)
    (folder / "config.yaml").write_text(f"model: {{id: {model_id}, model_type_id: mcp}}\n")
    (folder / "1" / "model.py").write_text(body)
    return folder


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30_000 * MS))


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def _exercise(url: str, token: str) -> dict[str, Any]:
    progress: list[tuple[float, float | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total))

    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        tools = await client.list_tools()
        return {
            "tools": sorted(t.name for t in tools.tools),
            "add": await client.call_tool("add", {"a": 2, "b": 3}),
            "bad_args": await client.call_tool("add", {"a": "x", "b": 1}),
            "explode": await client.call_tool("explode", {}),
            "refuse": await client.call_tool("refuse", {}),
            "forecast": await client.call_tool("forecast", {"city": "Oslo"}),
            "count": await client.call_tool("count", {"n": 3}, progress_callback=on_progress),
            "templates": await client.list_resource_templates(),
            "note": await client.read_resource("notes://todo"),
            "prompt": await client.get_prompt("greet", {"name": "Ada"}),
            "progress": progress,
        }


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The same steps against both folders, each hosted by a runner of one stack."""
    root = tmp_path_factory.mktemp("same")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EDGE_RUNNER_HOME", str(root / "home"))
        env.setenv("EDGE_RUNNER_SECRET_BACKEND", "file")
        loop = LoopThread()
        stack = Stack(root / "control", loop, model=ROOT / "examples" / "hello")
        try:
            stack.start_control()
            out = {}
            for kind, parts in KINDS.items():
                folder = _folder(root, f"same-{kind}", SAME_SERVER.format(**parts))
                stack.start_runner(backend=backend_for_folder(folder))
                url = f"{stack.api_base}/v2/mcp/same-{kind}"
                out[kind] = _run(_exercise(url, stack.token))
            return out
        finally:
            stack.close()
            loop.close()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_tools_answer_with_results_errors_and_structured_output(
    answers: dict[str, dict[str, Any]], kind: str
) -> None:
    """A result; bad arguments, a raising tool and a ToolError (MCP error results, the
    ToolError's message shown); a pydantic return value (structured content)."""
    out = answers[kind]
    assert out["tools"] == ["add", "count", "explode", "forecast", "refuse"]
    assert not out["add"].is_error and out["add"].structured_content == {"result": 5}
    assert out["bad_args"].is_error and "a" in _text(out["bad_args"])
    # how much of an unexpected exception shows is each framework's policy (MCPServer masks
    # it; FastMCP shows it unless mask_error_details=True): both name the tool
    assert out["explode"].is_error and "explode" in _text(out["explode"])
    assert out["refuse"].is_error and "not today" in _text(out["refuse"])
    assert out["forecast"].structured_content == {"city": "Oslo", "celsius": 21.5}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_tool_using_its_context_answers(answers: dict[str, dict[str, Any]], kind: str) -> None:
    """ctx.report_progress inside a tool does not break the call."""
    out = answers[kind]
    assert not out["count"].is_error and out["count"].structured_content == {"counted": 3}


def test_both_frameworks_answer_alike(answers: dict[str, dict[str, Any]]) -> None:
    """Progress, templates, resources and prompts: what the client sees is the same."""
    ours, theirs = answers["mcpserver"], answers["fastmcp"]
    # stateless with JSON answers: no stream to carry notifications, for either server
    assert ours["progress"] == theirs["progress"]
    for out in (ours, theirs):
        (template,) = out["templates"].resource_templates
        assert template.uri_template == "notes://{name}"
        assert out["note"].contents[0].text == "note todo"
        (message,) = out["prompt"].messages
        assert message.role == "user" and message.content.text == "Say hello to Ada"


def test_get_server_returning_something_else_names_both_kinds(tmp_path: Path) -> None:
    """get_server() returning a dict: the error names what it got and both accepted servers."""
    body = SAME_SERVER.format(**KINDS["fastmcp"]).replace("return server", "return {}")
    backend = MCPBackend(_folder(tmp_path, "odd", body))
    with pytest.raises(ModelFolderError) as caught:
        backend.load()
    message = str(caught.value)
    assert "returned a dict, not an MCP server" in message
    assert "mcp.server.mcpserver.MCPServer" in message
    assert f"fastmcp.FastMCP (fastmcp{FASTMCP_SUPPORTED})" in message


def test_fastmcp_with_its_own_auth_is_refused(tmp_path: Path) -> None:
    """FastMCP(auth=...) would 401 every call (the control plane keeps callers' tokens)."""
    body = SAME_SERVER.format(
        imports="from fastmcp import Context, FastMCP\n"
        "from fastmcp.server.auth import StaticTokenVerifier",
        make='FastMCP("guarded", auth=StaticTokenVerifier(tokens={"t": {"client_id": "c"}}))',
    )
    backend = MCPBackend(_folder(tmp_path, "guarded", body))
    with pytest.raises(ModelFolderError, match="remove auth= from FastMCP"):
        backend.load()


def test_the_fastmcp_3_transport_options_are_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """FastMCP(stateless_http=True), as Clarifai's MCP template writes it: fastmcp 4 refuses
    it, but the folder runs unchanged (edge-runner serves stateless with JSON answers anyway),
    saying what it dropped."""
    body = SAME_SERVER.format(
        imports="from fastmcp import Context, FastMCP\nfrom fastmcp.exceptions import ToolError",
        make='FastMCP("old-style", stateless_http=True, json_response=True)',
    )
    with caplog.at_level("INFO", logger="edge_runner.backends.mcp_apps"):
        backend = MCPBackend(_folder(tmp_path, "old-style", body))
    assert "FastMCP(json_response=, stateless_http=) ignored" in caplog.text
    try:
        backend.load()
    finally:
        backend.close()


def test_the_fastmcp_version_is_the_installed_one() -> None:
    """Read from the distribution beside the package, without importing it."""
    assert fastmcp_version() == importlib.metadata.version("fastmcp")


@pytest.mark.parametrize(
    ("version", "supported"),
    [("2.14.7", False), ("3.4.11", False), ("4.0.0", True), ("4.2.3", True), ("5.1.0", True)],
)
def test_which_fastmcp_versions_are_hosted(version: str, supported: bool) -> None:
    """Before 4 (built on mcp 1.x) is refused with the version and the range; later is tried."""
    problem = unsupported_fastmcp(version)
    assert (problem is None) == supported
    if problem is not None:
        assert f"fastmcp {version} is installed" in problem
        assert f"fastmcp{FASTMCP_SUPPORTED}" in problem


#: run in a child process with a stand-in fastmcp first on sys.path (see _stand_in)
_LOAD = """
import sys
from edge_runner.backends.mcp_server import MCPBackend
from edge_runner.errors import ModelFolderError
try:
    MCPBackend(sys.argv[1])
except ModelFolderError as exc:
    print(exc)
else:
    print("loaded")
"""


def _stand_in(site: Path, version: str) -> None:
    """A stand-in (a fake: the suite installs nothing) for an old fastmcp forced beside mcp 2:
    its import reaches for an mcp 1.x module and fails inside fastmcp, as the real 3.4.11 does
    (by hand, `pip install --no-deps fastmcp==3.4.11`: ImportError "FastMCP server support is
    not installed", raised in fastmcp's own import)."""
    package = site / "fastmcp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from mcp.server.fastmcp import FastMCP\n")
    info = site / f"fastmcp-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fastmcp\nVersion: {version}\n")


def _load_in_child(folder: Path, site: Path | None = None) -> str:
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    done = subprocess.run(
        [sys.executable, "-c", _LOAD, str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_an_unsupported_fastmcp_is_named_with_the_supported_range(tmp_path: Path) -> None:
    """fastmcp 3.4.11 installed beside mcp 2: the folder's error names 3.4.11 and >=4,<5."""
    site = tmp_path / "site"
    _stand_in(site, "3.4.11")
    folder = _folder(tmp_path, "old", SAME_SERVER.format(**KINDS["fastmcp"]))
    said = _load_in_child(folder, site)
    assert "fastmcp 3.4.11 is installed" in said
    assert f"pip install 'fastmcp{FASTMCP_SUPPORTED}'" in said
    assert "No module named 'mcp.server.fastmcp'" in said  # what actually failed, kept


def test_a_missing_fastmcp_says_how_to_install_it(tmp_path: Path) -> None:
    """No fastmcp at all: the error names the extra that installs a supported one."""
    site = tmp_path / "site"
    site.mkdir()
    # a `fastmcp` that is not a package hides the installed one from find_spec and import
    (site / "fastmcp.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'fastmcp'\", name='fastmcp')\n"
    )
    folder = _folder(tmp_path, "bare", SAME_SERVER.format(**KINDS["fastmcp"]))
    said = _load_in_child(folder, site)
    assert "imports fastmcp, which is not installed here" in said
    assert "pip install 'edge-runner[fastmcp]'" in said


def test_an_mcp_moved_back_to_1x_by_an_old_fastmcp_is_named() -> None:
    """`pip install fastmcp==3.4.11` moves mcp to 1.30.0 (by hand): the error names both."""
    said = sdk_missing(Path("tools"), ("1.30.0", "3.4.11"))
    assert "mcp 1.30.0 is installed (fastmcp 3.4.11, installed here, needs mcp<2)" in said
    assert f"pip install 'mcp>=2.3' 'fastmcp{FASTMCP_SUPPORTED}'" in said
    assert sdk_missing(Path("tools"), (None, None)).endswith("pip install 'edge-runner[mcp]'")
