"""systemd units and launchd plists for ``edge-runner runner`` and ``control``, from one place.

``edge-runner service install`` renders a :class:`ServiceSpec` built from the active context;
``tools/gen_units.py`` renders :func:`packaged_units` into ``packaging/`` (a test checks they
are in step), so the shipped files and the installed ones never drift apart.

What the units say, and why:

- ``Type=notify``, ``NotifyAccess=main``: the daemon itself says ``READY=1`` (a runner once
  registered, a control plane once listening; see :mod:`edge_runner.service.daemons`).
- ``WatchdogSec=``: pings at half of it, a runner's only while its heartbeats succeed.
- ``KillSignal=SIGTERM`` (the first drains), ``KillMode=mixed`` (only the daemon gets it, so an
  ``ollama serve`` it started keeps answering during the drain), ``TimeoutStopSec=`` = the
  runner's ``--grace-period`` + 15 s.
- ``Restart=on-failure`` with ``RestartSec=``, and on systemd >= 254 a growing delay
  (``RestartSteps=``, ``RestartMaxDelaySec=``); exit code 2 (a configuration error) is final.
- System units run as the ``edge-runner`` user with ``/var/lib/edge-runner`` as its home and a
  hardening set that keeps GPUs (``/dev/nvidia*``) and JIT compilers working; the runner's
  token arrives through ``LoadCredential=`` (never in the unit or on the command line).
"""

from __future__ import annotations

import enum
import math
import plistlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "RESTART_STEPS_VERSION",
    "SERVICE_HOME",
    "SERVICE_USER",
    "Role",
    "Scope",
    "ServiceSpec",
    "packaged_units",
    "parse_exec",
    "render_launchd",
    "render_systemd",
]

SERVICE_USER = "edge-runner"
SERVICE_HOME = "/var/lib/edge-runner"
#: the first systemd with RestartSteps= and RestartMaxDelaySec=
RESTART_STEPS_VERSION = 254
#: what a stop may take beyond the runner's grace period (Goodbye, closing the backend)
STOP_MARGIN_S = 15
#: ``edge-runner runner --grace-period``'s default
DEFAULT_GRACE_S = 30.0
WATCHDOG_S = {"runner": 60, "control": 30}
CONTROL_STOP_S = 20

_HEADER = (
    "# Rendered by edge_runner/service/units.py: `edge-runner service install` writes this with\n"
    "# your paths, `python tools/gen_units.py` writes packaging/. Edit the code, not the copy.\n"
)


class Role(enum.Enum):
    """Which daemon a service runs."""

    RUNNER = "runner"
    CONTROL = "control"


class Scope(enum.Enum):
    """A per-user service (the user's own manager) or a system one (its own user)."""

    USER = "user"
    SYSTEM = "system"


@dataclass(frozen=True)
class ServiceSpec:
    """Everything a unit depends on.

    Attributes:
        role: runner or control plane.
        scope: user or system service.
        program: how to start edge-runner: ``(".../bin/edge-runner",)`` or
            ``(python, "-m", "edge_runner")``.
        args: the arguments after the command name (``runner`` / ``control``); a runner's
            ``--grace-period`` among them sets the stop timeout.
        environment: ``NAME=value`` settings (never a secret).
        environment_file: a file of more settings (system units: the control plane address).
        credential: the root-only token file handed over with ``LoadCredential=``.
        name: a suffix for more than one service of a role (``edge-runner-runner-NAME``).
        specifiers: the command may use systemd specifiers such as ``%h`` (our packaged files);
            otherwise ``%`` is escaped.
        log_dir: where launchd writes stdout and stderr.
    """

    role: Role
    scope: Scope
    program: tuple[str, ...]
    args: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    environment_file: str | None = None
    credential: str | None = None
    name: str = ""
    specifiers: bool = False
    log_dir: str = "/tmp"

    @property
    def stem(self) -> str:
        """``edge-runner-runner`` (``-NAME``)."""
        return f"edge-runner-{self.role.value}" + (f"-{self.name}" if self.name else "")

    @property
    def unit_name(self) -> str:
        """The systemd unit file name."""
        return f"{self.stem}.service"

    @property
    def label(self) -> str:
        """The launchd label (and plist name without ``.plist``)."""
        return f"com.edge-runner.{self.role.value}" + (f".{self.name}" if self.name else "")

    @property
    def argv(self) -> tuple[str, ...]:
        """The full command line."""
        return (*self.program, self.role.value, *self.args)

    @property
    def grace_period(self) -> float:
        """The runner's ``--grace-period`` in :attr:`args` (the last one wins), else 30 s."""
        grace = DEFAULT_GRACE_S
        for i, word in enumerate(self.args):
            value = None
            if word == "--grace-period" and i + 1 < len(self.args):
                value = self.args[i + 1]
            elif word.startswith("--grace-period="):
                value = word.partition("=")[2]
            if value is not None:
                try:
                    grace = float(value)
                except ValueError:
                    grace = DEFAULT_GRACE_S  # the runner itself refuses it, at install
        return grace

    @property
    def stop_timeout(self) -> int:
        """Seconds a stop may take before the service manager kills."""
        if self.role is Role.CONTROL:
            return CONTROL_STOP_S
        return math.ceil(self.grace_period) + STOP_MARGIN_S


