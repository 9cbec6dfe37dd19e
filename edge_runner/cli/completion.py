"""Shell completion scripts for bash, zsh and fish, generated from the live argparse parser.

The scripts are static: every command, option, choice list and path argument is written into
them when ``edge-runner completion SHELL`` runs, so pressing TAB starts no Python. The one
dynamic value is a context name (``--context``, ``context use NAME``): the script runs
``edge-runner context list -o name`` (reads the contexts file, about 0.25 s, no network, no
keyring) only when such a value is being completed. Regenerate after upgrading edge-runner.

No dependency: shtab writes bash and zsh but not fish; argcomplete covers all three but runs
Python on every TAB (0.25-0.3 s measured here to start and build the parser, against about 2 ms
for the bash script and 4 ms for the fish one).

What a value completes to is guessed from the argument (see :mod:`edge_runner.cli._parser_tree`);
where the guess is wrong, a command module says it: ``complete_as(parser.add_argument("bundle"),
ValueKind.FILE)``.

The bash script keeps to what bash 3.2 has (macOS's ``/bin/bash``): no associative arrays, no
``mapfile``, ``compopt`` only when it exists.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable

from edge_runner._version import __version__
from edge_runner.cli._parser_tree import Argument, Command, ValueKind, command_tree, complete_as
from edge_runner.cli.completion_cmd import SHELLS

__all__ = ["PROG", "SHELLS", "ValueKind", "bash_script", "complete_as", "generate"]

PROG = "edge-runner"


def generate(shell: str, parser: argparse.ArgumentParser) -> str:
    """Return the completion script for ``shell`` (one of :data:`SHELLS`) from ``parser``."""
    from edge_runner.cli import _completion_fish, _completion_zsh

    root = command_tree(parser)
    if shell == "bash":
        return bash_script(root)
    if shell == "zsh":
        return _completion_zsh.zsh_script(root)
    if shell == "fish":
        return _completion_fish.fish_script(root)
    raise ValueError(f"no completion for shell {shell!r}; pick one of: {', '.join(SHELLS)}")


def header(shell: str, how: str) -> str:
    """The comment the scripts start with: what made them and how to load them."""
    return (
        f"# {shell} completion for {PROG} {__version__}, written by `{PROG} completion {shell}`.\n"
        f"# {how}\n"
        f"# It is a snapshot of the commands and options: regenerate it after an upgrade.\n"
    )


def value_kind(argument: Argument) -> str:
    """How the bash and fish scripts name what a value completes to: ``dir``, ``choice:a b``."""
    if argument.kind is ValueKind.CHOICE:
        return "choice:" + " ".join(argument.choices)
    return argument.kind.value


def sq(text: str) -> str:
    """Quote ``text`` for a POSIX shell (and zsh): ``'it'\\''s'``."""
    return "'" + text.replace("'", "'\\''") + "'"


# -- bash -------------------------------------------------------------------------------------


def bash_script(root: Command) -> str:
    """The bash script: data functions made from the tree, then the fixed completion logic."""
    spelled = list(root.spellings())
    commands, options, kinds, positionals = [], [], [], []
    for path, command in spelled:
        key = " ".join(path)
        names = [n for sub in command.subcommands for n in (sub.name, *sub.aliases)]
        if names:
            commands.append(_case(sq(key), "REPLY=" + sq(" ".join(names))))
        flags = [flag for option in command.options for flag in option.flags]
        options.append(_case(sq(key), "REPLY=" + sq(" ".join(flags))))
        for option in command.options:
            patterns = "|".join(sq(f"{key}|{flag}") for flag in option.flags)
            kinds.append(_case(patterns, "REPLY=" + sq(value_kind(option))))
        if command.accepts_extra:  # `predict MODEL --ARG VALUE`: unknown options take a value
            kinds.append(_case(sq(f"{key}|") + "-*", "REPLY=any"))
        positionals.extend(_bash_positionals(key, command.positionals))
    return (
        header("bash", f'Load it from ~/.bashrc: eval "$({PROG} completion bash)"')
        + _bash_function("_edge_runner_commands", "subcommands of command $1", commands)
        + _bash_function("_edge_runner_options", "options of command $1", options)
        + _bash_function(
            "_edge_runner_option_kind",
            "what option $2 of command $1 takes: flag, any, file, dir, context, choice:...",
            kinds,
            subject='"$1|$2"',
        )
        + _bash_function(
            "_edge_runner_positional_kind",
            "what positional argument $2 (from 0) of command $1 takes",
            positionals,
            subject='"$1|$2"',
        )
        + _BASH_LOGIC
    )


def _bash_positionals(key: str, positionals: Iterable[Argument]) -> list[str]:
    cases = []
    for index, argument in enumerate(positionals):
        body = "REPLY=" + sq(value_kind(argument))
        if argument.repeatable:  # this one and every later word
            cases.append(_case(sq(f"{key}|") + "*", body))
            break
        cases.append(_case(sq(f"{key}|{index}"), body))
    return cases


