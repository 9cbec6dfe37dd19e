"""The zsh completion script: one ``_arguments`` function per command, made from the tree.

Works both ways zsh loads completions: ``eval "$(edge-runner completion zsh)"`` after
``compinit`` (the script calls ``compdef``), or saved as ``_edge-runner`` in a folder on
``$fpath`` (``#compdef`` autoloads it; the file then runs as the function's body).
"""

from __future__ import annotations

import re

from edge_runner.cli._parser_tree import Argument, Command, ValueKind
from edge_runner.cli.completion import PROG, header, identifier, sq

__all__ = ["zsh_script"]

_ACTIONS = {
    ValueKind.ANY: " ",
    ValueKind.FILE: "_files",
    ValueKind.DIR: "_files -/",
    ValueKind.CONTEXT: "_edge_runner_contexts",
    ValueKind.COMMAND: "_normal",
}


def zsh_script(root: Command) -> str:
    """The whole zsh script for ``root`` (the tree of ``edge-runner``)."""
    functions = [_function(command) for command in root.walk()]
    lists = [_command_list(command) for command in root.walk() if command.subcommands]
    return (
        f"#compdef {PROG}\n"
        + header(
            "zsh",
            f'Load it from ~/.zshrc after compinit: eval "$({PROG} completion zsh)"',
        )
        + _CONTEXTS
        + "".join(lists)
        + "".join(functions)
        + _FOOTER
    )


_CONTEXTS = f"""
_edge_runner_contexts() {{
  local -a names expl
  names=(${{(f)"$(_call_program contexts {PROG} context list -o name 2>/dev/null)"}})
  _wanted contexts expl 'context' compadd -a names
}}
"""

_FOOTER = f"""
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _edge_runner "$@"
else
  compdef _edge_runner {PROG}
fi
"""


def _function(command: Command) -> str:
    specs = [spec for option in command.options for spec in _option_specs(option)]
    specs.extend(_positional_specs(command.positionals))
    name = identifier(command.path)
    if not command.subcommands:
        body = "  _arguments -s -S \\\n" + _join(specs).removesuffix(" \\\n") + "\n"
        return f"\n{name}() {{\n{body}}}\n"
    specs += [sq(f": :{name}_commands"), sq("*:: :->args")]
    cases = "".join(
        f"        ({'|'.join(_word(n) for n in (sub.name, *sub.aliases))}) "
        f"{identifier(sub.path)} && ret=0 ;;\n"
        for sub in command.subcommands
    )
    context = "-".join((PROG, *command.path))
    return (
        f"\n{name}() {{\n"
        '  local curcontext="$curcontext" state state_descr line ret=1\n'
        "  typeset -A opt_args\n"
        "  _arguments -C -s -S \\\n" + _join(specs) + "  && ret=0\n"
        "  case $state in\n"
        "    (args)\n"
        f'      curcontext="${{curcontext%:*:*}}:{context}-$words[1]:"\n'
        "      case $words[1] in\n" + cases + "      esac\n"
        "      ;;\n"
        "  esac\n"
        "  return ret\n"
        "}\n"
    )


def _command_list(command: Command) -> str:
    items = "".join(
        f"    {sq(_escape_colon(n) + ':' + sub.help)}\n"
        for sub in command.subcommands
        for n in (sub.name, *sub.aliases)
    )
    what = " ".join((PROG, *command.path, "command"))
    return (
        f"\n{identifier(command.path)}_commands() {{\n"
        "  local -a commands\n"
        f"  commands=(\n{items}  )\n"
        f"  _describe -t commands {sq(what)} commands\n"
        "}\n"
    )


def _option_specs(option: Argument) -> list[str]:
    exclusive = "" if option.repeatable else "(" + " ".join(option.flags) + ")"
    prefix = "*" if option.repeatable else ""
    value = ""
    if option.takes_value:
        value = f":{_escape_colon(option.metavar.lower() or option.dest)}:{_action(option)}"
    specs = []
    for flag in option.flags:
        suffix = ""
        if option.takes_value:
            suffix = "=" if flag.startswith("--") else "+"
        specs.append(sq(f"{exclusive}{prefix}{flag}{suffix}[{_bracket(option.help)}]{value}"))
    return specs


def _positional_specs(positionals: tuple[Argument, ...]) -> list[str]:
    specs = []
    for index, argument in enumerate(positionals, start=1):
        message = _escape_colon(argument.help or argument.dest)
        action = _action(argument)
        if argument.kind is ValueKind.COMMAND:
            specs.append(sq(f"*::{message}:{action}"))
            break
        if argument.repeatable:
            specs.append(sq(f"*:{message}:{action}"))
            break
        optional = ":" if not argument.required else ""
        specs.append(sq(f"{index}:{optional}{message}:{action}"))
    return specs


def _action(argument: Argument) -> str:
    if argument.kind is ValueKind.CHOICE:
        return "(" + " ".join(_word(c) for c in argument.choices) + ")"
    return _ACTIONS.get(argument.kind, " ")


def _join(specs: list[str]) -> str:
    return "".join(f"    {spec} \\\n" for spec in specs)


def _word(text: str) -> str:
    """A choice or command name as one zsh word (backslash before anything unusual)."""
    return re.sub(r"([^A-Za-z0-9._/+@%=,-])", r"\\\1", text)


def _bracket(text: str) -> str:
    """Help text for ``[...]`` in an ``_arguments`` spec: one line, brackets escaped."""
    line = " ".join(text.split())
    return re.sub(r"([\[\]\\])", r"\\\1", line)


def _escape_colon(text: str) -> str:
    return " ".join(text.split()).replace("\\", "\\\\").replace(":", "\\:")
