"""``edge-runner mcp``: edge-runner's own tools for a local agent (an IDE, a desktop assistant).

The tools use the clients the CLI uses: :class:`edge_runner.client.Client` for the active
context's control plane (``EDGE_RUNNER_*`` variables and ``--context`` apply), and
:class:`edge_runner.local_client.LocalClient` for the runners on this machine. Every failure a
person could act on comes back as an MCP tool error with the same message the CLI would print;
the server itself never falls over. Logs go to stderr: on stdio, stdout carries only the
protocol.

Tools: ``list_contexts``, ``list_models``, ``describe_model``, ``predict``, ``chat``,
``list_runners``, ``runner_status``, ``gpu_status``, ``recent_logs``, ``pull_model`` (Ollama,
reporting progress).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from edge_runner.client import Client
from edge_runner.errors import EdgeRunnerError
from edge_runner.models.config import MODEL_ID_PATTERN
from edge_runner.models.json_schema import json_schema, param_schema
from edge_runner.models.json_types import parse_spec
from edge_runner.models.signatures import MethodSignature
from edge_runner.views import MachineGpusView

# A tool's annotations are its MCP schema: results are declared as plain JSON objects
# (dict[str, object], "type": "object") while the code inside reads and builds typed views.

__all__ = ["MAX_LOG_RECORDS", "build_server"]

logger = logging.getLogger(__name__)

MAX_LOG_RECORDS = 500
_T = TypeVar("_T")

INSTRUCTIONS = """\
Tools for edge-runner, which runs AI models on this machine and others behind a control plane.
Start with list_models (or describe_model for one model's methods and their arguments), then
predict to call a method or chat for chat models. runner_status, recent_logs and gpu_status
show what the runner on this machine is doing. pull_model downloads an Ollama model."""


def _guard(call: Callable[[], _T]) -> _T:
    """Run a tool body; an edge-runner error becomes a tool error with its message."""
    try:
        return call()
    except EdgeRunnerError as exc:
        raise ToolError(str(exc)) from exc


def _returns_schema(returns: str) -> dict[str, object]:
    """``{"returns_schema": ...}``: the JSON Schema of a result (of each piece for a stream)."""
    try:
        spec = parse_spec(returns)
    except ValueError:  # "None", or a type a newer runner knows and this client does not
        return {}
    if spec.base == "Iterator" and spec.args:
        spec = spec.args[0]
    return {"returns_schema": json_schema(spec)}


def _check_model_id(model: str) -> str:
    """An agent's model id, refused unless it looks like one (it goes into a URL path)."""
    if not MODEL_ID_PATTERN.fullmatch(model):
        raise ToolError(
            f"{model[:80]!r} is not a model id: ids are letters, digits and . _ : - (at most "
            "128 characters, starting with a letter or digit); list_models shows them"
        )
    return model


def build_server(context: str | None = None) -> MCPServer:
    """The MCP server with every tool; ``context`` picks the control plane (default: active)."""
    server = MCPServer("edge-runner", instructions=INSTRUCTIONS)

    def client() -> Client:
        return Client.from_context(context, timeout=None)

    @server.tool(
        description="List the contexts (control planes) this machine knows; one is active."
    )
    def list_contexts() -> list[dict[str, object]]:
        from edge_runner.config.resolve import context_records

        return [dict(record) for record in _guard(context_records)]

    @server.tool(
        description="List the models of the active control plane: id, status (online, "
        "offline, loading, unavailable), backend, and method names."
    )
    def list_models() -> list[dict[str, object]]:
        def run() -> list[dict[str, object]]:
            with client() as c:
                return [
                    {
                        "id": m["id"],
                        "status": m.get("status"),
                        "backend": m.get("backend"),
                        "methods": [x["name"] for x in m.get("methods", [])],
                        "openai": m.get("openai", []),
                        **({"message": m["message"]} if m.get("message") else {}),
                    }
                    for m in c.models()
                ]

        return _guard(run)

    @server.tool(
        description="Describe one model: each method with its parameters, types, defaults and "
        "whether it streams; use it before predict."
    )
    def describe_model(
        model: Annotated[str, Field(description="the model id")],
    ) -> dict[str, object]:
        _check_model_id(model)

        def run() -> dict[str, object]:
            with client() as c:
                doc = c.model(model)
            methods = [MethodSignature.from_dict(m) for m in doc.get("methods", [])]
            return {
                "id": doc["id"],
                "status": doc.get("status"),
                "backend": doc.get("backend"),
                "model_type_id": doc.get("model_type_id"),
                "openai": doc.get("openai", []),
                "methods": [
                    {
                        "name": sig.name,
                        "signature": sig.render(),
                        "streams": sig.kind.value != "unary",
                        "description": sig.description,
                        "parameters": [
                            {
                                "name": p.name,
                                "type": p.type,
                                "required": p.required,
                                **({} if p.required else {"default": p.default}),
                                **({"description": p.description} if p.description else {}),
                                "schema": param_schema(p),
                            }
                            for p in sig.params
                        ],
                        **_returns_schema(sig.returns),
                    }
                    for sig in methods
                ],
            }

        return _guard(run)

    @server.tool(
        description="Call a model method with keyword arguments; returns {output}. A streaming "
        "method's pieces are joined (text) or listed."
    )
    def predict(
        model: Annotated[str, Field(description="the model id")],
        method: Annotated[str, Field(description="the method name (see describe_model)")] = (
            "predict"
        ),
        arguments: Annotated[
            dict[str, object] | None, Field(description="keyword arguments for the method")
        ] = None,
    ) -> dict[str, object]:
        _check_model_id(model)

        def run() -> dict[str, object]:
            with client() as c:
                doc = c.model(model)
                sig = next((m for m in doc.get("methods", []) if m["name"] == method), None)
                if sig is None:
                    names = ", ".join(m["name"] for m in doc.get("methods", [])) or "none"
                    raise ToolError(
                        f"model {model!r} has no method {method!r}; its methods: {names}"
                    )
                if sig["kind"] == "unary":
                    return {"output": c.predict(model, method, **(arguments or {}))}
                pieces = list(c.generate(model, method, **(arguments or {})))
                texts = [p for p in pieces if isinstance(p, str)]
                if len(texts) == len(pieces):
                    return {"output": "".join(texts), "pieces": len(pieces)}
                return {"output": pieces, "pieces": len(pieces)}

        return _guard(run)

    @server.tool(
        description="Send OpenAI-style messages to a chat model and return its answer "
        "(models with chat in list_models' openai field)."
    )
    def chat(
        model: Annotated[str, Field(description="the model id")],
        messages: Annotated[
            list[dict[str, object]],
            Field(description='[{"role": "user", "content": "..."}], system and assistant too'),
        ],
        max_tokens: Annotated[int | None, Field(description="longest answer")] = None,
        temperature: Annotated[float | None, Field(description="sampling temperature")] = None,
    ) -> dict[str, object]:
        _check_model_id(model.replace("/", "--"))  # Ollama's a/b is registered as a--b

        def run() -> dict[str, object]:
            options = {
                k: v
                for k, v in (("max_tokens", max_tokens), ("temperature", temperature))
                if v is not None
            }
            with client() as c:
                reply = c.chat(model, messages, **options)
            choices = reply.get("choices") or []
            choice = choices[0] if choices else None
            message = choice.get("message") if choice else None
            return {
                "content": message.get("content") if message else None,
                "finish_reason": choice.get("finish_reason") if choice else None,
                "usage": reply.get("usage"),
            }

        return _guard(run)

    @server.tool(
        description="List the runners of the active control plane: status, host, models, "
        "busy slots, GPUs."
    )
    def list_runners() -> list[dict[str, object]]:
        def run() -> list[dict[str, object]]:
            with client() as c:
                return [dict(runner) for runner in c.runners()]

        return _guard(run)

    @server.tool(
        description="The runner on this machine: tunnel state, reconnects, last error, models, "
        "slots and tasks in flight."
    )
    def runner_status(
        runner: Annotated[
            str | None, Field(description="a runner id, when several run here")
        ] = None,
    ) -> dict[str, object]:
        def run() -> dict[str, object]:
            from edge_runner.local_client import LocalClient

            with LocalClient.find(runner) as local:
                snap = local.snapshot()
            # gpu_status has the telemetry
            return {key: value for key, value in snap.items() if key != "telemetry"}

        return _guard(run)

    @server.tool(
        description="This machine's GPUs (NVIDIA, via NVML): memory, utilisation, temperature, "
        "power, processes; and CPU and memory. Says why when there is no GPU data."
    )
    def gpu_status() -> dict[str, object]:
        def run() -> dict[str, object]:
            from edge_runner.config.paths import data_dir
            from edge_runner.telemetry import GpuReader, HostReader

            reader = GpuReader()
            try:
                report = reader.read().to_dict()
            finally:
                reader.close()
            doc: MachineGpusView = {**report, "host": HostReader(data_dir()).read().to_dict()}
            return dict(doc)

        return _guard(run)

    @server.tool(
        description=f"The last log records of the runner on this machine (at most "
        f"{MAX_LOG_RECORDS}), filtered by level and text."
    )
    def recent_logs(
        level: Annotated[
            str | None, Field(description="debug, info, warning or error, and above")
        ] = None,
        grep: Annotated[str | None, Field(description="only records containing this")] = None,
        limit: Annotated[int, Field(description=f"how many, 1-{MAX_LOG_RECORDS}")] = 100,
        runner: Annotated[
            str | None, Field(description="a runner id, when several run here")
        ] = None,
    ) -> list[dict[str, object]]:
        if not 1 <= limit <= MAX_LOG_RECORDS:
            raise ToolError(f"limit must be between 1 and {MAX_LOG_RECORDS}, got {limit}")

        def run() -> list[dict[str, object]]:
            from edge_runner.local_client import LocalClient

            with LocalClient.find(runner) as local:
                return [dict(record) for record in local.logs(limit=limit, level=level, grep=grep)]

        return _guard(run)

    @server.tool(
        description="Download an Ollama model into the local Ollama (its OLLAMA_HOST, or "
        "127.0.0.1:11434), reporting progress; then a runner can serve it with --ollama."
    )
    async def pull_model(
        name: Annotated[str, Field(description="the Ollama model name, e.g. llama3.2")],
        ctx: Context,
        host: Annotated[
            str | None, Field(description="the Ollama address, if not the default")
        ] = None,
    ) -> dict[str, object]:
        return await _pull(name, host, ctx)

    return server


async def _pull(name: str, host: str | None, ctx: Context) -> dict[str, Any]:
    """Pull with the Ollama backend's pull, in a thread; progress goes out as MCP notifications."""
    import os

    import ollama

    from edge_runner.backends.ollama_ready import normalize_host, pull_model
    from edge_runner.errors import BackendUnreachable, PullFailed

    url = normalize_host(host or os.environ.get("OLLAMA_HOST"))
    loop = asyncio.get_running_loop()
    updates: asyncio.Queue[tuple[float, float, str] | None] = asyncio.Queue()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            with ollama.Client(url) as client:
                for step in pull_model(client, name):
                    loop.call_soon_threadsafe(
                        updates.put_nowait, (float(step.done), float(step.total), step.status)
                    )
            outcome["status"] = "success"
        except PullFailed as exc:
            outcome["error"] = f"Ollama at {url} could not pull {name!r}: {exc.error}"
        except BackendUnreachable as exc:
            outcome["error"] = f"no Ollama answers at {url} ({exc}); start it with `ollama serve`"
        finally:
            loop.call_soon_threadsafe(updates.put_nowait, None)

    worker = asyncio.ensure_future(asyncio.to_thread(work))
    last = -1.0
    while (update := await updates.get()) is not None:
        done, total, status = update
        if total and done == last and status.startswith("pulling"):
            continue
        last = done
        await ctx.report_progress(done, total or None, f"{name}: {status}")
    await worker
    if "error" in outcome:
        raise ToolError(outcome["error"])
    return {"model": name, "host": url, "status": "success"}
