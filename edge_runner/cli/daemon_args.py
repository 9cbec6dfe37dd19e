"""The options of the long-running commands, and the configs they become.

``control``, ``runner`` and ``up`` share these options. Each command turns its options into a
:class:`~edge_runner.control.ControlConfig` or a :class:`~edge_runner.daemons.RunnerConfig`
(which check themselves) and hands that to :mod:`edge_runner.daemons`; the defaults here are
the configs' own.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any

from edge_runner.backends.source import UPSTREAM_START_TIMEOUT, ModelSource
from edge_runner.config.checks import time_scale_from_env
from edge_runner.control.config import TUNING, ControlConfig
from edge_runner.daemons.runner import DEFAULT_POOL_SIZE, RunnerConfig
from edge_runner.errors import ConfigError
from edge_runner.models.codec import DEFAULT_MAX_MEDIA_BYTES
from edge_runner.runner.transport import TransportKind

__all__ = [
    "CONTROL_SETTINGS",
    "add_backend_options",
    "add_control_options",
    "add_listen_options",
    "add_runner_options",
    "add_scale_options",
    "add_supervision_options",
    "control_config",
    "insecure_option",
    "model_source",
    "runner_config",
    "source_argv",
]


def _defaults(config: type[ControlConfig | RunnerConfig]) -> dict[str, Any]:
    return {
        f.name: f.default
        for f in dataclasses.fields(config)
        if f.default is not dataclasses.MISSING
    }


_CONTROL = _defaults(ControlConfig)
_RUNNER = _defaults(RunnerConfig)

#: the ``control`` options that tune the control plane, as ``up`` hands them on
CONTROL_SETTINGS = TUNING


def add_supervision_options(parser: argparse.ArgumentParser) -> None:
    """``--ready-fd`` and ``--lifeline-fd``, hidden: how ``up`` and the tests supervise a
    daemon (see :mod:`edge_runner.daemons.supervision`)."""
    parser.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--lifeline-fd", type=int, help=argparse.SUPPRESS)


def add_listen_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default=_CONTROL["host"], help=f"listen address (default {_CONTROL['host']})"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=_CONTROL["port"],
        help=f"HTTP API port (default {_CONTROL['port']}; 0 = any free)",
    )
    parser.add_argument(
        "--grpc-port",
        type=int,
        default=_CONTROL["grpc_port"],
        help=f"gRPC tunnel port (default {_CONTROL['grpc_port']}; 0 = any free)",
    )


def add_scale_options(parser: argparse.ArgumentParser) -> None:
    """``control``'s options for running as one replica of several (docs/scale.md)."""
    group = parser.add_argument_group(
        "replicas", "run as one of several replicas on PostgreSQL and NATS JetStream"
    )
    group.add_argument(
        "--registry",
        metavar="URL",
        help="postgresql://USER@HOST[:PORT]/DB shared by replicas (default: SQLite in "
        "--data-dir; env EDGE_RUNNER_REGISTRY). No password in it: PGPASSFILE or PGPASSWORD",
    )
    group.add_argument(
        "--bus",
        metavar="URLS",
        help="nats://HOST:PORT[,nats://...] of a NATS JetStream cluster for task queues, leases "
        "and result streams (default: in-process; env EDGE_RUNNER_BUS); needs --registry",
    )
    group.add_argument(
        "--replica-id", help="this replica's name, unique among live ones (default: host name)"
    )
    group.add_argument(
        "--advertise-tunnel",
        metavar="HOST:PORT",
        help="the gRPC tunnel address runners are told to dial (the load balancer's)",
    )
    group.add_argument(
        "--bus-replicas",
        type=int,
        default=1,
        help="JetStream stream replicas: 1, or 3 on a 3-node NATS cluster (default 1)",
    )
    group.add_argument(
        "--nats-creds", type=Path, metavar="FILE", help="NATS credentials file (never argv)"
    )


