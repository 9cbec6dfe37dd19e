"""The control plane process: registry + HTTP API (uvicorn) + gRPC tunnel endpoint, on one loop.

async with ControlPlane(settings) as cp:
    print(cp.api_base)          # http://127.0.0.1:7070
    await cp.wait_closed()      # until stop() is called (e.g. from a signal handler)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from types import TracebackType

import uvicorn

from edge_runner.control.api import create_app
from edge_runner.control.auth import bootstrap_admin
from edge_runner.control.config import ControlConfig
from edge_runner.control.datadir import DataDirLock
from edge_runner.control.http_guard import HttpLimits, guarded_protocol
from edge_runner.control.registry import Registry
from edge_runner.control.state import ControlState
from edge_runner.control.tunnel_grpc import GrpcTunnelServer
from edge_runner.errors import ErrorCode
from edge_runner.protocol.codec import MAX_FRAME_BYTES

__all__ = ["ControlPlane"]

logger = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the process owner decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this on Linux: without it a response split over two writes
    # waits for the client's delayed ACK (~40 ms per request).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _ensure_fd_limit(connections: int) -> None:
    """Raise the soft open-files limit so ``connections`` sockets fit, as far as allowed.

    A soft limit of 1024 (common) would otherwise fail accept() well before the connection
    cap answers 503.
    """
    try:
        import resource
    except ImportError:  # Windows: no such limit to raise
        return
    wanted = connections + 256  # the gRPC port, tunnels, the registry, logs
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        logger.warning(
            "the open-files limit (%d) is below --max-connections %d + 256; raise it "
            "(ulimit -n, or LimitNOFILE= in a systemd unit)",
            hard,
            connections,
        )


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class ControlPlane:
    """A running control plane; an async context manager that drains on exit."""

    def __init__(self, settings: ControlConfig) -> None:
        self.settings = settings
        self.state: ControlState | None = None
        self.created_admin_token = False
        self._registry: Registry | None = None
        self._lock: DataDirLock | None = None
        self._grpc: GrpcTunnelServer | None = None
        self._http: _EmbeddedServer | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self.port = 0
        self.grpc_port = 0

    @property
    def api_base(self) -> str:
        """The HTTP base URL clients use."""
        scheme = "https" if self.settings.tls else "http"
        return f"{scheme}://{_format_host(self.settings.host)}:{self.port}"

    @property
    def open_connections(self) -> int:
        """Connections the HTTP port holds now (a WebSocket tunnel counts as one)."""
        return len(self._http.server_state.connections) if self._http is not None else 0

    async def __aenter__(self) -> ControlPlane:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = DataDirLock(settings.data_dir)
        lock.acquire()  # before the registry: a second control plane must not touch it
        self._lock = lock
        try:
            return await self._start(settings, lock)
        except BaseException:
            await self.close()
            raise

    async def _start(self, settings: ControlConfig, lock: DataDirLock) -> ControlPlane:
        self._registry = Registry(settings.database)
        self.created_admin_token = bootstrap_admin(self._registry, settings.admin_token_file)
        state = self.state = ControlState(settings, self._registry)
        sock = _bind(settings.host, settings.port)
        try:
            self._grpc = GrpcTunnelServer(state)
            tls = None
            if settings.tls_cert is not None and settings.tls_key is not None:
                tls = (settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())
            self.grpc_port = await self._grpc.start(settings.host, settings.grpc_port, tls)
        except BaseException:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        state.grpc_address = f"{_format_host(settings.host)}:{self.grpc_port}"
        state.api_base = self.api_base
        _ensure_fd_limit(settings.max_connections)
        limits = HttpLimits(
            max_connections=settings.max_connections,
            max_header_bytes=settings.max_header_bytes,
            header_timeout=settings.header_timeout,
            body_idle_timeout=settings.body_idle_timeout,
            # Later than the stream idle timeout, so a stalled stream fails SLOW_READER (what
            # its task record then says) before its connection is dropped.
            write_stall_timeout=settings.stream_idle_timeout
            + max(1.0, settings.stream_idle_timeout / 4),
        )
        config = uvicorn.Config(
            create_app(state),
            http=guarded_protocol(limits),  # header cap, header/body timeouts, connection cap
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=2,
            timeout_keep_alive=30,
            ws_max_size=MAX_FRAME_BYTES,
            ws_ping_interval=None,  # tunnel heartbeats do this job, on both transports
            # No permessage-deflate: one socket read of compressed messages would be inflated
            # whole before the app takes the first (a few KiB could become GiB, from a client
            # that has not shown its token yet), and on loopback and LANs it only costs CPU.
            ws_per_message_deflate=False,
            ssl_certfile=str(settings.tls_cert) if settings.tls else None,
            ssl_keyfile=str(settings.tls_key) if settings.tls else None,
        )
        self._http = _EmbeddedServer(config)
        self._http_task = asyncio.create_task(self._http.serve(sockets=[sock]))
        self._monitor = asyncio.create_task(state.monitor(), name="edge-runner-monitor")
        while not self._http.started:
            if self._http_task.done():
                self._http_task.result()  # surfaces the start-up error
                raise RuntimeError("the HTTP server stopped during start-up")
            await asyncio.sleep(0.005)
        lock.publish(
            {
                "api_base": self.api_base,
                "grpc": state.grpc_address,
                "admin_token_file": str(settings.admin_token_file),
            }
        )
        logger.info(
            "control plane listening: api %s, tunnel grpc %s", self.api_base, state.grpc_address
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def stop(self) -> None:
        """Ask :meth:`wait_closed` to return (safe from a signal handler)."""
        self._stopped.set()

    async def wait_closed(self) -> None:
        """Wait until :meth:`stop` is called."""
        await self._stopped.wait()

    async def close(self) -> None:
        """Planned stop: tell runners when to come back, stop both servers, close the DB."""
        state = self.state
        if self._monitor is not None:
            self._monitor.cancel()
            self._monitor = None
        if state is not None:
            state.close()
            # Answer waiting clients now (503, retry) rather than have uvicorn cancel them.
            state.dispatcher.fail_all(
                ErrorCode.UNAVAILABLE, "the control plane is shutting down; retry in a moment"
            )
            for link in list(state.dispatcher.links.values()):
                link.session.send_goodbye(
                    "control plane is restarting", self.settings.reconnect_after_ms
                )
                link.flush()
                link.outbox.put_nowait(None)
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._http_task
            self._http = None
        if self._grpc is not None:
            await self._grpc.stop(grace=1.0)
            self._grpc = None
        if self._registry is not None:
            self._registry.close()
            self._registry = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self._stopped.set()
