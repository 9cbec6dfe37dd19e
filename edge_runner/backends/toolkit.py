"""A model folder's ``toolkit`` section: which local server serves it, where, and what model.

Pure parsing and validation, no I/O beyond the environment: :func:`parse_toolkit` turns the
section into a :class:`Toolkit` (or a :class:`ModelFolderError` naming the file and the key),
and :data:`PROVIDERS` says, per provider, its default port and how a person starts it.

Every provider but ``ollama`` is an OpenAI-compatible server that the person starts
(``model init`` prints how); the runner proxies it at ``http://127.0.0.1:PORT/v1``.
``huggingface`` is Hugging Face's own OpenAI-compatible server, ``transformers serve``: the
reference's template runs transformers inside its ``1/model.py`` instead, which a folder that
keeps its ``1/model.py`` still does (see :func:`runs_model_py`).
"""

from __future__ import annotations

import logging
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_runner.errors import ModelFolderError
from edge_runner.models.config import ModelConfig

__all__ = [
    "DEFAULT_OLLAMA_MODEL",
    "PROVIDERS",
    "Provider",
    "Toolkit",
    "parse_toolkit",
    "runs_model_py",
    "start_commands",
]

logger = logging.getLogger(__name__)

#: the Ollama model a toolkit without ``toolkit.model`` serves (the reference's default)
DEFAULT_OLLAMA_MODEL = "llama3.2"


@dataclass(frozen=True)
class Provider:
    """A local server a toolkit folder can name.

    Attributes:
        name: the ``toolkit.provider`` value.
        label: how people write it.
        port: the port the server listens on by default (None: no default, ``openai``).
        default_model: the model ``model init`` writes without ``--model-name`` (None: required).
        context_flag: the server's option for the context length (None: takes none).
    """

    name: str
    label: str
    port: int | None
    default_model: str | None
    context_flag: str | None

    @property
    def ollama(self) -> bool:
        """Served through Ollama's API (else: through its OpenAI-compatible ``/v1``)."""
        return self.name == "ollama"

    @property
    def keys(self) -> frozenset[str]:
        """The keys its toolkit section takes."""
        common = {"provider", "model", "port"}
        if self.ollama:
            return frozenset(common | {"host", "context_length", "keep_alive"})
        context = {"context_length"} if self.context_flag else set()
        return frozenset(common | context | {"base_url", "api_key_env"})


#: every provider, in the order the CLI lists them. Ports are each server's own default;
#: the reference's templates use 23333 only for the server their 1/model.py starts itself.
PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider("ollama", "Ollama", 11434, DEFAULT_OLLAMA_MODEL, "num_ctx"),
        Provider("vllm", "vLLM", 8000, "google/gemma-3-1b-it", "--max-model-len"),
        Provider("sglang", "SGLang", 30000, "google/gemma-3-1b-it", "--context-length"),
        Provider("lmstudio", "LM Studio", 1234, "google/gemma-3-4b", "--context-length"),
        Provider("llamacpp", "llama.cpp's llama-server", 8080, None, "-c"),
        Provider("huggingface", "transformers serve", 8000, "unsloth/Llama-3.2-1B-Instruct", None),
        Provider("openai", "an OpenAI-compatible server", None, None, None),
    )
}


@dataclass(frozen=True)
class Toolkit:
    """A validated toolkit section.

    Attributes:
        provider: the server.
        model: the server's name for the model.
        address: Ollama's ``host:port`` ("" for $OLLAMA_HOST, else 127.0.0.1:11434), or the
            OpenAI base URL (``http://HOST:PORT/v1``).
        context_length: the context window (Ollama's num_ctx; for the others what the start
            command is given), if set.
        keep_alive: Ollama's keep_alive, if set.
        api_key: the upstream's key, read from ``toolkit.api_key_env``.
    """

    provider: Provider
    model: str
    address: str
    context_length: int | None = None
    keep_alive: str | None = None
    api_key: str | None = None


def runs_model_py(folder: Path, config: ModelConfig) -> bool:
    """Whether the folder runs its ``1/model.py`` (no toolkit section, or one beside code).

    A ``1/model.py`` beside a toolkit section is what the reference writes (its code starts the
    server and wraps it), so the code runs and the section is configuration for it.
    """
    return "toolkit" not in config.raw or (folder / "1" / "model.py").is_file()


