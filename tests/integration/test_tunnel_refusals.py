"""What a runner does with answers that are not its control plane's: a proxy's page at
discovery is an outage (retried), a 403 is a refusal (fatal), alike on gRPC and WebSocket.

The stand-ins are real servers on 127.0.0.1:0: a few lines of HTTP/1.1 playing a proxy, and a
few frames of HTTP/2 playing one in front of the gRPC port.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge_runner.client import Client
from edge_runner.errors import Forbidden
from edge_runner.runner.transport import TransportKind
from tests.conftest import HELLO, MS, LoopThread, RunningRunner, Stack, wait_for

_REASONS = {200: "OK", 403: "Forbidden"}


@dataclass
class FakeProxy:
    """An HTTP/1.1 server answering each path with a fixed status, type and body."""

    routes: dict[str, tuple[int, str, bytes]]
    server: asyncio.Server | None = None
    requests: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        """The port it listens on."""
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen on 127.0.0.1:0."""
        self.server = await asyncio.start_server(self._answer, "127.0.0.1", 0)

    async def close(self) -> None:
        """Stop listening."""
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        path = head.split(b" ", 2)[1].decode()
        self.requests.append(path)
        status, kind, body = self.routes.get(path, (404, "text/plain", b"not here"))
        reason = _REASONS.get(status, "Not Found")
        reply = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(reply.encode() + body)
        await writer.drain()
        writer.close()


def _h2_frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + struct.pack(">I", stream) + payload
    )


