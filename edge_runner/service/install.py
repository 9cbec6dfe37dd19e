"""Where a service's files go and what goes in them (``edge-runner service``; no printing here).

- User services pin the context by name (``--context NAME``): the runner reads that context's
  token from the user's keyring or 0600 secret file at each start, like any other command.
  ``EDGE_RUNNER_HOME``/``EDGE_RUNNER_CONFIG``/``EDGE_RUNNER_SECRET_BACKEND``/``EDGE_RUNNER_CA_FILE``
  are carried into the unit when set, so the service sees the files the installer saw.
- System services run as the ``edge-runner`` user, which has no contexts: the context's address
  goes into the unit as ``EDGE_RUNNER_API_BASE`` (not a secret), and its token into a root-only
  0600 file that systemd hands the service with ``LoadCredential=``.
- The unit directory can be pointed elsewhere (``--unit-dir`` or ``EDGE_RUNNER_UNIT_DIR``);
  then no service manager is asked anything, which is what tests rely on.
"""

from __future__ import annotations

import contextlib
import enum
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from edge_runner.errors import ConfigError
from edge_runner.service.units import (
    Role,
    Scope,
    ServiceSpec,
    parse_exec,
    render_launchd,
    render_systemd,
)

__all__ = [
    "CREDENTIALS_DIR",
    "ENV_UNIT_DIR",
    "InitSystem",
    "Settings",
    "Target",
    "build_spec",
    "installed_args",
    "program",
    "render",
    "systemd_version",
    "write_file",
]

ENV_UNIT_DIR = "EDGE_RUNNER_UNIT_DIR"
CREDENTIALS_DIR = Path("/etc/edge-runner/credentials")
#: the first systemd with LoadCredential=
LOAD_CREDENTIAL_VERSION = 247
#: settings of the installing shell a user service needs to find the same files
_FORWARDED = (
    "EDGE_RUNNER_HOME",
    "EDGE_RUNNER_CONFIG",
    "EDGE_RUNNER_SECRET_BACKEND",
    "EDGE_RUNNER_CA_FILE",
)


#: runner options that `service install` sets itself, or that only `up` uses
class InitSystem(enum.Enum):
    """The service manager."""

    SYSTEMD = "systemd"
    LAUNCHD = "launchd"

    @classmethod
    def here(cls) -> InitSystem:
        """This machine's (Linux: systemd, macOS: launchd).

        Raises:
            ConfigError: neither (Windows: a service wrapper, see packaging/windows.md).
        """
        if sys.platform == "darwin":
            return cls.LAUNCHD
        if sys.platform.startswith("linux"):
            return cls.SYSTEMD
        raise ConfigError(
            f"`edge-runner service` writes systemd units and launchd plists; on {sys.platform} "
            "run it under a service wrapper (NSSM, WinSW) as packaging/windows.md describes"
        )


@dataclass(frozen=True)
class Target:
    """Which service, and where its file is.

    Attributes:
        init: systemd or launchd.
        role: runner or control plane.
        scope: user or system.
        name: the optional suffix of the unit name.
        unit_dir: the directory of the unit file.
        custom_dir: the directory was given (tests, staging): ask no service manager.
        credentials_dir: where a system runner's token file goes.
    """

    init: InitSystem
    role: Role
    scope: Scope
    name: str
    unit_dir: Path
    custom_dir: bool
    credentials_dir: Path = CREDENTIALS_DIR

    @classmethod
    def choose(
        cls,
        *,
        init: InitSystem,
        role: Role,
        system: bool,
        name: str,
        unit_dir: Path | None,
        credentials_dir: Path | None,
    ) -> Target:
        """Resolve the defaults for the given choices.

        Raises:
            ConfigError: a bad name, or a system service on launchd.
        """
        if name and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
            raise ConfigError(
                f"service name {name!r}: use letters, digits, '.', '_' or '-' (up to 64)"
            )
        scope = Scope.SYSTEM if system else Scope.USER
        if init is InitSystem.LAUNCHD and system:
            raise ConfigError(
                "on macOS `edge-runner service` installs a LaunchAgent (it runs while you are "
                "logged in); for a LaunchDaemon see docs/service.md"
            )
        given = unit_dir or (
            Path(os.environ[ENV_UNIT_DIR]) if os.environ.get(ENV_UNIT_DIR) else None
        )
        directory = given.expanduser().absolute() if given else _default_dir(init, scope)
        return cls(
            init,
            role,
            scope,
            name,
            directory,
            given is not None,
            (credentials_dir or CREDENTIALS_DIR).expanduser().absolute(),
        )

    @property
    def path(self) -> Path:
        """The unit file (systemd) or plist (launchd)."""
        probe = ServiceSpec(self.role, self.scope, (), name=self.name)
        filename = probe.unit_name if self.init is InitSystem.SYSTEMD else f"{probe.label}.plist"
        return self.unit_dir / filename

    @property
    def credential_path(self) -> Path | None:
        """A system runner's token file (LoadCredential=), else None."""
        if self.scope is not Scope.SYSTEM or self.role is not Role.RUNNER:
            return None
        stem = ServiceSpec(self.role, self.scope, (), name=self.name).stem
        return self.credentials_dir / f"{stem}.token"


