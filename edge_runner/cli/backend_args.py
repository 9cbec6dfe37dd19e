"""What a runner serves: a model folder, Ollama models, or an OpenAI-compatible server.

``runner`` and ``up`` share these options; ``up`` hands them on to its runner child with
:func:`backend_argv`. Secrets never travel as options: an upstream's API key is read from the
environment variable ``--upstream-api-key-env`` names.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from edge_runner.backends.base import Backend
from edge_runner.errors import ConfigError

__all__ = [
    "BuiltBackend",
    "add_backend_options",
    "backend_argv",
    "build_backend",
    "check_one_source",
    "describe",
]

logger = logging.getLogger(__name__)


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """``--ollama`` and friends, ``--openai-upstream`` and friends, ``--verbose``."""
    ollama = parser.add_argument_group("Ollama (instead of a model folder)")
    ollama.add_argument(
        "--ollama",
        metavar="MODELS",
        help="serve these Ollama models (comma-separated); missing ones are pulled",
    )
    ollama.add_argument(
        "--ollama-host",
        default=None,
        help="the Ollama to use (default: $OLLAMA_HOST or 127.0.0.1:11434); started with "
        "`ollama serve` when nothing answers on a loopback address",
    )
    ollama.add_argument("--num-ctx", type=int, help="context length for every model (num_ctx)")
    ollama.add_argument("--keep-alive", help="how long Ollama keeps a model loaded (e.g. 5m)")
    ollama.add_argument(
        "--no-preload",
        action="store_true",
        help="do not load models into memory at start (the first request waits for it)",
    )
    upstream = parser.add_argument_group("an OpenAI-compatible server (vLLM, llama.cpp, ...)")
    upstream.add_argument(
        "--openai-upstream",
        metavar="URL",
        help="proxy the models of this local OpenAI-compatible server (http://HOST:PORT/v1)",
    )
    upstream.add_argument(
        "--upstream-models",
        metavar="NAMES",
        help="only these of its models (comma-separated; default: all it lists)",
    )
    upstream.add_argument(
        "--upstream-api-key-env",
        metavar="VAR",
        help="environment variable holding the upstream's API key, if it needs one",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show more: the logs of an `ollama serve` the runner starts (and, for `up`, "
        "its children's INFO logs)",
    )


def _csv(value: str | None, flag: str) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise ConfigError(f"{flag} needs at least one name, e.g. {flag} llama3.2")
    return names


def backend_argv(args: argparse.Namespace) -> list[str]:
    """The options above as arguments for a runner child (``up``)."""
    argv: list[str] = []
    for flag, value in (
        ("--ollama", args.ollama),
        ("--ollama-host", args.ollama_host),
        ("--num-ctx", args.num_ctx),
        ("--keep-alive", args.keep_alive),
        ("--openai-upstream", args.openai_upstream),
        ("--upstream-models", args.upstream_models),
        ("--upstream-api-key-env", args.upstream_api_key_env),
    ):
        if value is not None:
            argv += [flag, str(value)]
    if args.no_preload:
        argv.append("--no-preload")
    if args.verbose:
        argv.append("--verbose")
    return argv


def describe(args: argparse.Namespace, model_path: Path) -> str:
    """What the runner serves, for banners and logs."""
    if args.ollama:
        from edge_runner.backends.ollama import normalize_host

        return f"Ollama at {normalize_host(args.ollama_host or os.environ.get('OLLAMA_HOST'))}"
    if args.openai_upstream:
        return f"the OpenAI-compatible server at {args.openai_upstream}"
    return str(model_path)


def check_one_source(args: argparse.Namespace) -> bool:
    """Refuse a model folder together with --ollama or --openai-upstream.

    Returns:
        Whether the runner serves a model folder.
    """
    explicit_path = args.model_path not in (None, ".")
    chosen = [bool(args.ollama), bool(args.openai_upstream), explicit_path]
    if sum(chosen) > 1:
        raise ConfigError(
            "serve one thing: a model folder, --ollama MODELS or --openai-upstream URL"
        )
    return not (args.ollama or args.openai_upstream)


@dataclass
class BuiltBackend:
    """The backend for a runner, and what to say and clean up about it."""

    backend: Backend
    source: str


def build_backend(
    args: argparse.Namespace, model_path: Path, *, probe_interval: float, log_progress: bool
) -> BuiltBackend:
    """The backend the options ask for.

    Raises:
        ConfigError: contradictory or empty options, or a missing API key variable.
        ModelFolderError: a bad model folder.
    """
    check_one_source(args)
    options = {"probe_interval": probe_interval}
    if args.ollama:
        from edge_runner.backends.ollama import OllamaBackend

        host = args.ollama_host or os.environ.get("OLLAMA_HOST") or ""
        models = _csv(args.ollama, "--ollama") or []
        ollama = OllamaBackend(
            host,
            models,
            num_ctx=args.num_ctx,
            keep_alive=args.keep_alive,
            preload=not args.no_preload,
            log_progress=log_progress,
            **options,
        )
        return BuiltBackend(ollama, f"ollama {ollama.host} {','.join(sorted(models))}")
    if args.openai_upstream:
        from edge_runner.backends.openai_upstream import OpenAIUpstreamBackend

        api_key = None
        if args.upstream_api_key_env:
            api_key = os.environ.get(args.upstream_api_key_env)
            if not api_key:
                raise ConfigError(
                    f"--upstream-api-key-env names ${args.upstream_api_key_env}, which is not set"
                )
        upstream = OpenAIUpstreamBackend(
            args.openai_upstream,
            _csv(args.upstream_models, "--upstream-models"),
            api_key=api_key,
            **options,
        )
        return BuiltBackend(upstream, f"openai {upstream.base_url}")
    from edge_runner.backends.factory import backend_for_folder

    return BuiltBackend(
        backend_for_folder(model_path, log_progress=log_progress, **options), str(model_path)
    )
