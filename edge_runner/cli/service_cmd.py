"""``edge-runner service install|uninstall|status``: run a runner or control plane as a service.

``install`` writes a systemd unit (user: ``~/.config/systemd/user``; ``--system``:
``/etc/systemd/system``) or, on macOS, a LaunchAgent plist, for the active context, and prints
exactly what it wrote and the commands to run next. It runs no service manager command itself
(enabling a service is a decision the user makes, with the commands printed). A token never goes
into the unit or onto its command line: a user service reads the context's keyring entry or
0600 secret file; a system service gets a root-only 0600 file through ``LoadCredential=``.

``status`` says whether the unit exists, whether it is what ``install`` would write now (the
installed command line is rendered again and compared), and, with the default directories,
what ``systemctl is-active`` (or ``launchctl list``) says. Exit code 0 when installed and
current, 1 otherwise.
"""

from __future__ import annotations

import argparse
import difflib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edge_runner.errors import ConfigError

if TYPE_CHECKING:
    from edge_runner.service.install import Settings, Target
    from edge_runner.service.units import Role

__all__ = ["register"]

_HEADER_MARK = "edge_runner/service/units.py"
#: options `service install` sets itself, or that only a supervisor passes
_RESERVED = ("--context", "--ready-fd", "--lifeline-fd")
_MAX_DIFF_LINES = 24


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``service`` with ``install``, ``uninstall`` and ``status``."""
    service = sub.add_parser(
        "service",
        help="run a runner or the control plane as a service (systemd, launchd)",
        description="Write, check or remove the systemd unit (Linux) or LaunchAgent (macOS) "
        "that runs `edge-runner runner` (default) or `edge-runner control` (--control) for "
        "the active context. Options for the runner or control plane go after `--`.",
    )
    actions = service.add_subparsers(dest="action", metavar="ACTION")
    install = actions.add_parser(
        "install",
        help="write the unit file and print how to enable it",
        description="Write the unit for MODEL_PATH (default: the current folder) and the "
        "active context. Example: edge-runner service install ./my-model -- --pool-size 4",
    )
    install.add_argument(
        "words",
        nargs="*",
        metavar="[MODEL_PATH] [-- OPTIONS]",
        help="the model folder, then options of `edge-runner runner` (or `control`) after --",
    )
    install.add_argument("--context", help="context to serve (default: the active one)")
    install.add_argument("--force", action="store_true", help="replace a unit that differs")
    _target_options(install)
    # Options after `--` may land in the positionals or in the extras, by where they stand.
    install.set_defaults(func=_install, accepts_extra=True)
    uninstall = actions.add_parser("uninstall", help="remove the unit file (and its token file)")
    uninstall.add_argument(
        "--force", action="store_true", help="remove it even if edge-runner did not write it"
    )
    _target_options(uninstall)
    uninstall.set_defaults(func=_uninstall)
    status = actions.add_parser("status", help="is the unit installed, current and active?")
    status.add_argument(
        "--context", help="for a --system runner: the context to compare with (default: active)"
    )
    _target_options(status)
    status.set_defaults(func=_status)
    service.set_defaults(func=lambda args: _usage(service))


def _target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--control", action="store_true", help="the control plane's service (default: runner)"
    )
    parser.add_argument(
        "--system",
        action="store_true",
        help="a system service (/etc/systemd/system, user edge-runner) instead of a user one",
    )
    parser.add_argument(
        "--name", default="", help="suffix for more than one: edge-runner-runner-NAME.service"
    )
    parser.add_argument(
        "--unit-dir",
        type=Path,
        help="write the unit here instead (also EDGE_RUNNER_UNIT_DIR); no service manager is "
        "asked anything then",
    )
    parser.add_argument(
        "--credentials-dir",
        type=Path,
        help="where a --system runner's token file goes (default /etc/edge-runner/credentials)",
    )
    parser.add_argument("--init", choices=("systemd", "launchd"), help="default: this OS's own")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _target(args: argparse.Namespace) -> Target:
    from edge_runner.service.install import InitSystem, Target
    from edge_runner.service.units import Role

    return Target.choose(
        init=InitSystem(args.init) if args.init else InitSystem.here(),
        role=Role.CONTROL if args.control else Role.RUNNER,
        system=args.system,
        name=args.name,
        unit_dir=args.unit_dir,
        credentials_dir=args.credentials_dir,
    )


# -- install ----------------------------------------------------------------------------------


def _install(args: argparse.Namespace) -> int:
    from edge_runner.service.install import Settings, build_spec, program, render, write_file
    from edge_runner.service.units import Role, Scope

    target = _target(args)
    extra = list(getattr(args, "extra", []))
    if extra and extra[0] != "--":
        raise ConfigError(
            f"unrecognized arguments: {' '.join(extra)} (options for `edge-runner "
            f"{target.role.value}` go after --)"
        )
    words = [*args.words, *extra[1:]]
    token: str | None = None
    if target.role is Role.RUNNER:
        settings, token, what = _runner_settings(target, words, args.context)
    else:
        from edge_runner.cli.daemon_args import control_config

        control_config(_check_options(Role.CONTROL, words))
        settings, what = Settings(program(), tuple(words)), "the control plane"
    text = render(target, build_spec(target, settings))
    path = target.path
    done: list[str] = []
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path} exists and is not a file; remove it or pick --unit-dir")
    old = path.read_text(errors="replace") if path.exists() else None
    if old is not None and old != text and not args.force:
        changed = sum(1 for line in _diff(old, text, path) if line[:1] in "+-") - 2
        raise ConfigError(
            f"{path} exists and differs from what would be written ({changed} line(s)); "
            "`edge-runner service status` shows how; add --force to replace it"
        )
    credential = target.credential_path
    if credential is not None and token is not None:
        unchanged = credential.exists() and _read(credential) == token
        if not unchanged:
            write_file(credential, token.encode() + b"\n", 0o600)
        done.append(
            f"{'kept' if unchanged else 'wrote'} {credential} (mode 0600, for root only: the "
            "context's token, which systemd hands the service as $CREDENTIALS_DIRECTORY/token)"
        )
    if old == text:
        done.append(f"unchanged: {path} is already what would be written")
    else:
        if target.init.value == "launchd" and not target.custom_dir:
            log_dir = Path.home() / "Library" / "Logs" / "edge-runner"
            log_dir.mkdir(parents=True, exist_ok=True)
        write_file(path, text.encode(), 0o644)
        done.append(f"{'replaced' if old is not None else 'wrote'} {path} ({what})")
    for line in done:
        print(line)
    print("next:")
    for command in _next_commands(target, path):
        print(f"  {command}")
    if target.scope is Scope.USER and target.init.value == "systemd":
        print("to keep it running while you are logged out: loginctl enable-linger $USER")
    return 0


def _check_options(role: Role, argv: list[str]) -> argparse.Namespace:
    """Parse ``edge-runner ROLE ARGV`` with the real parser, so a typo fails now, not at boot.

    Raises:
        ConfigError: the options are not valid for the command (argparse's message).
    """
    import contextlib
    import io

    from edge_runner.cli.main import build_parser

    for word in argv:
        if word.split("=", 1)[0] in _RESERVED:
            raise ConfigError(
                f"{word.split('=', 1)[0]} is set by `edge-runner service install` itself "
                "(use its own --context)"
            )
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
            return build_parser().parse_args([role.value, *argv])
    except SystemExit as exc:
        lines = [line for line in captured.getvalue().splitlines() if line.strip()]
        reason = lines[-1].split("error: ", 1)[-1] if lines and exc.code else "help asked for"
        raise ConfigError(f"bad options for `edge-runner {role.value}`: {reason}") from exc


def _runner_settings(
    target: Target, words: list[str], context: str | None
) -> tuple[Settings, str | None, str]:
    """The runner's arguments (model folder made absolute), its token (system) and a label."""
    from edge_runner.cli.daemon_args import runner_config
    from edge_runner.config.contexts import ContextsFile
    from edge_runner.config.resolve import resolve_credentials
    from edge_runner.config.secrets import secret_store
    from edge_runner.models.config import load_config
    from edge_runner.models.loader import existing_folder
    from edge_runner.service.install import Settings, program
    from edge_runner.service.units import Role, Scope

    model = words[0] if words and not words[0].startswith("-") else None
    options = words[1:] if model is not None else words
    parsed = _check_options(Role.RUNNER, [model or ".", *options])
    head: list[str] = []
    what = "a runner for " + " ".join(options)
    if runner_config(parsed).source.serves_folder:  # checks every option as the runner will
        folder = existing_folder(model or ".")
        load_config(folder)  # a bad folder fails now, not at every boot
        head, what = [str(folder)], f"a runner for {folder}"
    ctx = ContextsFile.load().active(context)
    what += f", context {ctx.name}"
    if target.scope is Scope.USER:
        if secret_store().get(ctx.name) is None:
            raise ConfigError(
                f"context {ctx.name!r} has no token in the secret store, so the service could "
                f"not connect; run `edge-runner login --context {ctx.name}` (or `edge-runner up` "
                "for `local`) first"
            )
        args = (*head, *options, "--context", ctx.name)
        return Settings(program(), args), None, what
    creds = resolve_credentials(context=ctx.name)
    settings = Settings(program(), (*head, *options), creds.api_base, creds.ca_file)
    return settings, creds.token, what


def _next_commands(target: Target, path: Path) -> list[str]:
    from edge_runner.service.units import Scope

    if target.init.value == "launchd":
        domain = f"gui/{os.getuid()}"
        label = path.stem
        return [
            f"launchctl bootstrap {domain} {path}",
            f"launchctl print {domain}/{label}   # state; logs in ~/Library/Logs/edge-runner",
        ]
    unit = path.name
    if target.scope is Scope.USER:
        ctl, journal = "systemctl --user", "journalctl --user"
    else:
        sudo = "sudo " if os.geteuid() != 0 else ""
        ctl, journal = f"{sudo}systemctl", f"{sudo}journalctl"
    commands = []
    if target.scope is Scope.SYSTEM and not _user_exists("edge-runner"):
        commands.append(
            f"{'sudo ' if os.geteuid() != 0 else ''}useradd --system --home-dir "
            "/var/lib/edge-runner --shell /usr/sbin/nologin edge-runner"
        )
    if target.custom_dir:
        commands.append(f"# {path.parent} is not where systemd looks: copy {unit} there first")
    commands += [
        f"{ctl} daemon-reload",
        f"{ctl} enable --now {unit}"
        + (
            "   # waits until the runner is registered; --no-block to not wait"
            if target.role.value == "runner"
            else ""
        ),
        f"{ctl} status {unit}",
        f"{journal} -u {unit} -f",
    ]
    return commands


def _systemctl(target: Target) -> str:
    if target.scope.value == "user":
        return "systemctl --user"
    return "systemctl" if os.geteuid() == 0 else "sudo systemctl"


def _user_exists(name: str) -> bool:
    try:
        import pwd

        pwd.getpwnam(name)
    except (ImportError, KeyError):
        return False
    return True


# -- uninstall --------------------------------------------------------------------------------


def _uninstall(args: argparse.Namespace) -> int:
    target = _target(args)
    path = target.path
    if not path.exists():
        print(f"nothing to remove: {path} does not exist")
        return 0
    text = path.read_text(errors="replace")
    if not _ours(target, text) and not args.force:
        raise ConfigError(
            f"{path} was not written by `edge-runner service`; add --force to remove it"
        )
    state = _active_state(target, path)
    if state in ("active", "activating", "reloading", "deactivating") and not args.force:
        ctl = _systemctl(target)
        raise ConfigError(
            f"{path.name} is {state}; stop it first (`{ctl} disable --now {path.name}`), "
            "or add --force"
        )
    try:
        path.unlink()
        credential = target.credential_path
        removed = [str(path)]
        if credential is not None and credential.exists():
            credential.unlink()
            removed.append(f"{credential} (the token file)")
    except OSError as exc:
        raise ConfigError(
            f"cannot remove {path}: {exc.strerror or exc}; run it as root (sudo)"
        ) from exc
    for item in removed:
        print(f"removed {item}")
    if target.init.value == "launchd":
        print(f"next:\n  launchctl bootout gui/{os.getuid()}/{path.stem}   # if it is loaded")
    else:
        ctl = _systemctl(target)
        print(f"next:\n  {ctl} disable {path.name}   # if it was enabled\n  {ctl} daemon-reload")
    return 0


def _ours(target: Target, text: str) -> bool:
    if target.init.value == "launchd":
        return "<string>com.edge-runner." in text
    return _HEADER_MARK in text


# -- status -----------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    from edge_runner.errors import EdgeRunnerError
    from edge_runner.service.install import build_spec, installed_args, render

    target = _target(args)
    path = target.path
    kind = f"{target.init.value} {target.scope.value} service"
    print(f"{path.name} ({kind})")
    current = False
    if not path.exists():
        print(f"  file:    {path} does not exist (`edge-runner service install` writes it)")
    else:
        print(f"  file:    {path}")
        text = path.read_text(errors="replace")
        try:
            settings = installed_args(target, text)
            if target.role.value == "runner" and target.scope.value == "system":
                settings = _with_context(settings, args.context)
            expected = render(target, build_spec(target, settings))
        except EdgeRunnerError as exc:
            print(f"  current: cannot tell: {exc}")
        else:
            current = expected == text
            if current:
                print("  current: yes, it is what `edge-runner service install` would write")
            else:
                print("  current: no, `edge-runner service install --force` would write:")
                for line in _diff(text, expected, path)[:_MAX_DIFF_LINES]:
                    print(f"    {line}")
        credential = target.credential_path
        if credential is not None:
            print(f"  token:   {_describe_file(credential)}")
    print(f"  state:   {_active_state(target, path) or 'not asked (custom unit directory)'}")
    return 0 if current else 1


def _with_context(settings: Settings, context: str | None) -> Settings:
    from dataclasses import replace

    from edge_runner.config.contexts import ContextsFile

    ctx = ContextsFile.load().active(context)
    ca_file = ctx.extra.get("ca_file")
    ca = os.environ.get("EDGE_RUNNER_CA_FILE") or (ca_file if isinstance(ca_file, str) else None)
    return replace(
        settings, api_base=os.environ.get("EDGE_RUNNER_API_BASE") or ctx.api_base, ca_file=ca
    )


def _describe_file(path: Path) -> str:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        return f"{path} missing ({exc.strerror}): the service cannot connect"
    warning = "" if mode & 0o077 == 0 else " - readable by others: chmod 600 it"
    return f"{path} (mode {mode:04o}){warning}"


def _active_state(target: Target, path: Path) -> str | None:
    """What the service manager says, or None when it is not to be asked (custom dir)."""
    if target.custom_dir:
        return None
    if target.init.value == "launchd":
        tool = shutil.which("launchctl")
        command = [tool, "list", path.stem] if tool else None
    else:
        tool = shutil.which("systemctl")
        scope = ["--user"] if target.scope.value == "user" else []
        command = [tool, *scope, "is-active", path.name] if tool else None
    if command is None or tool is None:
        return "unknown (no service manager command here)"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    if target.init.value == "launchd":
        return "loaded" if done.returncode == 0 else "not loaded"
    return (done.stdout.strip() or done.stderr.strip() or "unknown").splitlines()[0]


# -- helpers ----------------------------------------------------------------------------------


def _diff(old: str, new: str, path: Path) -> list[str]:
    return [
        line.rstrip("\n")
        for line in difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            f"{path} (installed)",
            "what install would write",
            n=0,
        )
    ]


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