async def _h2_forbidden(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer the first HTTP/2 request with ``:status 403``, as a proxy in front of a gRPC port.

    It answers once the runner's first message (its Hello) is in, so grpc reports the status
    and not a failed write.
    """
    await reader.readexactly(24)  # the client preface
    writer.write(_h2_frame(4, 0, 0))  # our SETTINGS
    stream = 0
    while True:
        head = await reader.readexactly(9)
        payload = await reader.readexactly(int.from_bytes(head[:3], "big"))
        kind, flags = head[3], head[4]
        if kind == 4 and not flags & 1:
            writer.write(_h2_frame(4, 1, 0))  # SETTINGS ack
        elif kind == 1:
            stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        elif kind == 0 and stream and payload:
            break
    # HPACK: ":status: 403" (literal, indexed name 8), "content-type: text/html" (index 31)
    block = b"\x08\x03403" + b"\x0f\x10\x09text/html"
    writer.write(_h2_frame(1, 0x4 | 0x1, stream, block))  # END_HEADERS | END_STREAM
    await writer.drain()
    await reader.read()  # until the runner hangs up
    writer.close()


@pytest.fixture
def bare(loop_thread: LoopThread, tmp_path: Path) -> Iterator[Stack]:
    """A stack with no control plane (yet): runners meet the stand-ins first."""
    stack = Stack(tmp_path / "control", loop_thread, model=HELLO)
    yield stack
    stack.close()


def _proxy(stack: Stack, routes: dict[str, tuple[int, str, bytes]]) -> FakeProxy:
    proxy = FakeProxy(routes)
    stack.loop.run(proxy.start())
    return proxy


def _runner_behind(
    bare: Stack,
    port: int,
    *,
    transport: TransportKind = TransportKind.GRPC,
    token: str | None = None,
) -> RunningRunner:
    """A runner whose control plane address is ``port`` (a stand-in), retrying fast."""
    return bare.start_runner(
        HELLO,
        wait=False,
        api_base=f"http://127.0.0.1:{port}",
        token=token,
        transport=transport,
        backoff_initial=10 * MS,
        backoff_cap=50 * MS,
    )


def test_a_proxy_page_at_discovery_is_retried_until_the_control_plane_answers(
    bare: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """A 200 with HTML instead of the info is an outage, logged once with what came back;
    the runner keeps trying and registers once the real control plane is there."""
    caplog.set_level(logging.INFO, logger="edge_runner.runner.connection")
    page = (200, "text/html; charset=utf-8", b"<html><body>Please sign in</body></html>")
    proxy = _proxy(bare, {"/v2/info": page})
    port = proxy.port
    # The runner's token exists once a control plane bootstrapped the data dir.
    bare.start_control()
    bare.stop_control()
    running = _runner_behind(bare, port)
    wait_for(lambda: len(proxy.requests) >= 3, "the runner to ask again")
    assert not running.task.done(), "the runner stopped at a proxy's page"
    assert "text/html" in running.runner.connection.last_error
    bare.loop.run(proxy.close())
    bare.start_control(port=port)
    wait_for(lambda: running.runner.connected, "the runner to register")
    with Client(bare.api_base, bare.token) as client:
        assert client.predict("hello", text="through") == "Hello, through!"
    downs = [r for r in caplog.records if "is down" in r.message]
    assert len(downs) == 1 and "text/html" in downs[0].message
    assert len([r for r in caplog.records if "is back" in r.message]) == 1


def test_info_without_tunnel_addresses_is_retried(bare: Stack) -> None:
    """JSON that is not the control plane's info (no ``tunnel``) is retried, not fatal."""
    proxy = _proxy(bare, {"/v2/info": (200, "application/json", b'{"status": "ok"}')})
    running = _runner_behind(bare, proxy.port, token="er_pat_any")
    wait_for(lambda: len(proxy.requests) >= 3, "the runner to ask again")
    assert not running.task.done()
    assert "without tunnel addresses" in running.runner.connection.last_error
    bare.loop.run(proxy.close())


@pytest.mark.parametrize("transport", [TransportKind.GRPC, TransportKind.WS], ids=["grpc", "ws"])
def test_a_403_at_discovery_stops_the_runner(bare: Stack, transport: TransportKind) -> None:
    """/v2/info answering 403 is a refusal on either transport: Forbidden, not a retry loop."""
    proxy = _proxy(bare, {"/v2/info": (403, "text/html", b"<h1>Forbidden</h1>")})
    running = _runner_behind(bare, proxy.port, transport=transport, token="er_pat_any")
    with pytest.raises(Forbidden, match="403 Forbidden"):
        running.task.result(10_000 * MS)
    assert proxy.requests == ["/v2/info"]
    bare.loop.run(proxy.close())


@pytest.mark.parametrize("transport", [TransportKind.GRPC, TransportKind.WS], ids=["grpc", "ws"])
def test_a_403_on_the_tunnel_stops_the_runner_on_both_transports(
    bare: Stack, transport: TransportKind
) -> None:
    """A 403 where the tunnel opens (the WebSocket upgrade, or the HTTP/2 request that carries
    the gRPC stream) is Forbidden on both transports."""
    handlers: set[asyncio.Task[None]] = set()

    async def h2_forbidden(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await _h2_forbidden(reader, writer)
        finally:
            writer.close()

    grpc_proxy = bare.loop.run(asyncio.start_server(h2_forbidden, "127.0.0.1", 0))
    grpc_port = grpc_proxy.sockets[0].getsockname()[1]
    info = {"tunnel": {"grpc": f"127.0.0.1:{grpc_port}", "websocket": "/v2/tunnel"}}
    proxy = _proxy(
        bare,
        {
            "/v2/info": (200, "application/json", json.dumps(info).encode()),
            "/v2/tunnel": (403, "text/html", b"<h1>Forbidden</h1>"),
        },
    )
    running = _runner_behind(bare, proxy.port, transport=transport, token="er_pat_any")
    with pytest.raises(Forbidden, match="refused this runner's tunnel"):
        running.task.result(10_000 * MS)
    assert proxy.requests.count("/v2/info") == 1

    async def close_all() -> None:
        grpc_proxy.close()
        for handler in handlers:  # a connection the runner has not hung up yet
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await proxy.close()

    bare.loop.run(close_all())
