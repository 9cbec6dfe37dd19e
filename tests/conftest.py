"""Shared test fixtures: an isolated home, a scalable time unit, and the real stack on loopback.

The control plane and runners run on an asyncio loop in a background thread (as httpx's tests
run uvicorn), listening on 127.0.0.1:0 and meeting through the real gRPC tunnel; tests talk to
them with real HTTP clients. Nothing of ours is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from edge_runner.backends.base import Backend
from edge_runner.backends.python_model import PythonModelBackend
from edge_runner.control import ControlPlane, ControlSettings
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.runner import Runner, RunnerSettings
from edge_runner.telemetry import Sampler
from tests.fuzzing import register_profiles

#: The time unit of every wait in the suite: scale all of them with TIMEOUT_FACTOR.
MS = 0.001 * float(os.environ.get("TIMEOUT_FACTOR", 1))
ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello"

T = TypeVar("T")

register_profiles()  # Hypothesis: derandomized in the suite, open-ended under `make fuzz`


@pytest.fixture(autouse=True)
def er_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own config/data/runtime dirs and the 0600 file secret store."""
    home = tmp_path / "home"
    monkeypatch.setenv("EDGE_RUNNER_HOME", str(home))
    monkeypatch.setenv("EDGE_RUNNER_SECRET_BACKEND", "file")
    for name in (
        "EDGE_RUNNER_PAT",
        "EDGE_RUNNER_API_BASE",
        "EDGE_RUNNER_CONTEXT",
        "EDGE_RUNNER_USER_ID",
        "EDGE_RUNNER_CONFIG",
    ):
        monkeypatch.delenv(name, raising=False)
    return home


class LoopThread:
    """An event loop in a daemon thread; ``run()`` executes a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Schedule a coroutine on the loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10_000 * MS) -> T:
        """Run a coroutine on the loop and return its result."""
        return self.submit(coro).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        """Run a plain function on the loop thread (for loop-bound objects)."""

        async def wrapper() -> T:
            return fn()

        return self.run(wrapper())

    def close(self) -> None:
        """Stop the loop and join the thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@dataclass
class RunningRunner:
    """A runner started by the ``stack`` fixture."""

    runner: Runner
    task: Future[None]
    backend: Backend

    @property
    def runner_id(self) -> str:
        """The runner's id."""
        return self.runner.runner_id


@dataclass
class Stack:
    """A control plane and its runners, all on one background loop."""

    loop: LoopThread
    data_dir: Path
    plane: ControlPlane | None = None
    token: str = ""
    runners: list[RunningRunner] = field(default_factory=list)

    @property
    def api_base(self) -> str:
        """The control plane's base URL."""
        assert self.plane is not None
        return self.plane.api_base

    @property
    def headers(self) -> dict[str, str]:
        """Authorization headers with the admin token."""
        return {"Authorization": f"Bearer {self.token}"}

    def start_control(self, **settings: Any) -> ControlPlane:
        """Start the control plane on 127.0.0.1:0 (override settings by keyword)."""
        values: dict[str, Any] = {"port": 0, "grpc_port": 0, "data_dir": self.data_dir}
        values.update(settings)
        plane = ControlPlane(ControlSettings(**values))
        self.loop.run(plane.__aenter__())
        self.plane = plane
        self.token = plane.settings.admin_token_file.read_text().strip()
        return plane

    def stop_control(self) -> None:
        """Planned stop of the control plane."""
        if self.plane is not None:
            self.loop.run(self.plane.close())

    def start_runner(
        self,
        model: Path = HELLO,
        *,
        runner_id: str | None = None,
        wait: bool = True,
        api_base: str | None = None,
        token: str | None = None,
        backend: Backend | None = None,
        sampler: Sampler | None = None,
        gpus: tuple[pb.Gpu, ...] = (),
        **settings: Any,
    ) -> RunningRunner:
        """Start a runner for ``model`` (or ``backend``); by default wait for its Welcome."""
        backend = backend or PythonModelBackend(model)
        values: dict[str, Any] = {"pool_size": 4, "grace_period": 5.0}
        values.update(settings)
        runner = Runner(
            RunnerSettings(api_base=api_base or self.api_base, token=token or self.token, **values),
            backend,
            runner_id or f"runner-test-{len(self.runners) + 1}",
            sampler=sampler,
            gpus=gpus,
        )
        ready = threading.Event()
        task = self.loop.submit(runner.run(on_ready=lambda _: ready.set()))
        running = RunningRunner(runner, task, backend)
        self.runners.append(running)
        if wait:
            wait_for(lambda: ready.is_set() or task.done(), "runner registration")
            if task.done():
                task.result()
        return running

    def stop_runner(self, running: RunningRunner, timeout: float = 10_000 * MS) -> None:
        """Stop a runner the way SIGTERM does and wait for it."""
        self.loop.call(running.runner.request_stop)
        running.task.result(timeout)

    def close(self) -> None:
        """Stop everything."""
        for running in self.runners:
            if running.task.done():
                continue
            self.loop.call(running.runner.request_stop)
            # Teardown must go on whatever the runner ended with; the test already judged it.
            with contextlib.suppress(Exception):
                running.task.result(10_000 * MS)
        self.stop_control()


