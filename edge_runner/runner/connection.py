"""The runner's tunnel to its control plane: discovery, the connect loop, heartbeats, and the
one function that decides whether a failure is retried.

Reconnect policy: every failure to reach the control plane is retried with full-jitter backoff
(0.5 s → 10 s cap), forever, except a refusal that retrying cannot change, which is fatal: a
rejected token (HTTP 401, gRPC ``UNAUTHENTICATED``), a forbidden one (HTTP 403, gRPC
``PERMISSION_DENIED``) and a runner id that belongs to another user (a ``PERMISSION_DENIED``
Error frame). :func:`classify` says which for every exception, the same on both transports. An
answer that is not the control plane's info (a proxy's HTML page) is retried like an outage.

An outage is logged once (WARNING, with the cause) when it starts and once (INFO, with its
duration) when it ends; each retry only at DEBUG. A ``Goodbye`` with ``reconnect_after_ms`` (a
planned control-plane restart) sets the next delay instead of the backoff. A tunnel that
delivers nothing for three heartbeat intervals is dead (half-open) and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from edge_runner.errors import (
    ConfigError,
    ErrorCode,
    Forbidden,
    ProtocolError,
    TunnelError,
    Unauthorized,
)
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import RunnerSession, SessionState
from edge_runner.runner.backoff import backoff
from edge_runner.runner.settings import RunnerSettings
from edge_runner.runner.transport import (
    Transport,
    TransportKind,
    open_transport,
    tls_context,
    translate,
    ws_url,
)

__all__ = ["Connection", "Dial", "Fatal", "Retry", "TunnelOwner", "classify", "describe"]

logger = logging.getLogger(__name__)

_UNSPECIFIED_HOSTS = {"0.0.0.0", "::", "[::]", ""}
#: a tunnel silent for this many heartbeat intervals is considered dead
_SILENT_HEARTBEATS = 3


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again after the backoff.

    Attributes:
        reason: the cause, as the outage log and the runner's snapshot show it.
    """

    reason: str


@dataclass(frozen=True, slots=True)
class Fatal:
    """Give up: the runner stops with ``error``."""

    error: Exception


def classify(exc: Exception) -> Retry | Fatal:
    """Retry or give up, for anything a connection attempt can raise.

    grpc's and websockets' errors are first translated as the transports translate them, so a
    refusal means the same on both; an HTTP 401 or 403 from discovery is a refusal too. Errors
    that are neither a refusal nor a network, tunnel or protocol failure are bugs: fatal, as
    they are.
    """
    exc = translate(exc)
    match exc:
        case Unauthorized() | Forbidden() | ConfigError():
            return Fatal(exc)
        case httpx.HTTPStatusError() if exc.response.status_code in (401, 403):
            url = exc.request.url
            return Fatal(_refusal(exc.response, f"{url.scheme}://{url.netloc.decode()}"))
        case TunnelError() | ProtocolError() | OSError() | httpx.HTTPError():
            return Retry(describe(exc))
        case _:
            return Fatal(exc)


def describe(exc: BaseException) -> str:
    """A failure's cause in a few words, for the outage log and the snapshot."""
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {exc}"  # refused, unreachable, or a TLS certificate problem
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _refusal(response: httpx.Response, api_base: str) -> Unauthorized | Forbidden:
    """The fatal error for a 401 or 403 answer from the control plane."""
    if response.status_code == 401:
        return Unauthorized(
            401,
            ErrorCode.UNAUTHENTICATED,
            f"the control plane at {api_base} rejected this runner's token; "
            "log in again (`edge-runner up` refreshes the local context)",
        )
    return Forbidden(
        403,
        ErrorCode.PERMISSION_DENIED,
        f"the control plane at {api_base} answered {response.request.method} "
        f"{response.request.url.path} with 403 Forbidden: this runner's token may not be used "
        "there; log in again (`edge-runner up` refreshes the local context)",
    )


