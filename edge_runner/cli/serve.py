"""Long-running commands: ``control`` (control plane), ``runner`` (one runner), ``up`` (both).

``--ready-fd N`` (used by ``up``) makes the process write one JSON line to file descriptor N
once it is serving, so the supervisor learns the chosen ports and ids without polling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edge_runner.config.paths import private_file_note
from edge_runner.errors import ConfigError
from edge_runner.net import is_loopback

__all__ = ["register", "write_ready"]

logger = logging.getLogger(__name__)

DEFAULT_PORT = 7070
DEFAULT_GRPC_PORT = 7071
DEFAULT_POOL_SIZE = 32


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``up``, ``control`` and ``runner``."""
    from edge_runner.cli import up
    from edge_runner.cli.backend_args import add_backend_options

    control = sub.add_parser(
        "control",
        help="run the control plane alone",
        description="Run the control plane (HTTP API + gRPC tunnel endpoint). On first start "
        "it creates an admin token and writes it to a 0600 file whose path it prints.",
    )
    _listen_options(control)
    _control_options(control)
    insecure_option(control)
    control.set_defaults(func=_control)

    runner = sub.add_parser(
        "runner",
        help="run a runner for a model folder",
        description="Serve a model folder, Ollama models (--ollama) or the models of a local "
        "OpenAI-compatible server (--openai-upstream) through the active context's control "
        "plane. The runner only dials out; it keeps retrying with backoff until the control "
        "plane answers.",
    )
    runner.add_argument("model_path", nargs="?", default=".", help="model folder (default .)")
    _runner_options(runner)
    insecure_option(runner)
    runner.add_argument("--context", help="context to use (default: the active one)")
    runner.add_argument(
        "--host", help="control plane host (with --port, overrides the context's api_base)"
    )
    runner.add_argument("--port", type=int, help="control plane HTTP port")
    runner.add_argument("--runner-id", help="use this runner id instead of the persisted one")
    add_backend_options(runner)
    runner.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    runner.add_argument("--lifeline-fd", type=int, help=argparse.SUPPRESS)
    runner.set_defaults(func=_runner)
    up.register(sub)


def _listen_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"HTTP API port (default {DEFAULT_PORT}; 0 = any free)",
    )
    parser.add_argument(
        "--grpc-port",
        type=int,
        default=DEFAULT_GRPC_PORT,
        help=f"gRPC tunnel port (default {DEFAULT_GRPC_PORT}; 0 = any free)",
    )


def _control_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="registry and admin token location")
    parser.add_argument(
        "--request-timeout", type=float, default=60.0, help="per-request deadline, s (default 60)"
    )
    parser.add_argument(
        "--max-queue", type=int, default=1024, help="waiting requests per model before 429"
    )
    parser.add_argument(
        "--max-body-bytes", type=int, default=32 * 1024 * 1024, help="request body limit (413)"
    )
    parser.add_argument(
        "--heartbeat-interval", type=float, default=5.0, help="s between heartbeats (default 5)"
    )
    parser.add_argument(
        "--silence-timeout",
        type=float,
        default=15.0,
        help="s without a message before a tunnel is dropped as dead (default 15)",
    )
    parser.add_argument(
        "--lease-ttl",
        type=float,
        default=10.0,
        help="s a dropped runner keeps its tasks before they are re-queued (default 10)",
    )
    parser.add_argument(
        "--stream-window",
        type=int,
        default=64,
        help="chunks a stream may run ahead of its reader before the model is paused (default 64)",
    )
    parser.add_argument(
        "--stream-buffer-bytes",
        type=int,
        default=4 * 1024 * 1024,
        help="output of one stream held for a slow reader, about (default 4 MiB; fewer "
        "chunks than the window when they are big)",
    )
    parser.add_argument(
        "--stream-idle-timeout",
        type=float,
        default=60.0,
        help="s a stream may go without a chunk from its model or a read by its client "
        "before it is cancelled (default 60)",
    )
    parser.add_argument(
        "--max-stream-duration",
        type=float,
        default=1800.0,
        help="s a stream may run in all before it is cancelled (default 1800)",
    )
    parser.add_argument(
        "--max-paused-streams",
        type=int,
        default=16,
        help="streams one token may have stalled on slow readers at once, each holding a "
        "runner slot; the next fails with SLOW_READER (default 16)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=1024,
        help="open HTTP connections (WebSocket tunnels included) before 503, and gRPC "
        "tunnels before RESOURCE_EXHAUSTED (default 1024)",
    )
    parser.add_argument(
        "--max-header-bytes",
        type=int,
        default=16 * 1024,
        help="request line + headers limit (431), and gRPC metadata limit (default 16384)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="s for a connection, or each request on it, to send its headers (default 10)",
    )
    parser.add_argument(
        "--body-idle-timeout",
        type=float,
        default=30.0,
        help="s a request body may pause between two pieces (default 30)",
    )
    parser.add_argument(
        "--handshake-timeout",
        type=float,
        default=10.0,
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
    parser.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--lifeline-fd", type=int, help=argparse.SUPPRESS)


def insecure_option(parser: argparse.ArgumentParser) -> None:
    """``--insecure``: allow plain text off loopback (a warning at each start)."""
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow plain text on a non-loopback address (logged as a warning at each start)",
    )


