"""The systemd notify protocol: parsing the environment, datagrams, the watchdog policy, and
real datagrams on a socket the test owns (a path in tmp, and an abstract name)."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_runner.errors import ConfigError
from edge_runner.service.credentials import service_token
from edge_runner.service.daemons import runner_status
from edge_runner.service.loop import Probe, notifications
from edge_runner.service.notify import (
    STATUS_MAX,
    Notifier,
    NotifyConfig,
    WatchdogPolicy,
    decode,
    encode,
    process_notifier,
    socket_address,
)
from tests.conftest import MS

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs unix sockets")


@dataclass(frozen=True)
class Datagram:
    """One notify message and the pid that sent it (from SCM_CREDENTIALS)."""

    pid: int
    fields: dict[str, str]


class NotifySocket:
    """A datagram socket standing in for systemd's: ``$NOTIFY_SOCKET`` is :attr:`name`.

    With ``abstract`` it binds ``@edge-runner-test-...``; otherwise the file ``path``. It asks
    the kernel for each sender's credentials, so tests can tell who sent what.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if path is None:
            self.name = f"@edge-runner-test-{secrets.token_hex(6)}"
            self.sock.bind("\0" + self.name[1:])
        else:
            self.name = str(path)
            self.sock.bind(self.name)
        if hasattr(socket, "SO_PASSCRED"):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.received: list[Datagram] = []

    def next(self, timeout: float) -> Datagram | None:
        """The next datagram within ``timeout`` seconds, or None."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data, ancillary, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(12))
        except TimeoutError:
            return None
        pid = 0
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == getattr(socket, "SCM_CREDENTIALS", -1):
                pid = struct.unpack("iII", payload[:12])[0]
        datagram = Datagram(pid, decode(data))
        self.received.append(datagram)
        return datagram

    def wait_for(
        self, key: str, value: str | None = None, timeout: float = 10_000 * MS
    ) -> Datagram:
        """The first datagram (from now) that sets ``key`` (to ``value``); fail after timeout."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            got = self.next(left)
            if got is not None and key in got.fields and value in (None, got.fields[key]):
                return got
        seen = [d.fields for d in self.received[-5:]]
        raise AssertionError(f"no {key}={value or '*'} within {timeout:.1f} s; last: {seen}")

    def collect(self, seconds: float) -> list[Datagram]:
        """Every datagram arriving in the next ``seconds`` (for checks that something stops)."""
        deadline = time.monotonic() + seconds
        got = []
        while (left := deadline - time.monotonic()) > 0:
            datagram = self.next(left)
            if datagram is not None:
                got.append(datagram)
        return got

    def close(self) -> None:
        """Close (and for a path, remove) the socket."""
        self.sock.close()
        if not self.name.startswith("@"):
            Path(self.name).unlink(missing_ok=True)


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    """A notify socket at a path in tmp."""
    sock = NotifySocket(tmp_path / "notify")
    yield sock
    sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[NotifySocket]:
    """A notify socket with an abstract name."""
    sock = NotifySocket()
    yield sock
    sock.close()


# -- the environment --------------------------------------------------------------------------


def test_socket_addresses() -> None:
    """Paths are used as they are, @names become abstract, anything else is refused."""
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@sd-notify") == "\0sd-notify"
    assert socket_address("@") is None
    assert socket_address("vsock:2:1234") is None
    assert socket_address("relative/notify") is None


def test_unset_environment_means_no_manager() -> None:
    """Without NOTIFY_SOCKET there is nothing to notify, and no watchdog."""
    config = NotifyConfig.from_environ({"WATCHDOG_USEC": "1000000"}, 42)
    assert not config.enabled and config.watchdog_interval is None and config.problem == ""