class TunnelOwner(Protocol):
    """What a :class:`Connection` asks of the runner it serves (always on the event loop)."""

    @property
    def stopping(self) -> bool:
        """A stop was requested: take no new tasks, do not reconnect."""

    def hello(self) -> pb.Hello:
        """The Hello that opens the next session."""

    def welcomed(self, session: RunnerSession, welcome: pb.Welcome) -> None:
        """The control plane registered the runner on ``session``."""

    def received(
        self,
        session: RunnerSession,
        event: pb.Task | pb.Cancel | pb.StreamCredit | pb.InputChunk | pb.InputEnd,
    ) -> None:
        """A task, or a cancel, stream credit, input item or input end for one."""

    def heartbeat(self, session: RunnerSession) -> None:
        """Queue a heartbeat on ``session``."""

    def tunnel_changed(self) -> None:
        """The tunnel went up or down, or its last error changed."""


#: opens one tunnel connection; the default discovers the control plane and dials it (the
#: testing kit's in-memory tunnel is another)
Dial = Callable[[], contextlib.AbstractAsyncContextManager[Transport]]


class Connection:
    """One runner's tunnel, reconnected until the runner stops.

    Attributes:
        connected: registered (welcomed) on the current session.
        connected_since: wall-clock time of that Welcome.
        reconnects: how many outages ended with a new Welcome.
        last_error: the cause of the latest outage ("" before any).
        outage_since: ``time.monotonic()`` when the current outage began, or None.
        session: the current session, or None between tunnels.
    """

    def __init__(
        self,
        settings: RunnerSettings,
        runner_id: str,
        owner: TunnelOwner,
        dial: Dial | None = None,
    ) -> None:
        self.settings = settings
        self._dial = dial or self._dial_control_plane
        self.runner_id = runner_id
        self._owner = owner
        self.connected = False
        self.connected_since: float | None = None
        self.reconnects = 0
        self.last_error = ""
        self.outage_since: float | None = None
        self.session: RunnerSession | None = None
        self._outbox: asyncio.Queue[bytes | None] | None = None
        self._last_recv = time.monotonic()
        #: a registered tunnel silent this long is not healthy (set from the Welcome)
        self._silence = 5.0 * _SILENT_HEARTBEATS

    @property
    def healthy(self) -> bool:
        """Registered, and the control plane was heard from within three heartbeat intervals."""
        return self.connected and time.monotonic() - self._last_recv <= self._silence

    async def run(self) -> None:
        """Keep the tunnel up until the owner stops.

        Raises:
            Unauthorized: the control plane rejected the token.
            Forbidden: the token may not open tunnels, or the runner id belongs to another user.
        """
        s = self.settings
        delays = backoff(s.backoff_initial, s.backoff_cap)
        while not self._owner.stopping:
            hint: float | None = None
            try:
                hint = await self._connect_once()
            except Exception as exc:
                decision = classify(exc)
                if isinstance(decision, Fatal):
                    if decision.error is exc:
                        raise
                    raise decision.error from exc
                self.outage(decision.reason)
            if self.connected or hint is not None:
                delays = backoff(s.backoff_initial, s.backoff_cap)
            was_connected, self.connected = self.connected, False
            if was_connected:
                self.connected_since = None
                self._owner.tunnel_changed()
            if self._owner.stopping:
                return
            await asyncio.sleep(hint if hint is not None else next(delays))

    def flush(self) -> None:
        """Hand the frames the session queued to the writer."""
        session, outbox = self.session, self._outbox
        if session is None or outbox is None:
            return
        for frame in session.data_to_send():
            outbox.put_nowait(frame)

    def draining(self) -> None:
        """Tell the control plane to stop routing here (if the session is open)."""
        session = self.session
        if session is not None and session.state is SessionState.OPEN:
            session.send_draining()
            self.flush()

    def goodbye(self, reason: str) -> None:
        """Say goodbye and stop writing; the control plane then ends the call."""
        session = self.session
        if session is not None and session.state is not SessionState.CLOSED:
            session.send_goodbye(reason)
            self.flush()
            if self._outbox is not None:
                self._outbox.put_nowait(None)

    def outage(self, reason: str) -> None:
        """Note that the tunnel is down: logged once per outage, each cause kept."""
        if self.outage_since is None:
            self.outage_since = time.monotonic()
            logger.warning(
                "tunnel to the control plane at %s is down (%s); reconnecting with backoff",
                self.settings.api_base,
                reason,
            )
        else:
            logger.debug("still unreachable: %s", reason)
        if reason != self.last_error:
            self.last_error = reason
            self._owner.tunnel_changed()  # watchers (and the service manager) see the new cause

    # -- one tunnel -------------------------------------------------------------------------

    async def _discover(self) -> tuple[str, str, bool]:
        """Ask the control plane where its tunnel endpoints are (also checks the token).

        Raises:
            Unauthorized, Forbidden: the control plane refused the token (401, 403).
            TunnelError: the answer is not the control plane's info (a proxy's page).
            httpx.HTTPError: it could not be reached, or answered with another error.
        """
        s = self.settings
        headers = {"Authorization": f"Bearer {s.token}"}
        verify = tls_context(s.ca_file) if s.api_base.startswith("https://") else True
        url = f"{s.api_base.rstrip('/')}/v2/info"
        async with httpx.AsyncClient(timeout=10.0, verify=verify) as client:
            response = await client.get(url, headers=headers)
        if response.status_code in (401, 403):
            raise _refusal(response, s.api_base)
        response.raise_for_status()
        tunnel = _tunnel_info(response, url)
        grpc_address = s.tunnel_address or str(tunnel.get("grpc") or "")
        if grpc_address:
            host, _, port = grpc_address.rpartition(":")
            if host in _UNSPECIFIED_HOSTS:
                grpc_address = f"{urlsplit(s.api_base).hostname}:{port}"
        elif s.transport is TransportKind.GRPC:
            raise TunnelError(f"{url} names no gRPC tunnel address: {_excerpt(response)}")
        websocket = ws_url(s.api_base, str(tunnel.get("websocket") or "/v2/tunnel"))
        return grpc_address, websocket, bool(tunnel.get("tls"))

    @contextlib.asynccontextmanager
    async def _dial_control_plane(self) -> AsyncIterator[Transport]:
        """Discover the tunnel endpoints, then open the configured transport to them."""
        grpc_address, websocket_url, tls = await self._discover()
        async with open_transport(
            self.settings.transport,
            grpc_address=grpc_address,
            ws_url=websocket_url,
            token=self.settings.token,
            tls=tls,
            ca_file=self.settings.ca_file,
        ) as transport:
            yield transport

    async def _connect_once(self) -> float | None:
        """Run one tunnel session; returns a reconnect hint in seconds, if the peer gave one."""
        async with self._dial() as transport:
            session = RunnerSession(self._owner.hello())
            outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
            self.session, self._outbox = session, outbox
            writer = asyncio.create_task(_write_loop(transport, outbox))
            heartbeat: asyncio.Task[None] | None = None
            self.flush()
            self._last_recv = time.monotonic()
            try:
                while (frame := await transport.recv()) is not None:
                    self._last_recv = time.monotonic()
                    if session.state is SessionState.CLOSED:
                        continue  # we said Goodbye; wait for the control plane to end the call
                    for event in session.receive_frame(frame):
                        hint = self._handle(session, event)
                        if isinstance(event, pb.Welcome):
                            heartbeat = asyncio.create_task(
                                self._heartbeats(session, event, transport)
                            )
                        if hint is not None:
                            return hint
                    if session.state is SessionState.CLOSED and not self._owner.stopping:
                        break
                if self.connected and not self._owner.stopping:
                    self.outage(session.close_reason or "the control plane closed the tunnel")
            finally:
                if heartbeat is not None:
                    heartbeat.cancel()
                self.flush()
                outbox.put_nowait(None)
                with contextlib.suppress(TimeoutError, TunnelError):
                    await asyncio.wait_for(writer, 1.0)
                writer.cancel()
                self.session = None
        return None

    def _handle(self, session: RunnerSession, event: object) -> float | None:
        """Act on one event; returns a reconnect hint in seconds for a Goodbye that gives one."""
        match event:
            case pb.Task() | pb.Cancel() | pb.StreamCredit() | pb.InputChunk() | pb.InputEnd():
                self._owner.received(session, event)
            case pb.Welcome():
                self._welcomed(session, event)
            case pb.Goodbye():
                logger.info(
                    "control plane said goodbye (%s); reconnecting in %.1f s",
                    event.reason,
                    event.reconnect_after_ms / 1000,
                )
                self.outage_since = self.outage_since or time.monotonic()
                return event.reconnect_after_ms / 1000
            case pb.Error(
                code=ErrorCode.PERMISSION_DENIED
            ):  # retrying cannot help: stop with the reason
                raise Forbidden(
                    403,
                    event.code,
                    f"the control plane at {self.settings.api_base} refused runner "
                    f"{self.runner_id}: {event.message}",
                )
            case pb.Error():
                self.outage(f"refused: {event.message}")
            case pb.Drain():
                logger.info("the control plane asked this runner to drain")
                session.send_draining()
                self.flush()
        return None

    def _welcomed(self, session: RunnerSession, welcome: pb.Welcome) -> None:
        self.connected = True
        self.connected_since = time.time()
        self._silence = max(welcome.heartbeat_interval_ms, 10) / 1000 * _SILENT_HEARTBEATS
        if self.outage_since is not None:
            logger.info(
                "tunnel to %s is back after %.1f s",
                self.settings.api_base,
                time.monotonic() - self.outage_since,
            )
            self.reconnects += 1
            self.outage_since = None
        else:
            logger.info("connected to %s as %s", self.settings.api_base, self.runner_id)
        self._owner.welcomed(session, welcome)

    async def _heartbeats(
        self, session: RunnerSession, welcome: pb.Welcome, transport: Transport
    ) -> None:
        interval = max(welcome.heartbeat_interval_ms, 10) / 1000
        silence = interval * _SILENT_HEARTBEATS
        while session.state is not SessionState.CLOSED:
            await asyncio.sleep(interval)
            quiet = time.monotonic() - self._last_recv
            if quiet > silence:
                self.outage(f"no message from the control plane for {quiet:.1f} s")
                transport.abort()
                return
            self._owner.heartbeat(session)
            self.flush()


