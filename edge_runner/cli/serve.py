"""Long-running commands: ``control`` (control plane) and ``runner`` (one runner); ``up`` (both)
is :mod:`edge_runner.cli.up`.

Each turns its options into a config (:mod:`edge_runner.cli.daemon_args`) and runs the daemon
:mod:`edge_runner.daemons` builds from it. ``--ready-fd N`` (used by ``up`` and the tests)
makes the process write one JSON line to file descriptor N once it is serving.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from edge_runner.cli.daemon_args import (
    add_backend_options,
    add_control_options,
    add_listen_options,
    add_runner_options,
    add_scale_options,
    add_supervision_options,
    control_config,
    export_checkpoints,
    insecure_option,
    runner_config,
)
from edge_runner.config.paths import private_file_note

__all__ = ["register"]

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``up``, ``control`` and ``runner``."""

    control = sub.add_parser(
        "control",
        help="run the control plane alone",
        description="Run the control plane (HTTP API + gRPC tunnel endpoint). On first start "
        "it creates an admin token and writes it to a 0600 file whose path it prints.",
    )
    add_listen_options(control)
    add_control_options(control)
    insecure_option(control)
    add_scale_options(control)
    add_supervision_options(control)
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
    add_runner_options(runner)
    insecure_option(runner)
    runner.add_argument("--context", help="context to use (default: the active one)")
    runner.add_argument(
        "--host", help="control plane host (with --port, overrides the context's api_base)"
    )
    runner.add_argument("--port", type=int, help="control plane HTTP port")
    runner.add_argument("--runner-id", help="use this runner id instead of the persisted one")
    add_backend_options(runner)
    add_supervision_options(runner)
    runner.set_defaults(func=_runner)


# -- control ----------------------------------------------------------------------------------


def _control(args: argparse.Namespace) -> int:
    from edge_runner.control import ControlPlane, build_control
    from edge_runner.control.tls import fingerprint
    from edge_runner.daemons.control import serve_control
    from edge_runner.daemons.supervision import write_ready
    from edge_runner.service.notify import process_notifier

    notifier = process_notifier()
    plane = build_control(control_config(args))
    settings = plane.settings
    if settings.tls_ca is not None:
        print(f"TLS CA: {settings.tls_ca} ({fingerprint(settings.tls_ca.read_bytes())})")
        print(f"runners and clients: --ca-file {settings.tls_ca} (or the context's ca_file)")

    def ready(plane: ControlPlane) -> None:
        grpc = plane.state.grpc_address if plane.state else ""
        if args.ready_fd is None:
            print(f"control plane: {plane.api_base}  (tunnel: grpc {grpc})")
            print(f"admin token file: {settings.admin_token_file} ({private_file_note()})")
            sys.stdout.flush()
        write_ready(
            args.ready_fd,
            {
                "api_base": plane.api_base,
                "grpc": grpc,
                "admin_token_file": str(settings.admin_token_file),
                "created_admin_token": plane.created_admin_token,
            },
        )

    asyncio.run(
        serve_control(
            plane,
            on_ready=ready,
            notifier=notifier,
            lifeline_fd=args.lifeline_fd,
            stop_signals=True,
        )
    )
    return 0


# -- runner -----------------------------------------------------------------------------------


def _runner(args: argparse.Namespace) -> int:
    from edge_runner.cli.progress import ProgressDisplay
    from edge_runner.daemons.runner import build_runner
    from edge_runner.daemons.supervision import capture_logs, write_ready
    from edge_runner.runner import Runner
    from edge_runner.service.credentials import service_token
    from edge_runner.service.notify import process_notifier

    notifier = process_notifier()  # before `ollama serve` or a model could spawn anything
    config = runner_config(args, token=service_token())
    export_checkpoints(args)
    # A bar on a terminal of our own; a supervised runner (`up`) leaves progress to `up`.
    bar = ProgressDisplay() if sys.stderr.isatty() and args.ready_fd is None else None
    daemon = build_runner(config, progress=bar.status if bar is not None else None)

    def ready(_: Runner) -> None:
        write_ready(args.ready_fd, daemon.ready_info())

    if daemon.logs is not None:
        capture_logs(daemon.logs)
    logger.info(
        "runner %s serving %s with %d worker(s)",
        daemon.runner.runner_id,
        config.source.key(),
        daemon.settings.pool_size,
    )
    # Workers streaming fast hold the GIL; the loop that forwards their chunks should not wait
    # the default 5 ms for its turn (it showed as up to 5 ms more time to first token).
    sys.setswitchinterval(float(os.environ.get("EDGE_RUNNER_SWITCH_INTERVAL", "0.0005")))
    try:
        daemon.start_helpers()
        asyncio.run(
            daemon.serve(
                on_ready=ready, notifier=notifier, lifeline_fd=args.lifeline_fd, stop_signals=True
            )
        )
    finally:
        if bar is not None:
            bar.close()
        daemon.close()
    return 0