def _default_dir(init: InitSystem, scope: Scope) -> Path:
    if init is InitSystem.LAUNCHD:
        return Path.home() / "Library" / "LaunchAgents"
    if scope is Scope.SYSTEM:
        return Path("/etc/systemd/system")
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user"


def program() -> tuple[str, ...]:
    """How a service starts this very installation of edge-runner."""
    script = Path(sys.executable).parent / "edge-runner"
    if script.is_file() and os.access(script, os.X_OK):
        return (str(script),)
    return (sys.executable, "-m", "edge_runner")


@dataclass(frozen=True)
class Settings:
    """What a rendered unit depends on besides the target: the command and the context.

    Attributes:
        program: how to start edge-runner.
        args: the arguments after ``runner``/``control`` (for a user runner: with --context).
        api_base: the control plane a system runner connects to.
        ca_file: a private CA a system runner trusts.
    """

    program: tuple[str, ...]
    args: tuple[str, ...]
    api_base: str | None = None
    ca_file: str | None = None


def build_spec(target: Target, settings: Settings) -> ServiceSpec:
    """The spec to render for ``target`` (its arguments already checked by the CLI)."""
    environment: list[tuple[str, str]] = []
    if target.scope is Scope.USER:
        for name in _FORWARDED:
            value = os.environ.get(name, "").strip()
            if value:
                is_path = name != "EDGE_RUNNER_SECRET_BACKEND"
                environment.append((name, str(Path(value).absolute()) if is_path else value))
    else:
        if settings.api_base:
            environment.append(("EDGE_RUNNER_API_BASE", settings.api_base))
        if settings.ca_file:
            environment.append(("EDGE_RUNNER_CA_FILE", str(Path(settings.ca_file).absolute())))
    credential = target.credential_path
    log_dir = Path.home() / "Library" / "Logs" / "edge-runner"
    return ServiceSpec(
        target.role,
        target.scope,
        settings.program,
        settings.args,
        environment=tuple(environment),
        credential=str(credential) if credential else None,
        name=target.name,
        log_dir=str(log_dir),
    )


def render(target: Target, spec: ServiceSpec) -> str:
    """The file text for ``spec`` under ``target``'s service manager.

    Raises:
        ConfigError: this systemd is too old for ``LoadCredential=``.
    """
    if target.init is InitSystem.LAUNCHD:
        return render_launchd(spec)
    version = None if target.custom_dir else systemd_version()
    if spec.credential and version is not None and version < LOAD_CREDENTIAL_VERSION:
        raise ConfigError(
            f"systemd {version} has no LoadCredential= (needs {LOAD_CREDENTIAL_VERSION}+): "
            "write the unit with --unit-dir and pass the token as EDGE_RUNNER_PAT in a 0600 "
            "EnvironmentFile= instead (docs/service.md)"
        )
    return render_systemd(spec, version)


def systemd_version() -> int | None:
    """The running systemd's version from ``systemctl --version``; None when unknown."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return None
    try:
        out = subprocess.run(
            [systemctl, "--version"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"systemd (\d+)", out)
    return int(match.group(1)) if match else None


def installed_args(target: Target, text: str) -> Settings:
    """The program and arguments in an installed unit (to render it again and compare).

    Raises:
        ConfigError: the file has no command edge-runner could have written.
    """
    words: list[str] = []
    if target.init is InitSystem.LAUNCHD:
        import plistlib

        with contextlib.suppress(Exception):  # not a plist: reported below
            words = [str(w) for w in plistlib.loads(text.encode()).get("ProgramArguments", [])]
    else:
        for line in text.splitlines():
            if line.startswith("ExecStart="):
                with contextlib.suppress(ValueError):
                    words = parse_exec(line.removeprefix("ExecStart="))
                break
    split = 3 if words[1:3] == ["-m", "edge_runner"] else 1
    if words[split : split + 1] != [target.role.value]:
        raise ConfigError(f"{target.path} does not start `edge-runner {target.role.value}`")
    return Settings(tuple(words[:split]), tuple(words[split + 1 :]))


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` atomically with ``data`` at ``mode`` (created that way from the start).

    Raises:
        ConfigError: the directory cannot be created or written.
    """
    from edge_runner.config import write_private_file

    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700 if mode == 0o600 else 0o755)
        write_private_file(path, data)
        if mode != 0o600:
            path.chmod(mode)
    except OSError as exc:
        hint = "run it as root (sudo) or" if not os.access(path.parent, os.W_OK) else "or"
        raise ConfigError(
            f"cannot write {path}: {exc.strerror or exc}; {hint} pick another directory "
            "with --unit-dir"
        ) from exc
