"""``edge-runner context ...`` and ``edge-runner run``: manage contexts and use them.

A context is a control plane address and user id in the contexts file, plus a token in the
secret store under the context's name. Tokens are only ever printed masked, except by
``context env``, whose job is to hand them to ``eval``; ``run`` passes them to a command through
its environment, never its argv.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import subprocess
import sys

import yaml

from edge_runner.cli.login import check_api_base, read_token_stdin
from edge_runner.cli.output import print_json, print_table
from edge_runner.config.contexts import ENV_CONTEXT, Context, ContextsFile
from edge_runner.config.paths import config_file
from edge_runner.config.resolve import (
    ENV_API_BASE,
    ENV_PAT,
    ENV_USER_ID,
    context_record,
    context_records,
    mask_secret,
    resolve_credentials,
)
from edge_runner.config.secrets import secret_store
from edge_runner.errors import ConfigError

__all__ = ["register"]

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``context`` command group and ``run``."""
    parser = sub.add_parser("context", help="contexts: which control plane and token to use")
    parser.set_defaults(func=lambda _args: _usage(parser))
    group = parser.add_subparsers(dest="context_command", metavar="SUBCOMMAND")

    create = group.add_parser("create", help="add a context (use `login` to check a token too)")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--api-base", required=True, help="control plane URL")
    create.add_argument("--user-id", required=True, help="the user the token belongs to")
    create.add_argument("--token-stdin", action="store_true", help="read its token from stdin")
    create.set_defaults(func=_create)

    use = group.add_parser("use", help="make a context the active one")
    use.add_argument("name", metavar="NAME")
    use.set_defaults(func=_use)

    listing = group.add_parser("list", help="list contexts; * marks the active one")
    listing.add_argument(
        "-o",
        "--output",
        choices=("table", "wide", "name", "json", "yaml"),
        default="table",
        help="output format (default: table)",
    )
    listing.set_defaults(func=_list)

    group.add_parser("current", help="print the active context's name").set_defaults(func=_current)

    delete = group.add_parser("delete", help="remove a context and its token")
    delete.add_argument("name", metavar="NAME")
    delete.set_defaults(func=_delete)

    show = group.add_parser("show", help="show a context (token masked)")
    show.add_argument("name", nargs="?", metavar="NAME", help="default: the active one")
    show.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml", help="format")
    show.set_defaults(func=_show)

    env = group.add_parser(
        "env",
        help="print export lines for the active context",
        description='Print export lines; use as: eval "$(edge-runner context env)"',
    )
    env.add_argument("--context", help="context name (default: the active one)")
    env.set_defaults(func=_env)

    group.add_parser(
        "edit", help="open the contexts file in $VISUAL / $EDITOR (default vi), then check it"
    ).set_defaults(func=_edit)

    run = sub.add_parser(
        "run",
        help="run a command with a context's variables in its environment",
        description=f"Run CMD with {ENV_API_BASE}, {ENV_PAT}, {ENV_USER_ID} and {ENV_CONTEXT} "
        "set from the context; exits with CMD's exit code.",
    )
    run.add_argument("--context", help="context name (default: the active one)")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    run.set_defaults(func=_run)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _create(args: argparse.Namespace) -> int:
    contexts = ContextsFile.load()
    existing = contexts.contexts.get(args.name)
    if existing is not None:
        raise ConfigError(
            f"A context named {args.name!r} exists already ({existing.api_base}). "
            f"Delete it first with `edge-runner context delete {args.name}`, or change it with "
            "`edge-runner context edit`."
        )
    first = contexts.current is None
    contexts.put(Context(args.name, check_api_base(args.api_base), args.user_id), first)
    if args.token_stdin:
        token = read_token_stdin()
        store = secret_store()
        store.set(args.name, token)
    contexts.save()
    print(f"Created context {args.name!r} in {contexts.path}.")
    if args.token_stdin:
        print(f"Stored its token {mask_secret(token)} in {store.backend_name} (not verified).")
    else:
        print(f"It has no token yet; add one with `edge-runner login --context {args.name}`.")
    if first:
        print(f"{args.name!r} is now the active context.")
    return 0


def _use(args: argparse.Namespace) -> int:
    contexts = ContextsFile.load()
    ctx = contexts.get(args.name)
    contexts.current = ctx.name
    contexts.save()
    print(f"Switched to context {ctx.name!r} ({ctx.api_base}).")
    override = os.environ.get(ENV_CONTEXT)
    if override and override != ctx.name:
        logger.warning("%s=%s still overrides it in this shell", ENV_CONTEXT, override)
    return 0


