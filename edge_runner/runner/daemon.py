"""The runner's lifecycle: load the backend, keep the tunnel up, run tasks, stop in stages.

Reconnect policy: every failure to reach the control plane is retried with full-jitter backoff
(0.5 s → 10 s cap), forever, except a rejected token and a runner id that belongs to another
user, which are fatal. An outage is logged once (WARNING, with the cause) when it starts and
once (INFO, with its duration) when it ends; each retry only at DEBUG. A ``Goodbye`` with
``reconnect_after_ms`` (a planned control-plane restart) sets the next delay instead of the
backoff.

Tasks outlive tunnels: a task running when the tunnel drops keeps running, its output is held,
and the next ``Hello`` lists it in ``inflight``. The control plane answers with the tasks it
still wants (``Welcome.adopted``): their held output is sent; the others are cancelled.

A tunnel that delivers nothing for three heartbeat intervals is dead (half-open) and dropped.

Stop signals are staged: the first drains (``Draining`` at once, no new tasks, in-flight ones
finish within the grace period), the second cancels in-flight tasks, the third exits now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from edge_runner._version import __version__
from edge_runner.backends.base import Backend
from edge_runner.errors import (
    ConfigError,
    EdgeRunnerError,
    Forbidden,
    ProtocolError,
    TunnelError,
    Unauthorized,
)
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import RunnerSession, SessionState
from edge_runner.runner.backoff import backoff
from edge_runner.runner.events import EventHub
from edge_runner.runner.executor import Executor, TaskKey, TaskSink
from edge_runner.runner.metrics import RunnerMetrics
from edge_runner.runner.slots import pool_warning, split_pool
from edge_runner.runner.transport import (
    CONNECT_METHOD,
    Transport,
    TransportKind,
    open_transport,
    tls_context,
    ws_url,
)
from edge_runner.telemetry.sampler import Sampler

__all__ = ["CONNECT_METHOD", "Runner", "RunnerSettings", "TransportKind"]

logger = logging.getLogger(__name__)

_UNSPECIFIED_HOSTS = {"0.0.0.0", "::", "[::]", ""}
#: how long a stopping runner waits for the control plane to close the tunnel after Goodbye
_CLOSE_WAIT_S = 2.0
#: a tunnel silent for this many heartbeat intervals is considered dead
_SILENT_HEARTBEATS = 3
#: log records go to the control plane at most this often, this many to a frame
_LOG_BATCH_S = 0.5
_LOG_BATCH_MAX = 200


@dataclass(frozen=True)
class RunnerSettings:
    """How a runner runs. Durations in seconds.

    Attributes:
        api_base: the control plane's HTTP base URL (the tunnel address comes from /v2/info).
        token: the runner's bearer token (never logged; excluded from repr).
        pool_size: worker threads, i.e. tasks run at once.
        grace_period: how long a drain waits for in-flight tasks.
        transport: gRPC stream or WebSocket.
        tunnel_address: skip discovery and dial this gRPC ``host:port``.
        ca_file: a private CA to verify the control plane's TLS certificate (default: the
            system store).
    """

    api_base: str
    token: str = field(repr=False)
    pool_size: int = 32
    nodepool: str = "default"
    labels: dict[str, str] = field(default_factory=dict)
    grace_period: float = 30.0
    backoff_initial: float = 0.5
    backoff_cap: float = 10.0
    transport: TransportKind = TransportKind.GRPC
    tunnel_address: str | None = None
    ca_file: Path | None = None


@dataclass(frozen=True, slots=True)
class _ChunkOut:
    seq: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class _ResultOut:
    payload: bytes
    usage: pb.Usage | None


@dataclass(frozen=True, slots=True)
class _ErrorOut:
    code: str
    message: str
    retryable: bool = False


_Outcome = _ChunkOut | _ResultOut | _ErrorOut


@dataclass(slots=True)
class _Held:
    """A task the runner holds across tunnels: its numbering and any output not yet sent."""

    model_id: str
    method: str = ""
    queue_wait: float = 0.0
    started: float = field(default_factory=time.monotonic)
    next_seq: int = 0
    pending: list[_Outcome] = field(default_factory=list)
    finished: bool = False
    unwanted: bool = False
    timed: bool = False


class Runner(TaskSink):
    """One runner process: one backend, one tunnel, one thread pool."""

    def __init__(
        self,
        settings: RunnerSettings,
        backend: Backend,
        runner_id: str,
        *,
        sampler: Sampler | None = None,
        gpus: tuple[pb.Gpu, ...] = (),
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.runner_id = runner_id
        #: telemetry: started and stopped with the runner; its GPUs ride on every heartbeat
        self.sampler = sampler
        #: the GPUs placed for the model, registered in the Hello
        self.gpus = gpus
        self.stop_level = 0
        self.connected = False
        self.reconnects = 0
        self._session: RunnerSession | None = None
        self._outbox: asyncio.Queue[bytes | None] | None = None
        self._executor: Executor | None = None
        self._stop_requested: asyncio.Event | None = None
        self._held: dict[TaskKey, _Held] = {}
        self._outage_since: float | None = None
        self._on_ready: Callable[[Runner], None] | None = None
        self._last_error = ""
        self._last_recv = time.monotonic()
        #: a registered tunnel silent this long is not healthy (set from the Welcome)
        self._silence = 5.0 * _SILENT_HEARTBEATS
        self._shares: dict[str, int] = {}
        #: set when the backend has nothing left to serve; run() raises it after stopping
        self._fatal: EdgeRunnerError | None = None
        #: what the local API shows: events, counters, when the tunnel came up
        self.hub = EventHub()
        self.metrics = RunnerMetrics()
        self.started = time.time()
        self.connected_since: float | None = None

    # -- public -----------------------------------------------------------------------------

    async def run(self, on_ready: Callable[[Runner], None] | None = None) -> None:
        """Load the backend and serve until stopped.

        Raises:
            Unauthorized: the control plane rejected the token.
            Forbidden: the runner id belongs to another user of the control plane.
            ModelFolderError: the model could not be loaded.
        """
        loop = asyncio.get_running_loop()
        self._on_ready = on_ready
        self._stop_requested = asyncio.Event()
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
        await asyncio.to_thread(self.backend.load)
        self._shares = self._split_pool()
        threads = max(self.settings.pool_size, sum(self._shares.values()))
        self._executor = Executor(threads, self.backend, self, loop)
        main = asyncio.create_task(self._connect_loop(), name="edge-runner-tunnel")
        stop = asyncio.create_task(self._stop_requested.wait())
        logs = asyncio.create_task(self._forward_logs(), name="edge-runner-logs")
        try:
            await asyncio.wait({main, stop}, return_when=asyncio.FIRST_COMPLETED)
            if main.done():
                main.result()  # a fatal error (rejected token) surfaces here
                return
            await self._drain()
            logger.debug("drained; waiting for the control plane to close the tunnel")
            # Closing the connection ourselves could drop frames still on their way; after our
            # Goodbye the control plane ends the call, and the read loop returns by itself.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(main), _CLOSE_WAIT_S)
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await main
            if self._fatal is not None:
                raise self._fatal
        finally:
            stop.cancel()
            main.cancel()
            logs.cancel()
            self._executor.shutdown()
            await asyncio.to_thread(self.backend.close)
            if self.sampler is not None:
                await asyncio.to_thread(self.sampler.stop)

    def request_stop(self) -> None:
        """Handle a stop signal: 1st drains, 2nd cancels in-flight tasks, 3rd exits now."""
        self.stop_level += 1
        logger.debug("stop requested (level %d)", self.stop_level)
        executor = self._executor
        busy = executor.busy if executor else 0
        if self.stop_level == 1:
            if busy:
                logger.info(
                    "draining: finishing %d in-flight task(s) within %g s; "
                    "signal again to cancel them",
                    busy,
                    self.settings.grace_period,
                )
            session = self._session
            if session is not None and session.state is SessionState.OPEN:
                session.send_draining()
                self._flush()
            if self._stop_requested is not None:
                self._stop_requested.set()
            self._status_event()
        elif self.stop_level == 2:
            logger.warning("cancelling %d in-flight task(s); signal again to exit now", busy)
            if executor is not None:
                executor.cancel_all()
        else:
            logger.warning("exiting now")
            os._exit(130)

    # -- TaskSink (called on the loop by the executor) --------------------------------------

    def chunk(self, key: TaskKey, payload: bytes) -> None:
        """Send a streamed piece now, or hold it for the next tunnel."""
        held = self._held.get(key)
        if held is None or held.unwanted:
            return
        seq = held.next_seq
        held.next_seq += 1
        session = self._live_session(key)
        if session is not None:
            session.send_chunk(key[0], key[1], payload, seq)
            self._flush()
        else:
            held.pending.append(_ChunkOut(seq, payload))

    def result(self, key: TaskKey, payload: bytes, usage: pb.Usage | None) -> None:
        """Send a task's result now, or hold it for the next tunnel."""
        self._terminal(key, _ResultOut(payload, usage))

    def error(self, key: TaskKey, code: str, message: str, retryable: bool = False) -> None:
        """Send a task's error now, or hold it for the next tunnel."""
        if code == "CANCELLED" and self.stop_level >= 2:
            # Cancelled because this runner is stopping, not because anyone asked: the control
            # plane may run it elsewhere (it does when the task streamed nothing yet).
            self._terminal(
                key, _ErrorOut("UNAVAILABLE", "the runner stopped before the task finished", True)
            )
            return
        self._terminal(key, _ErrorOut(code, message, retryable))

    # -- model readiness --------------------------------------------------------------------

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
        session = self._session
        if session is not None and session.state is not SessionState.CLOSED:
            session.send_model_status(status)
            self._flush()
        if status.state != pb.FAILED or self.backend.specs() or self._fatal is not None:
            return
        self._fatal = ConfigError(f"nothing left to serve: {status.message}")
        logger.error("stopping: nothing left to serve")
        if self.stop_level == 0:
            self.request_stop()

    def _terminal(self, key: TaskKey, outcome: _Outcome) -> None:
        assert self._executor is not None
        self._executor.finished(key)
        held = self._held.get(key)
        if held is None:
            return
        self._record_finish(key, held, outcome)
        session = self._live_session(key)
        if session is not None:
            del self._held[key]
            self._send_outcome(session, key, outcome)
            self._flush()
        elif held.unwanted:
            # The control plane gave this task up; the slot it held is free again.
            del self._held[key]
            session = self._session
            if session is not None and session.state is SessionState.OPEN and not self.stop_level:
                session.grant(held.model_id, 1)
                self._flush()
        else:
            held.pending.append(outcome)
            held.finished = True

    def _record_finish(self, key: TaskKey, held: _Held, outcome: _Outcome) -> None:
        if held.timed:
            return
        held.timed = True
        run_time = time.monotonic() - held.started
        status = "ok" if isinstance(outcome, _ResultOut) else str(getattr(outcome, "code", "?"))
        if held.unwanted:
            status = "CANCELLED"
        self.metrics.task_finished(status, held.queue_wait, run_time)
        event: dict[str, object] = {
            "event": "finished",
            "task_id": key[0],
            "attempt": key[1],
            "model": held.model_id,
            "method": held.method,
            "status": status,
            "queue_wait_s": round(held.queue_wait, 6),
            "run_time_s": round(run_time, 6),
        }
        usage = outcome.usage if isinstance(outcome, _ResultOut) else None
        if usage is not None and usage.completion_tokens and run_time > 0:
            event["completion_tokens"] = usage.completion_tokens
            event["tokens_per_s"] = round(usage.completion_tokens / run_time, 2)
        self.hub.publish("task", event)

    # -- what the local API shows -----------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Registered with the control plane and not stopping."""
        return self.connected and self.stop_level == 0

    @property
    def healthy(self) -> bool:
        """Registered, and the control plane was heard from within three heartbeat intervals.

        What a service manager's watchdog follows: false while the tunnel is down or silent.
        """
        return self.connected and time.monotonic() - self._last_recv <= self._silence

    def tunnel_state(self) -> str:
        """``connected``, ``connecting``, ``reconnecting``, ``draining`` or ``stopping``."""
        if self.stop_level:
            return "draining" if self.connected else "stopping"
        if self.connected:
            return "connected"
        return "reconnecting" if self.reconnects or self._outage_since else "connecting"

    def snapshot(self) -> dict[str, object]:
        """Everything a person asks about a runner, as JSON (the local API's /v1/snapshot)."""
        now = time.monotonic()
        statuses = {s.model_id: s for s in self.backend.statuses()}
        models = []
        for spec in self.backend.specs():
            status = statuses.get(spec.model_id)
            state = "ready" if status is None else pb.ModelState.Name(status.state).lower()
            models.append(
                {
                    "id": spec.model_id,
                    "backend": spec.backend,
                    "status": state,
                    "message": status.message if status else "",
                    "progress": round(status.progress, 4) if status else 0.0,
                }
            )
        executor = self._executor
        tasks = [
            {
                "task_id": task_id,
                "attempt": attempt,
                "model": held.model_id,
                "method": held.method,
                "age_s": round(now - held.started, 3),
                "queue_wait_s": round(held.queue_wait, 6),
                "finished": held.finished,
            }
            for (task_id, attempt), held in self._held.items()
            if not held.unwanted
        ]
        sample = self.sampler.latest.to_dict() if self.sampler is not None else None
        return {
            "runner_id": self.runner_id,
            "pid": os.getpid(),
            "version": __version__,
            "api_base": self.settings.api_base,
            "transport": self.settings.transport.value,
            "ready": self.ready,
            "tunnel": {
                "state": self.tunnel_state(),
                "connected_since": self.connected_since,
                "reconnects": self.reconnects,
                "last_error": self._last_error,
            },
            "models": models,
            "pool_size": self.settings.pool_size,
            "busy": executor.busy if executor is not None else 0,
            "tasks": tasks,
            "started": self.started,
            "watchers": len(self.hub),
            "telemetry": sample,
        }

    def metrics_text(self) -> str:
        """The Prometheus exposition of this runner (the local API's /metrics)."""
        executor = self._executor
        return self.metrics.render(
            inflight=executor.busy if executor is not None else 0,
            pool_size=self.settings.pool_size,
            reconnects=self.reconnects,
            ready=self.ready,
            gpus=self.sampler.latest.gpu if self.sampler is not None else None,
        )

    async def _forward_logs(self) -> None:
        """Send the runner's log records to the control plane in batches (bounded)."""
        sub = self.hub.subscribe(frozenset({"log"}), watcher=False)
        reported = unsent = 0
        try:
            while True:
                batch = [(await sub.queue.get()).data]
                await asyncio.sleep(_LOG_BATCH_S)  # let a burst gather into one frame
                while not sub.queue.empty() and len(batch) < _LOG_BATCH_MAX:
                    batch.append(sub.queue.get_nowait().data)
                session = self._session
                if session is None or session.state not in (
                    SessionState.OPEN,
                    SessionState.DRAINING,
                ):
                    unsent += len(batch)  # no tunnel: the local API still has them
                    continue
                records = [
                    pb.LogRecord(
                        unix_ms=int(float(r["time"]) * 1000),
                        level=str(r["level"]),
                        logger=str(r["logger"]),
                        message=str(r["message"]),
                        task_id=str(r.get("task_id") or ""),
                    )
                    for r in batch
                ]
                session.send_logs(records, dropped=unsent + sub.dropped - reported)
                reported, unsent = sub.dropped, 0
                self._flush()
        finally:
            self.hub.unsubscribe(sub)

    def _status_event(self) -> None:
        self.hub.publish(
            "status",
            {"state": self.tunnel_state(), "ready": self.ready, "reconnects": self.reconnects},
        )

    def _live_session(self, key: TaskKey) -> RunnerSession | None:
        session = self._session
        if (
            session is not None
            and session.state is not SessionState.CLOSED
            and key in session.tasks
        ):
            return session
        return None

    @staticmethod
    def _send_outcome(session: RunnerSession, key: TaskKey, outcome: _Outcome) -> None:
        if isinstance(outcome, _ChunkOut):
            session.send_chunk(key[0], key[1], outcome.payload, outcome.seq)
        elif isinstance(outcome, _ResultOut):
            session.send_result(key[0], key[1], outcome.payload, outcome.usage)
        else:
            session.send_error(key[0], key[1], outcome.code, outcome.message, outcome.retryable)

    # -- the tunnel -------------------------------------------------------------------------

    async def _connect_loop(self) -> None:
        s = self.settings
        delays = backoff(s.backoff_initial, s.backoff_cap)
        while self.stop_level == 0:
            hint: float | None = None
            try:
                hint = await self._connect_once()
            except (Unauthorized, Forbidden):
                raise
            except (OSError, httpx.HTTPError, TunnelError, ProtocolError) as exc:
                self._outage(_describe(exc))
            if self.connected or hint is not None:
                delays = backoff(s.backoff_initial, s.backoff_cap)
            was_connected, self.connected = self.connected, False
            if was_connected:
                self.connected_since = None
                self._status_event()
            if self.stop_level:
                return
            delay = hint if hint is not None else next(delays)
            await asyncio.sleep(delay)

    def _outage(self, reason: str) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            logger.warning(
                "tunnel to the control plane at %s is down (%s); reconnecting with backoff",
                self.settings.api_base,
                reason,
            )
        else:
            logger.debug("still unreachable: %s", reason)
        if reason != self._last_error:
            self._last_error = reason
            self._status_event()  # watchers (and the service manager) see the new cause

    async def _discover(self) -> tuple[str, str, bool]:
        """Ask the control plane where its tunnel endpoints are (also checks the token)."""
        s = self.settings
        headers = {"Authorization": f"Bearer {s.token}"}
        verify = tls_context(s.ca_file) if s.api_base.startswith("https://") else True
        async with httpx.AsyncClient(timeout=10.0, verify=verify) as client:
            response = await client.get(f"{s.api_base.rstrip('/')}/v2/info", headers=headers)
        if response.status_code == 401:
            raise Unauthorized(
                401,
                "UNAUTHENTICATED",
                f"the control plane at {s.api_base} rejected this runner's token; "
                "log in again (`edge-runner up` refreshes the local context)",
            )
        response.raise_for_status()
        tunnel = response.json()["tunnel"]
        address = s.tunnel_address or str(tunnel["grpc"])
        host, _, port = address.rpartition(":")
        if host in _UNSPECIFIED_HOSTS:
            address = f"{urlsplit(s.api_base).hostname}:{port}"
        websocket = ws_url(s.api_base, str(tunnel.get("websocket") or "/v2/tunnel"))
        return address, websocket, bool(tunnel.get("tls"))

    def _hello(self) -> pb.Hello:
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
            inflight=[pb.TaskRef(task_id=t, attempt=a) for t, a in self._held],
        )

    async def _connect_once(self) -> float | None:
        """Run one tunnel session; returns a reconnect hint in seconds, if the peer gave one."""
        grpc_address, websocket_url, tls = await self._discover()
        async with open_transport(
            self.settings.transport,
            grpc_address=grpc_address,
            ws_url=websocket_url,
            token=self.settings.token,
            tls=tls,
            ca_file=self.settings.ca_file,
        ) as transport:
            session = RunnerSession(self._hello())
            outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
            self._session, self._outbox = session, outbox
            writer = asyncio.create_task(self._write_loop(transport, outbox))
            heartbeat: asyncio.Task[None] | None = None
            self._flush()
            self._last_recv = time.monotonic()
            try:
                while (frame := await transport.recv()) is not None:
                    self._last_recv = time.monotonic()
                    if session.state is SessionState.CLOSED:
                        continue  # we said Goodbye; wait for the control plane to end the call
                    for event in session.receive_frame(frame):
                        hint = self._on_event(session, event)
                        if isinstance(event, pb.Welcome):
                            heartbeat = asyncio.create_task(
                                self._heartbeats(session, event, transport)
                            )
                        if hint is not None:
                            return hint
                    if session.state is SessionState.CLOSED and not self.stop_level:
                        break
                if self.connected and self.stop_level == 0:
                    self._outage(session.close_reason or "the control plane closed the tunnel")
            finally:
                if heartbeat is not None:
                    heartbeat.cancel()
                self._flush()
                outbox.put_nowait(None)
                with contextlib.suppress(TimeoutError, TunnelError):
                    await asyncio.wait_for(writer, 1.0)
                writer.cancel()
                self._session = None
        return None

    def _on_event(self, session: RunnerSession, event: object) -> float | None:
        if isinstance(event, pb.Task):
            key = (event.task_id, event.attempt)
            if self.stop_level:
                session.send_error(key[0], key[1], "UNAVAILABLE", "the runner is draining", True)
                self._flush()
                return None
            assert self._executor is not None
            held = self._held[key] = _Held(
                event.model_id, event.method, queue_wait=event.queued_ms / 1000
            )
            self._executor.submit(event, session.stream_window)
            self.hub.publish(
                "task",
                {
                    "event": "started",
                    "task_id": key[0],
                    "attempt": key[1],
                    "model": held.model_id,
                    "method": held.method,
                    "queue_wait_s": round(held.queue_wait, 6),
                },
            )
        elif isinstance(event, pb.Cancel):
            assert self._executor is not None
            self._executor.cancel((event.task_id, event.attempt))
        elif isinstance(event, pb.StreamCredit):
            assert self._executor is not None
            self._executor.grant((event.task_id, event.attempt), event.upto_seq)
        elif isinstance(event, pb.Welcome):
            self._on_welcome(session, event)
        elif isinstance(event, pb.Goodbye):
            logger.info(
                "control plane said goodbye (%s); reconnecting in %.1f s",
                event.reason,
                event.reconnect_after_ms / 1000,
            )
            self._outage_since = self._outage_since or time.monotonic()
            return event.reconnect_after_ms / 1000
        elif isinstance(event, pb.Error):
            if event.code == "PERMISSION_DENIED":  # retrying cannot help: stop with the reason
                raise Forbidden(
                    403,
                    event.code,
                    f"the control plane at {self.settings.api_base} refused runner "
                    f"{self.runner_id}: {event.message}",
                )
            self._outage(f"refused: {event.message}")
        elif isinstance(event, pb.Drain):
            logger.info("the control plane asked this runner to drain")
            session.send_draining()
            self._flush()
        return None

    def _on_welcome(self, session: RunnerSession, welcome: pb.Welcome) -> None:
        assert self._executor is not None
        self.connected = True
        self.connected_since = time.time()
        self._silence = max(welcome.heartbeat_interval_ms, 10) / 1000 * _SILENT_HEARTBEATS
        if self._outage_since is not None:
            logger.info(
                "tunnel to %s is back after %.1f s",
                self.settings.api_base,
                time.monotonic() - self._outage_since,
            )
            self.reconnects += 1
            self._outage_since = None
        else:
            logger.info("connected to %s as %s", self.settings.api_base, self.runner_id)
        self._resume(session, {(ref.task_id, ref.attempt) for ref in welcome.adopted})
        # Readiness first: the control plane must not route to a model that is still loading
        # in the moment between its credit and its status.
        for status in self.backend.statuses():
            if status.state not in (pb.READY, pb.FAILED):  # a FAILED one is not in the Hello
                session.send_model_status(status)
        for spec in self.backend.specs():
            busy_here = sum(1 for h in self._held.values() if h.model_id == spec.model_id)
            session.grant(spec.model_id, max(0, self._shares.get(spec.model_id, 1) - busy_here))
        if self.stop_level:
            session.send_draining()
        self._flush()
        self._status_event()
        if self._on_ready is not None:
            callback, self._on_ready = self._on_ready, None
            callback(self)

    def _resume(self, session: RunnerSession, adopted: set[TaskKey]) -> None:
        """Send held output of adopted tasks; cancel the tasks the control plane gave up."""
        assert self._executor is not None
        for key, held in list(self._held.items()):
            if held.unwanted:
                continue
            if key in adopted:
                session.adopt(key[0], key[1], held.model_id, held.next_seq)
                for outcome in held.pending:
                    self._send_outcome(session, key, outcome)
                held.pending.clear()
                if held.finished:
                    del self._held[key]
            elif held.finished:
                del self._held[key]
            else:
                held.unwanted = True
                held.pending.clear()
                self._executor.cancel(key)
        if adopted:
            logger.info("resumed %d task(s) after the reconnect", len(adopted))

    async def _heartbeats(
        self, session: RunnerSession, welcome: pb.Welcome, transport: Transport
    ) -> None:
        interval = max(welcome.heartbeat_interval_ms, 10) / 1000
        silence = interval * _SILENT_HEARTBEATS
        while session.state is not SessionState.CLOSED:
            await asyncio.sleep(interval)
            quiet = time.monotonic() - self._last_recv
            if quiet > silence:
                self._outage(f"no message from the control plane for {quiet:.1f} s")
                transport.abort()
                return
            assert self._executor is not None
            gpus, note = self._gpu_samples()
            session.send_heartbeat(self._executor.busy, gpus, note)
            self._flush()

    def _gpu_samples(self) -> tuple[list[pb.GpuSample], str]:
        if self.sampler is None:
            return [], ""
        report = self.sampler.latest.gpu
        samples = [
            pb.GpuSample(
                index=g.index,
                utilization=g.utilization,
                memory_used_bytes=g.memory_used,
                memory_total_bytes=g.memory_total,
                temperature=g.temperature,
            )
            for g in report.gpus
        ]
        return samples, report.note

    def _flush(self) -> None:
        session, outbox = self._session, self._outbox
        if session is None or outbox is None:
            return
        for frame in session.data_to_send():
            outbox.put_nowait(frame)

    @staticmethod
    async def _write_loop(transport: Transport, outbox: asyncio.Queue[bytes | None]) -> None:
        while (frame := await outbox.get()) is not None:
            await transport.send(frame)
        await transport.finish()

    async def _drain(self) -> None:
        """Finish in-flight tasks within the grace period, then say goodbye."""
        executor = self._executor
        assert executor is not None
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
        session = self._session
        if session is not None and session.state is not SessionState.CLOSED:
            session.send_goodbye("runner stopping")
            self._flush()
            if self._outbox is not None:
                self._outbox.put_nowait(None)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {exc}"  # refused, unreachable, or a TLS certificate problem
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
