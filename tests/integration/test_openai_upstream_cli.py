"""An OpenAI-compatible upstream as a user reaches it: ``edge-runner up --openai-upstream URL``
as a process, ``edge-runner chat``, and the ``predict`` and ``chat`` tools of ``edge-runner mcp``
through the official MCP client.

Each test runs once per upstream (tests/integration/openai_upstreams.py): the fake and, marked
``engine``, llama.cpp's server behind an API key. Answers are compared with what /v1 says for the
same request at temperature 0, never with the fake's texts.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import psutil
import pytest
from mcp import Client as MCPClient
from mcp.client.stdio import StdioServerParameters

from edge_runner.client import Client
from tests.conftest import MS, ROOT, Stack
from tests.integration.openai_upstreams import Upstream, llama_engine, proxied, upstream
from tests.integration.test_cli import CLI, UpProcess

__all__ = [
    "llama_engine",
    "proxied",
    "upstream",
]  # the fixtures, imported so pytest finds them here

pytestmark = pytest.mark.slow

USER = [{"role": "user", "content": "hi there"}]
#: short, reproducible answers (greedy sampling: the same text whole and streamed)
SAMPLING: dict[str, Any] = {"max_tokens": 8, "temperature": 0}
KEY_VARIABLE = "UPSTREAM_TEST_KEY"


def _chat_cli(api_base: str, token: str, model: str) -> str:
    """`edge-runner chat MODEL` with one piped line; its answer (bytes kept: no newline
    translation of the engine's stray carriage returns)."""
    done = subprocess.run(
        [*CLI, "chat", model, "--max-tokens", "8", "--temperature", "0"],
        input=b"hi there\n",
        capture_output=True,
        env=dict(os.environ, EDGE_RUNNER_API_BASE=api_base, EDGE_RUNNER_PAT=token),
        cwd=ROOT,
        timeout=30_000 * MS,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"Traceback" not in done.stderr
    return done.stdout.decode()


def test_up_with_an_openai_upstream_serves_every_path(
    upstream: Upstream, er_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up --openai-upstream URL`, the key in a variable: the banner names the server and its
    models (not the key, which no process has in its argv), and /v1 chat (whole and streamed
    with include_usage), the native API and `edge-runner chat` give the same answer."""
    monkeypatch.setenv(KEY_VARIABLE, upstream.api_key)
    up = UpProcess("--openai-upstream", upstream.base_url, "--upstream-api-key-env", KEY_VARIABLE)
    try:
        banner = "\n".join(up.banner)
        assert upstream.base_url in banner and upstream.api_key not in banner
        assert all(model in banner for model in upstream.models)
        family = [psutil.Process(up.proc.pid), *psutil.Process(up.proc.pid).children(True)]
        assert len(family) >= 3  # up, its control plane and its runner
        assert not any(upstream.api_key in " ".join(p.cmdline()) for p in family)
        token = (er_home / "data" / "control" / "admin-token").read_text().strip()
        sdk = openai.OpenAI(base_url=f"{up.api_base}/v1", api_key=token, max_retries=0)
        model = upstream.chat_model
        whole = sdk.chat.completions.create(model=model, messages=USER, **SAMPLING)  # type: ignore[arg-type]
        answer = whole.choices[0].message.content
        assert isinstance(answer, str) and whole.choices[0].finish_reason in ("stop", "length")
        chunks = list(
            sdk.chat.completions.create(
                model=model,
                messages=USER,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
                **SAMPLING,
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer
        if upstream.name == "llama":
            # llama-cpp-python 0.3.36 ignores stream_options.include_usage (OpenAI ends with a
            # usage chunk); edge-runner passes the upstream's stream on as it is.
            assert all(c.usage is None for c in chunks)
        else:
            assert chunks[-1].usage == whole.usage
        with Client(up.api_base, token) as client:
            assert client.predict(model, prompt="hi there", **SAMPLING) == answer
        assert _chat_cli(up.api_base, token, model) == answer + "\n"
    finally:
        code = up.stop()
        up.close()
    assert code == 0


def _mcp_server(stack: Stack) -> StdioServerParameters:
    """`edge-runner mcp` on stdio, its control plane given in the environment."""
    env = {k: v for k, v in os.environ.items() if k.startswith(("EDGE_RUNNER_", "PYTHON"))}
    env.update(
        PATH=os.environ["PATH"],
        EDGE_RUNNER_API_BASE=stack.api_base,
        EDGE_RUNNER_PAT=stack.token,
        PYTHONUNBUFFERED="1",
    )
    return StdioServerParameters(
        command=sys.executable, args=["-m", "edge_runner", "mcp"], env=env, cwd=str(ROOT)
    )


def test_the_mcp_tools_answer_for_an_upstream_model(proxied: Stack, upstream: Upstream) -> None:
    """The MCP `predict` tool (predict and embed) and `chat` tool answer for the upstream's
    models what the Python client and /v1 answer."""
    model = upstream.chat_model

    async def session() -> dict[str, Any]:
        async with MCPClient(_mcp_server(proxied)) as client:
            call = client.call_tool
            return {
                "predict": await call(
                    "predict", {"model": model, "arguments": {"prompt": "hi there", **SAMPLING}}
                ),
                "embed": await call(
                    "predict",
                    {
                        "model": upstream.embedding_model,
                        "method": "embed",
                        "arguments": {"input": ["q"]},
                    },
                ),
                "chat": await call("chat", {"model": model, "messages": USER, **SAMPLING}),
            }

    out = asyncio.run(asyncio.wait_for(session(), 60_000 * MS))
    assert [name for name, result in out.items() if result.is_error] == []
    with Client(proxied.api_base, proxied.token) as client:
        expected = client.predict(model, prompt="hi there", **SAMPLING)
        (vector,) = client.predict(upstream.embedding_model, "embed", input=["q"])
    assert out["predict"].structured_content["output"] == expected
    assert out["embed"].structured_content["output"] == [pytest.approx(vector)]
    chat = out["chat"].structured_content
    assert chat["content"] == expected and chat["finish_reason"] in ("stop", "length")
    assert chat["usage"]["prompt_tokens"] > 0 and chat["usage"]["completion_tokens"] > 0
