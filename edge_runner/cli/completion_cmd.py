"""``edge-runner completion bash|zsh|fish``: print a shell completion script.

The script is generated from the parser of this very installation (see
:mod:`edge_runner.cli.completion`), so it knows every command, including ones added later.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]

_HOW = """\
load it:
  bash  ~/.bashrc:   eval "$(edge-runner completion bash)"
  zsh   ~/.zshrc:    eval "$(edge-runner completion zsh)"   (after compinit)
  fish  once:        edge-runner completion fish > ~/.config/fish/completions/edge-runner.fish
regenerate it after upgrading edge-runner."""


#: the shells ``completion`` writes for; named here, not imported from ``completion``, so that
#: building the parser (every ``edge-runner`` start) does not load the generators
SHELLS = ("bash", "zsh", "fish")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``completion`` command."""
    parser = sub.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh, fish)",
        description="Print a completion script for SHELL on stdout. It completes commands,\n"
        "options, choices, folders and files, and context names.",
        epilog=_HOW,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete for")
    parser.set_defaults(func=_completion)


def _completion(args: argparse.Namespace) -> int:
    from edge_runner.cli.completion import generate
    from edge_runner.cli.main import build_parser

    sys.stdout.write(generate(args.shell, build_parser()))
    return 0
