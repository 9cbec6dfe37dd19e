"""Running as a service: the real daemons tell a notify socket the test owns what systemd would
hear (READY, STATUS, WATCHDOG, STOPPING), and `edge-runner service` writes, checks and removes
units in a temporary directory. No systemd, systemctl or real unit directory is involved."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge_runner.config.contexts import Context, ContextsFile
from edge_runner.config.secrets import secret_store
from tests.conftest import HELLO, MS, ROOT, Stack
from tests.integration.test_cli import CLI, UpProcess, run_cli
from tests.unit.test_notify import Datagram, NotifySocket

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract unix sockets"),
]

#: the watchdog interval the daemons are given: pings every half of it
WATCHDOG = 600 * MS


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    """A notify socket standing in for systemd's (abstract name, sender credentials on)."""
    sock = NotifySocket()
    yield sock
    sock.close()


def _notify_env(sock: NotifySocket, **extra: str) -> dict[str, str]:
    return dict(
        os.environ, NOTIFY_SOCKET=sock.name, WATCHDOG_USEC=str(int(WATCHDOG * 1e6)), **extra
    )


def _pings(datagrams: list[Datagram]) -> int:
    return sum("WATCHDOG" in d.fields for d in datagrams)


def _senders(sock: NotifySocket) -> set[int]:
    return {d.pid for d in sock.received if d.pid}


def _runners(stack: Stack) -> list[dict[str, object]]:
    answer = httpx.get(f"{stack.api_base}/v2/runners", headers=stack.headers, timeout=5)
    return list(answer.json()["runners"])