async def _write_loop(transport: Transport, outbox: asyncio.Queue[bytes | None]) -> None:
    while (frame := await outbox.get()) is not None:
        await transport.send(frame)
    await transport.finish()


def _tunnel_info(response: httpx.Response, url: str) -> dict[str, Any]:
    """The ``tunnel`` object of a ``/v2/info`` answer.

    Raises:
        TunnelError: the answer is not JSON, or has no ``tunnel`` object (a captive portal or
            a proxy answering 200 with its own page): the outage is retried, not fatal.
    """
    try:
        info = response.json()
    except ValueError as exc:
        kind = response.headers.get("content-type") or "no content type"
        raise TunnelError(
            f"{url} answered {response.status_code} with {kind}, not the control plane's JSON "
            f"(is a proxy or captive portal in the way?): {_excerpt(response)}"
        ) from exc
    tunnel = info.get("tunnel") if isinstance(info, dict) else None
    if not isinstance(tunnel, dict):
        raise TunnelError(
            f"{url} answered without tunnel addresses (is api_base an edge-runner control "
            f"plane?): {_excerpt(response)}"
        )
    return tunnel


def _excerpt(response: httpx.Response, limit: int = 80) -> str:
    """The start of a response body, on one line, for a log."""
    text = " ".join(response.text.split())
    return ascii(text[:limit] + ("..." if len(text) > limit else ""))
