"""The fish completion script: ``complete`` lines guarded by which command is being typed.

fish's own helpers (``__fish_seen_subcommand_from``) cannot tell ``context create`` from
``token create``, so the script walks the command line itself (``__edge_runner_path``: the
subcommand path, skipping options and their values) and caches the answer per command line,
since fish evaluates every guard on each TAB.
"""

from __future__ import annotations

from edge_runner.cli._parser_tree import Argument, Command, ValueKind
from edge_runner.cli.completion import PROG, header, value_kind

__all__ = ["fish_script"]

_DIRS = "(__fish_complete_directories (commandline -ct))"
_CONTEXTS = f"(command -q {PROG}; and {PROG} context list -o name 2>/dev/null)"


def fish_script(root: Command) -> str:
    """The whole fish script for ``root`` (the tree of ``edge-runner``)."""
    spelled = list(root.spellings())
    subs: list[str] = []
    takes: list[str] = []
    lines = [f"complete -c {PROG} -f  # no file names unless an argument wants them\n"]
    for path, command in spelled:
        key = " ".join(path)
        names = [n for sub in command.subcommands for n in (sub.name, *sub.aliases)]
        if names:
            subs.append(f"        case {_q(key)}\n            printf '%s\\n' {_words(names)}\n")
        for option in command.options:
            if option.takes_value:
                takes.extend(_q(f"{key}|{flag}") for flag in option.flags)
        if command.accepts_extra:
            takes.append(_q(f"{key}|-*"))  # a quoted case pattern still matches as a wildcard
        guard = _guard(key)
        for sub in command.subcommands:
            for name in (sub.name, *sub.aliases):
                lines.append(f"complete -c {PROG} {guard} -a {_q(name)} -d {_q(sub.help)}\n")
        lines.extend(_option_line(guard, option) for option in command.options)
        lines.extend(_positional_lines(key, command.positionals))
    return (
        header("fish", f"Save it: {PROG} completion fish > ~/.config/fish/completions/{PROG}.fish")
        + "\nfunction __edge_runner_subcommands --argument-names path\n    switch $path\n"
        + "".join(subs)
        + "    end\nend\n"
        + "\nfunction __edge_runner_takes_value --argument-names path option\n"
        + '    switch "$path|$option"\n'
        + (f"        case {' '.join(takes)}\n            return 0\n" if takes else "")
        + "    end\n    return 1\nend\n"
        + _WALK
        + "\n"
        + "".join(lines)
    )


_WALK = r"""
function __edge_runner_path  # the subcommand path typed so far, e.g. "context list"
    set -l line (commandline -pc)
    if test "$line" = "$__edge_runner_line"
        echo $__edge_runner_cached
        return
    end
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l path ''
    set -l pending 0
    set -l npos 0
    for token in $tokens
        if test $pending = 1
            set pending 0
            continue
        end
        switch $token
            case '-*=*'
                continue
            case '-*'
                if __edge_runner_takes_value "$path" $token
                    set pending 1
                end
            case '*'
                if test $npos = 0; and contains -- $token (__edge_runner_subcommands "$path")
                    set path (string trim -- "$path $token")
                else
                    set npos (math $npos + 1)
                end
        end
    end
    set -g __edge_runner_line "$line"
    set -g __edge_runner_cached "$path"
    set -g __edge_runner_npos $npos
    echo $path
end

function __edge_runner_at --argument-names want index  # at command $want, positional $index
    set -l path (__edge_runner_path)
    test "$path" = "$want"; or return 1
    switch "$index"
        case ''
            return 0
        case '*+'
            test $__edge_runner_npos -ge (string trim -r -c + -- $index)
        case '*'
            test $__edge_runner_npos -eq $index
    end
end
"""


def _option_line(guard: str, option: Argument) -> str:
    parts = [f"complete -c {PROG} {guard}"]
    for flag in option.flags:
        if flag.startswith("--"):
            parts.append(f"-l {_q(flag[2:])}")
        elif len(flag) == 2:
            parts.append(f"-s {_q(flag[1:])}")
        else:
            parts.append(f"-o {_q(flag[1:])}")
    if option.help:
        parts.append(f"-d {_q(_one_line(option.help))}")
    parts.append(_value(option))
    return " ".join(p for p in parts if p) + "\n"


def _positional_lines(key: str, positionals: tuple[Argument, ...]) -> list[str]:
    lines = []
    for index, argument in enumerate(positionals):
        if argument.kind is ValueKind.COMMAND:  # `run CMD ARGS...`: a command, then its files
            lines.append(f"complete -c {PROG} {_guard(key, index)} {_value(argument)}\n")
            lines.append(f"complete -c {PROG} {_guard(key, f'{index + 1}+')} -F\n")
            break
        guard = _guard(key, f"{index}+" if argument.repeatable else index)
        value = _value(argument).replace("-r -F", "-F")  # -r means "needs a value": options only
        if value not in ("", "-x"):
            lines.append(f"complete -c {PROG} {guard} {value}\n")
        if argument.repeatable:
            break
    return lines


def _guard(key: str, index: int | str | None = None) -> str:
    """``-n '__edge_runner_at 'context list' 0'``: at this command (and positional index).

    An index written ``2+`` means "the third positional argument or any later one".
    """
    test = f"__edge_runner_at {_q(key)}" + (f" {index}" if index is not None else "")
    return f"-n {_q(test)}"


def _value(argument: Argument) -> str:
    """The ``complete`` switches for an argument's value (an option's, or a positional's)."""
    kind = argument.kind
    if kind is ValueKind.FLAG:
        return ""
    if kind is ValueKind.FILE:
        return "-r -F"
    if kind is ValueKind.DIR:
        return f"-x -a {_q(_DIRS)}"
    if kind is ValueKind.CONTEXT:
        return f"-x -a {_q(_CONTEXTS)}"
    if kind is ValueKind.COMMAND:
        return f"-x -a {_q('(__fish_complete_command)')}"
    if kind is ValueKind.CHOICE:
        return f"-x -a {_q(value_kind(argument).removeprefix('choice:'))}"
    return "-x"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _q(text: str) -> str:
    """Quote for fish: single quotes, with ``\\`` and ``'`` escaped."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _words(words: list[str]) -> str:
    return " ".join(_q(w) for w in words)
