"""The chaos suite's fixtures: control planes and runners as real processes, on scaled time.

Every child runs with ``EDGE_RUNNER_TIME_SCALE`` = :data:`TIME_SCALE`, which shrinks the
production timings (heartbeat 5 s, silence 15 s, lease 10 s, backoff 0.5 → 10 s, reconnect hint
1 s) tenfold, so a scenario that takes a minute in production takes seconds here. The test side
keeps the suite's own unit: :func:`within` turns a production duration into a generous deadline
that also grows with ``TIMEOUT_FACTOR``.

No child outlives its test: teardown stops runners, then control planes (SIGTERM, then SIGKILL
after a deadline), and each child also holds the read end of a lifeline pipe whose write end
only the test process has, so even a test process killed with SIGKILL takes its children along.
Each child logs to its own file; a failed test shows their tails in its report.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import MS, wait_for, write_model

__all__ = ["CHAOS_MODEL", "TIME_SCALE", "Child", "Cluster", "Control", "within"]

#: What the children multiply their timing constants by (EDGE_RUNNER_TIME_SCALE).
TIME_SCALE = 0.1
#: Room for what scaling cannot shrink: process start-up, imports, a busy 2-core machine.
_SLACK_S = 3.0
_LOG_TAIL_LINES = 80

#: The class body of the chaos model (id ``chaos``): an echo that takes its time and can say
#: when it started, and a stream that leaves a trail in a file.
CHAOS_MODEL = textwrap.indent(
    r'''
@ModelClass.method
def work(self, request_id: str, seconds: float = 0.0, trail: str = "") -> dict:
    """Take ``seconds`` (less if cancelled); echo the request id and the answering pid.

    With ``trail``, first append "REQUEST_ID PID TIME" to that file: who started what, when.
    """
    if trail:
        with open(trail, "a") as starts:
            starts.write(f"{request_id} {os.getpid()} {time.time()}\n")
    end = time.monotonic() + seconds
    while not self.cancelled() and time.monotonic() < end:
        time.sleep(0.005)
    return {"request_id": request_id, "pid": os.getpid()}

@ModelClass.method
def count(self, path: str, delay: float = 0.02, limit: int = 10000) -> Iterator[int]:
    """Append each number to ``path`` before yielding it, and "stopped" once closed."""
    try:
        for i in range(limit):
            with open(path, "a") as trail:
                trail.write(f"{i}\n")
            yield i
            time.sleep(delay)
    finally:
        with open(path, "a") as trail:
            trail.write("stopped\n")

''',
    "    ",
)


def within(seconds: float) -> float:
    """A generous test deadline for something the children promise within ``seconds``.

    Args:
        seconds: the promise in production time (e.g. 15 for the silence timeout).

    Returns:
        Test seconds: twice the scaled promise plus start-up slack, times ``TIMEOUT_FACTOR``.
    """
    return (2 * seconds * TIME_SCALE + _SLACK_S) * 1000 * MS


def _listen_port() -> int:
    """A port free on 127.0.0.1 now, below the ephemeral range.

    A control plane restarted "on the same ports" must find them free again. A port the OS
    chose (port 0) lies in the ephemeral range, where any other test's outgoing connection may
    take it as its source port in between (it happened: the restarted gRPC listener got
    EADDRINUSE). Below that range only listeners take ports.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    low = max(low, 2048)
    for _ in range(200):
        candidate = random.randrange(1024, low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        return candidate
    raise AssertionError("no free port below the ephemeral range on 127.0.0.1")


@dataclass
class Child:
    """A control plane or runner process started by :class:`Cluster`."""

    name: str
    proc: subprocess.Popen[bytes]
    info: dict[str, Any]
    log: Path
    lifeline: int | None

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc.poll() is None

    def tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the child's log."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def drop_lifeline(self) -> None:
        """Close our end of the lifeline (the child then stops itself)."""
        if self.lifeline is not None:
            os.close(self.lifeline)
            self.lifeline = None


@dataclass(frozen=True)
class Control:
    """Where a running control plane listens and how to authenticate to it."""

    child: Child
    api_base: str
    port: int
    grpc_port: int
    data_dir: Path
    token: str


class Cluster:
    """Starts control planes and runners as ``python -m edge_runner`` children."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.children: list[Child] = []
        self.control: Control | None = None
        self._http: httpx.Client | None = None
        self._logs = tmp_path / "logs"
        self._logs.mkdir(exist_ok=True)

    # -- processes --------------------------------------------------------------------------

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Child:
        """Start ``python -m edge_runner ARGS`` and wait for the JSON line it writes when ready.

        Raises:
            AssertionError: the child exited, or was not ready within the deadline; the
                message carries the tail of its log.
        """
        child_env = {
            **os.environ,
            "EDGE_RUNNER_TIME_SCALE": str(TIME_SCALE),
            "EDGE_RUNNER_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        log = self._logs / f"{len(self.children) + 1:02d}-{name}.log"
        ready_r, ready_w = os.pipe()
        life_r, life_w = os.pipe()
        with log.open("ab") as log_file:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "edge_runner",
                    *args,
                    "--ready-fd",
                    str(ready_w),
                    "--lifeline-fd",
                    str(life_r),
                ],
                pass_fds=(ready_w, life_r),
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        os.close(ready_w)
        os.close(life_r)
        child = Child(name, proc, {}, log, life_w)
        self.children.append(child)
        try:
            child.info = _read_ready_line(ready_r, child, within(10))
        finally:
            os.close(ready_r)
        return child

    def stop(self, child: Child, *, kill: bool = False, timeout: float | None = None) -> int:
        """Stop a child with SIGTERM (or SIGKILL) and return its exit code.

        A child that ignores SIGTERM past ``timeout`` is killed and reported as -9.
        """
        if child.alive():
            child.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            code = child.proc.wait(within(10) if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()
            code = -9
        child.drop_lifeline()
        return code

    def close(self) -> None:
        """Stop every child: runners first (so they drain), then control planes."""
        if self._http is not None:
            self._http.close()
        runners = [c for c in self.children if c.name.startswith("runner")]
        others = [c for c in self.children if c not in runners]
        for group in (runners, others):
            for child in group:
                if child.alive():
                    child.proc.send_signal(signal.SIGTERM)
            for child in group:
                # One SIGTERM each: a second one would tell a runner to cancel its tasks.
                try:
                    child.proc.wait(within(10))
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait()
                child.drop_lifeline()

    def tracebacks(self) -> list[str]:
        """The first traceback in each child's log (an unhandled error), boiled down.

        The excerpt keeps the log line, the exception lines and the frames in edge_runner's
        own code; the full text is in the child's log.
        """
        found = []
        for child in self.children:
            lines = child.tail(10_000).splitlines()
            start = next(
                (i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")),
                None,
            )
            if start is None:
                continue
            excerpt = lines[max(start - 1, 0) : start]
            for i in range(start, min(start + 200, len(lines))):
                line = lines[i]
                if line and not line.startswith(" ") and excerpt and line[:2].isdigit():
                    break  # the next log record
                if "/edge_runner/" in line:
                    excerpt += lines[i : i + 2]
                elif line and not line.startswith(" "):
                    excerpt.append(line)
            found.append(f"{child.name} (pid {child.pid}, log {child.log}):\n" + "\n".join(excerpt))
        return found

    # -- control planes ---------------------------------------------------------------------

    def start_control(
        self, *, port: int = 0, grpc_port: int = 0, data_dir: Path | None = None
    ) -> Control:
        """Start a control plane on 127.0.0.1 (ports 0 = any free, outside the range the
        kernel hands out as source ports) and make it the current one."""
        data_dir = data_dir or self.tmp_path / "control"
        port = port or _listen_port()
        grpc_port = grpc_port or _listen_port()
        child = self.spawn(
            "control",
            [
                "control",
                "--port",
                str(port),
                "--grpc-port",
                str(grpc_port),
                "--data-dir",
                str(data_dir),
            ],
        )
        info = child.info
        control = Control(
            child=child,
            api_base=info["api_base"],
            port=int(urlsplit(info["api_base"]).port or 0),
            grpc_port=int(info["grpc"].rpartition(":")[2]),
            data_dir=data_dir,
            token=Path(info["admin_token_file"]).read_text().strip(),
        )
        self._set_control(control)
        return control

    def restart_control(self, *, kill: bool = False) -> Control:
        """Stop the current control plane (planned, or SIGKILL) and start it on the same ports.

        Raises:
            AssertionError: a planned stop did not exit 0.
        """
        old = self.control
        assert old is not None, "no control plane to restart"
        code = self.stop(old.child, kill=kill)
        if not kill:
            assert code == 0, f"the control plane exited {code} on SIGTERM:\n{old.child.tail()}"
        return self.start_control(port=old.port, grpc_port=old.grpc_port, data_dir=old.data_dir)

    def _set_control(self, control: Control) -> None:
        # A fresh client per control plane: pooled connections to a stopped one are dead.
        if self._http is not None:
            self._http.close()
        self.control = control
        self._http = httpx.Client(
            base_url=control.api_base,
            headers={"Authorization": f"Bearer {control.token}"},
            timeout=within(30),
        )

    @property
    def http(self) -> httpx.Client:
        """A client for the current control plane, authenticated with its admin token."""
        assert self._http is not None, "start a control plane first"
        return self._http

    # -- runners ----------------------------------------------------------------------------

    def start_runner(
        self,
        folder: Path,
        runner_id: str,
        *,
        transport: str = "grpc",
        pool_size: int = 4,
        api_base: str | None = None,
    ) -> Child:
        """Start a runner and wait until the control plane welcomed it.

        Args:
            folder: the model folder.
            runner_id: its id (``--runner-id``), so tests can find it in ``/v2/runners``.
            transport: ``grpc`` (the default, so no flag is passed) or ``ws``.
            pool_size: worker threads.
            api_base: the control plane's address as the runner sees it (e.g. a relay).
        """
        control = self.control
        assert control is not None, "start a control plane first"
        args = ["runner", str(folder), "--pool-size", str(pool_size), "--runner-id", runner_id]
        if transport != "grpc":
            args += ["--transport", transport]
        env = {
            "EDGE_RUNNER_API_BASE": api_base or control.api_base,
            "EDGE_RUNNER_PAT": control.token,
        }
        return self.spawn(f"runner-{runner_id}", args, env)

    def runners(self) -> dict[str, dict[str, Any]]:
        """``GET /v2/runners`` by id; empty while the control plane does not answer."""
        try:
            response = self.http.get("/v2/runners", timeout=within(0))
        except httpx.TransportError:
            return {}
        if response.status_code != 200:
            return {}
        return {r["id"]: r for r in response.json()["runners"]}

    def status(self, runner_id: str) -> str | None:
        """The runner's status as the control plane reports it (None if unknown or down)."""
        view = self.runners().get(runner_id)
        return None if view is None else str(view["status"])

    def busy(self, runner_id: str) -> int:
        """Tasks the control plane has on the runner now."""
        view = self.runners().get(runner_id)
        return 0 if view is None else int(view["busy"])

    def wait_connected(self, *runner_ids: str, timeout: float) -> None:
        """Wait until every runner is ``connected`` again."""
        wait_for(
            lambda: all(self.status(r) == "connected" for r in runner_ids),
            f"runner(s) {', '.join(runner_ids)} to be connected",
            timeout,
        )

    def work(self, request_id: str, seconds: float = 0.0) -> dict[str, Any]:
        """Call ``chaos.work`` and return its output (asserting a 200)."""
        response = self.http.post(
            "/v2/models/chaos/work", json={"request_id": request_id, "seconds": seconds}
        )
        assert response.status_code == 200, response.text
        output: dict[str, Any] = response.json()["output"]
        assert output["request_id"] == request_id
        return output


def _read_ready_line(fd: int, child: Child, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    buffer = b""
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            child.proc.kill()
            child.proc.wait()
            raise AssertionError(
                f"{child.name} was not ready within {timeout:.1f} s; its log:\n{child.tail()}"
            )
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        piece = os.read(fd, 4096)
        if not piece:
            code = child.proc.wait()
            raise AssertionError(
                f"{child.name} exited with {code} before it was ready; its log:\n{child.tail()}"
            )
        buffer += piece
    return dict(json.loads(buffer.split(b"\n", 1)[0]))


_CLUSTER = pytest.StashKey[Cluster]()
_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """Start children through this; all of them are stopped when the test ends.

    Whatever the chaos, no child may log a traceback (an exception nothing handled): teardown
    fails a test that passed otherwise, quoting the traceback.
    """
    c = Cluster(tmp_path)
    request.node.stash[_CLUSTER] = c
    try:
        yield c
    finally:
        c.close()
    problems = c.tracebacks()
    if problems and not request.node.stash.get(_FAILED, False):
        pytest.fail("a child logged an unhandled exception:\n\n" + "\n\n".join(problems))


@pytest.fixture
def chaos_model(tmp_path: Path) -> Path:
    """The ``chaos`` model folder (see :data:`CHAOS_MODEL`)."""
    return write_model(tmp_path / "models", "chaos", CHAOS_MODEL, imports="import os")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the tails of the children's logs to a failed test's report."""
    report = yield
    cluster = item.stash.get(_CLUSTER, None)
    if report.failed:
        item.stash[_FAILED] = True
    if cluster is not None and report.failed:
        for child in cluster.children:
            with contextlib.suppress(OSError):
                report.sections.append((f"log of {child.name} (pid {child.pid})", child.tail()))
    return report