def _runner_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pool-size",
        type=int,
        help="tasks run at once (default 32; for Ollama, what it runs at once: "
        "OLLAMA_NUM_PARALLEL per model)",
    )
    parser.add_argument(
        "--grace-period",
        type=float,
        default=30.0,
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
        choices=("grpc", "ws"),
        default="grpc",
        help="tunnel transport: gRPC (default) or WebSocket, where only HTTP/1.1 gets out",
    )
    parser.add_argument(
        "--gpus",
        metavar="LIST",
        help="GPU indices the model may use, e.g. 0,1, or none (default: placed by the model "
        "folder's inference_compute_info; see `edge-runner gpus`)",
    )


def write_ready(fd: int | None, info: dict[str, Any]) -> None:
    """Tell a supervisor we are serving (one JSON line on ``fd``), then close it."""
    if fd is None:
        return
    try:
        os.write(fd, json.dumps(info).encode() + b"\n")
    finally:
        os.close(fd)


def watch_lifeline(fd: int | None, on_lost: Callable[[], None]) -> None:
    """Call ``on_lost`` when the supervisor holding the other end of pipe ``fd`` goes away.

    ``up`` gives each child the read end of a pipe whose write end only it holds; if the
    supervisor dies (even by SIGKILL) the child sees end-of-file and stops itself, so no
    control plane or runner is left behind.
    """
    if fd is None:
        return
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            data = os.read(fd, 64)
        except BlockingIOError:
            return
        if data:
            return
        loop.remove_reader(fd)
        os.close(fd)
        logger.warning("the supervising `edge-runner up` went away; stopping")
        on_lost()

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)


def time_scale() -> float:
    """``EDGE_RUNNER_TIME_SCALE``: multiplies heartbeats, timeouts, leases and backoff.

    Tests and chaos drills set it below 1 to run the reliability machinery fast; production
    leaves it at 1.
    """
    raw = os.environ.get("EDGE_RUNNER_TIME_SCALE", "").strip()
    if not raw:
        return 1.0
    try:
        scale = float(raw)
    except ValueError as exc:
        raise ConfigError(f"EDGE_RUNNER_TIME_SCALE={raw!r} is not a number") from exc
    if not 0 < scale <= 100:
        raise ConfigError(f"EDGE_RUNNER_TIME_SCALE must be in (0, 100], got {raw}")
    return scale


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value:g}")


def _port(name: str, value: int) -> None:
    if not 0 <= value <= 65535:
        raise ConfigError(f"{name} must be a port number 0-65535, got {value}")


# -- control ----------------------------------------------------------------------------------