# -- systemd ----------------------------------------------------------------------------------

_PLAIN_WORD = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


def _word(word: str, specifiers: bool) -> str:
    """One ExecStart= word: ``%`` and ``$`` escaped, quoted when it holds anything else."""
    if not specifiers:
        word = word.replace("%", "%%")
    word = word.replace("$", "$$")
    if _PLAIN_WORD.fullmatch(word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _assignment(name: str, value: str) -> str:
    """One ``Environment=`` entry, quoted when needed (``%`` is a specifier there too)."""
    text = f"{name}={value}".replace("%", "%%")
    if _PLAIN_WORD.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_exec(line: str) -> list[str]:
    """The words of an ``ExecStart=`` value written by :func:`render_systemd` (its inverse)."""
    return [w.replace("$$", "$").replace("%%", "%") for w in shlex.split(line)]


def render_systemd(spec: ServiceSpec, systemd_version: int | None = None) -> str:
    """The unit file for ``spec``; ``systemd_version`` None means a current systemd."""
    runner = spec.role is Role.RUNNER
    system = spec.scope is Scope.SYSTEM
    what = "a model served through the control plane's tunnel" if runner else "HTTP API + tunnel"
    unit = [f"Description=edge-runner {spec.role.value} ({what})"]
    if system:  # a user manager cannot see the system's network-online.target
        unit += ["After=network-online.target", "Wants=network-online.target"]
    unit += [
        "# Never give up restarting: the daemon itself retries its peers forever.",
        "StartLimitIntervalSec=0",
    ]
    command = " ".join(_word(w, spec.specifiers) for w in spec.argv)
    service = ["Type=notify", "NotifyAccess=main", f"ExecStart={command}"]
    watchdog = WATCHDOG_S[spec.role.value]
    if runner:
        service += [
            "# READY=1 comes once the control plane has registered the runner; until then it",
            "# retries with backoff (and may be loading or pulling its model), so no time limit.",
            "TimeoutStartSec=infinity",
            f"# WATCHDOG=1 every {watchdog // 2} s while heartbeats succeed: cut off from its",
            f"# control plane for {watchdog} s, the runner is restarted (SIGTERM: it drains).",
            f"WatchdogSec={watchdog}s",
            "WatchdogSignal=SIGTERM",
            "# The first SIGTERM drains: in-flight tasks get --grace-period "
            f"({spec.grace_period:g} s), + {STOP_MARGIN_S} s.",
            "KillSignal=SIGTERM",
            "# Only the runner gets SIGTERM: an `ollama serve` it started keeps answering while",
            "# it drains, and is stopped by the runner (or killed once the runner is gone).",
            "KillMode=mixed",
        ]
    else:
        service += [
            f"# WATCHDOG=1 every {watchdog // 2} s from the event loop: a wedged one is restarted.",
            f"WatchdogSec={watchdog}s",
            "KillSignal=SIGTERM",
        ]
    service += [
        f"TimeoutStopSec={spec.stop_timeout}s",
        "Restart=on-failure",
        "RestartSec=2s",
    ]
    if systemd_version is None or systemd_version >= RESTART_STEPS_VERSION:
        service += [
            f"# systemd >= {RESTART_STEPS_VERSION}: the delay grows from RestartSec to "
            "RestartMaxDelaySec over",
            "# RestartSteps restarts; older versions ignore these two (with a warning).",
            "RestartSteps=8",
            "RestartMaxDelaySec=2min",
        ]
    service += [
        "# Exit code 2 is a configuration error (bad model folder, rejected token, port in",
        "# use): restarting cannot fix it.",
        "RestartPreventExitStatus=2",
    ]
    environment = [("PYTHONUNBUFFERED", "1")]
    if system:
        environment += [("EDGE_RUNNER_HOME", SERVICE_HOME), ("EDGE_RUNNER_SECRET_BACKEND", "file")]
    environment += list(spec.environment)
    service += [f"Environment={_assignment(k, v)}" for k, v in environment]
    if system:
        service += _system_service(spec)
    else:
        service += [
            "# A user manager cannot sandbox much without privileges; the file secret store",
            "# and the keyring live in your home, so it stays visible.",
            "NoNewPrivileges=yes",
        ]
    target = "multi-user.target" if system else "default.target"
    return (
        f"# edge-runner {spec.role.value} as a systemd {spec.scope.value} service.\n"
        + _HEADER
        + "\n[Unit]\n"
        + "".join(f"{line}\n" for line in unit)
        + "\n[Service]\n"
        + "".join(f"{line}\n" for line in service)
        + f"\n[Install]\nWantedBy={target}\n"
    )


def _system_service(spec: ServiceSpec) -> list[str]:
    lines = [
        f"User={SERVICE_USER}",
        f"Group={SERVICE_USER}",
        f"# {SERVICE_HOME}: contexts, data, the runner id and its enrolled credential (0600).",
        f"StateDirectory={SERVICE_HOME.rsplit('/', 1)[1]}",
        "StateDirectoryMode=0700",
    ]
    if spec.environment_file:
        lines.append(f"EnvironmentFile={spec.environment_file}")
    if spec.credential:
        lines += [
            "# The token: a root-only file, handed over as $CREDENTIALS_DIRECTORY/token",
            "# (systemd >= 247); it never appears in this unit or on the command line.",
            f"LoadCredential=token:{spec.credential}",
        ]
    if spec.role is Role.RUNNER:
        lines += [
            "# Hardening that keeps GPUs (/dev/nvidia*: no PrivateDevices=, DevicePolicy= or",
            "# ProtectClock=) and JIT compilers (no MemoryDenyWriteExecute=) working; model",
            "# folders under /home stay readable.",
        ]
    else:
        lines.append("# Hardening; the control plane needs no devices at all.")
    lines += [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "RestrictSUIDSGID=yes",
        "RestrictRealtime=yes",
        "LockPersonality=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    ]
    if spec.role is Role.CONTROL:
        lines.append("PrivateDevices=yes")
    return lines


# -- launchd ----------------------------------------------------------------------------------


def render_launchd(spec: ServiceSpec) -> str:
    """The LaunchAgent plist for ``spec`` (launchd has no notify protocol: it watches the pid).

    ``KeepAlive`` restarts a daemon that exited with an error (not one stopped cleanly),
    ``ThrottleInterval`` spaces restarts 10 s apart, and ``ExitTimeOut`` is the stop timeout
    before SIGKILL (launchd stops with SIGTERM, which drains).
    """
    environment = {"PYTHONUNBUFFERED": "1", **dict(spec.environment)}
    plist = {
        "Label": spec.label,
        "ProgramArguments": list(spec.argv),
        "EnvironmentVariables": environment,
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 10,
        "ExitTimeOut": spec.stop_timeout,
        "StandardOutPath": f"{spec.log_dir}/{spec.stem}.log",
        "StandardErrorPath": f"{spec.log_dir}/{spec.stem}.log",
    }
    return plistlib.dumps(plist, sort_keys=False).decode()


# -- what packaging/ holds --------------------------------------------------------------------

#: where the packaged system units expect edge-runner (a virtual environment) and the model
PACKAGED_PROGRAM = "/opt/edge-runner/bin/edge-runner"
PACKAGED_MODEL = "/srv/edge-runner/model"


def packaged_units() -> dict[Path, str]:
    """The files under ``packaging/`` (relative paths) and their text."""
    system_runner = ServiceSpec(
        Role.RUNNER,
        Scope.SYSTEM,
        (PACKAGED_PROGRAM,),
        (PACKAGED_MODEL, "--grace-period", "30"),
        environment_file="/etc/edge-runner/runner.env",
        credential="/etc/edge-runner/credentials/edge-runner-runner.token",
    )
    system_control = ServiceSpec(Role.CONTROL, Scope.SYSTEM, (PACKAGED_PROGRAM,))
    user_program = ("%h/.local/bin/edge-runner",)  # pipx and `pip install --user` put it here
    user_runner = ServiceSpec(
        Role.RUNNER,
        Scope.USER,
        user_program,
        ("%h/models/my-model", "--grace-period", "30", "--context", "local"),
        specifiers=True,
    )
    user_control = ServiceSpec(Role.CONTROL, Scope.USER, user_program, specifiers=True)
    mac_program = ("/usr/local/bin/edge-runner",)
    mac_runner = ServiceSpec(
        Role.RUNNER,
        Scope.USER,
        mac_program,
        ("/usr/local/share/edge-runner/my-model", "--grace-period", "30", "--context", "local"),
    )
    mac_control = ServiceSpec(Role.CONTROL, Scope.USER, mac_program)
    return {
        Path("systemd") / system_runner.unit_name: render_systemd(system_runner),
        Path("systemd") / system_control.unit_name: render_systemd(system_control),
        Path("systemd/user") / user_runner.unit_name: render_systemd(user_runner),
        Path("systemd/user") / user_control.unit_name: render_systemd(user_control),
        Path("launchd") / f"{mac_runner.label}.plist": render_launchd(mac_runner),
        Path("launchd") / f"{mac_control.label}.plist": render_launchd(mac_control),
    }