def test_watchdog_is_read_for_this_pid_only() -> None:
    """WATCHDOG_USEC counts when WATCHDOG_PID is unset or names this process."""
    env = {"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "30000000"}
    assert NotifyConfig.from_environ(env, 42).watchdog_interval == 30.0
    assert NotifyConfig.from_environ({**env, "WATCHDOG_PID": "42"}, 42).watchdog_interval == 30.0
    other = NotifyConfig.from_environ({**env, "WATCHDOG_PID": "41"}, 42)
    assert other.enabled and other.watchdog_interval is None and other.problem == ""


def test_unusable_values_are_reported() -> None:
    """A vsock address or a malformed interval disables that part and says why."""
    vsock = NotifyConfig.from_environ({"NOTIFY_SOCKET": "vsock:2:99"}, 1)
    assert not vsock.enabled and "vsock:2:99" in vsock.problem
    bad = NotifyConfig.from_environ({"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "soon"}, 1)
    assert bad.enabled and bad.watchdog_interval is None and "soon" in bad.problem


def test_process_notifier_takes_the_variables_from_children(
    monkeypatch: pytest.MonkeyPatch, path_socket: NotifySocket
) -> None:
    """Once read, NOTIFY_SOCKET and the watchdog variables are gone from what children get."""
    monkeypatch.setenv("NOTIFY_SOCKET", path_socket.name)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    process_notifier.cache_clear()
    try:
        notifier = process_notifier()
        assert notifier.enabled and notifier.watchdog_interval == 2.0
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                "import os; print(sorted(k for k in os.environ "
                "if k in ('NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID')))",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert child.stdout.strip() == "[]"
        assert process_notifier() is notifier  # read once per process
    finally:
        process_notifier.cache_clear()


# -- datagrams --------------------------------------------------------------------------------


def test_encode_and_decode() -> None:
    """Fields travel as KEY=VALUE lines; a newline in a value cannot start a new field."""
    data = encode({"READY": "1", "STATUS": "line one\nWATCHDOG=1"})
    assert data == b"READY=1\nSTATUS=line one WATCHDOG=1\n"
    assert decode(data) == {"READY": "1", "STATUS": "line one WATCHDOG=1"}
    long = decode(encode({"STATUS": "x" * 1000}))["STATUS"]
    assert len(long) == STATUS_MAX and long.endswith("…")
    with pytest.raises(ValueError):
        encode({"BAD=KEY": "1"})


def test_notifier_sends_to_a_path_socket(path_socket: NotifySocket) -> None:
    """READY, STATUS, WATCHDOG and STOPPING (once) reach a socket at a path."""
    notifier = Notifier(NotifyConfig.from_environ({"NOTIFY_SOCKET": path_socket.name}, 1))
    assert notifier.ready("serving")
    assert notifier.watchdog()
    assert notifier.stopping("bye")
    assert notifier.stopping("still going")  # a second call only updates the status
    notifier.close()
    got = [path_socket.next(1.0) for _ in range(4)]
    assert [d.fields if d else None for d in got] == [
        {"READY": "1", "STATUS": "serving"},
        {"WATCHDOG": "1"},
        {"STOPPING": "1", "STATUS": "bye"},
        {"STATUS": "still going"},
    ]
    assert got[0] is not None and got[0].pid in (0, os.getpid())


def test_notifier_sends_to_an_abstract_socket(abstract_socket: NotifySocket) -> None:
    """An @name reaches the abstract socket of that name."""
    notifier = Notifier(NotifyConfig.from_environ({"NOTIFY_SOCKET": abstract_socket.name}, 1))
    assert notifier.status("hello")
    assert abstract_socket.wait_for("STATUS", "hello", 1.0)


def test_notifier_without_manager_is_a_no_op() -> None:
    """With no socket every call returns False and nothing is opened."""
    notifier = Notifier()
    assert not notifier.enabled
    assert not notifier.ready() and not notifier.watchdog() and not notifier.stopping()


def test_a_vanished_manager_does_not_raise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Sending to a socket that is gone returns False and warns once, never raises."""
    notifier = Notifier(NotifyConfig.from_environ({"NOTIFY_SOCKET": str(tmp_path / "gone")}, 1))
    with caplog.at_level("DEBUG", logger="edge_runner.service.notify"):
        assert not notifier.watchdog()
        assert not notifier.watchdog()
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "cannot notify" in warnings[0].getMessage()


# -- the watchdog policy ----------------------------------------------------------------------


def test_watchdog_pings_every_half_interval_while_healthy() -> None:
    """Due at once, then every interval/2; never while unhealthy; at once on recovery."""
    policy = WatchdogPolicy(10.0)
    assert policy.due(100.0, healthy=True)
    assert not policy.due(104.9, healthy=True)
    assert policy.wait(104.9, cap=60) == pytest.approx(0.1)
    assert policy.due(105.0, healthy=True)
    assert not policy.due(111.0, healthy=False)
    assert not policy.due(130.0, healthy=False)
    assert policy.due(130.1, healthy=True)
    assert not WatchdogPolicy(None).due(1.0, healthy=True)
    assert WatchdogPolicy(None).wait(1.0, cap=5.0) == 5.0


# -- the loop ---------------------------------------------------------------------------------


def test_loop_follows_health_readiness_and_stop(path_socket: NotifySocket) -> None:
    """The loop sends READY once, pings only while healthy, and STOPPING when stopping."""
    state = {"ready": False, "healthy": False, "stopping": False, "status": "starting"}
    changed: asyncio.Queue[None] = asyncio.Queue()
    interval = 200 * MS  # pings every 100 ms while healthy

    def flip(**values: object) -> None:
        state.update(values)
        changed.put_nowait(None)

    async def scenario() -> list[list[Datagram]]:
        env = {"NOTIFY_SOCKET": path_socket.name, "WATCHDOG_USEC": str(int(interval * 1e6))}
        notifier = Notifier(NotifyConfig.from_environ(env, 1))
        probe = Probe(
            status=lambda: str(state["status"]),
            ready=lambda: bool(state["ready"]),
            healthy=lambda: bool(state["healthy"]),
            stopping=lambda: bool(state["stopping"]),
            changed=changed.get,
        )
        phases = []
        async with notifications(notifier, probe, tick=interval):
            phases.append(await asyncio.to_thread(path_socket.collect, 2 * interval))
            flip(ready=True, healthy=True, status="serving")
            phases.append(await asyncio.to_thread(path_socket.collect, 3 * interval))
            flip(healthy=False, status="unreachable")
            phases.append(await asyncio.to_thread(path_socket.collect, 3 * interval))
            flip(stopping=True, status="draining")
            phases.append(await asyncio.to_thread(path_socket.collect, interval))
        return phases

    starting, serving, down, stopping = asyncio.run(scenario())
    assert [d.fields for d in starting] == [{"STATUS": "starting"}]  # not healthy: no pings
    assert serving[0].fields == {"STATUS": "serving", "READY": "1", "WATCHDOG": "1"}
    assert sum("WATCHDOG" in d.fields for d in serving) >= 3
    assert [d.fields for d in down] == [{"STATUS": "unreachable"}]
    assert stopping[0].fields == {"STATUS": "draining", "STOPPING": "1"}
    assert not any("READY" in d.fields for d in [*serving[1:], *down, *stopping])


def test_loop_without_manager_runs_nothing() -> None:
    """No socket: the body runs and no task is started."""

    async def scenario() -> int:
        probe = Probe(status=lambda: "x", ready=lambda: True, healthy=lambda: True)
        async with notifications(Notifier(), probe):
            return len(asyncio.all_tasks())

    assert asyncio.run(scenario()) == 1


# -- the runner's status line -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("tunnel", "models", "expected"),
    [
        ({"state": "connected"}, [{"id": "hello", "status": "ready"}], "serving hello, tunnel up"),
        (
            {"state": "connected"},
            [{"id": "a", "status": "ready"}, {"id": "b", "status": "loading"}],
            "serving a, b (b loading), tunnel up",
        ),
        (
            {"state": "reconnecting", "last_error": "cannot connect: refused"},
            [{"id": "hello"}],
            "control plane unreachable: cannot connect: refused, retrying",
        ),
        ({"state": "reconnecting"}, [], "reconnecting to http://cp:7070"),
        (
            {"state": "connecting"},
            [{"id": "hello"}],
            "starting: loading hello, then connecting to http://cp:7070",
        ),
        ({"state": "draining"}, [], "draining: finishing 2 in-flight task(s)"),
        ({"state": "stopping"}, [], "stopping"),
    ],
)
def test_runner_status_lines(
    tunnel: dict[str, str], models: list[dict[str, str]], expected: str
) -> None:
    """Each runner state has a line saying what it does and, when down, why."""
    snapshot = {"tunnel": tunnel, "models": models, "api_base": "http://cp:7070", "busy": 2}
    assert runner_status(snapshot) == expected


# -- the service credential -------------------------------------------------------------------


def test_service_token_from_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LoadCredential's $CREDENTIALS_DIRECTORY/token, else EDGE_RUNNER_PAT_FILE, else None."""
    monkeypatch.delenv("EDGE_RUNNER_PAT_FILE", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert service_token() is None
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert service_token() is None  # another service's credentials: not ours
    (tmp_path / "token").write_text("er_rt_secret\n")
    assert service_token() == "er_rt_secret"
    (tmp_path / "other").write_text("er_pat_file\n")
    monkeypatch.setenv("EDGE_RUNNER_PAT_FILE", str(tmp_path / "other"))
    assert service_token() == "er_pat_file"


def test_service_token_errors_name_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A named token file that is missing or empty is a one-line error naming it."""
    monkeypatch.setenv("EDGE_RUNNER_PAT_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="missing"):
        service_token()
    (tmp_path / "empty").write_text("\n")
    monkeypatch.setenv("EDGE_RUNNER_PAT_FILE", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="empty"):
        service_token()