def add_control_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="registry and admin token location")
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=_CONTROL["request_timeout"],
        help="per-request deadline, s (default 60)",
    )
    parser.add_argument(
        "--max-queue",
        type=int,
        default=_CONTROL["max_queue"],
        help="waiting requests per model before 429",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=_CONTROL["max_batch"],
        help="items one batch predict (a JSON array of arguments) may hold before 413 "
        "(default 256); each counts against --max-queue",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=_CONTROL["max_body_bytes"],
        help="request body limit (413)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        default=_CONTROL["heartbeat_interval"],
        help="s between heartbeats (default 5)",
    )
    parser.add_argument(
        "--silence-timeout",
        type=float,
        default=_CONTROL["silence_timeout"],
        help="s without a message before a tunnel is dropped as dead (default 15)",
    )
    parser.add_argument(
        "--lease-ttl",
        type=float,
        default=_CONTROL["lease_ttl"],
        help="s a dropped runner keeps its tasks before they are re-queued (default 10)",
    )
    parser.add_argument(
        "--stream-window",
        type=int,
        default=_CONTROL["stream_window"],
        help="chunks a stream may run ahead of its reader before the model is paused (default 64)",
    )
    parser.add_argument(
        "--stream-buffer-bytes",
        type=int,
        default=_CONTROL["stream_buffer_bytes"],
        help="output of one stream held for a slow reader, about (default 4 MiB; fewer "
        "chunks than the window when they are big)",
    )
    parser.add_argument(
        "--stream-idle-timeout",
        type=float,
        default=_CONTROL["stream_idle_timeout"],
        help="s a stream may go without a chunk from its model or a read by its client "
        "before it is cancelled (default 60)",
    )
    parser.add_argument(
        "--max-stream-duration",
        type=float,
        default=_CONTROL["max_stream_duration"],
        help="s a stream may run in all before it is cancelled (default 1800)",
    )
    parser.add_argument(
        "--max-paused-streams",
        type=int,
        default=_CONTROL["max_paused_streams"],
        help="streams one token may have stalled on slow readers at once, each holding a "
        "runner slot; the next fails with SLOW_READER (default 16)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=_CONTROL["max_connections"],
        help="open HTTP connections (WebSocket tunnels included) before 503, and gRPC "
        "tunnels before RESOURCE_EXHAUSTED (default 1024)",
    )
    parser.add_argument(
        "--max-header-bytes",
        type=int,
        default=_CONTROL["max_header_bytes"],
        help="request line + headers limit (431), and gRPC metadata limit (default 16384)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=_CONTROL["header_timeout"],
        help="s for a connection, or each request on it, to send its headers (default 10)",
    )
    parser.add_argument(
        "--body-idle-timeout",
        type=float,
        default=_CONTROL["body_idle_timeout"],
        help="s a request body may pause between two pieces (default 30)",
    )
    parser.add_argument(
        "--handshake-timeout",
        type=float,
        default=_CONTROL["handshake_timeout"],
        help="s for a tunnel to say Hello, and a gRPC connection to start one (default 10)",
    )
    parser.add_argument("--tls-cert", type=Path, help="PEM server certificate: serve TLS")
    parser.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    parser.add_argument(
        "--tls-self-signed",
        action="store_true",
        help="create (once) a private CA and server certificate under the data dir and serve "
        "TLS with them; prints the CA file and fingerprint for runners and clients",
    )


def insecure_option(parser: argparse.ArgumentParser) -> None:
    """``--insecure``: allow plain text off loopback (a warning at each start)."""
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow plain text on a non-loopback address (logged as a warning at each start)",
    )