def parse_toolkit(where: Path, config: ModelConfig) -> Toolkit:
    """The folder's toolkit section, checked.

    Args:
        where: the ``config.yaml`` (for messages).
        config: its parsed contents.

    Raises:
        ModelFolderError: a missing or unknown provider, an unknown key, a key of the wrong type
            or range, two keys that both set the address, an unset ``api_key_env`` variable.
    """
    section = config.raw.get("toolkit")
    names = ", ".join(PROVIDERS)
    if not isinstance(section, dict):
        raise ModelFolderError(f"{where}: `toolkit` must be a mapping (provider: {names})")
    named = section.get("provider")
    provider = PROVIDERS.get(named) if isinstance(named, str) else None
    if provider is None:
        raise ModelFolderError(
            f"{where}: toolkit.provider must be one of {names}, got {section.get('provider')!r}"
        )
    unknown = sorted(set(section) - provider.keys)
    if unknown:
        raise ModelFolderError(
            f"{where}: unknown toolkit key(s) {', '.join(map(str, unknown))}; "
            f"{provider.name} takes {', '.join(sorted(provider.keys))}"
        )
    port = _port(where, section)
    context = section.get("context_length")
    if context is not None and (
        isinstance(context, bool) or not isinstance(context, int) or context < 1
    ):
        raise ModelFolderError(
            f"{where}: toolkit.context_length must be a positive integer (tokens), got {context!r}"
        )
    model = _string(where, section, "model") or _default_model(where, provider, config)
    if provider.ollama:
        host = _string(where, section, "host")
        _one_address(where, port, "host", host)
        keep_alive = section.get("keep_alive")
        return Toolkit(
            provider,
            model,
            f"127.0.0.1:{port}" if port else host or os.environ.get("OLLAMA_HOST") or "",
            context_length=context,
            keep_alive=None if keep_alive is None else str(keep_alive),
        )
    base_url = _string(where, section, "base_url")
    _one_address(where, port, "base_url", base_url)
    port = port or provider.port
    if port:
        base_url = base_url or f"http://127.0.0.1:{port}/v1"
    if not base_url:
        raise ModelFolderError(
            f"{where}: toolkit.base_url (http://HOST:PORT/v1) or toolkit.port is required for "
            "provider openai"
        )
    key_env = _string(where, section, "api_key_env")
    api_key = os.environ.get(key_env) if key_env else None
    if key_env and not api_key:
        raise ModelFolderError(f"{where}: toolkit.api_key_env names ${key_env}, which is not set")
    return Toolkit(provider, model, base_url, context_length=context, api_key=api_key)


def start_commands(provider: Provider, model: str, port: int, context: int | None) -> list[str]:
    """How a person starts ``provider`` serving ``model`` on ``port`` (shell lines)."""
    ctx = f" {provider.context_flag} {context}" if context and provider.context_flag else ""
    model = shlex.quote(model)
    if provider.name == "vllm":
        return [f"vllm serve {model} --port {port}{ctx}"]
    if provider.name == "sglang":
        return [f"python -m sglang.launch_server --model-path {model} --port {port}{ctx}"]
    if provider.name == "lmstudio":
        return [f"lms server start --port {port}", f"lms load {model}{ctx}"]
    if provider.name == "llamacpp":
        return [f"llama-server -m PATH/TO/MODEL.gguf --alias {model} --port {port}{ctx}"]
    if provider.name == "huggingface":
        # transformers serve lists (and so serves by name) the models in the local cache.
        return [f"hf download {model}", f"transformers serve --port {port}"]
    if provider.ollama:
        return []  # the runner starts `ollama serve` itself when none answers
    return [f"start the server that serves {model} on port {port}"]


def _default_model(where: Path, provider: Provider, config: ModelConfig) -> str:
    checkpoints = config.raw.get("checkpoints")
    repo = checkpoints.get("repo_id") if isinstance(checkpoints, dict) else None
    if isinstance(repo, str) and repo and not provider.ollama:
        return repo  # the reference's vllm/sglang/huggingface folders name it there
    if not provider.ollama:
        return config.model_id
    if config.model_id != DEFAULT_OLLAMA_MODEL:
        logger.warning(
            "%s: no toolkit.model, so model %s serves Ollama's %s (the reference's default); "
            "before, the model id was taken as the Ollama name: set `model: %s` under "
            "`toolkit:` to serve that",
            where,
            config.model_id,
            DEFAULT_OLLAMA_MODEL,
            config.model_id,
        )
    return DEFAULT_OLLAMA_MODEL


def _port(where: Path, section: dict[str, Any]) -> int | None:
    port = section.get("port")
    if port is None:
        return None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ModelFolderError(
            f"{where}: toolkit.port must be an integer 1-65535 (the server's port on "
            f"127.0.0.1), got {port!r}"
        )
    return port


def _one_address(where: Path, port: int | None, key: str, value: str | None) -> None:
    if port is not None and value:
        meant = f"127.0.0.1:{port}" if key == "host" else f"http://127.0.0.1:{port}/v1"
        raise ModelFolderError(
            f"{where}: toolkit.port and toolkit.{key} both say where the server is; keep one "
            f"(port: {port} means {key}: {meant})"
        )


def _string(where: Path, section: dict[str, Any], key: str) -> str | None:
    value = section.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ModelFolderError(f"{where}: toolkit.{key} must be a string, got {value!r}; quote it")
