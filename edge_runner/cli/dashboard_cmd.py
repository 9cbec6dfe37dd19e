"""``edge-runner dashboard``: the Textual dashboard (``edge_runner_tui``, from ``tui/``).

It is a client of the local runner's API and of the active context's control plane; it never
runs a daemon. Read-only unless ``--allow-actions`` (or the ``a`` key) allows drain and cancel.
"""

from __future__ import annotations

import argparse

from edge_runner.errors import ConfigError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dashboard``."""
    dashboard = sub.add_parser(
        "dashboard",
        help="live dashboard: contexts, runners, tasks, logs, GPUs (pip install "
        "'edge-runner[tui]')",
        description="Open the terminal dashboard. It reads the local runner and the active "
        "context's control plane; keys 1-6 switch screens, ? lists every key, q quits.",
    )
    dashboard.add_argument("--context", help="context to use (default: the active one)")
    dashboard.add_argument("--runner", metavar="ID", help="which local runner, when several run")
    dashboard.add_argument(
        "--allow-actions",
        action="store_true",
        help="allow draining runners and cancelling tasks (each still asks first)",
    )
    dashboard.set_defaults(func=_dashboard)


def _dashboard(args: argparse.Namespace) -> int:
    try:
        from edge_runner_tui.app import run_dashboard
    except ImportError as exc:
        raise ConfigError(
            f"the dashboard needs Textual ({exc.name} is missing): pip install 'edge-runner[tui]'"
        ) from exc
    return run_dashboard(args.context, args.runner, allow_actions=args.allow_actions)