def add_runner_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pool-size",
        type=int,
        help="tasks run at once (default: the folder's config.yaml num_threads, else "
        f"{DEFAULT_POOL_SIZE}; for Ollama, what it runs at once: "
        "OLLAMA_NUM_PARALLEL per model)",
    )
    parser.add_argument(
        "--checkpoints",
        metavar="DIR",
        type=Path,
        help="where config.yaml's checkpoints are on this machine: DIR/<repo_id>/ (sets "
        "$EDGE_RUNNER_CHECKPOINTS; else 1/checkpoints/, then the Hugging Face cache)",
    )
    parser.add_argument(
        "--grace-period",
        type=float,
        default=_RUNNER["grace_period"],
        help="seconds a stop waits for in-flight tasks (default 30)",
    )
    parser.add_argument(
        "--ca-file",
        type=Path,
        help="a private CA to verify the control plane's TLS certificate (default: the "
        "system store; also EDGE_RUNNER_CA_FILE or the context's ca_file)",
    )
    parser.add_argument(
        "--transport",
        choices=[kind.value for kind in TransportKind],
        default=TransportKind.GRPC.value,
        help="tunnel transport: gRPC (default) or WebSocket, where only HTTP/1.1 gets out",
    )
    parser.add_argument(
        "--gpus",
        metavar="LIST",
        help="GPU indices the model may use, e.g. 0,1, or none (default: placed by the model "
        "folder's inference_compute_info; see `edge-runner gpus`)",
    )


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
    upstream.add_argument(
        "--upstream-start-timeout",
        metavar="SECONDS",
        type=_seconds,
        default=UPSTREAM_START_TIMEOUT,
        help="seconds to wait for the server (or a model folder's openai toolkit) to answer "
        f"at start while it loads its model (default {UPSTREAM_START_TIMEOUT:g}; 0: fail at "
        "once). Its models show as loading, then online; named ones (--upstream-models, a "
        "toolkit's model) still waiting then show as unavailable until it answers",
    )
    folder = parser.add_argument_group("a model folder")
    folder.add_argument(
        "--max-media-bytes",
        type=int,
        default=DEFAULT_MAX_MEDIA_BYTES,
        metavar="N",
        help="the most bytes one binary argument (an image, audio, bytes) may hold; a larger "
        f"one is refused before it is decoded (default {DEFAULT_MAX_MEDIA_BYTES // 2**20} MiB)",
    )
    folder.add_argument(
        "--allow-url-fetch",
        action="store_true",
        help="fetch the URL of an image, audio, video or text input that has no content "
        "(http/https only; link-local and metadata addresses refused; redirects re-checked; "
        "30 s; --max-media-bytes). Off by default: such an input is refused, asking for bytes",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show more: the logs of an `ollama serve` the runner starts (and, for `up`, "
        "its children's INFO logs)",
    )


def _seconds(value: str) -> float:
    """An option's number of seconds (the range is the config's to check)."""
    try:
        return float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"takes a number of seconds (e.g. 300, or 0 to fail at once), got {value!r}"
        ) from exc


