"""``edge-runner context env``: the active context's variables for scripts and SDK snippets."""

from __future__ import annotations

import argparse
import shlex

from edge_runner.config.resolve import ENV_API_BASE, ENV_PAT, ENV_USER_ID, resolve_credentials

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``context`` command group."""
    parser = sub.add_parser("context", help="contexts: which control plane and token to use")
    group = parser.add_subparsers(dest="context_command", metavar="SUBCOMMAND")
    env = group.add_parser(
        "env",
        help="print export lines for the active context",
        description='Print export lines; use as: eval "$(edge-runner context env)"',
    )
    env.add_argument("--context", help="context name (default: the active one)")
    env.set_defaults(func=_env)


def _env(args: argparse.Namespace) -> int:
    creds = resolve_credentials(context=args.context)
    print(f"export {ENV_API_BASE}={shlex.quote(creds.api_base)}")
    if creds.user_id:
        print(f"export {ENV_USER_ID}={shlex.quote(creds.user_id)}")
    print(f"export {ENV_PAT}={shlex.quote(creds.token)}")
    return 0
