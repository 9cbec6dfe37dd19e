"""Write docs/cli.md, the CLI reference, from the argparse parser (``build_parser()``).

Usage::

    .venv/bin/python tools/gen_cli_reference.py          # rewrite docs/cli.md
    .venv/bin/python tools/gen_cli_reference.py --check  # exit 1 if docs/cli.md is stale

Every visible command and subcommand gets a section: usage (argparse's own, at a fixed width
of 100 columns so the output does not depend on the terminal), description, epilog, and a
table of its arguments with help and defaults, in argparse's order. Nothing is sorted and
nothing machine-specific is written, so the file changes only when the CLI does; a unit test
(tests/unit/test_cli_reference.py) fails when it is stale.

Usage lines go in ```text blocks: the doc test runs ```sh blocks, and these are not commands.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from edge_runner.cli._parser_tree import Argument, Command, command_tree  # noqa: E402
from edge_runner.cli.main import build_parser  # noqa: E402

OUTPUT = ROOT / "docs" / "cli.md"
COLUMNS = 100
COMMAND = ".venv/bin/python tools/gen_cli_reference.py"

_INTRO = f"""\
# CLI reference

<!-- Generated from the argparse parser by tools/gen_cli_reference.py: do not edit by hand.
     Regenerate with: {COMMAND} -->

Every command of `edge-runner`, with its options and their defaults, as `edge-runner COMMAND -h`
prints them (every command takes `-h`/`--help`). Options go after the command they belong to;
the global ones (`--debug`, `--config`) go before it: `edge-runner --debug context list`.

Shell completion for all of this: `edge-runner completion bash|zsh|fish` (see
[`edge-runner completion`](#edge-runner-completion), and docs/platforms.md for where to put it).
"""


def render(parser: argparse.ArgumentParser | None = None) -> str:
    """The whole of docs/cli.md for ``parser`` (default: the real one)."""
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(COLUMNS)  # argparse wraps usage to the terminal's width
    try:
        root = command_tree(parser or build_parser())
        parts = [_INTRO, "\n## Commands\n\n", *_index(root), *_sections(root)]
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous
    return "".join(parts)


def _title(command: Command) -> str:
    return " ".join(("edge-runner", *command.path))


def _anchor(command: Command) -> str:
    """GitHub's anchor for a ``## `edge-runner context create` `` heading."""
    return "-".join(("edge-runner", *command.path)).lower()


def _index(root: Command) -> Iterator[str]:
    for command in root.walk():
        if not command.path:
            continue
        indent = "  " * (len(command.path) - 1)
        summary = f" — {_inline(command.help)}" if command.help else ""
        yield f"{indent}- [`{_title(command)}`](#{_anchor(command)}){summary}\n"


def _sections(root: Command) -> Iterator[str]:
    for command in root.walk():
        yield f"\n## `{_title(command)}`\n\n"
        if command.aliases:
            yield f"Also spelled: {', '.join(f'`{a}`' for a in command.aliases)}.\n\n"
        if command.description:
            if command.raw_text:
                yield f"```text\n{command.description}\n```\n\n"
            else:
                yield f"{command.description}\n\n"
        usage = command.parser.format_usage().strip() if command.parser else ""
        yield f"```text\n{usage}\n```\n"
        if command.epilog:
            yield f"\n```text\n{command.epilog.strip(chr(10))}\n```\n"
        # -h/--help is on every command; the intro says so once.
        rows = [*command.positionals, *(o for o in command.options if o.dest != "help")]
        if rows:
            yield "\n| Argument | Description | Default |\n| --- | --- | --- |\n"
            yield from (_row(argument) for argument in rows)
        if command.subcommands:
            yield "\nSubcommands:\n\n"
            for sub in command.subcommands:
                summary = f" — {_inline(sub.help)}" if sub.help else ""
                yield f"- [`{sub.name}`](#{_anchor(sub)}){summary}\n"


def _row(argument: Argument) -> str:
    notes = []
    if argument.required and argument.flags:
        notes.append("required")
    if argument.repeatable and argument.flags:
        notes.append("repeatable")
    name = argument.invocation
    if not argument.flags and name.startswith("[") and name.endswith("]"):
        name = name[1:-1]  # `[model_path]`: the brackets only said "optional"
        notes.append("optional")
    help_text = _inline(argument.help)
    if notes:
        help_text = f"{help_text} ({', '.join(notes)})" if help_text else f"({', '.join(notes)})"
    default = "" if argument.default is None else f"`{_cell(str(argument.default))}`"
    return f"| `{_cell(name)}` | {help_text} | {default} |\n"


def _inline(text: str) -> str:
    """Text for one table cell or list item: one line, pipes escaped."""
    return _cell(" ".join(text.split()))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def main(argv: Sequence[str] | None = None) -> int:
    """Write docs/cli.md, or with ``--check`` report whether it is current (exit 1 if not)."""
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--check", action="store_true", help="compare only; exit 1 if stale")
    cli.add_argument("--output", type=Path, default=OUTPUT, help="where to write")
    args = cli.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current == text:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(), text.splitlines(), "docs/cli.md", "generated", lineterm=""
        )
        print("\n".join(list(diff)[:60]), file=sys.stderr)
        print(f"{args.output} is stale: run `{COMMAND}`", file=sys.stderr)
        return 1
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