def wait_for(
    condition: Callable[[], object], what: str, timeout: float = 10_000 * MS, step: float = 5 * MS
) -> None:
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(step)


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    """A background event loop."""
    lt = LoopThread()
    yield lt
    lt.close()


@pytest.fixture
def stack(loop_thread: LoopThread, tmp_path: Path) -> Iterator[Stack]:
    """A control plane (started) ready for runners; everything is stopped afterwards."""
    s = Stack(loop_thread, tmp_path / "control")
    s.start_control()
    yield s
    s.close()


@pytest.fixture
def tls_stack(stack: Stack, tmp_path: Path) -> Stack:
    """``stack`` with its control plane serving TLS from a private CA (as --tls-self-signed);
    the CA file is ``tls_stack.ca``."""
    from edge_runner.control.tls import self_signed

    files = self_signed(tmp_path / "tls-data", ["127.0.0.1"])
    stack.stop_control()
    stack.start_control(tls_cert=files.cert, tls_key=files.key)
    stack.ca = files.ca  # type: ignore[attr-defined]
    return stack


@pytest.fixture
def hello_stack(stack: Stack) -> Stack:
    """The stack with one runner serving examples/hello."""
    stack.start_runner(HELLO)
    return stack


#: class body of a model whose ``wait(seconds)`` blocks until cancelled or the time is up
SLOW_MODEL = (
    "    @ModelClass.method\n"
    "    def wait(self, seconds: float) -> str:\n"
    "        '''Block until cancelled or the time is up.'''\n"
    "        end = time.monotonic() + seconds\n"
    "        while not self.cancelled() and time.monotonic() < end:\n"
    "            time.sleep(0.005)\n"
    "        return 'cancelled' if self.cancelled() else 'done'\n"
)


def write_model(root: Path, model_id: str, body: str, *, imports: str = "") -> Path:
    """Write a model folder ``root/model_id`` with ``body`` as the class body of ``Model``."""
    folder = root / model_id
    (folder / "1").mkdir(parents=True)
    (folder / "config.yaml").write_text(
        f"model:\n  id: {model_id}\n  user_id: local\n  app_id: local\n"
    )
    source = (
        "from __future__ import annotations\n"
        "import threading, time\n"
        "from collections.abc import Iterator\n"
        f"{imports}\n"
        "from edge_runner import ModelClass\n\n\n"
        "class Model(ModelClass):\n" + body
    )
    (folder / "1" / "model.py").write_text(source)
    return folder


def spawn_ready(
    args: list[str], env: dict[str, str], *, stderr: int | None = None
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start ``python -m edge_runner ARGS --ready-fd N`` and wait for its ready line."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_runner", *args, "--ready-fd", str(write_fd)],
        pass_fds=(write_fd,),
        env=env,
        stderr=stderr,
    )
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as ready:
        line = ready.readline()
    if not line:
        raise AssertionError(f"{args[0]} exited with {proc.wait()} before it was ready")
    return proc, json.loads(line)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10_000 * MS) -> int:
    """SIGTERM, wait; SIGKILL if it does not stop (and fail the test by the exit code)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -9
