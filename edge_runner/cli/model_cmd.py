"""``edge-runner model init``: write a model folder to start from; ``model test`` runs its tests.

Without ``--toolkit`` it is a Python model folder (``config.yaml``, ``1/model.py`` with a
ModelClass that has unary, streaming and chat methods, ``requirements.txt``); with
``--model-type-id mcp`` its ``1/model.py`` is an MCP server with three tools instead, with
``--model-type-id openai`` an ``OpenAIModelClass`` wrapping a running OpenAI-compatible server. With
``--toolkit PROVIDER`` (ollama, vllm, sglang, lmstudio, llamacpp, huggingface, openai) it is a
``config.yaml`` whose ``toolkit`` section makes the runner serve an Ollama model or a model of
a local OpenAI-compatible server (see :mod:`edge_runner.backends.toolkit`), so that setup can
be versioned like any model folder; it prints how to start that server.
Existing files are never overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

from edge_runner.backends.toolkit import PROVIDERS, Provider, start_commands
from edge_runner.errors import ConfigError

__all__ = ["register"]

_PYTHON_CONFIG = """\
# A model folder: `edge-runner up {path}` serves it on this machine.
model:
  id: {model_id}
  user_id: local
  app_id: local
  model_type_id: {model_type_id}

inference_compute_info:
  cpu_limit: "1"
  cpu_memory: 1Gi
  num_accelerators: 0

build_info:
  python_version: "3.11"
"""

_PYTHON_MODEL = '''\
"""{model_id}: a starting point. Replace the bodies with your model's code."""

from __future__ import annotations

from collections.abc import Iterator

from edge_runner import ModelClass


class Model(ModelClass):
    """Every method marked with @ModelClass.method is callable; type hints make its signature."""

    def load_model(self) -> None:
        """Load weights and other heavy things here, once, before the first request."""
        self.greeting = "Hello"

    @ModelClass.method
    def predict(self, text: str) -> str:
        """One answer for one input."""
        return f"{{self.greeting}}, {{text}}!"

    @ModelClass.method
    def generate(self, text: str, n: int = 3) -> Iterator[str]:
        """A streamed answer: each yield reaches the client as it is produced."""
        for i in range(n):
            if self.cancelled():  # the client went away or cancelled the task
                return
            yield f"{{i}}: {{self.greeting}}, {{text}}!\\n"

    @ModelClass.method
    def chat(
        self, messages: list[dict], max_tokens: int = 256, temperature: float = 1.0
    ) -> Iterator[str]:
        """Served at /v1/chat/completions too (OpenAI-compatible)."""
        users = [m.get("content", "") for m in messages if m.get("role") == "user"]
        for word in f"You said: {{users[-1] if users else ''}}".split()[:max_tokens]:
            if self.cancelled():
                return
            yield word + " "
'''

_MCP_MODEL = '''\
"""{model_id}: an MCP server hosted by a runner (reach it at /v2/mcp/{model_id}).

Each @server.tool function is a tool a remote agent can call; annotate its parameters (with
pydantic's Field for descriptions) and they become the tool's JSON schema. Raise ToolError for
an error the agent should read.
"""

from __future__ import annotations

import platform
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from edge_runner import MCPModelClass

server = MCPServer("{model_id}", instructions="Tools that run on this machine.")


@server.tool(description="Add two numbers.")
def add(
    a: Annotated[float, Field(description="the first number")],
    b: Annotated[float, Field(description="the second number")],
) -> float:
    return a + b


@server.tool(description="Say which machine these tools run on.")
def machine() -> dict[str, str]:
    return {{
        "node": platform.node(),
        "system": platform.system(),
        "python": platform.python_version(),
    }}


@server.tool(description="Divide a by b.")
def divide(a: float, b: float) -> float:
    if b == 0:
        raise ToolError("b must not be 0")
    return a / b


class Model(MCPModelClass):
    """Hands the server above to the runner."""

    def get_server(self) -> MCPServer:
        return server