def _case(pattern: str, body: str) -> str:
    return f"        {pattern}) {body} ;;\n"


def _bash_function(name: str, doc: str, cases: list[str], subject: str = '"$1"') -> str:
    return (
        f"\n{name}() {{  # {doc}\n"
        f"    case {subject} in\n" + "".join(cases) + "        *) REPLY='' ;;\n    esac\n}\n"
    )


_BASH_LOGIC = r"""
_edge_runner_contexts() {  # context names, only when one is being completed
    local prog=edge-runner
    [[ ${COMP_WORDS[0]} == */* && -x ${COMP_WORDS[0]} ]] && prog="${COMP_WORDS[0]}"
    [[ $config == "~/"* ]] && config="$HOME/${config#"~/"}"
    "$prog" ${config:+--config "$config"} context list -o name 2>/dev/null
}

_edge_runner_values() {  # COMPREPLY for a value of kind $1 starting with $2
    local kind="$1" cur="$2" line flag=-f
    COMPREPLY=()
    case "$kind" in
        choice:*) COMPREPLY=($(compgen -W "${kind#choice:}" -- "$cur")) ;;
        context) COMPREPLY=($(compgen -W "$(_edge_runner_contexts)" -- "$cur")) ;;
        file | dir | command)
            if [[ $kind == command ]]; then
                flag=-c
            else
                type compopt &>/dev/null && compopt -o filenames 2>/dev/null
                [[ $kind == dir ]] && flag=-d
            fi
            # One name per line, so names with spaces stay whole.
            while IFS= read -r line; do
                COMPREPLY+=("$line")
            done < <(compgen "$flag" -- "$cur")
            ;;
    esac
}

_edge_runner() {
    local IFS=$' \t\n' cur="${COMP_WORDS[COMP_CWORD]}" cmd='' word pending='' config=''
    local rest='' i j
    local -i npos=0
    COMPREPLY=()
    # Walk the words before the cursor: which command are we in, is an option waiting for its
    # value, how many positional arguments came already.
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        [[ -n $rest ]] && continue
        if [[ -n $pending ]]; then
            [[ $word == = ]] && continue # --output=json arrives as --output, =, json
            [[ -z $cmd && $pending == --config ]] && config="$word"
            pending=''
            continue
        fi
        case "$word" in
            -?*)
                if [[ $word == *=* ]]; then
                    [[ -z $cmd && $word == --config=* ]] && config="${word#*=}"
                    continue
                fi
                _edge_runner_option_kind "$cmd" "$word"
                [[ -n $REPLY && $REPLY != flag ]] && pending="$word"
                ;;
            *)
                _edge_runner_commands "$cmd"
                if [[ -n $REPLY && $npos -eq 0 && " $REPLY " == *" $word "* ]]; then
                    cmd="${cmd:+$cmd }$word"
                else
                    _edge_runner_positional_kind "$cmd" "$npos"
                    [[ $REPLY == command ]] && rest=1
                    npos+=1
                fi
                ;;
        esac
    done
    if [[ -n $pending ]]; then
        [[ $cur == = ]] && cur=''
        _edge_runner_option_kind "$cmd" "$pending"
        _edge_runner_values "$REPLY" "$cur"
        return 0
    fi
    if [[ -n $rest ]]; then # the arguments of `run`'s command: files
        _edge_runner_values file "$cur"
        return 0
    fi
    case "$cur" in
        --*=*) # only when = is not a word break
            _edge_runner_option_kind "$cmd" "${cur%%=*}"
            if [[ -n $REPLY && $REPLY != flag ]]; then
                _edge_runner_values "$REPLY" "${cur#*=}"
                for j in "${!COMPREPLY[@]}"; do
                    COMPREPLY[j]="${cur%%=*}=${COMPREPLY[j]}"
                done
            fi
            return 0
            ;;
        -*)
            _edge_runner_options "$cmd"
            COMPREPLY=($(compgen -W "$REPLY" -- "$cur"))
            return 0
            ;;
    esac
    _edge_runner_commands "$cmd"
    if [[ -n $REPLY && $npos -eq 0 ]]; then
        COMPREPLY=($(compgen -W "$REPLY" -- "$cur"))
        return 0
    fi
    _edge_runner_positional_kind "$cmd" "$npos"
    if [[ -n $REPLY ]]; then
        _edge_runner_values "$REPLY" "$cur"
    else # nothing positional left: the options are what can still come
        _edge_runner_options "$cmd"
        COMPREPLY=($(compgen -W "$REPLY" -- "$cur"))
    fi
    return 0
}

if type compopt &>/dev/null; then
    complete -F _edge_runner edge-runner
else # bash 3.2 (macOS /bin/bash) has no compopt: mark every candidate up as a file name
    complete -o filenames -F _edge_runner edge-runner
fi
"""


def identifier(path: Iterable[str]) -> str:
    """A shell function name for a command path: ``_edge_runner__context__create``."""
    return "_edge_runner" + "".join("__" + re.sub(r"\W", "_", word) for word in path)
