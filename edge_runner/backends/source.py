"""What a runner serves — a model folder, Ollama models, or an OpenAI-compatible server — and
the backend for it.

:class:`ModelSource` is plain data, checked when it is made; :func:`build_backend` turns it into
the backend. Secrets never sit in it: an upstream's API key is read from the environment
variable ``upstream_api_key_env`` names, when the backend is built.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

from edge_runner.backends.base import Backend
from edge_runner.errors import ConfigError
from edge_runner.models.codec import DEFAULT_MAX_MEDIA_BYTES

__all__ = ["UPSTREAM_START_TIMEOUT", "ModelSource", "build_backend"]

logger = logging.getLogger(__name__)

#: seconds a runner waits for an OpenAI-compatible server that does not answer yet (it is still
#: loading its model): vLLM takes about a minute to load a 7-8B model from a warm disk (weights,
#: then its CUDA graphs) and llama.cpp a few seconds to a minute, so two minutes covers the usual
#: cold start without leaving a wrong URL unnoticed for long. Bigger models or a cold disk:
#: raise it with --upstream-start-timeout. Named models keep waiting past it (UNAVAILABLE, then
#: online when it answers); only a runner serving "whatever it lists" gives up then.
UPSTREAM_START_TIMEOUT = 120.0


@dataclass(frozen=True)
class ModelSource:
    """One thing for a runner to serve.

    Attributes:
        model_path: a model folder (the default when nothing else is named: the current one).
        ollama: Ollama models to serve (missing ones are pulled).
        ollama_host: the Ollama to use (default: ``$OLLAMA_HOST``, else 127.0.0.1:11434).
        num_ctx: context length for every Ollama model.
        keep_alive: how long Ollama keeps a model loaded (``5m``).
        preload: load the Ollama models at start.
        openai_upstream: proxy the models of this OpenAI-compatible server (``.../v1``).
        upstream_models: only these of its models (default: all it lists).
        upstream_api_key_env: the environment variable holding the upstream's API key.
        upstream_start_timeout: seconds to wait for an upstream (also a model folder's
            ``openai`` toolkit) that does not answer at start (0: fail at once).
        max_media_bytes: the most bytes one binary argument of a model folder's method (an
            image, ``bytes``) may hold.
        allow_url_fetch: fetch the URLs of a model folder's media inputs (off: refused).

    Raises:
        ConfigError: more than one thing to serve, an empty list of names, or a value out of
            range.
    """

    model_path: Path | None = None
    ollama: tuple[str, ...] = ()
    ollama_host: str | None = None
    num_ctx: int | None = None
    keep_alive: str | None = None
    preload: bool = True
    openai_upstream: str | None = None
    upstream_models: tuple[str, ...] | None = None
    upstream_api_key_env: str | None = None
    upstream_start_timeout: float = UPSTREAM_START_TIMEOUT
    max_media_bytes: int = DEFAULT_MAX_MEDIA_BYTES
    allow_url_fetch: bool = False

    def __post_init__(self) -> None:
        chosen = [bool(self.ollama), bool(self.openai_upstream), self.model_path is not None]
        if sum(chosen) > 1:
            raise ConfigError(
                "serve one thing: a model folder, --ollama MODELS or --openai-upstream URL"
            )
        if self.upstream_models is not None and not self.upstream_models:
            raise ConfigError(
                "--upstream-models needs at least one name, e.g. --upstream-models llama3.2"
            )
        if self.num_ctx is not None and self.num_ctx <= 0:
            raise ConfigError(f"--num-ctx must be positive, got {self.num_ctx}")
        if self.max_media_bytes <= 0:
            raise ConfigError(f"--max-media-bytes must be positive, got {self.max_media_bytes}")
        if not 0 <= self.upstream_start_timeout < math.inf:  # (NaN fails both)
            raise ConfigError(
                "--upstream-start-timeout takes seconds, 0 or more (0: fail at once when the "
                f"server does not answer), got {self.upstream_start_timeout:g}"
            )

    @property
    def serves_folder(self) -> bool:
        """Whether this is a model folder (not Ollama, not an upstream server)."""
        return not (self.ollama or self.openai_upstream)

    @property
    def folder(self) -> Path:
        """The model folder, absolute (the current directory when none was named)."""
        return (self.model_path or Path(".")).expanduser().resolve()

    def key(self) -> str:
        """What is served, as the key of the runner id kept for it across starts."""
        if self.ollama:
            from edge_runner.backends.ollama_ready import normalize_host

            host = normalize_host(self.ollama_host or os.environ.get("OLLAMA_HOST") or "")
            return f"ollama {host} {','.join(sorted(self.ollama))}"
        if self.openai_upstream:
            from edge_runner.backends.openai_upstream import normalize_base_url

            return f"openai {normalize_base_url(self.openai_upstream)}"
        return str(self.folder)

    def describe(self) -> str:
        """What the runner serves, for banners and logs."""
        if self.ollama:
            from edge_runner.backends.ollama_ready import normalize_host

            return f"Ollama at {normalize_host(self.ollama_host or os.environ.get('OLLAMA_HOST'))}"
        if self.openai_upstream:
            return f"the OpenAI-compatible server at {self.openai_upstream}"
        return str(self.folder)


def build_backend(source: ModelSource, *, probe_interval: float, log_progress: bool) -> Backend:
    """The backend that serves ``source``.

    Raises:
        ConfigError: a missing API key variable.
        ModelFolderError: a bad model folder.
    """
    options: dict[str, float] = {"probe_interval": probe_interval}
    if source.ollama:
        from edge_runner.backends.ollama import OllamaBackend

        return OllamaBackend(
            source.ollama_host or os.environ.get("OLLAMA_HOST") or "",
            list(source.ollama),
            num_ctx=source.num_ctx,
            keep_alive=source.keep_alive,
            preload=source.preload,
            log_progress=log_progress,
            **options,
        )
    if source.openai_upstream:
        from edge_runner.backends.openai_upstream import OpenAIUpstreamBackend

        api_key = None
        if source.upstream_api_key_env:
            api_key = os.environ.get(source.upstream_api_key_env)
            if not api_key:
                raise ConfigError(
                    f"--upstream-api-key-env names ${source.upstream_api_key_env}, which is not set"
                )
        return OpenAIUpstreamBackend(
            source.openai_upstream,
            list(source.upstream_models) if source.upstream_models is not None else None,
            api_key=api_key,
            start_timeout=source.upstream_start_timeout,
            **options,
        )
    from edge_runner.backends.factory import backend_for_folder

    return backend_for_folder(
        source.folder,
        log_progress=log_progress,
        max_media_bytes=source.max_media_bytes,
        allow_url_fetch=source.allow_url_fetch,
        upstream_start_timeout=source.upstream_start_timeout,
        **options,
    )
