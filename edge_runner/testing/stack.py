"""The real stack in one process: a control plane and runners on a background event loop.

The control plane and runners listen on 127.0.0.1:0 and meet through the real tunnel (as
httpx's tests run uvicorn in a thread); a test talks to them with real HTTP clients, from its
own thread. Daemons are built as every caller builds them, from :class:`ControlConfig` and
:class:`RunnerConfig` (:mod:`edge_runner.daemons`).

Waits are in :data:`MS`, a time unit that ``TIMEOUT_FACTOR`` scales (a slow CI machine sets
it above 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from edge_runner.backends.base import Backend
from edge_runner.daemons import ControlConfig, RunnerConfig, build_control, build_runner
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.testing.timing import MS

if TYPE_CHECKING:
    from edge_runner.client import Client
    from edge_runner.control import ControlPlane
    from edge_runner.runner import Runner
    from edge_runner.telemetry import Sampler

__all__ = [
    "ECHO_MODEL",
    "MS",
    "LoopThread",
    "RunningRunner",
    "Stack",
    "wait_for",
]

#: a model folder whose ``predict(text)`` returns the text, ``generate(text, n)`` streams it
#: ``n`` times and stream-in ``chat(messages, prefix)`` answers each input item with
#: ``prefix + item``: no weights, no dependencies
ECHO_MODEL = Path(__file__).resolve().parent / "echo_model"

T = TypeVar("T")


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


class Stack:
    """A control plane and its runners, all on one background loop, on 127.0.0.1:0.

    ``with Stack(tmp_path) as stack:`` starts the control plane (with ``loop``, share a
    :class:`LoopThread` the caller owns); :meth:`start_runner` adds runners that meet it
    through the real gRPC tunnel (or WebSocket: ``transport=TransportKind.WS``).

    Attributes:
        loop: the background loop everything runs on.
        data_dir: the control plane's data dir (registry, admin token).
        plane: the control plane, once started.
        token: its admin token.
        runners: the runners started so far.
        ca: the private CA of a TLS control plane, for clients and runners.
        model: the model folder :meth:`start_runner` serves when given none.
    """

    def __init__(
        self, data_dir: Path, loop: LoopThread | None = None, *, model: Path = ECHO_MODEL
    ) -> None:
        self._own_loop = loop is None
        self.model = model
        self.loop = loop or LoopThread()
        self.data_dir = data_dir
        self.plane: ControlPlane | None = None
        self.token = ""
        self.runners: list[RunningRunner] = []
        self.ca: Path | None = None

    @property
    def api_base(self) -> str:
        """The control plane's base URL."""
        assert self.plane is not None
        return self.plane.api_base

    @property
    def headers(self) -> dict[str, str]:
        """Authorization headers with the admin token."""
        return {"Authorization": f"Bearer {self.token}"}

    def __enter__(self) -> Stack:
        if self.plane is None:
            self.start_control()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        if self._own_loop:
            self.loop.close()

    def client(self) -> Client:
        """A client of the control plane with the admin token (close it, or use ``with``)."""
        from edge_runner.client import Client

        return Client(self.api_base, self.token, ca_file=str(self.ca) if self.ca else None)

    def start_control(self, **settings: Any) -> ControlPlane:
        """Start the control plane on 127.0.0.1:0 (override settings by keyword)."""
        values: dict[str, Any] = {"port": 0, "grpc_port": 0, "data_dir": self.data_dir}
        values.update(settings)
        plane = build_control(ControlConfig(**values))
        self.loop.run(plane.__aenter__())
        self.plane = plane
        self.token = plane.settings.admin_token_file.read_text().strip()
        self.ca = plane.settings.tls_ca or self.ca
        return plane

    def stop_control(self) -> None:
        """Planned stop of the control plane."""
        if self.plane is not None:
            self.loop.run(self.plane.close())

    def start_runner(
        self,
        model: Path | None = None,
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
        """Start a runner for the model folder ``model`` (or ``backend``); by default wait
        until the control plane has registered it. ``settings``: more :class:`RunnerConfig`
        fields (``pool_size``, ``transport``, ``backoff_initial``, ...).

        Raises:
            AssertionError: it did not register in time.
            Exception: what stopped the runner before it registered.
        """
        from edge_runner.backends.python_model import PythonModelBackend

        backend = backend or PythonModelBackend(model or self.model)
        values: dict[str, Any] = {"pool_size": 4, "grace_period": 5.0}
        values.update(settings)
        config = RunnerConfig(
            api_base=api_base or self.api_base,
            token=token or self.token,
            enroll=False,
            runner_id=runner_id or f"runner-test-{len(self.runners) + 1}",
            local_api=False,
            **values,
        )
        runner = build_runner(config, backend=backend, sampler=sampler, gpus=gpus).runner
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
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(step)
