"""The argparse parser as a plain tree of commands and arguments, for generated artefacts.

Shell completion scripts (:mod:`edge_runner.cli.completion`) and the CLI reference
(``tools/gen_cli_reference.py``) are generated from the live parser, so a command added in any
``*_cmd.py`` module shows up in both without a list to keep in sync. This module is the one
place that reads argparse's internals (``_actions``, ``_choices_actions``); what it hands out
is frozen dataclasses.

What an argument's value completes to (:class:`ValueKind`) is inferred: choices, a
``REMAINDER`` (a command line), context names (``--context``, and ``NAME`` under
``edge-runner context`` except ``create``), folders (``*_dir``, or a ``*_path`` whose help says
"folder"/"directory"), files (``type=Path``, ``*_file``, ``*_path``, metavar ``PATH``/``FILE``).
A command module can say it outright with :func:`complete_as`. Hidden (``help=SUPPRESS``)
arguments and commands are left out.
"""

from __future__ import annotations

import argparse
import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Argument", "Command", "ValueKind", "command_tree", "complete_as"]

_COMPLETION_ATTR = "edge_runner_completion"
_DIR_WORDS = re.compile(r"\b(folder|directory)\b", re.IGNORECASE)


class ValueKind(enum.Enum):
    """What the value of an argument completes to."""

    FLAG = "flag"  # an option that takes no value
    ANY = "any"  # free text: nothing to offer
    CHOICE = "choice"
    FILE = "file"
    DIR = "dir"
    CONTEXT = "context"  # a context name (`edge-runner context list -o name`)
    COMMAND = "command"  # the rest of the line is a command line (`run -- CMD ...`)


@dataclass(frozen=True)
class Argument:
    """One option (``flags`` set) or positional argument (``flags`` empty).

    Attributes:
        flags: ``("-o", "--output")``; empty for a positional.
        dest: the attribute name argparse stores the value under.
        metavar: how the value is written in usage (``NAME``, ``{table,json}``, ``[PATH]``).
        help: the help text with ``%(default)s`` and friends expanded; one paragraph.
        kind: what the value completes to.
        choices: the allowed values, for :attr:`ValueKind.CHOICE`.
        default: the default, or None when there is none worth showing.
        repeatable: the option may be given more than once (``append``/``count``), or the
            positional takes several values (``*``, ``+``, ``...``).
        required: the argument must be given.
    """

    flags: tuple[str, ...]
    dest: str
    metavar: str
    help: str
    kind: ValueKind
    choices: tuple[str, ...] = ()
    default: Any = None
    repeatable: bool = False
    required: bool = False

    @property
    def takes_value(self) -> bool:
        """Whether an option reads a value (always true for a positional)."""
        return self.kind is not ValueKind.FLAG

    @property
    def invocation(self) -> str:
        """``-o, --output {table,json}`` or ``NAME``: the argument as the help shows it."""
        if not self.flags:
            return self.metavar
        names = ", ".join(self.flags)
        return f"{names} {self.metavar}" if self.metavar else names


@dataclass(frozen=True)
class Command:
    """A command: the root parser, a group (``context``) or a leaf (``context create``).

    Attributes:
        path: the words after ``edge-runner`` (empty for the root).
        aliases: other names for the last word (argparse ``aliases=``).
        prog: ``edge-runner context create``.
        help: the one-line summary the parent lists it with.
        description: the long description (``description=``, else the summary).
        epilog: the parser's epilog, if any.
        raw_text: the parser keeps its description's line breaks (a ``Raw*`` formatter).
        options: its options, in the order argparse lists them.
        positionals: its positional arguments, in order.
        subcommands: its subcommands, in the order they were added.
        accepts_extra: it takes options of its own beyond these (``predict --ARG VALUE``).
        parser: the argparse parser, for its usage line.
    """

    path: tuple[str, ...]
    prog: str
    help: str
    description: str
    options: tuple[Argument, ...]
    positionals: tuple[Argument, ...]
    subcommands: tuple[Command, ...]
    aliases: tuple[str, ...] = ()
    epilog: str = ""
    raw_text: bool = False
    accepts_extra: bool = False
    parser: argparse.ArgumentParser | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        """The last word of the path (``""`` for the root)."""
        return self.path[-1] if self.path else ""

    def walk(self) -> Iterator[Command]:
        """This command and every command below it, depth first, in argparse's order."""
        yield self
        for sub in self.subcommands:
            yield from sub.walk()

    def spellings(self) -> Iterator[tuple[tuple[str, ...], Command]]:
        """``(path as typed, command)`` for this command and every one below it.

        A command with aliases appears once per name (and its subcommands under each), so a
        completion script recognises whichever the user typed.
        """
        yield from self._spellings(())

    def _spellings(self, prefix: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Command]]:
        names = (self.name, *self.aliases) if self.path else ("",)
        for name in names:
            spelled = (*prefix, name) if name else prefix
            yield spelled, self
            for sub in self.subcommands:
                yield from sub._spellings(spelled)


