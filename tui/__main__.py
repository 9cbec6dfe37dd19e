"""``python -m edge_runner_tui``: the dashboard with the active context (``--context``,
``--runner``)."""

from __future__ import annotations

import argparse
import sys

from .app import NotATerminal, run_dashboard


def main(argv: list[str] | None = None) -> int:
    """Parse the few options and run the dashboard."""
    parser = argparse.ArgumentParser(prog="python -m edge_runner_tui", description=__doc__)
    parser.add_argument("--context", help="context to use (default: the active one)")
    parser.add_argument("--runner", help="the local runner to show, when several run here")
    parser.add_argument(
        "--allow-actions", action="store_true", help="allow drain and cancel (each confirmed)"
    )
    args = parser.parse_args(argv)
    try:
        return run_dashboard(args.context, args.runner, allow_actions=args.allow_actions)
    except NotATerminal as exc:
        print(f"python -m edge_runner_tui: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
