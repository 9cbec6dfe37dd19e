"""The runner's lifecycle: load the backend, keep the tunnel up, run tasks, stop in stages.

Reconnect policy: every failure to reach the control plane is retried with full-jitter backoff
(0.5 s → 10 s cap), forever, except a rejected token, which is fatal. An outage is logged once
when it starts and once when it ends. A ``Goodbye`` with ``reconnect_after_ms`` (a planned
control-plane restart) sets the next delay instead of the backoff.

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
from urllib.parse import urlsplit

import grpc
import httpx

from edge_runner._version import __version__
from edge_runner.backends.base import Backend
from edge_runner.errors import ProtocolError, Unauthorized
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import RunnerSession, SessionState
from edge_runner.protocol.codec import MAX_FRAME_BYTES
from edge_runner.runner.backoff import backoff
from edge_runner.runner.executor import Executor, TaskKey, TaskSink

__all__ = ["CONNECT_METHOD", "Runner", "RunnerSettings"]

logger = logging.getLogger(__name__)

CONNECT_METHOD = "/edge_runner.tunnel.v1.RunnerTunnel/Connect"
_UNSPECIFIED_HOSTS = {"0.0.0.0", "::", "[::]", ""}
#: how long a stopping runner waits for the control plane to close the tunnel after Goodbye
_CLOSE_WAIT_S = 2.0


@dataclass(frozen=True)
class RunnerSettings:
    """How a runner runs. Durations in seconds.

    Attributes:
        api_base: the control plane's HTTP base URL (the tunnel address comes from /v2/info).
        token: the runner's bearer token (never logged; excluded from repr).
        pool_size: worker threads, i.e. tasks run at once.
        grace_period: how long a drain waits for in-flight tasks.
        tunnel_address: skip discovery and dial this gRPC ``host:port``.
    """

    api_base: str
    token: str = field(repr=False)
    pool_size: int = 32
    nodepool: str = "default"
    labels: dict[str, str] = field(default_factory=dict)
    grace_period: float = 30.0
    backoff_initial: float = 0.5
    backoff_cap: float = 10.0
    tunnel_address: str | None = None


class Runner(TaskSink):
    """One runner process: one backend, one tunnel, one thread pool."""

    def __init__(self, settings: RunnerSettings, backend: Backend, runner_id: str) -> None:
        self.settings = settings
        self.backend = backend
        self.runner_id = runner_id
        self.stop_level = 0
        self.connected = False
        self.reconnects = 0
        self._session: RunnerSession | None = None
        self._outbox: asyncio.Queue[bytes | None] | None = None
        self._executor: Executor | None = None
        self._stop_requested: asyncio.Event | None = None
        self._task_models: dict[TaskKey, str] = {}
        self._outage_since: float | None = None
        self._on_ready: Callable[[Runner], None] | None = None
        self._last_error = ""

    # -- public -----------------------------------------------------------------------------

    async def run(self, on_ready: Callable[[Runner], None] | None = None) -> None:
        """Load the backend and serve until stopped.

        Raises:
            Unauthorized: the control plane rejected the token.
            ModelFolderError: the model could not be loaded.
        """
        loop = asyncio.get_running_loop()
        self._on_ready = on_ready
        self._stop_requested = asyncio.Event()
        await asyncio.to_thread(self.backend.load)
        self._executor = Executor(self.settings.pool_size, self.backend, self, loop)
        main = asyncio.create_task(self._connect_loop(), name="edge-runner-tunnel")
        stop = asyncio.create_task(self._stop_requested.wait())
        try:
            await asyncio.wait({main, stop}, return_when=asyncio.FIRST_COMPLETED)
            if main.done():
                main.result()  # a fatal error (rejected token) surfaces here
                return
            await self._drain()
            logger.debug("drained; waiting for the control plane to close the tunnel")
            # Closing the channel ourselves would drop frames still on their way; after our
            # Goodbye the control plane ends the call, and the read loop returns by itself.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(main), _CLOSE_WAIT_S)
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await main
        finally:
            stop.cancel()
            main.cancel()
            self._executor.shutdown()
            await asyncio.to_thread(self.backend.close)

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
        elif self.stop_level == 2:
            logger.warning("cancelling %d in-flight task(s); signal again to exit now", busy)
            if executor is not None:
                executor.cancel_all()
        else:
            logger.warning("exiting now")
            os._exit(130)

    # -- TaskSink (called on the loop by the executor) --------------------------------------

    def chunk(self, key: TaskKey, payload: bytes) -> None:
        """Forward a streamed piece, if the task belongs to the live session."""
        session = self._session
        if session is not None and key in session.tasks:
            session.send_chunk(key[0], key[1], payload)
            self._flush()

    def result(self, key: TaskKey, payload: bytes, usage: pb.Usage | None) -> None:
        """Send a task's result (or re-grant its slot if its session is gone)."""
        session = self._settle(key)
        if session is not None:
            session.send_result(key[0], key[1], payload, usage)
            self._flush()

    def error(self, key: TaskKey, code: str, message: str) -> None:
        """Send a task's error (or re-grant its slot if its session is gone)."""
        session = self._settle(key)
        if session is not None:
            session.send_error(key[0], key[1], code, message)
            self._flush()

    def _settle(self, key: TaskKey) -> RunnerSession | None:
        assert self._executor is not None
        self._executor.finished(key)
        model_id = self._task_models.pop(key, "")
        session = self._session
        if session is None or session.state is SessionState.CLOSED:
            return None
        if key in session.tasks:
            return session
        # The task came over an earlier tunnel: its slot was never returned on this one.
        if session.state is SessionState.OPEN and self.stop_level == 0 and model_id:
            session.grant(model_id, 1)
            self._flush()
        return None

    # -- the tunnel -------------------------------------------------------------------------

    async def _connect_loop(self) -> None:
        s = self.settings
        delays = backoff(s.backoff_initial, s.backoff_cap)
        while self.stop_level == 0:
            hint: float | None = None
            try:
                hint = await self._connect_once()
            except Unauthorized:
                raise
            except (OSError, httpx.HTTPError, grpc.aio.AioRpcError, ProtocolError) as exc:
                self._outage(_describe(exc))
            if self.connected or hint is not None:
                delays = backoff(s.backoff_initial, s.backoff_cap)
            self.connected = False
            if self.stop_level:
                return
            delay = hint if hint is not None else next(delays)
            await asyncio.sleep(delay)

    def _outage(self, reason: str) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            logger.warning(
                "control plane at %s is unreachable (%s); retrying with backoff",
                self.settings.api_base,
                reason,
            )
        elif reason != self._last_error:
            logger.debug("still unreachable: %s", reason)
        self._last_error = reason

    async def _discover(self) -> str:
        """Ask the control plane where its tunnel endpoint is (also checks the token)."""
        s = self.settings
        if s.tunnel_address:
            return s.tunnel_address
        headers = {"Authorization": f"Bearer {s.token}"}
        async with httpx.AsyncClient(timeout=10.0) as client:
            response = await client.get(f"{s.api_base.rstrip('/')}/v2/info", headers=headers)
        if response.status_code == 401:
            raise Unauthorized(
                401,
                "UNAUTHENTICATED",
                f"the control plane at {s.api_base} rejected this runner's token; "
                "log in again (`edge-runner up` refreshes the local context)",
            )
        response.raise_for_status()
        address = str(response.json()["tunnel"]["grpc"])
        host, _, port = address.rpartition(":")
        if host in _UNSPECIFIED_HOSTS:
            address = f"{urlsplit(s.api_base).hostname}:{port}"
        return address

    def _hello(self) -> pb.Hello:
        assert self._executor is not None
        s = self.settings
        return pb.Hello(
            runner_id=self.runner_id,
            version=__version__,
            hostname=socket.gethostname(),
            labels=s.labels,
            nodepool=s.nodepool,
            pool_size=s.pool_size,
            models=self.backend.specs(),
        )

    async def _connect_once(self) -> float | None:
        """Run one tunnel session; returns a reconnect hint in seconds, if the peer gave one."""
        address = await self._discover()
        options = [
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.max_receive_message_length", MAX_FRAME_BYTES),
            ("grpc.max_send_message_length", MAX_FRAME_BYTES),
        ]
        async with grpc.aio.insecure_channel(address, options=options) as channel:
            call = channel.stream_stream(CONNECT_METHOD)(
                metadata=(("authorization", f"Bearer {self.settings.token}"),)
            )
            session = RunnerSession(self._hello())
            outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
            self._session, self._outbox = session, outbox
            writer = asyncio.create_task(self._write_loop(call, outbox))
            heartbeat: asyncio.Task[None] | None = None
            self._flush()
            try:
                while True:
                    frame = await call.read()
                    if frame is grpc.aio.EOF:
                        break
                    for event in session.receive_frame(frame):
                        hint = self._on_event(session, event)
                        if isinstance(event, pb.Welcome):
                            heartbeat = asyncio.create_task(self._heartbeats(session, event))
                        if hint is not None:
                            return hint
                    if session.state is SessionState.CLOSED:
                        break
            except grpc.aio.AioRpcError as exc:
                if exc.code() is grpc.StatusCode.UNAUTHENTICATED:
                    raise Unauthorized(401, "UNAUTHENTICATED", exc.details() or "") from exc
                if self.stop_level == 0 and self.connected:
                    raise
            finally:
                if heartbeat is not None:
                    heartbeat.cancel()
                self._flush()
                outbox.put_nowait(None)
                with contextlib.suppress(asyncio.TimeoutError, grpc.aio.AioRpcError):
                    await asyncio.wait_for(writer, 1.0)
                writer.cancel()
                self._session = None
                if self.connected and self.stop_level == 0:
                    self._outage(session.close_reason or "the tunnel closed")
        return None

    def _on_event(self, session: RunnerSession, event: object) -> float | None:
        if isinstance(event, pb.Task):
            key = (event.task_id, event.attempt)
            if self.stop_level:
                session.send_error(key[0], key[1], "UNAVAILABLE", "the runner is draining", True)
                self._flush()
                return None
            assert self._executor is not None
            self._task_models[key] = event.model_id
            self._executor.submit(event)
        elif isinstance(event, pb.Cancel):
            assert self._executor is not None
            self._executor.cancel((event.task_id, event.attempt))
        elif isinstance(event, pb.Welcome):
            self._on_welcome(session)
        elif isinstance(event, pb.Goodbye):
            logger.info(
                "control plane said goodbye (%s); reconnecting in %.1f s",
                event.reason,
                event.reconnect_after_ms / 1000,
            )
            self._outage_since = self._outage_since or time.monotonic()
            return event.reconnect_after_ms / 1000
        elif isinstance(event, pb.Error):
            self._outage(f"refused: {event.message}")
        elif isinstance(event, pb.Drain):
            logger.info("the control plane asked this runner to drain")
            session.send_draining()
            self._flush()
        return None

    def _on_welcome(self, session: RunnerSession) -> None:
        assert self._executor is not None
        self.connected = True
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
        free = self.settings.pool_size - self._executor.busy
        for spec in self.backend.specs():
            session.grant(spec.model_id, free)
        if self.stop_level:
            session.send_draining()
        self._flush()
        if self._on_ready is not None:
            callback, self._on_ready = self._on_ready, None
            callback(self)

    async def _heartbeats(self, session: RunnerSession, welcome: pb.Welcome) -> None:
        interval = max(welcome.heartbeat_interval_ms, 100) / 1000
        while session.state is not SessionState.CLOSED:
            await asyncio.sleep(interval)
            assert self._executor is not None
            session.send_heartbeat(self._executor.busy)
            self._flush()

    def _flush(self) -> None:
        session, outbox = self._session, self._outbox
        if session is None or outbox is None:
            return
        for frame in session.data_to_send():
            outbox.put_nowait(frame)

    @staticmethod
    async def _write_loop(
        call: grpc.aio.StreamStreamCall, outbox: asyncio.Queue[bytes | None]
    ) -> None:
        while True:
            frame = await outbox.get()
            if frame is None:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await call.done_writing()
                return
            try:
                await call.write(frame)
            except asyncio.InvalidStateError:
                return  # the RPC already ended; the read side reports why

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
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