def _names(value: str | None, flag: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    if not names:
        raise ConfigError(f"{flag} needs at least one name, e.g. {flag} llama3.2")
    return names


def model_source(args: argparse.Namespace) -> ModelSource:
    """What ``runner``/``up`` serve: the model folder, ``--ollama`` or ``--openai-upstream``.

    Raises:
        ConfigError: more than one of them, or an empty list of names.
    """
    explicit_path = args.model_path not in (None, ".")
    return ModelSource(
        model_path=Path(args.model_path) if explicit_path else None,
        ollama=_names(args.ollama, "--ollama") or (),
        ollama_host=args.ollama_host,
        num_ctx=args.num_ctx,
        keep_alive=args.keep_alive,
        preload=not args.no_preload,
        openai_upstream=args.openai_upstream,
        upstream_models=_names(args.upstream_models, "--upstream-models"),
        upstream_api_key_env=args.upstream_api_key_env,
        upstream_start_timeout=args.upstream_start_timeout,
        max_media_bytes=args.max_media_bytes,
        allow_url_fetch=args.allow_url_fetch,
    )


def source_argv(source: ModelSource, verbose: bool) -> list[str]:
    """``source`` as the arguments of a runner child (``up``): the inverse of
    :func:`model_source`."""
    argv: list[str] = []
    if source.serves_folder:
        argv.append(str(source.folder))
    for flag, value in (
        ("--ollama", ",".join(source.ollama) or None),
        ("--ollama-host", source.ollama_host),
        ("--num-ctx", source.num_ctx),
        ("--keep-alive", source.keep_alive),
        ("--openai-upstream", source.openai_upstream),
        (
            "--upstream-models",
            ",".join(source.upstream_models) if source.upstream_models is not None else None,
        ),
        ("--upstream-api-key-env", source.upstream_api_key_env),
        (
            "--upstream-start-timeout",
            None
            if source.upstream_start_timeout == UPSTREAM_START_TIMEOUT
            else source.upstream_start_timeout,
        ),
        (
            "--max-media-bytes",
            None if source.max_media_bytes == DEFAULT_MAX_MEDIA_BYTES else source.max_media_bytes,
        ),
    ):
        if value is not None:
            argv += [flag, str(value)]
    if not source.preload:
        argv.append("--no-preload")
    if source.allow_url_fetch:
        argv.append("--allow-url-fetch")
    if verbose:
        argv.append("--verbose")
    return argv


def control_config(args: argparse.Namespace) -> ControlConfig:
    """The control plane ``control`` (or ``up``) options describe.

    Raises:
        ConfigError: a value out of range, half a TLS pair, plain text off loopback.
    """
    values = {name: getattr(args, name) for name in CONTROL_SETTINGS}
    if args.data_dir is not None:
        values["data_dir"] = args.data_dir.expanduser().resolve()
    return ControlConfig(
        host=args.host,
        port=args.port,
        grpc_port=args.grpc_port,
        tls_cert=getattr(args, "tls_cert", None),
        tls_key=getattr(args, "tls_key", None),
        tls_self_signed=getattr(args, "tls_self_signed", False),
        insecure=getattr(args, "insecure", False),
        time_scale=time_scale_from_env(),
        registry=getattr(args, "registry", None) or os.environ.get("EDGE_RUNNER_REGISTRY") or None,
        bus=getattr(args, "bus", None) or os.environ.get("EDGE_RUNNER_BUS") or None,
        replica_id=getattr(args, "replica_id", None),
        advertise_tunnel=getattr(args, "advertise_tunnel", None),
        bus_replicas=getattr(args, "bus_replicas", 1),
        nats_creds=getattr(args, "nats_creds", None),
        **values,
    )


def export_checkpoints(args: argparse.Namespace) -> None:
    """``--checkpoints DIR`` into ``$EDGE_RUNNER_CHECKPOINTS``, where the model finds it.

    The model's own code asks for its checkpoints (Clarifai's ``ModelBuilder``) with no way to
    be handed an option, and ``up``'s runner is a child process: the environment reaches both.

    Raises:
        ConfigError: DIR is not a folder.
    """
    from edge_runner.models.checkpoints import CHECKPOINTS_ENV

    folder = getattr(args, "checkpoints", None)
    if folder is None:
        return
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise ConfigError(
            f"--checkpoints {folder} is not a folder; pass the folder holding <repo_id>/ "
            "(e.g. DIR/org/model-name/) for the checkpoints config.yaml names"
        )
    os.environ[CHECKPOINTS_ENV] = str(folder)


def runner_config(args: argparse.Namespace, *, token: str | None = None) -> RunnerConfig:
    """The runner the ``runner`` (or ``up``) options describe (``token``: from a service
    credential). ``up``'s ``--host``/``--port`` are where its control plane listens; its runner
    reaches it through the ``local`` context.

    Raises:
        ConfigError: a value out of range, a malformed ``--gpus`` or ``--runner-id``.
    """
    from edge_runner.runner.placement import parse_gpus_option

    api_base = None
    is_runner = args.command == "runner"
    if is_runner and (args.host or args.port):
        api_base = f"http://{args.host or '127.0.0.1'}:{args.port or _CONTROL['port']}"
    gpus = parse_gpus_option(args.gpus)
    return RunnerConfig(
        source=model_source(args),
        context=args.context if is_runner else None,
        api_base=api_base,
        token=token,
        runner_id=args.runner_id if is_runner else None,
        pool_size=args.pool_size,
        grace_period=args.grace_period,
        transport=TransportKind(args.transport),
        ca_file=args.ca_file,
        gpus=tuple(gpus) if gpus is not None else None,
        insecure=getattr(args, "insecure", False),
        verbose=args.verbose,
        time_scale=time_scale_from_env(),
    )
