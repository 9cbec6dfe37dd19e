"""Entry point: parse arguments, configure logging, run a command, turn errors into one line.

Every command module exposes ``register(subparsers)``; the parser it adds sets ``func``.
Errors are one clear line on stderr with exit code 2; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence

from edge_runner._version import __version__
from edge_runner.errors import EdgeRunnerError

__all__ = ["build_parser", "main", "setup_logging"]

EXIT_ERROR = 2


def setup_logging(level: int) -> None:
    """Log to stderr (never stdout: it carries command output, and MCP frames for ``mcp``)."""
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("httpx", "httpcore", "uvicorn.error", "websockets.server", "websockets.client"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    from edge_runner.cli import (
        bundle_cmd,
        calls,
        chat_cmd,
        completion_cmd,
        context_cmd,
        dashboard_cmd,
        doctor_cmd,
        gpus_cmd,
        local_cmds,
        login,
        mcp_cmd,
        model_cmd,
        serve,
        service_cmd,
        stream_cmd,
        token_cmd,
        up,
    )
    from edge_runner.protocol.version import PROTOCOL_VERSION, format_version

    parser = argparse.ArgumentParser(
        prog="edge-runner",
        description="A local-first runner for AI models.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"edge-runner {__version__} (protocol {format_version(PROTOCOL_VERSION)})",
    )
    parser.add_argument("--debug", action="store_true", help="debug logs and full tracebacks")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="contexts file to use (default: config.yaml in the user config dir; "
        "also EDGE_RUNNER_CONFIG)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve.register(sub)  # control, runner
    up.register(sub)
    calls.register(sub)
    stream_cmd.register(sub)
    chat_cmd.register(sub)
    gpus_cmd.register(sub)
    dashboard_cmd.register(sub)
    local_cmds.register(sub)
    mcp_cmd.register(sub)
    model_cmd.register(sub)
    context_cmd.register(sub)
    login.register(sub)
    token_cmd.register(sub)
    service_cmd.register(sub)
    bundle_cmd.register(sub)
    doctor_cmd.register(sub)
    completion_cmd.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    if args.config:
        # Through the environment so child processes (`up`'s runner) read the same file.
        os.environ["EDGE_RUNNER_CONFIG"] = os.path.abspath(args.config)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    level = logging.getLevelName(os.environ.get("EDGE_RUNNER_LOG_LEVEL", "INFO").upper())
    setup_logging(
        logging.DEBUG if args.debug else level if isinstance(level, int) else logging.INFO
    )
    try:
        return int(args.func(args) or 0)
    except EdgeRunnerError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"edge-runner: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # python -m edge_runner.cli.main, as well as python -m edge_runner
    sys.exit(main())
