"""Pick the backend for a model folder: Python code, or a toolkit that serves a local server.

A folder whose ``config.yaml`` has a ``toolkit`` section (written by ``edge-runner model init
--toolkit ollama|openai``) needs no ``1/model.py``::

    model: {id: llama3.2}
    toolkit:
      provider: ollama               # Ollama: pulled at start if missing
      model: llama3.2                # the Ollama name (default: model.id)
      host: 127.0.0.1:11434          # default: $OLLAMA_HOST, else 127.0.0.1:11434
      context_length: 8192           # num_ctx
      keep_alive: 5m

    toolkit:
      provider: openai               # any OpenAI-compatible server
      base_url: http://127.0.0.1:8000/v1
      model: Qwen/Qwen2.5-7B-Instruct
      api_key_env: VLLM_API_KEY      # the variable holding its key, if it needs one

A folder with ``model_type_id: mcp`` hosts the MCP server its MCPModelClass returns; every
other folder is a Python model folder (``1/model.py`` with a ModelClass).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edge_runner.backends.base import Backend
from edge_runner.errors import ModelFolderError
from edge_runner.models.config import CONFIG_FILE, load_config
from edge_runner.models.loader import existing_folder

__all__ = ["TOOLKITS", "backend_for_folder"]

TOOLKITS = ("ollama", "openai")
_KEYS = {
    "ollama": {"provider", "model", "host", "context_length", "keep_alive"},
    "openai": {"provider", "model", "base_url", "api_key_env"},
}


def backend_for_folder(path: Path, **options: Any) -> Backend:
    """The backend serving the model folder at ``path``.

    ``options`` go to the Ollama or upstream backend (``probe_interval``, ``log_progress``);
    ``max_media_bytes`` and ``allow_url_fetch`` only to a Python model folder's, and
    ``upstream_start_timeout`` only to an ``openai`` toolkit's (its ``start_timeout``).

    Raises:
        ModelFolderError: the folder or its ``toolkit`` section is malformed (file and field
            named).
    """
    max_media_bytes = options.pop("max_media_bytes", None)
    allow_url_fetch = bool(options.pop("allow_url_fetch", False))
    start_timeout = float(options.pop("upstream_start_timeout", 0.0))
    config = load_config(existing_folder(path))
    toolkit = config.raw.get("toolkit")
    if toolkit is None and config.model_type_id == "mcp":
        from edge_runner.backends.mcp_server import MCPBackend

        return MCPBackend(path)
    if toolkit is None:
        from edge_runner.backends.python_model import PythonModelBackend

        if max_media_bytes is None:
            return PythonModelBackend(path, allow_url_fetch=allow_url_fetch)
        return PythonModelBackend(
            path, max_media_bytes=max_media_bytes, allow_url_fetch=allow_url_fetch
        )
    where = path / CONFIG_FILE
    if not isinstance(toolkit, dict):
        raise ModelFolderError(f"{where}: `toolkit` must be a mapping (provider: ollama|openai)")
    provider = toolkit.get("provider")
    if provider not in TOOLKITS:
        raise ModelFolderError(
            f"{where}: toolkit.provider must be one of {', '.join(TOOLKITS)}, got {provider!r}"
        )
    unknown = sorted(set(toolkit) - _KEYS[provider])
    if unknown:
        raise ModelFolderError(
            f"{where}: unknown toolkit key(s) {', '.join(unknown)}; "
            f"{provider} takes {', '.join(sorted(_KEYS[provider]))}"
        )
    name = _string(where, toolkit, "model") or config.model_id
    if provider == "ollama":
        from edge_runner.backends.ollama import OllamaBackend

        context = toolkit.get("context_length")
        if context is not None and (
            isinstance(context, bool) or not isinstance(context, int) or context < 1
        ):
            raise ModelFolderError(f"{where}: toolkit.context_length must be a positive integer")
        keep_alive = toolkit.get("keep_alive")
        return OllamaBackend(
            _string(where, toolkit, "host") or os.environ.get("OLLAMA_HOST") or "",
            {config.model_id: name},
            num_ctx=context,
            keep_alive=None if keep_alive is None else str(keep_alive),
            **options,
        )
    from edge_runner.backends.openai_upstream import OpenAIUpstreamBackend

    base_url = _string(where, toolkit, "base_url")
    if not base_url:
        raise ModelFolderError(f"{where}: toolkit.base_url is required (http://HOST:PORT/v1)")
    key_env = _string(where, toolkit, "api_key_env")
    api_key = os.environ.get(key_env) if key_env else None
    if key_env and not api_key:
        raise ModelFolderError(f"{where}: toolkit.api_key_env names ${key_env}, which is not set")
    options.pop("log_progress", None)
    return OpenAIUpstreamBackend(
        base_url,
        {config.model_id: name},
        api_key=api_key,
        start_timeout=start_timeout,
        **options,
    )


def _string(where: Path, toolkit: dict[str, Any], key: str) -> str | None:
    value = toolkit.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ModelFolderError(f"{where}: toolkit.{key} must be a string, got {value!r}; quote it")