def _control(args: argparse.Namespace) -> int:
    from edge_runner.config.paths import data_dir
    from edge_runner.control import ControlPlane, ControlSettings
    from edge_runner.service.daemons import control_notifications
    from edge_runner.service.notify import process_notifier

    notifier = process_notifier()
    _port("--port", args.port)
    _port("--grpc-port", args.grpc_port)
    _positive("--request-timeout", args.request_timeout)
    _positive("--max-queue", args.max_queue)
    _positive("--max-body-bytes", args.max_body_bytes)
    for name in (
        "max_connections",
        "max_header_bytes",
        "heartbeat_interval",
        "silence_timeout",
        "lease_ttl",
        "stream_window",
        "stream_buffer_bytes",
        "stream_idle_timeout",
        "max_stream_duration",
        "max_paused_streams",
        "header_timeout",
        "body_idle_timeout",
        "handshake_timeout",
    ):
        _positive(f"--{name.replace('_', '-')}", getattr(args, name))
    scale = time_scale()
    data = (args.data_dir or data_dir() / "control").expanduser().resolve()
    tls_cert, tls_key = args.tls_cert, args.tls_key
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if args.tls_self_signed:
        from edge_runner.control.tls import fingerprint, self_signed

        files = self_signed(data, [args.host])
        tls_cert, tls_key = files.cert, files.key
        print(f"TLS CA: {files.ca} ({fingerprint(files.ca.read_bytes())})")
        print(f"runners and clients: --ca-file {files.ca} (or the context's ca_file)")
    if tls_cert is None and not is_loopback(args.host):
        if not args.insecure:
            raise ConfigError(
                f"refusing to serve plain text on {args.host}: give --tls-cert/--tls-key or "
                "--tls-self-signed, or --insecure for a trusted network"
            )
        logger.warning(
            "serving PLAIN TEXT on %s (--insecure): tokens cross the network unencrypted", args.host
        )
    settings = ControlSettings(
        host=args.host,
        port=args.port,
        grpc_port=args.grpc_port,
        data_dir=data,
        tls_cert=tls_cert,
        tls_key=tls_key,
        request_timeout=args.request_timeout,
        max_queue=args.max_queue,
        max_body_bytes=args.max_body_bytes,
        heartbeat_interval=args.heartbeat_interval * scale,
        silence_timeout=args.silence_timeout * scale,
        lease_ttl=args.lease_ttl * scale,
        reconnect_after_ms=int(1000 * scale),
        stream_window=args.stream_window,
        stream_buffer_bytes=args.stream_buffer_bytes,
        stream_idle_timeout=args.stream_idle_timeout * scale,
        max_stream_duration=args.max_stream_duration * scale,
        max_paused_streams=args.max_paused_streams,
        max_connections=args.max_connections,
        max_header_bytes=args.max_header_bytes,
        header_timeout=args.header_timeout * scale,
        body_idle_timeout=args.body_idle_timeout * scale,
        handshake_timeout=args.handshake_timeout * scale,
    )

    async def serve() -> None:
        try:
            plane = await ControlPlane(settings).__aenter__()
        except OSError as exc:
            raise ConfigError(f"{exc}; pick another with --port/--grpc-port (0 = any)") from exc
        from edge_runner._platform import install_stop_handlers

        install_stop_handlers(asyncio.get_running_loop(), plane.stop)
        watch_lifeline(args.lifeline_fd, plane.stop)
        try:
            if args.ready_fd is None:
                print(f"control plane: {plane.api_base}  (tunnel: grpc {plane.state.grpc_address})")  # type: ignore[union-attr]
                print(f"admin token file: {settings.admin_token_file} ({private_file_note()})")
                sys.stdout.flush()
            write_ready(
                args.ready_fd,
                {
                    "api_base": plane.api_base,
                    "grpc": plane.state.grpc_address if plane.state else "",
                    "admin_token_file": str(settings.admin_token_file),
                    "created_admin_token": plane.created_admin_token,
                },
            )
            async with control_notifications(notifier, plane):  # READY=1: both are bound
                await plane.wait_closed()
            logger.info("stopping the control plane")
        finally:
            await plane.close()

    asyncio.run(serve())
    return 0


# -- runner -----------------------------------------------------------------------------------


