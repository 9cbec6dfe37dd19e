"""Pick the backend for a model folder: Python code, or a toolkit that serves a local server.

A folder whose ``config.yaml`` has a ``toolkit`` section (written by ``edge-runner model init
--toolkit PROVIDER``) and no ``1/model.py`` is served from that local server::

    model: {id: llama3.2}
    toolkit:
      provider: ollama               # Ollama: pulled at start if missing
      model: llama3.2                # the Ollama name (default: llama3.2, as the reference)
      port: 11434                    # or host: HOST:PORT; default $OLLAMA_HOST, else :11434
      context_length: 8192           # num_ctx
      keep_alive: 5m

    toolkit:
      provider: vllm                 # vllm, sglang, lmstudio, llamacpp, huggingface, openai
      model: Qwen/Qwen2.5-7B-Instruct  # the name the server lists (default: model.id)
      port: 8000                     # http://127.0.0.1:PORT/v1; default the server's own port
      # base_url: http://HOST:PORT/v1  (instead of port; openai needs one of the two)
      api_key_env: VLLM_API_KEY      # the variable holding its key, if it needs one

The keys are checked by :mod:`edge_runner.backends.toolkit`. A folder with both a toolkit
section and a ``1/model.py`` (the reference's toolkit templates) runs its ``1/model.py``: the
section is configuration for that code. A folder with ``model_type_id: mcp`` hosts the MCP
server its MCPModelClass returns; every other folder is a Python model folder (``1/model.py``
with a ModelClass).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edge_runner.backends.base import Backend
from edge_runner.backends.toolkit import PROVIDERS, parse_toolkit, runs_model_py
from edge_runner.models.config import CONFIG_FILE, load_config
from edge_runner.models.loader import existing_folder

__all__ = ["TOOLKITS", "backend_for_folder"]

logger = logging.getLogger(__name__)

#: the ``toolkit.provider`` values
TOOLKITS = tuple(PROVIDERS)


def backend_for_folder(path: Path, **options: Any) -> Backend:
    """The backend serving the model folder at ``path``.

    ``options`` go to the Ollama or upstream backend (``probe_interval``, ``log_progress``);
    ``max_media_bytes`` and ``allow_url_fetch`` only to a Python model folder's, and
    ``upstream_start_timeout`` only to an OpenAI-compatible toolkit's (its ``start_timeout``).

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
    if runs_model_py(path, config):
        from edge_runner.backends.python_model import PythonModelBackend

        if toolkit is not None:
            provider = toolkit.get("provider") if isinstance(toolkit, dict) else toolkit
            logger.info(
                "%s has a toolkit section (provider %s) and a 1/model.py: running 1/model.py, "
                "which the section configures (remove 1/model.py to have edge-runner serve the "
                "toolkit itself)",
                path,
                provider,
            )
        if max_media_bytes is None:
            return PythonModelBackend(path, allow_url_fetch=allow_url_fetch)
        return PythonModelBackend(
            path, max_media_bytes=max_media_bytes, allow_url_fetch=allow_url_fetch
        )
    spec = parse_toolkit(path / CONFIG_FILE, config)
    if spec.provider.ollama:
        from edge_runner.backends.ollama import OllamaBackend

        return OllamaBackend(
            spec.address,
            {config.model_id: spec.model},
            num_ctx=spec.context_length,
            keep_alive=spec.keep_alive,
            **options,
        )
    from edge_runner.backends.openai_upstream import OpenAIUpstreamBackend

    options.pop("log_progress", None)
    return OpenAIUpstreamBackend(
        spec.address,
        {config.model_id: spec.model},
        api_key=spec.api_key,
        start_timeout=start_timeout,
        **options,
    )