def complete_as(action: argparse.Action, kind: ValueKind | str) -> argparse.Action:
    """Tell completion what ``action``'s value is, where the name-based guess would be wrong.

    Example: ``complete_as(parser.add_argument("bundle"), "file")``.

    Returns:
        ``action``, so the call can wrap ``add_argument``.
    """
    setattr(action, _COMPLETION_ATTR, ValueKind(kind))
    return action


def command_tree(parser: argparse.ArgumentParser) -> Command:
    """Read ``parser`` (``edge_runner.cli.main.build_parser()``) into a :class:`Command` tree."""
    return _command(parser, (), "", ())


def _command(
    parser: argparse.ArgumentParser,
    path: tuple[str, ...],
    summary: str,
    aliases: tuple[str, ...],
) -> Command:
    options: list[Argument] = []
    positionals: list[Argument] = []
    subcommands: list[Command] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            subcommands.extend(_subcommands(action, path))
            continue
        if action.help == argparse.SUPPRESS:
            continue
        argument = _argument(action, parser.prog, path)
        (options if action.option_strings else positionals).append(argument)
    description = _clean(parser.description or summary, raw=_is_raw(parser))
    return Command(
        path=path,
        prog=parser.prog,
        help=summary,
        description=description,
        options=tuple(options),
        positionals=tuple(positionals),
        subcommands=tuple(subcommands),
        aliases=aliases,
        epilog=parser.epilog or "",
        raw_text=_is_raw(parser),
        accepts_extra=bool(parser.get_default("accepts_extra")),
        parser=parser,
    )


def _subcommands(action: argparse._SubParsersAction[Any], path: tuple[str, ...]) -> list[Command]:
    """The visible subcommands of one ``add_subparsers`` action, each once, with its aliases."""
    helps: dict[str, str | None] = {}
    for pseudo in action._choices_actions:
        # A pseudo action's dest is the primary name (its metavar adds the aliases).
        helps[pseudo.dest] = pseudo.help
    names_by_parser: dict[int, list[str]] = {}
    parsers: dict[int, argparse.ArgumentParser] = {}
    for name, sub in action.choices.items():
        names_by_parser.setdefault(id(sub), []).append(name)
        parsers[id(sub)] = sub
    commands = []
    for key, names in names_by_parser.items():
        primary, *aliases = names
        summary = helps.get(primary)
        if summary == argparse.SUPPRESS:
            continue
        commands.append(
            _command(parsers[key], (*path, primary), _clean(summary or ""), tuple(aliases))
        )
    return commands


def _argument(action: argparse.Action, prog: str, path: tuple[str, ...]) -> Argument:
    kind = _kind(action, path)
    choices = tuple(str(c) for c in action.choices) if action.choices is not None else ()
    default = action.default
    if default is argparse.SUPPRESS or action.nargs == 0 or default == []:
        default = None  # flags' False/None, and --help's SUPPRESS, say nothing
    return Argument(
        flags=tuple(action.option_strings),
        dest=action.dest,
        metavar=_metavar(action),
        help=_clean(_expand_help(action, prog)),
        kind=kind,
        choices=choices,
        default=default,
        repeatable=isinstance(action, argparse._AppendAction | argparse._CountAction)
        or action.nargs in ("*", "+", argparse.REMAINDER),
        required=bool(action.required)
        if action.option_strings
        else action.nargs not in ("?", "*", argparse.REMAINDER),
    )