'''

_OPENAI_MODEL = '''\
"""{model_id}: wraps an OpenAI-compatible server that is already running (vLLM, llama.cpp's
server, LM Studio, SGLang, Ollama's /v1). Served on /v1/chat/completions and /v1/embeddings
(through openai_transport / openai_stream_transport) and on /v2 with the methods below."""

from __future__ import annotations

import os
from collections.abc import Iterator

from openai import OpenAI

from edge_runner import OpenAIModelClass


class Model(OpenAIModelClass):
    """Set LLM_BASE_URL (LLM_API_KEY if the server wants one, LLM_MODEL to pick one of its
    models) before `edge-runner up`."""

    client = OpenAI(
        base_url=os.environ.get("LLM_BASE_URL", "http://127.0.0.1:8000/v1"),
        api_key=os.environ.get("LLM_API_KEY", "notset"),
    )
    model = os.environ.get("LLM_MODEL")  # the server's model name; None: the first it lists

    @OpenAIModelClass.method
    def predict(self, prompt: str, max_tokens: int = 256, temperature: float = 0.7) -> str:
        """One whole answer to a prompt."""
        reply = self.client.chat.completions.create(
            model=self.model,
            messages=[{{"role": "user", "content": prompt}}],
            max_tokens=max_tokens,
            temperature=temperature,
        )
        return reply.choices[0].message.content or ""

    @OpenAIModelClass.method
    def generate(
        self, prompt: str, max_tokens: int = 256, temperature: float = 0.7
    ) -> Iterator[str]:
        """The answer to a prompt, streamed as it is generated."""
        stream = self.client.chat.completions.create(
            model=self.model,
            messages=[{{"role": "user", "content": prompt}}],
            max_tokens=max_tokens,
            temperature=temperature,
            stream=True,
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content
'''

_REQUIREMENTS = "# The Python packages this model needs, one per line (not edge-runner itself).\n"

#: model_type_id -> (1/model.py, requirements) for the kinds with a template of their own
_KIND_FILES = {
    "mcp": (_MCP_MODEL, "mcp>=2.3\n"),
    "openai": (_OPENAI_MODEL, "openai>=1.40\n"),
}

_OLLAMA_CONFIG = """\
# Serves the Ollama model {name} through edge-runner: `edge-runner up {path}`.
# The runner uses the Ollama at 127.0.0.1:`port` (without one: $OLLAMA_HOST, else
# 127.0.0.1:11434), starts `ollama serve` when none answers on this machine, and pulls
# {name} when it is missing.
model:
  id: {model_id}
  user_id: local
  app_id: local
  model_type_id: text-to-text

toolkit:
  provider: ollama
  model: {name}
{port}  context_length: {context_length}   # num_ctx
  keep_alive: 5m          # how long Ollama keeps the model in memory after a request
"""

_UPSTREAM_CONFIG = """\
# Serves {name} from {label} at {base_url} through edge-runner.
# Start the server, then `edge-runner up {path}`:
{start}model:
  id: {model_id}
  user_id: local
  app_id: local
  model_type_id: text-to-text

toolkit:
  provider: {provider}
  model: {name}   # the name the server lists at /v1/models
{address}{context}  # api_key_env: UPSTREAM_API_KEY   # the variable holding its key, if any
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``model init``."""
    model = sub.add_parser("model", help="work with model folders")
    actions = model.add_subparsers(dest="model_command", metavar="ACTION")
    init = actions.add_parser(
        "init",
        help="write a model folder (Python, or an Ollama / OpenAI-compatible toolkit)",
        description="Write a model folder into MODEL_PATH (default: the current folder).",
    )
    init.add_argument("model_path", nargs="?", default=".", help="folder to write (default .)")
    init.add_argument(
        "--toolkit",
        choices=tuple(PROVIDERS),
        help="serve a model of a local server: Ollama, vLLM, SGLang, LM Studio, llama.cpp's "
        "llama-server, Hugging Face's `transformers serve`, or any OpenAI-compatible one",
    )
    init.add_argument(
        "--model-name",
        help="the toolkit's model: "
        + ", ".join(f"{p.name} {p.default_model}" for p in PROVIDERS.values() if p.default_model)
        + " by default; llamacpp (its --alias) and openai need one",
    )
    init.add_argument("--model-id", help="the id clients call it by (default: from the name)")
    init.add_argument(
        "--model-type-id",
        default="text-to-text",
        help=(
            "model.model_type_id (default text-to-text; mcp writes an MCP server, openai an "
            "OpenAIModelClass wrapping a running server)"
        ),
    )
    init.add_argument(
        "--port",
        type=int,
        help="the server's port on 127.0.0.1 (default: its own: "
        + ", ".join(f"{p.name} {p.port}" for p in PROVIDERS.values() if p.port)
        + ")",
    )
    init.add_argument(
        "--context-length",
        type=int,
        help="context window in tokens: ollama's num_ctx (default 8192); for vllm, sglang, "
        "lmstudio and llamacpp what the printed start command gives the server",
    )
    init.add_argument(
        "--base-url",
        help="an OpenAI-compatible server elsewhere than 127.0.0.1 (http://HOST:PORT/v1; "
        "instead of --port; openai's default http://127.0.0.1:8000/v1)",
    )
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    init.set_defaults(func=_init)
    test = actions.add_parser(
        "test",
        help="run a model folder's test methods (test() and test_*()); exit 1 if one fails",
        description="Load the model folder (load_model() included) and call its test() method "
        "and every method named test_*, as Clarifai's `model local-test` does. Exit code 0 "
        "when all pass, 1 when one fails or the folder does not load.",
    )
    test.add_argument("model_path", nargs="?", default=".", help="model folder (default .)")
    test.set_defaults(func=_test)
    model.set_defaults(func=lambda args: _missing_action(model))


def _test(args: argparse.Namespace) -> int:
    from edge_runner.cli.model_test import run_tests

    return run_tests(args.model_path)


def _missing_action(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _scalar(value: str) -> str:
    """``value`` as a YAML scalar: plain when that reads back the same, else JSON-quoted."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]*", value) and not value.endswith(":"):
        return value
    return json.dumps(value)


def _model_id(name: str) -> str:
    model_id = re.sub(r"[^A-Za-z0-9._:-]", "-", name.replace("/", "--")).strip("-._:")
    return model_id[:128] or "my-model"


def _init(args: argparse.Namespace) -> int:
    from edge_runner.models.config import MODEL_ID_PATTERN

    folder = Path(args.model_path).expanduser()
    provider = PROVIDERS[args.toolkit] if args.toolkit else None
    _check_options(args, provider)
    name = args.model_name or (provider.default_model if provider else None)
    if provider is not None and not name:
        raise ConfigError(
            f"--toolkit {provider.name} needs --model-name (the name the server lists at "
            "/v1/models)"
        )
    default_id = name or folder.resolve().name
    model_id = args.model_id or _model_id(default_id)
    if not MODEL_ID_PATTERN.fullmatch(model_id):
        raise ConfigError(
            f"model id {model_id!r} is not valid: use letters, digits and . _ : - "
            "(at most 128, starting with a letter or digit); pass --model-id"
        )
    shown = shlex.quote(str(folder))
    files: dict[str, str]
    start: list[str] = []
    if provider is not None and provider.ollama:
        port = f"  port: {args.port}\n" if args.port else ""
        files = {
            "config.yaml": _OLLAMA_CONFIG.format(
                name=_scalar(name or ""),
                model_id=model_id,
                path=shown,
                port=port,
                context_length=args.context_length or 8192,
            )
        }
    elif provider is not None:
        assert name is not None  # checked above
        files, start = _upstream_files(args, provider, name, model_id, shown)
    else:
        model_py, needs = _KIND_FILES.get(args.model_type_id, (_PYTHON_MODEL, ""))
        files = {
            "config.yaml": _PYTHON_CONFIG.format(
                model_id=model_id, model_type_id=args.model_type_id, path=shown
            ),
            "1/model.py": model_py.format(model_id=model_id),
            "requirements.txt": _REQUIREMENTS + needs,
        }
    existing = [rel for rel in files if (folder / rel).exists()]
    if existing and not args.force:
        raise ConfigError(
            f"{folder} already has {', '.join(existing)}; pass --force to overwrite, or pick "
            "another folder"
        )
    for rel, text in files.items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}")
    if start:
        assert provider is not None
        print(f"\nStart {provider.label} (it must list {name}):")
        for line in start:
            print(f"  {line}")
    elif provider is not None and provider.ollama:
        print(f"\nThe runner starts `ollama serve` if none answers, and pulls {name} if missing.")
    print(f"\nServe it on this machine:  edge-runner up {shown}")
    print(f"or with a control plane:   edge-runner runner {shown}")
    return 0


def _check_options(args: argparse.Namespace, provider: Provider | None) -> None:
    """Refuse options that do not go together (ConfigError: exit 2)."""
    if args.model_type_id == "mcp" and provider:
        raise ConfigError("--model-type-id mcp writes its own server; leave out --toolkit")
    given = [
        flag
        for flag, value in (
            ("--model-name", args.model_name),
            ("--port", args.port),
            ("--context-length", args.context_length),
            ("--base-url", args.base_url),
        )
        if value is not None
    ]
    if provider is None and given:
        raise ConfigError(
            f"{', '.join(given)} go(es) with --toolkit ({', '.join(PROVIDERS)}); "
            "a Python model folder takes none"
        )
    if args.port is not None and not 0 < args.port < 65536:
        raise ConfigError(f"--port must be 1-65535, got {args.port}")
    if args.context_length is not None and args.context_length < 1:
        raise ConfigError(f"--context-length must be positive, got {args.context_length}")
    if provider is None:
        return
    if args.context_length is not None and not provider.context_flag:
        raise ConfigError(
            f"--context-length does not go with --toolkit {provider.name}: "
            f"{provider.label} takes the model's own"
        )
    if args.base_url is not None and provider.ollama:
        raise ConfigError("--base-url is for OpenAI-compatible servers; Ollama takes --port")
    if args.base_url is not None and args.port is not None:
        raise ConfigError("--port and --base-url both say where the server is; give one")
    if args.base_url is not None:
        try:
            _ = urlsplit(args.base_url).port  # parsed here: a bad port raises ValueError
        except ValueError as exc:
            raise ConfigError(
                f"--base-url {args.base_url!r} is not a URL with a valid port (http://HOST:PORT/v1)"
            ) from exc


def _upstream_files(
    args: argparse.Namespace, provider: Provider, name: str, model_id: str, shown: str
) -> tuple[dict[str, str], list[str]]:
    """An OpenAI-compatible toolkit's config.yaml, and how to start its server."""
    port = args.port or provider.port
    if args.base_url:
        base_url = args.base_url
        address = f"  base_url: {_scalar(base_url)}\n"
    elif port:
        base_url = f"http://127.0.0.1:{port}/v1"
        address = f"  port: {port}   # {base_url}\n"
    else:  # openai: no port of its own
        base_url = "http://127.0.0.1:8000/v1"
        address = f"  base_url: {base_url}\n"
    if args.base_url:  # the start command shows the port the URL names
        port = urlsplit(args.base_url).port or port
    start = start_commands(provider, name, port or 8000, args.context_length)
    context = ""
    if args.context_length:
        context = (
            f"  context_length: {args.context_length}   # given to the server when it starts "
            f"({provider.context_flag})\n"
        )
    text = _UPSTREAM_CONFIG.format(
        name=_scalar(name),
        label=provider.label,
        base_url=base_url,
        path=shown,
        start="".join(f"#   {line}\n" for line in start),
        model_id=model_id,
        provider=provider.name,
        address=address,
        context=context,
    )
    return {"config.yaml": text}, start if provider.name != "openai" else []