def test_runner_ready_after_registration_and_watchdog_follows_heartbeats(
    stack: Stack, notify: NotifySocket, tmp_path: Path
) -> None:
    """READY only once registered; pings while heartbeats succeed, none while the control plane
    is down, again once it is back; STOPPING on SIGTERM; nothing from any other process."""
    port = stack.plane.port if stack.plane else 0
    env = _notify_env(
        notify,
        EDGE_RUNNER_API_BASE=stack.api_base,
        EDGE_RUNNER_PAT=stack.token,
        EDGE_RUNNER_TIME_SCALE="0.1",  # reconnect backoff 50 ms .. 1 s
    )
    log = (tmp_path / "runner.log").open("w")
    proc = subprocess.Popen(
        [*CLI, "runner", str(HELLO), "--pool-size", "2"], env=env, stderr=log, cwd=ROOT
    )
    try:
        ready = notify.wait_for("READY", "1", timeout=30_000 * MS)
        listed = _runners(stack)  # at once: READY must mean "registered"
        assert [r["status"] for r in listed] == ["connected"], listed
        assert ready.fields.get("STATUS") == "serving hello, tunnel up"
        before = notify.received[: notify.received.index(ready)]
        assert _pings(before) == 0  # no ping before registration
        assert _pings(notify.collect(3 * WATCHDOG)) >= 4

        stack.stop_control()
        down = notify.wait_for("STATUS", timeout=10_000 * MS)
        while not down.fields["STATUS"].startswith("control plane unreachable"):
            down = notify.wait_for("STATUS", timeout=10_000 * MS)
        assert "cannot connect" in down.fields["STATUS"]
        assert _pings(notify.collect(2 * WATCHDOG)) == 0  # systemd would restart it

        stack.start_control(port=port)
        back = notify.wait_for("STATUS", "serving hello, tunnel up", timeout=20_000 * MS)
        if "WATCHDOG" not in back.fields:
            notify.wait_for("WATCHDOG", "1", timeout=WATCHDOG)

        proc.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING", "1")
        assert proc.wait(20_000 * MS) == 0
        assert _senders(notify) == {proc.pid}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_control_ready_once_listening(notify: NotifySocket, tmp_path: Path) -> None:
    """`edge-runner control` says READY once both listeners are bound, pings, and STOPPING."""
    env = _notify_env(notify)
    proc = subprocess.Popen(
        [*CLI, "control", "--port", "0", "--grpc-port", "0", "--data-dir", str(tmp_path / "cp")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = notify.wait_for("READY", "1", timeout=30_000 * MS)
        api = re.search(r"listening on (http://\S+) \(tunnel grpc (\S+)\)", ready.fields["STATUS"])
        assert api, ready.fields
        assert httpx.get(f"{api.group(1)}/healthz", timeout=5).status_code == 200
        host, _, grpc_port = api.group(2).rpartition(":")
        with socket.create_connection((host, int(grpc_port)), timeout=5):
            pass  # the tunnel port is bound too
        notify.wait_for("WATCHDOG", "1", timeout=WATCHDOG)
        health_env = dict(os.environ, EDGE_RUNNER_HEALTH_PORT=api.group(1).rsplit(":", 1)[1])
        healthcheck = [sys.executable, str(ROOT / "packaging/container/healthcheck.py"), "control"]
        assert subprocess.run(healthcheck, env=health_env, timeout=30).returncode == 0
        proc.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING", "1")
        assert proc.wait(10_000 * MS) == 0
        assert subprocess.run(healthcheck, env=health_env, timeout=30).returncode == 1
        assert _senders(notify) == {proc.pid}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_up_notifies_once_both_serve_and_children_stay_quiet(
    notify: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up` says READY when the banner is out; its children never inherit the socket."""
    monkeypatch.setenv("NOTIFY_SOCKET", notify.name)
    monkeypatch.setenv("WATCHDOG_USEC", str(int(WATCHDOG * 1e6)))
    up = UpProcess(str(HELLO))
    try:
        ready = notify.wait_for("READY", "1", timeout=10_000 * MS)
        assert "serving" in ready.fields["STATUS"] and up.api_base in ready.fields["STATUS"]
        notify.wait_for("WATCHDOG", "1", timeout=WATCHDOG)
        assert up.stop() == 0
        notify.wait_for("STOPPING", "1", timeout=1_000 * MS)
        assert _senders(notify) == {up.proc.pid}
        assert sum("READY" in d.fields for d in notify.received) == 1
    finally:
        up.close()


# -- edge-runner service ----------------------------------------------------------------------


def _make_context(api_base: str, token: str) -> None:
    contexts = ContextsFile.load()
    contexts.put(Context("local", api_base, "admin"), make_current=True)
    contexts.save()
    secret_store().set("local", token)


def test_install_status_uninstall_user_unit(tmp_path: Path) -> None:
    """install writes the active context's unit (no token in it), status compares, a differing
    unit is refused without --force, uninstall removes it; bad inputs are one-line errors."""
    units = tmp_path / "units"
    unit = units / "edge-runner-runner.service"
    where = ["--unit-dir", str(units)]
    no_context = run_cli("service", "install", str(HELLO), *where)
    assert no_context.returncode == 2 and "No contexts yet" in no_context.stderr
    token = "er_pat_" + "s3cret" * 8
    _make_context("http://127.0.0.1:7070", token)
    missing = run_cli("service", "install", str(tmp_path / "nope"), *where)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    typo = run_cli("service", "install", str(HELLO), *where, "--", "--pool-sise", "2")
    assert typo.returncode == 2 and "--pool-sise" in typo.stderr
    assert not units.exists()

    made = run_cli("service", "install", str(HELLO), *where, "--", "--pool-size", "2")
    assert made.returncode == 0, made.stderr
    assert f"wrote {unit}" in made.stdout
    assert "systemctl --user daemon-reload" in made.stdout
    assert "systemctl --user enable --now edge-runner-runner.service" in made.stdout
    text = unit.read_text()
    assert token not in text and "EDGE_RUNNER_PAT" not in text
    exec_start = next(ln for ln in text.splitlines() if ln.startswith("ExecStart="))
    assert exec_start.endswith(f"runner {HELLO} --pool-size 2 --context local")
    assert f"Environment=EDGE_RUNNER_HOME={os.environ['EDGE_RUNNER_HOME']}" in text
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644

    status = run_cli("service", "status", *where)
    assert status.returncode == 0 and "current: yes" in status.stdout
    assert "not asked" in status.stdout  # no systemctl for a custom directory

    differs = run_cli("service", "install", str(HELLO), *where)
    assert differs.returncode == 2 and "--force" in differs.stderr
    assert unit.read_text() == text
    unit.write_text(text.replace("RestartSec=2s", "RestartSec=9s"))
    stale = run_cli("service", "status", *where)
    assert stale.returncode == 1 and "current: no" in stale.stdout
    assert "-RestartSec=9s" in stale.stdout and "+RestartSec=2s" in stale.stdout
    forced = run_cli("service", "install", str(HELLO), *where, "--force")
    assert forced.returncode == 0 and f"replaced {unit}" in forced.stdout

    blocker = tmp_path / "file"
    blocker.write_text("")
    unwritable = run_cli("service", "install", str(HELLO), "--unit-dir", str(blocker / "d"))
    assert unwritable.returncode == 2 and "cannot write" in unwritable.stderr
    assert len(unwritable.stderr.strip().splitlines()) == 1

    removed = run_cli("service", "uninstall", *where)
    assert removed.returncode == 0 and f"removed {unit}" in removed.stdout
    assert not unit.exists()
    gone = run_cli("service", "status", *where)
    assert gone.returncode == 1 and "does not exist" in gone.stdout
    unit.write_text("[Service]\nExecStart=/bin/true\n")
    foreign = run_cli("service", "uninstall", *where)
    assert foreign.returncode == 2 and "not written by" in foreign.stderr and unit.exists()


def test_control_unit_and_launch_agent(tmp_path: Path) -> None:
    """--control needs no context and checks its options; --init launchd writes a plist."""
    units = tmp_path / "units"
    bad = run_cli("service", "install", "--control", "--unit-dir", str(units), "--", "--prot", "1")
    assert bad.returncode == 2 and "--prot" in bad.stderr
    made = run_cli("service", "install", "--control", "--unit-dir", str(units), "--", "--port", "0")
    assert made.returncode == 0, made.stderr
    assert "control --port 0\n" in (units / "edge-runner-control.service").read_text()
    _make_context("http://127.0.0.1:7070", "er_pat_" + "x" * 40)
    agent = run_cli("service", "install", str(HELLO), "--init", "launchd", "--unit-dir", str(units))
    assert agent.returncode == 0, agent.stderr
    assert "launchctl bootstrap" in agent.stdout
    import plistlib

    plist = plistlib.loads((units / "com.edge-runner.runner.plist").read_bytes())
    assert plist["ProgramArguments"][-3:] == [str(HELLO), "--context", "local"]
    refused = run_cli("service", "install", "--init", "launchd", "--system", "--unit-dir", "x")
    assert refused.returncode == 2 and "LaunchAgent" in refused.stderr


def _unit_environment(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("Environment="):
            for word in shlex.split(line.removeprefix("Environment=")):
                name, _, value = word.partition("=")
                env[name] = value.replace("%%", "%")
    return env


def test_system_unit_runs_with_its_credential(
    stack: Stack, notify: NotifySocket, tmp_path: Path
) -> None:
    """--system puts the token in a 0600 credential file only; the unit's own command line and
    environment, given that file as LoadCredential= would, register the runner."""
    _make_context(stack.api_base, stack.token)
    units, creds = tmp_path / "units", tmp_path / "creds"
    made = run_cli(
        "service", "install", "--system", str(HELLO), "--unit-dir", str(units),
        "--credentials-dir", str(creds), "--", "--pool-size", "2",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    credential = creds / "edge-runner-runner.token"
    assert stat.S_IMODE(credential.stat().st_mode) == 0o600
    assert stat.S_IMODE(creds.stat().st_mode) == 0o700
    assert credential.read_text().strip() == stack.token
    text = (units / "edge-runner-runner.service").read_text()
    assert stack.token not in text and f"LoadCredential=token:{credential}" in text
    assert "User=edge-runner" in text and "--context" not in text
    status = run_cli(
        "service", "status", "--system", "--unit-dir", str(units), "--credentials-dir", str(creds)
    )
    assert status.returncode == 0 and "(mode 0600)" in status.stdout, status.stdout

    # Be systemd: the unit's Environment= (its state dir moved into tmp), and the credential
    # copied to a private $CREDENTIALS_DIRECTORY.
    exec_start = next(ln for ln in text.splitlines() if ln.startswith("ExecStart="))
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    env = _unit_environment(text)
    assert env["EDGE_RUNNER_API_BASE"] == stack.api_base
    env["EDGE_RUNNER_HOME"] = str(tmp_path / "var-lib-edge-runner")
    loaded = tmp_path / "credentials"
    loaded.mkdir(mode=0o700)
    (loaded / "token").write_bytes(credential.read_bytes())
    env.update(
        PATH=os.environ["PATH"], CREDENTIALS_DIRECTORY=str(loaded), NOTIFY_SOCKET=notify.name
    )
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
    try:
        notify.wait_for("READY", "1", timeout=30_000 * MS)
        assert [r["status"] for r in _runners(stack)] == ["connected"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20_000 * MS) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
