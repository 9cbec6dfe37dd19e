"""The runner's lifecycle: load the backend, keep the tunnel up, run tasks, stop in stages.

:class:`Runner` coordinates three parts: the :class:`~edge_runner.runner.ledger.TaskLedger`
(the tasks it holds across tunnels), the :class:`~edge_runner.runner.connection.Connection`
(the tunnel, its reconnect policy and the one classifier of failures) and the
:mod:`~edge_runner.runner.views` (snapshot, metrics, logs). It is an async context manager, in
the spirit of websockets' ``serve``::

    async with Runner(settings, backend, runner_id) as runner:
        await runner.wait_ready()   # registered with the control plane
        await runner.wait_closed()  # until request_stop() (a signal) or a fatal error

Tasks outlive tunnels: a task running when the tunnel drops keeps running, its output is held,
and the next ``Hello`` lists it in ``inflight``. The control plane answers with the tasks it
still wants (``Welcome.adopted``): their held output is sent; the others are cancelled. A
stream-in task is the exception: its input cannot follow it to another tunnel, so it is
cancelled as soon as its tunnel is gone.

Stop signals are staged: the first drains (``Draining`` at once, no new tasks, in-flight ones
finish within the grace period; during the backend's load it interrupts a load that waits,
see :meth:`~edge_runner.backends.base.Backend.interrupt_load`, and the runner stops without
registering), the second cancels in-flight tasks, the third stops at once:
tasks that ignore their cancel are abandoned (workers are daemon threads) and the runner raises
:class:`KeyboardInterrupt` to its caller, as an interrupted ``asyncio.run`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from edge_runner._version import __version__
from edge_runner.backends.base import Backend
from edge_runner.errors import ConfigError, EdgeRunnerError, ErrorCode, TunnelError
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import RunnerSession, SessionState
from edge_runner.runner import views
from edge_runner.runner.connection import Connection, Dial
from edge_runner.runner.events import EventHub
from edge_runner.runner.executor import Executor, TaskKey, TaskSink
from edge_runner.runner.ledger import Disposal, ErrorOut, ResultOut, TaskLedger, stopped_error
from edge_runner.runner.metrics import RunnerMetrics
from edge_runner.runner.settings import RunnerSettings
from edge_runner.runner.slots import pool_warning, split_pool
from edge_runner.runner.transport import CONNECT_METHOD, TransportKind
from edge_runner.telemetry.sampler import Sampler
from edge_runner.views import RunnerSnapshot

__all__ = ["CONNECT_METHOD", "Runner", "RunnerSettings", "TransportKind"]

logger = logging.getLogger(__name__)

#: how long a stopping runner waits for the control plane to close the tunnel after Goodbye
_CLOSE_WAIT_S = 2.0

_T = TypeVar("_T")


class Runner(TaskSink):
    """One runner process: one backend, one tunnel, one thread pool.

    Attributes:
        stop_level: stop requests so far (1 drains, 2 cancels, 3 stops at once).
        ledger: the tasks held across tunnels.
        connection: the tunnel to the control plane.
        hub: what the local API shows: events as they happen.

    ``dial`` replaces how a tunnel is opened (default: discover the control plane at
    ``settings.api_base`` and dial its gRPC or WebSocket endpoint); the testing kit's
    in-memory tunnel is one (:func:`edge_runner.testing.memory_dialer`).
    """

    def __init__(
        self,
        settings: RunnerSettings,
        backend: Backend,
        runner_id: str,
        *,
        sampler: Sampler | None = None,
        gpus: tuple[pb.Gpu, ...] = (),
        dial: Dial | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.runner_id = runner_id
        #: telemetry: started and stopped with the runner; its GPUs ride on every heartbeat
        self.sampler = sampler
        #: the GPUs placed for the model, registered in the Hello
        self.gpus = gpus
        self.stop_level = 0
        self.ledger = TaskLedger()
        self.connection = Connection(settings, runner_id, self, dial)
        self.hub = EventHub()
        self.metrics = RunnerMetrics()
        self.started = time.time()
        self._executor: Executor | None = None
        self._stop_requested: asyncio.Event | None = None
        self._registered: asyncio.Event | None = None
        self._serving: asyncio.Task[None] | None = None
        #: the task loading the backend, while it does (a third stop interrupts it)
        self._loading: asyncio.Task[object] | None = None
        self._interrupted = False
        self._on_ready: Callable[[Runner], None] | None = None
        self._shares: dict[str, int] = {}
        #: set when the backend has nothing left to serve; the runner stops with it
        self._fatal: EdgeRunnerError | None = None

    # -- public -----------------------------------------------------------------------------

    async def run(self, on_ready: Callable[[Runner], None] | None = None) -> None:
        """Load the backend and serve until stopped.

        Args:
            on_ready: called on the loop at the first Welcome.

        Raises:
            Unauthorized: the control plane rejected the token.
            Forbidden: the token may not open tunnels, or the runner id belongs to another
                user of the control plane.
            ModelFolderError: the model could not be loaded.
            KeyboardInterrupt: a third stop request ended the runner at once.
        """
        self._on_ready = on_ready
        async with self:
            await self.wait_closed()

    async def __aenter__(self) -> Runner:
        """Load the backend, start the thread pool and the tunnel; returns at once after.

        Raises:
            ModelFolderError: the model could not be loaded.
            KeyboardInterrupt: a third stop request came while it loaded.
        """
        if self._stop_requested is not None:
            raise RuntimeError("a Runner serves once; make a new one")
        loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        self._registered = asyncio.Event()
        self.hub.bind(loop)

        def status_changed(status: pb.ModelStatus) -> None:  # any thread: hop onto the loop
            with contextlib.suppress(RuntimeError):  # the loop is gone: the runner stopped
                loop.call_soon_threadsafe(self._on_model_status, status)

        self.backend.add_status_listener(status_changed)
        if self.sampler is not None:
            self.sampler.add_listener(
                lambda sample: self.hub.publish_threadsafe("telemetry", sample.to_dict())
            )
            self.sampler.start()
        self._loading = asyncio.current_task()
        try:
            await _in_thread(self.backend.load, "edge-runner-load")
        except BaseException as exc:
            loading, self._loading = self._loading, None
            if isinstance(exc, asyncio.CancelledError) and self._interrupted:
                if loading is not None:
                    loading.uncancel()  # the cancel was ours: the caller gets the interrupt
                raise KeyboardInterrupt("a third stop request came while the model loaded") from exc
            if self.sampler is not None:
                await _in_thread(self.sampler.stop, "edge-runner-stop")
            raise
        self._loading = None
        if self.stop_level:
            # A stop came while the backend loaded: nothing runs yet, so nothing to drain, and
            # registering only to say goodbye would flash the models online for a moment.
            logger.info("stopped before serving: the stop came while the backend loaded")
            await _in_thread(self.backend.close, "edge-runner-close")
            if self.sampler is not None:
                await _in_thread(self.sampler.stop, "edge-runner-stop")
            self._serving = asyncio.create_task(asyncio.sleep(0), name="edge-runner-stopped")
            return self
        self._shares = self._split_pool()
        threads = max(self.settings.pool_size, sum(self._shares.values()))
        self._executor = Executor(threads, self.backend, self, loop)
        self._serving = asyncio.create_task(self._serve(), name="edge-runner")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop: drain in-flight tasks within the grace period and close the tunnel.

        A cancelled body stops without draining; the body's own error wins over the runner's.
        """
        serving = self._serving
        if serving is None or self._interrupted:
            return
        if isinstance(exc, asyncio.CancelledError):
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
            return
        if self.stop_level == 0:
            self.request_stop()
        if exc is None:
            await self.wait_closed()
            return
        with contextlib.suppress(Exception):  # the body's error is the one to report
            await self.wait_closed()

    async def wait_ready(self) -> None:
        """Wait for the control plane to register this runner (its first Welcome).

        Raises:
            TunnelError: the runner stopped before it was registered.
            Unauthorized, Forbidden: the control plane refused it (and it stopped).
        """
        serving, registered = self._serving, self._registered
        if serving is None or registered is None:
            raise RuntimeError("the runner is not serving: use `async with runner`")
        waiter = asyncio.ensure_future(registered.wait())
        try:
            await asyncio.wait({waiter, serving}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not registered.is_set():
            await self.wait_closed()
            raise TunnelError("the runner stopped before the control plane registered it")

    async def wait_closed(self) -> None:
        """Wait until the runner has stopped (drained after ``request_stop()``, or failed).

        Raises:
            Unauthorized, Forbidden: the control plane refused the runner.
            ConfigError: the backend has nothing left to serve.
            KeyboardInterrupt: a third stop request ended the runner at once.
        """
        serving = self._serving
        if serving is None:
            return
        try:
            await asyncio.shield(serving)
        except asyncio.CancelledError:
            if not (self._interrupted and serving.done()):
                raise  # the caller was cancelled, not the runner
        except Exception:
            if not self._interrupted:
                raise
        if self._interrupted:
            raise KeyboardInterrupt("a third stop request ended the runner at once")

    def request_stop(self) -> None:
        """Handle a stop signal: 1st drains, 2nd cancels in-flight tasks, 3rd stops at once."""
        self.stop_level += 1
        logger.debug("stop requested (level %d)", self.stop_level)
        executor = self._executor
        busy = self.busy
        if self.stop_level == 1:
            if self._loading is not None:
                self.backend.interrupt_load()  # a load that waits (for a server) ends now
            if busy:
                logger.info(
                    "draining: finishing %d in-flight task(s) within %g s; "
                    "signal again to cancel them",
                    busy,
                    self.settings.grace_period,
                )
            self.connection.draining()
            if self._stop_requested is not None:
                self._stop_requested.set()
            views.publish_status(self)
        elif self.stop_level == 2:
            logger.warning("cancelling %d in-flight task(s); signal again to exit now", busy)
            if executor is not None:
                executor.cancel_all()
        elif not self._interrupted:
            logger.warning("exiting now")
            self._interrupted = True
            for task in (self._loading, self._serving):
                if task is not None and not task.done():
                    task.cancel("a third stop request")

    @property
    def stopping(self) -> bool:
        """A stop was requested: no new tasks, no reconnecting."""
        return self.stop_level > 0

    @property
    def busy(self) -> int:
        """Tasks running now."""
        return self._executor.busy if self._executor is not None else 0

    @property
    def connected(self) -> bool:
        """Registered with the control plane on the current tunnel."""
        return self.connection.connected

    @property
    def reconnects(self) -> int:
        """How many outages ended with a new registration."""
        return self.connection.reconnects

    @property
    def connected_since(self) -> float | None:
        """Wall-clock time the current tunnel was registered, or None while it is down."""
        return self.connection.connected_since

    @property
    def ready(self) -> bool:
        """Registered with the control plane and not stopping."""
        return self.connection.connected and self.stop_level == 0

    @property
    def healthy(self) -> bool:
        """Registered, and the control plane was heard from within three heartbeat intervals.

        What a service manager's watchdog follows: false while the tunnel is down or silent.
        """
        return self.connection.healthy

    def tunnel_state(self) -> str:
        """``connected``, ``connecting``, ``reconnecting``, ``draining`` or ``stopping``."""
        return views.tunnel_state(self.stop_level, self.connection)

    def snapshot(self) -> RunnerSnapshot:
        """Everything a person asks about a runner, as JSON (the local API's /v1/snapshot)."""
        return views.snapshot(self)

    def metrics_text(self) -> str:
        """The Prometheus exposition of this runner (the local API's /metrics)."""
        return views.metrics_text(self)

    # -- TaskSink (called on the loop by the executor) --------------------------------------

    def chunk(self, key: TaskKey, payload: bytes) -> None:
        """Send a streamed piece now, or hold it for the next tunnel."""
        if self.ledger.chunk(key, payload, self.connection.session):
            self.connection.flush()

    def result(self, key: TaskKey, payload: bytes, usage: pb.Usage | None) -> None:
        """Send a task's result now, or hold it for the next tunnel."""
        self._terminal(key, ResultOut(payload, usage))

    def error(self, key: TaskKey, code: str, message: str, retryable: bool = False) -> None:
        """Send a task's error now, or hold it for the next tunnel."""
        self._terminal(
            key, stopped_error(code, message, retryable, cancelling=self.stop_level >= 2)
        )

    def input_credit(self, key: TaskKey, upto: int) -> None:
        """Let the control plane send a stream-in task's input items numbered below ``upto``,
        if the current session holds the task (a credit for a gone tunnel has no reader)."""
        session = self.connection.session
        if session is not None and session.send_input_credit(key[0], key[1], upto):
            self.connection.flush()

    # -- TunnelOwner (called on the loop by the connection) ---------------------------------

    def hello(self) -> pb.Hello:
        """The Hello that opens the next session, listing the tasks still held."""
        s = self.settings
        return pb.Hello(
            runner_id=self.runner_id,
            version=__version__,
            hostname=socket.gethostname(),
            labels=s.labels,
            nodepool=s.nodepool,
            pool_size=s.pool_size,
            models=self.backend.specs(),
            gpus=self.gpus,
            inflight=self.ledger.refs(),
        )

    def welcomed(self, session: RunnerSession, welcome: pb.Welcome) -> None:
        """Resume held tasks, announce model readiness, grant slots, and report ready."""
        executor = self._executor
        assert executor is not None
        resumed = self.ledger.resume(session, {(r.task_id, r.attempt) for r in welcome.adopted})
        for key in resumed.cancel:
            executor.cancel(key)
        if resumed.adopted:
            logger.info("resumed %d task(s) after the reconnect", resumed.adopted)
        # Readiness first: the control plane must not route to a model that is still loading
        # in the moment between its credit and its status.
        for status in self.backend.statuses():
            if status.state not in (pb.READY, pb.FAILED):  # a FAILED one is not in the Hello
                session.send_model_status(status)
        for spec in self.backend.specs():
            free = self._shares.get(spec.model_id, 1) - self.ledger.busy(spec.model_id)
            session.grant(spec.model_id, max(0, free))
        if self.stop_level:
            session.send_draining()
        self.connection.flush()
        views.publish_status(self)
        if self._registered is not None:
            self._registered.set()
        if self._on_ready is not None:
            callback, self._on_ready = self._on_ready, None
            callback(self)

    def received(
        self,
        session: RunnerSession,
        event: pb.Task | pb.Cancel | pb.StreamCredit | pb.InputChunk | pb.InputEnd,
    ) -> None:
        """Start a task (or refuse it while draining), cancel one, credit its stream, or feed
        a stream-in task its input."""
        executor = self._executor
        assert executor is not None
        match event:
            case pb.Task() if self.stop_level:
                session.send_error(
                    event.task_id,
                    event.attempt,
                    ErrorCode.UNAVAILABLE,
                    "the runner is draining",
                    True,
                )
                self.connection.flush()
            case pb.Task():
                held = self.ledger.take(event)
                executor.submit(event, session.stream_window)
                views.task_started(self.hub, (event.task_id, event.attempt), held)
            case pb.Cancel():
                executor.cancel((event.task_id, event.attempt))
            case pb.StreamCredit():
                executor.grant((event.task_id, event.attempt), event.upto_seq)
            case pb.InputChunk():
                key = (event.task_id, event.attempt)
                receiving = self.ledger.get(key)
                if receiving is not None:
                    receiving.inputs += 1
                executor.feed(key, event.payload)
            case pb.InputEnd():
                executor.end_input((event.task_id, event.attempt))

    def heartbeat(self, session: RunnerSession) -> None:
        """Queue a heartbeat: busy slots and the machine's GPUs."""
        gpus, note = views.gpu_samples(self.sampler)
        session.send_heartbeat(self.busy, gpus, note)

    def tunnel_changed(self) -> None:
        """Tell watchers the tunnel's new state; a lost tunnel cancels its stream-in tasks."""
        executor = self._executor
        if not self.connection.connected and executor is not None:
            dropped = self.ledger.drop_input_streams()
            for key in dropped:
                executor.cancel(key)
            if dropped:
                logger.info(
                    "cancelled %d stream-in task(s): their input cannot outlive the tunnel",
                    len(dropped),
                )
        views.publish_status(self)

    # -- internals --------------------------------------------------------------------------

    async def _serve(self) -> None:
        """Serve until stopped: the tunnel, log forwarding, then drain and clean up."""
        executor, stop_requested = self._executor, self._stop_requested
        assert executor is not None and stop_requested is not None
        tunnel = asyncio.create_task(self.connection.run(), name="edge-runner-tunnel")
        stop = asyncio.create_task(stop_requested.wait())
        logs = asyncio.create_task(
            views.forward_logs(self.hub, self.connection), name="edge-runner-logs"
        )
        try:
            await asyncio.wait({tunnel, stop}, return_when=asyncio.FIRST_COMPLETED)
            if tunnel.done():
                tunnel.result()  # a fatal error (rejected token) surfaces here
                return
            await self._drain(executor)
            logger.debug("drained; waiting for the control plane to close the tunnel")
            # Closing the connection ourselves could drop frames still on their way; after our
            # Goodbye the control plane ends the call, and the read loop returns by itself.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(tunnel), _CLOSE_WAIT_S)
            tunnel.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tunnel
            if self._fatal is not None:
                raise self._fatal
        finally:
            stop.cancel()
            tunnel.cancel()
            logs.cancel()
            executor.shutdown()
            if not self._interrupted:  # stopping at once leaves these to the process's exit
                await _in_thread(self.backend.close, "edge-runner-close")
                if self.sampler is not None:
                    await _in_thread(self.sampler.stop, "edge-runner-stop")

    async def _drain(self, executor: Executor) -> None:
        """Finish in-flight tasks within the grace period, then say goodbye."""
        try:
            await asyncio.wait_for(executor.idle.wait(), self.settings.grace_period)
        except TimeoutError:
            logger.warning(
                "grace period of %g s is over; cancelling %d task(s)",
                self.settings.grace_period,
                executor.busy,
            )
            executor.cancel_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(executor.idle.wait(), 1.0)
        self.connection.goodbye("runner stopping")

    def _terminal(self, key: TaskKey, outcome: ResultOut | ErrorOut) -> None:
        executor = self._executor
        assert executor is not None
        executor.finished(key)
        held = self.ledger.get(key)
        if held is None:
            return
        views.task_finished(self.hub, self.metrics, key, held, outcome)
        session = self.connection.session
        disposal = self.ledger.finish(key, outcome, session)
        if disposal is Disposal.SENT:
            self.connection.flush()
        elif (
            disposal is Disposal.RELEASED  # the control plane gave it up: its slot is free
            and session is not None
            and session.state is SessionState.OPEN
            and not self.stop_level
        ):
            session.grant(held.model_id, 1)
            self.connection.flush()

    def _split_pool(self) -> dict[str, int]:
        caps = {spec.model_id: self.backend.slots(spec.model_id) for spec in self.backend.specs()}
        warning = pool_warning(self.settings.pool_size, caps, self.backend.slots_setting)
        if warning is not None:
            logger.warning("%s", warning)
        return split_pool(self.settings.pool_size, caps)

    def _on_model_status(self, status: pb.ModelStatus) -> None:
        """Forward a model's readiness (on the loop); a runner left with nothing stops."""
        self.hub.publish(
            "model",
            {
                "model": status.model_id,
                "status": pb.ModelState.Name(status.state).lower(),
                "message": status.message,
                "progress": round(status.progress, 4),
            },
        )
        session = self.connection.session
        if session is not None and session.state is not SessionState.CLOSED:
            session.send_model_status(status)
            self.connection.flush()
        if status.state != pb.FAILED or self.backend.specs() or self._fatal is not None:
            return
        self._fatal = ConfigError(f"nothing left to serve: {status.message}")
        logger.error("stopping: nothing left to serve")
        if self.stop_level == 0:
            self.request_stop()


async def _in_thread(fn: Callable[[], _T], name: str) -> _T:
    """Run blocking ``fn`` in a daemon thread of its own and await it.

    Unlike ``asyncio.to_thread`` (the loop's default pool, joined at interpreter exit), a call
    stuck in a model cannot hold the process once the runner is told to stop at once.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[_T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not done.done():
            outcome()

    def work() -> None:
        try:
            value = fn()
        except BaseException as exc:  # noqa: B036 - handed to the awaiting coroutine
            failure = exc
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(settle, lambda: done.set_exception(failure))
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, lambda: done.set_result(value))

    threading.Thread(target=work, name=name, daemon=True).start()
    return await done