def _kind(action: argparse.Action, path: tuple[str, ...]) -> ValueKind:
    """What ``action``'s value completes to (see the module docstring for the rules)."""
    explicit = getattr(action, _COMPLETION_ATTR, None)
    if isinstance(explicit, ValueKind):
        return explicit
    if action.option_strings and action.nargs == 0:
        return ValueKind.FLAG
    if action.choices is not None:
        return ValueKind.CHOICE
    if action.nargs == argparse.REMAINDER:
        return ValueKind.COMMAND
    dest = action.dest.lower()
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    if dest == "context" or (
        not action.option_strings
        and path[:1] == ("context",)
        and path[-1:] != ("create",)
        and dest == "name"
    ):
        return ValueKind.CONTEXT
    help_text = action.help if isinstance(action.help, str) else ""
    pathish = (
        action.type is Path
        or dest.endswith(("_file", "_path", "_dir"))
        or dest in ("file", "path", "dir")
        or metavar in ("PATH", "FILE", "DIR")
    )
    named_path = dest == "path" or dest.endswith("_path")
    if dest.endswith("_dir") or metavar == "DIR" or (named_path and _DIR_WORDS.search(help_text)):
        return ValueKind.DIR
    if pathish:
        return ValueKind.FILE
    return ValueKind.ANY


def _metavar(action: argparse.Action) -> str:
    """The value as usage writes it: ``NAME``, ``{a,b}``, ``[PATH]``, ``A [A ...]``.

    Written here rather than borrowed from argparse's formatter so that the reference reads the
    same on every Python version (3.13 changed how the formatter repeats metavars).
    """
    if action.option_strings and action.nargs == 0:
        return ""
    if isinstance(action.metavar, tuple):
        names = [str(m) for m in action.metavar]
    elif action.metavar is not None:
        names = [str(action.metavar)]
    elif action.choices is not None:
        names = ["{" + ",".join(str(c) for c in action.choices) + "}"]
    else:
        names = [action.dest.upper() if action.option_strings else action.dest]
    one = names[0]
    nargs = action.nargs
    if nargs is None:
        return one
    if nargs == argparse.OPTIONAL:
        return f"[{one}]"
    if nargs == argparse.ZERO_OR_MORE:
        return f"[{one} ...]"
    if nargs == argparse.ONE_OR_MORE:
        return f"{one} [{one} ...]"
    if nargs == argparse.REMAINDER:
        return one if action.metavar is not None else "..."
    if isinstance(nargs, int):
        return " ".join(names if len(names) == nargs else [one] * nargs)
    return one


def _expand_help(action: argparse.Action, prog: str) -> str:
    """``action.help`` with ``%(default)s``, ``%(choices)s``, ``%(prog)s`` filled in."""
    text = action.help or ""
    if "%" not in text:
        return text
    params: dict[str, Any] = dict(vars(action), prog=prog)
    for name, value in list(params.items()):
        if value is argparse.SUPPRESS:
            del params[name]
        elif hasattr(value, "__name__"):
            params[name] = value.__name__
    if params.get("choices") is not None:
        params["choices"] = ", ".join(str(c) for c in params["choices"])
    try:
        return text % params
    except (KeyError, TypeError, ValueError):
        return text  # a literal % in the help: show it as written


def _is_raw(parser: argparse.ArgumentParser) -> bool:
    formatter = parser.formatter_class
    return isinstance(formatter, type) and issubclass(
        formatter, argparse.RawDescriptionHelpFormatter
    )


def _clean(text: str, *, raw: bool = False) -> str:
    """One paragraph per blank-line-separated block, whitespace collapsed (unless ``raw``)."""
    if raw:
        return text.strip("\n")
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