def _list(args: argparse.Namespace) -> int:
    if args.output == "name":
        for name in ContextsFile.load().contexts:
            print(name)
        return 0
    records = context_records()
    if args.output in ("json", "yaml"):
        _dump(records, args.output)
        return 0
    headers = ["CURRENT", "NAME", "API BASE", "USER", "TOKEN"]
    rows: list[list[str]] = [
        ["*" if r["active"] else "", r["name"], r["api_base"], r["user_id"], r["token"] or "-"]
        for r in records
    ]
    if args.output == "wide":
        headers.append("EXTRA")
        for row, r in zip(rows, records, strict=True):
            row.append(",".join(f"{k}={v}" for k, v in r.get("extra", {}).items()) or "-")
    print_table(headers, rows)
    return 0


def _current(_args: argparse.Namespace) -> int:
    print(ContextsFile.load().active().name)
    return 0


def _delete(args: argparse.Namespace) -> int:
    contexts = ContextsFile.load()
    contexts.get(args.name)  # unknown → the message that lists the known ones
    # The secret goes first: if the file cannot be written after, no orphan token stays behind.
    secret_store().delete(args.name)
    contexts.remove(args.name)
    contexts.save()
    print(f"Deleted context {args.name!r} and its token.")
    if contexts.current is None and contexts.contexts:
        print("No context is active now; pick one with `edge-runner context use NAME`.")
    return 0


def _show(args: argparse.Namespace) -> int:
    contexts = ContextsFile.load()
    ctx = contexts.active(args.name)
    active = (os.environ.get(ENV_CONTEXT) or contexts.current) == ctx.name
    store = secret_store()
    record = context_record(ctx, active, store)
    record["secret_store"] = store.backend_name
    _dump(record, args.output)
    return 0


def _env(args: argparse.Namespace) -> int:
    creds = resolve_credentials(context=args.context)
    print(f"export {ENV_API_BASE}={shlex.quote(creds.api_base)}")
    if creds.user_id:
        print(f"export {ENV_USER_ID}={shlex.quote(creds.user_id)}")
    print(f"export {ENV_PAT}={shlex.quote(creds.token)}")
    return 0


def _edit(_args: argparse.Namespace) -> int:
    # Not loaded first: a file that is broken already is exactly what one opens the editor for.
    path = config_file()
    if not path.exists():
        ContextsFile(path=path).save()  # an empty skeleton, 0600 in a 0700 dir, to fill in
    source, editor = next(
        ((var, os.environ[var]) for var in ("VISUAL", "EDITOR") if os.environ.get(var)),
        ("default", "vi"),
    )
    argv = [*shlex.split(editor), str(path)]
    try:
        code = subprocess.run(argv, check=False).returncode
    except OSError as exc:
        raise ConfigError(
            f"Cannot start the editor {editor!r} (from {source}): {exc.strerror or exc}. "
            "Set EDITOR to one that exists, e.g. `EDITOR=nano edge-runner context edit`."
        ) from exc
    if code != 0:
        raise ConfigError(f"The editor {editor!r} exited with code {code}; check {path}.")
    edited = ContextsFile.load(path)
    print(f"{edited.path}: {len(edited.contexts)} context(s), active: {edited.current or '-'}.")
    return 0


def _run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise ConfigError("Nothing to run; use `edge-runner run [--context NAME] -- CMD ...`.")
    creds = resolve_credentials(context=args.context)
    env = dict(os.environ)
    env[ENV_API_BASE] = creds.api_base
    env[ENV_PAT] = creds.token
    if creds.user_id:
        env[ENV_USER_ID] = creds.user_id
    if creds.context:
        env[ENV_CONTEXT] = creds.context
    program = shutil.which(command[0], path=env.get("PATH"))
    if program is None:
        raise ConfigError(f"Cannot run {command[0]!r}: no such command on PATH.")
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        # Become the command: its exit code and signals are ours, and no process lingers.
        os.execve(program, command, env)
    return subprocess.run([program, *command[1:]], env=env, check=False).returncode


def _dump(value: object, fmt: str) -> None:
    if fmt == "json":
        print_json(value)
    else:
        sys.stdout.write(yaml.safe_dump(value, sort_keys=False, allow_unicode=True))
