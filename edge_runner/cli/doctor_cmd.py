"""``edge-runner doctor``: check the setup, one line per check, and say what to fix.

Exit code 1 when any check FAILs, else 0 (WARN does not fail); 2 for bad arguments (an unknown
``--context``). Tokens are only ever shown masked.
"""

from __future__ import annotations

import argparse
from collections import Counter

from edge_runner.cli.output import add_output_option, print_json
from edge_runner.errors import ConfigError

__all__ = ["register"]

EXIT_FAILED = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``doctor`` command."""
    parser = sub.add_parser(
        "doctor",
        help="check config, secrets, control plane, TLS, token, GPUs, Ollama, ports; say what "
        "to fix",
        description="Check this machine's edge-runner setup. One line per check: OK, WARN, "
        "FAIL or SKIP, the check's name, what it found and, for WARN and FAIL, the fix. "
        "Exits 1 when a check fails. docs/troubleshooting.md explains every check.",
    )
    parser.add_argument("--context", help="the context to check (default: the active one)")
    parser.add_argument(
        "--port", type=int, default=7070, help="local HTTP API port to check (default 7070)"
    )
    parser.add_argument(
        "--grpc-port", type=int, default=7071, help="local gRPC tunnel port to check (default 7071)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long each check may take (default 10); network requests get 3 s each",
    )
    add_output_option(parser)
    parser.set_defaults(func=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    from edge_runner.config.contexts import ContextsFile
    from edge_runner.doctor import CHECKS, Env, Options, Status, run_checks

    if not args.timeout > 0:
        raise ConfigError(f"--timeout must be positive seconds, not {args.timeout:g}")
    for flag, port in (("--port", args.port), ("--grpc-port", args.grpc_port)):
        if not 1 <= port <= 65535:
            raise ConfigError(f"{flag} {port} is not a port (1-65535)")
    if args.context:
        try:
            contexts = ContextsFile.load()
        except ConfigError:
            contexts = None  # a broken file is what the checks are for: they report it
        if contexts is not None:
            contexts.get(args.context)  # unknown → the message that lists the known ones
    options = Options(
        context=args.context,
        ports=(args.port, args.grpc_port),
        http_timeout=min(3.0, args.timeout),
    )
    report = run_checks(CHECKS, Env(options), limit=args.timeout)
    if args.output == "json":
        print_json([check.to_dict() for check in report])
    else:
        width = max(len(check.name) for check in report)
        for check in report:
            line = f"{check.status.value:<4}  {check.name:<{width}}  {check.detail}"
            if check.fix and check.status in (Status.WARN, Status.FAIL):
                line += f"  -- fix: {check.fix}"
            print(line)
        counts = Counter(check.status for check in report)
        summary = ", ".join(f"{counts[s]} {s.value}" for s in Status if counts[s])
        print(f"\n{len(report)} checks: {summary}")
    return EXIT_FAILED if any(check.status is Status.FAIL for check in report) else 0