def _capture_logs(buffer: logging.Handler) -> None:
    """Keep INFO records for `edge-runner logs` even when stderr shows only warnings (`up`)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if handler.level == logging.NOTSET:
            handler.setLevel(root.level)  # what stderr shows stays as configured
    buffer.setLevel(min(root.level, logging.INFO))
    root.setLevel(min(root.level, logging.INFO))
    root.addHandler(buffer)


def _runner(args: argparse.Namespace) -> int:
    from edge_runner.backends.ollama import OllamaBackend
    from edge_runner.backends.ollama_serve import OllamaServe, ensure_ollama
    from edge_runner.cli.backend_args import build_backend
    from edge_runner.cli.enroll import runner_credential
    from edge_runner.cli.progress import ProgressDisplay
    from edge_runner.cli.runner_telemetry import RunnerTelemetry
    from edge_runner.config.paths import data_dir, runtime_dir
    from edge_runner.config.resolve import resolve_credentials
    from edge_runner.models.wire import signatures_from_spec
    from edge_runner.runner import Runner, RunnerSettings
    from edge_runner.runner.events import LogBuffer
    from edge_runner.runner.identity import claim_runner_id
    from edge_runner.runner.local_api import LocalApi
    from edge_runner.runner.transport import TransportKind
    from edge_runner.service.credentials import service_token
    from edge_runner.service.daemons import runner_notifications
    from edge_runner.service.notify import process_notifier

    notifier = process_notifier()  # before `ollama serve` or a model could spawn anything
    if args.pool_size is not None:
        _positive("--pool-size", args.pool_size)
    _positive("--grace-period", args.grace_period)
    scale = time_scale()
    api_base = None
    if args.host or args.port:
        api_base = f"http://{args.host or '127.0.0.1'}:{args.port or DEFAULT_PORT}"
    creds = resolve_credentials(context=args.context, api_base=api_base, token=service_token())
    # A bar on a terminal of our own; a supervised runner (`up`) leaves progress to `up`.
    bar = ProgressDisplay() if sys.stderr.isatty() and args.ready_fd is None else None
    model_path = Path(args.model_path).expanduser().resolve()
    telemetry = RunnerTelemetry(data_dir())
    # Before the backend: building it imports the model's code, which may initialise CUDA.
    gpus = telemetry.place(args, model_path)
    built = build_backend(args, model_path, probe_interval=5.0 * scale, log_progress=bar is None)
    backend, source = built.backend, built.source
    pool_size = args.pool_size
    if pool_size is None:
        pool_size = DEFAULT_POOL_SIZE
        if isinstance(backend, OllamaBackend):  # what Ollama runs at once, and no more
            pool_size = backend.parallel * len(backend.names)
    if bar is not None:
        backend.add_status_listener(bar.status)
    identity = None
    if args.runner_id:
        from edge_runner.protocol import RUNNER_ID_PATTERN

        if not RUNNER_ID_PATTERN.fullmatch(args.runner_id):
            raise ConfigError(
                f"--runner-id {ascii(args.runner_id[:40])} is not valid: use 1-128 letters, "
                "digits and . _ : @ -, starting with a letter or digit"
            )
        runner_id = args.runner_id
    else:
        identity = claim_runner_id(creds.api_base, source, data_dir(), runtime_dir())
        runner_id = identity.runner_id
    host = urlsplit(creds.api_base).hostname or ""
    if creds.api_base.startswith("http://") and not is_loopback(host):
        if not args.insecure:
            raise ConfigError(
                f"refusing plain text to {creds.api_base}: use an https:// control plane, or "
                "--insecure for a trusted network"
            )
        logger.warning("connecting in PLAIN TEXT to %s (--insecure)", creds.api_base)
    ca_file = args.ca_file or (Path(creds.ca_file) if creds.ca_file else None)
    token = runner_credential(creds.api_base, creds.token, runner_id, ca_file)
    settings = RunnerSettings(
        api_base=creds.api_base,
        token=token,
        pool_size=pool_size,
        grace_period=args.grace_period,
        backoff_initial=0.5 * scale,
        backoff_cap=10.0 * scale,
        transport=TransportKind(args.transport),
        ca_file=ca_file,
    )
    telemetry.label(runner_id, [s.model_id for s in backend.specs()] or [source])
    runner = Runner(settings, backend, runner_id, sampler=telemetry.sampler, gpus=gpus)

    def ready(r: Runner) -> None:
        specs = backend.specs()
        spec = specs[0]
        write_ready(
            args.ready_fd,
            {
                "runner_id": r.runner_id,
                "model_id": spec.model_id,
                "models": [s.model_id for s in specs],
                "methods": [sig.to_dict() for sig in signatures_from_spec(spec)],
                "chat": spec.chat,
                "backend": backend.name,
                "pool_size": settings.pool_size,
            },
        )

    logs = LogBuffer(runner.hub)
    _capture_logs(logs)

    async def serve() -> None:
        from edge_runner._platform import install_stop_handlers

        install_stop_handlers(asyncio.get_running_loop(), runner.request_stop)
        watch_lifeline(args.lifeline_fd, runner.request_stop)
        logger.info("runner %s serving %s with %d worker(s)", runner_id, source, settings.pool_size)
        async with LocalApi(runner, logs, runtime_dir()), runner_notifications(notifier, runner):
            await runner.run(on_ready=ready)
        logger.debug("runner stopped")

    # Workers streaming fast hold the GIL; the loop that forwards their chunks should not wait
    # the default 5 ms for its turn (it showed as up to 5 ms more time to first token).
    sys.setswitchinterval(float(os.environ.get("EDGE_RUNNER_SWITCH_INTERVAL", "0.0005")))
    child: OllamaServe | None = None
    try:
        if isinstance(backend, OllamaBackend):
            child = ensure_ollama(backend.host, verbose=args.verbose, log_dir=data_dir() / "ollama")
            if child is not None:
                telemetry.watch_child("ollama", child.process.pid)
        asyncio.run(serve())
    finally:
        if bar is not None:
            bar.close()
        if child is not None:
            child.stop()
        if identity is not None:
            identity.release()
    return 0
