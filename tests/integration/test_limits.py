"""Limits before work: what a client can hold (sockets, header bytes, time, bodies) is bounded,
on the HTTP port and on the gRPC tunnel port, and a well-behaved client is served meanwhile.

Attackers here are raw sockets on loopback; the control plane is the real one (in-process, or a
subprocess where a test reads its memory).
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
import pytest
import uvicorn
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from edge_runner.control.http_guard import HttpLimits, guarded_protocol
from edge_runner.runner.transport import CONNECT_METHOD
from tests.conftest import (
    MS,
    SLOW_MODEL,
    LoopThread,
    Stack,
    spawn_ready,
    stop_process,
    wait_for,
    write_model,
)

HEADER_S = 500 * MS
BODY_S = 500 * MS
HANDSHAKE_S = 500 * MS
MIB = 1024 * 1024


@pytest.fixture
def limited(stack: Stack) -> Stack:
    """The stack with short header, body-idle and handshake timeouts."""
    stack.stop_control()
    stack.start_control(
        header_timeout=HEADER_S, body_idle_timeout=BODY_S, handshake_timeout=HANDSHAKE_S
    )
    return stack


@pytest.fixture
def control_process(tmp_path: Path) -> Iterator[tuple[psutil.Process, str]]:
    """`edge-runner control` as a subprocess (its memory is its own): the process and its port."""
    proc, info = spawn_ready(
        ["control", "--port", "0", "--grpc-port", "0", "--data-dir", str(tmp_path / "cp")],
        dict(os.environ),
    )
    try:
        yield psutil.Process(proc.pid), info["api_base"]
    finally:
        stop_process(proc)


#: raw sockets a test opened, closed after it (most are left for the server to close)
_opened: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_raw_sockets() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10_000 * MS)
    _opened.append(sock)
    return sock


def _port(stack: Stack) -> int:
    assert stack.plane is not None
    return stack.plane.port


def _read_all(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes; fails if it keeps the socket open."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        except TimeoutError as exc:
            raise AssertionError(f"the server kept the socket open for {timeout:.1f} s") from exc
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def _read_until(sock: socket.socket, marker: bytes, timeout: float) -> bytes:
    """Read until ``marker`` arrives; fails if the server closes first."""
    sock.settimeout(timeout)
    data = b""
    while marker not in data:
        piece = sock.recv(65536)
        assert piece, f"the connection closed after {data[:200]!r}"
        data += piece
    return data


def _response(raw: bytes) -> tuple[int, dict[str, str], Any]:
    """Status, headers (lower-case names) and the JSON body of one raw HTTP response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    pairs = (line.split(": ", 1) for line in lines[1:])
    headers = {name.lower(): value for name, value in pairs}
    return int(lines[0].split(" ")[1]), headers, json.loads(body) if body else None


def _push(sock: socket.socket, total: int, piece: bytes = b"a" * 65536) -> int:
    """Send up to ``total`` bytes in pieces until the server stops taking them; bytes sent."""
    sent = 0
    try:
        while sent < total:
            sock.sendall(piece)
            sent += len(piece)
    except OSError:
        pass
    return sent


def _rss(process: psutil.Process) -> int:
    return int(process.memory_info().rss)


# -- time to send the headers ------------------------------------------------------------------


def test_a_socket_that_sends_nothing_is_closed(limited: Stack) -> None:
    """A connection that never sends a request is closed after the header timeout."""
    sock = _connect(_port(limited))
    start = time.monotonic()
    assert _read_all(sock, HEADER_S + 5000 * MS) == b""  # closed, with nothing to answer
    assert HEADER_S * 0.8 <= time.monotonic() - start < HEADER_S + 5000 * MS


def test_slowloris_sockets_are_cut_off_while_others_are_served(limited: Stack) -> None:
    """Sockets trickling header bytes get 408 after the header timeout; a client is served."""
    socks = [_connect(_port(limited)) for _ in range(20)]
    for sock in socks:
        sock.sendall(b"GET /v2/models HTTP/1.1\r\nHost: x\r\n")
    start = time.monotonic()
    held: dict[socket.socket, float] = {}
    answers: dict[socket.socket, bytes] = {}

    def trickle() -> None:
        deadline = start + HEADER_S + 10_000 * MS
        while len(held) < len(socks) and time.monotonic() < deadline:
            open_socks = [s for s in socks if s not in held]
            readable, _, _ = select.select(open_socks, [], [], 0)
            for sock in readable:  # the server answered (or closed): stop trickling
                held[sock] = time.monotonic() - start
                answers[sock] = _read_all(sock, 5000 * MS)
            for sock in open_socks:
                if sock not in held:
                    sock.sendall(b"X-Slow: 1\r\n")
            time.sleep(50 * MS)

    attacker = threading.Thread(target=trickle)
    attacker.start()
    with httpx.Client(headers=limited.headers) as client:
        while attacker.is_alive():
            assert client.get(f"{limited.api_base}/v2/models").status_code == 200
    attacker.join()
    assert len(held) == len(socks), "some trickling sockets were never cut off"
    assert max(held.values()) < HEADER_S + 2000 * MS
    assert min(held.values()) >= HEADER_S * 0.8
    for raw in answers.values():
        status, headers, body = _response(raw)
        assert status == 408 and headers["connection"] == "close"
        assert body["error"]["code"] == "HEADER_TIMEOUT"


def test_each_request_on_a_kept_alive_connection_has_the_header_timeout(limited: Stack) -> None:
    """A second request trickled on a kept-alive connection is cut off like a first one."""
    sock = _connect(_port(limited))
    auth = f"Authorization: Bearer {limited.token}\r\n".encode()
    sock.sendall(b"GET /v2/models HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n")
    sock.settimeout(5000 * MS)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    sock.sendall(b"GET /v2/models HTTP/1.1\r\n")
    start = time.monotonic()
    while not select.select([sock], [], [], 50 * MS)[0]:
        assert time.monotonic() - start < HEADER_S + 5000 * MS, "the trickle was never cut off"
        sock.sendall(b"X-Slow: 1\r\n")
    status, _, body = _response(_read_all(sock, 5000 * MS))
    assert status == 408 and body["error"]["code"] == "HEADER_TIMEOUT"


# -- header size ---------------------------------------------------------------------------------


def test_oversized_headers_are_431(limited: Stack) -> None:
    """Headers over the cap get 431 in our JSON shape, in one piece or trickled; under it, 200."""
    in_one_piece = b"GET /v2/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    sock = _connect(_port(limited))
    sock.sendall(in_one_piece)
    status, headers, body = _response(_read_all(sock, 5000 * MS))
    assert status == 431 and headers["connection"] == "close"
    assert body["error"]["code"] == "HEADERS_TOO_LARGE"
    assert "--max-header-bytes" in body["error"]["message"]

    sock = _connect(_port(limited))
    sock.sendall(b"GET /v2/models HTTP/1.1\r\nHost: x\r\n")
    pushed = _push(sock, 64 * MIB, b"X-Many: " + b"b" * 1000 + b"\r\n")
    assert pushed < 16 * MIB  # it stopped reading long before
    status, _, body = _response(_read_all(sock, 5000 * MS))
    assert status == 431 and body["error"]["code"] == "HEADERS_TOO_LARGE"

    just_under = {**limited.headers, "X-Fits": "c" * 12_000}
    assert httpx.get(f"{limited.api_base}/v2/models", headers=just_under).status_code == 200


def test_huge_headers_leave_memory_bounded(control_process: tuple[psutil.Process, str]) -> None:
    """Twelve connections pushing 8 MiB headers each are cut off: the RSS barely moves."""
    process, api_base = control_process
    port = int(api_base.rsplit(":", 1)[1])
    before = _rss(process)
    socks = [_connect(port) for _ in range(12)]
    results: list[int] = []

    def attack(sock: socket.socket) -> None:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        results.append(_push(sock, 8 * MIB))

    threads = [threading.Thread(target=attack, args=(s,)) for s in socks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60_000 * MS)
    grown = _rss(process) - before  # every attacker still holds its socket
    assert grown < 24 * MIB, f"RSS grew {grown / MIB:.0f} MiB"
    assert all(sent < 8 * MIB for sent in results)
    for sock in socks:
        assert _response(_read_all(sock, 5000 * MS))[0] == 431
    assert httpx.get(f"{api_base}/healthz").status_code == 200


# -- bodies ----------------------------------------------------------------------------------------

BODY_ROUTES = [
    ("POST", "/v2/models/hello/predict"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v2/tokens"),
    ("POST", "/v2/users"),
    ("POST", "/v2/runners/enroll"),
    ("POST", "/v2/runners/r1/drain"),
    ("POST", "/v2/mcp/x"),
    ("DELETE", "/v2/mcp/x"),
    ("POST", "/v2/no/such/route"),
]


def test_unauthenticated_bodies_are_refused_unread(
    control_process: tuple[psutil.Process, str],
) -> None:
    """Without a token every route answers 401 before the body and closes; RSS stays flat."""
    process, api_base = control_process
    port = int(api_base.rsplit(":", 1)[1])
    size = 31 * MIB
    for method, path in BODY_ROUTES:
        sock = _connect(port)
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n".encode()
        )
        status, headers, body = _response(_read_all(sock, 5000 * MS))  # before any body byte
        assert status == 401, path
        assert headers["connection"] == "close" and headers["www-authenticate"] == "Bearer"
        if path.startswith("/v2/mcp/"):
            assert body["jsonrpc"] == "2.0" and body["error"]["data"]["status"] == 401
        else:
            assert body["error"]["code"] == "UNAUTHENTICATED"

    before = _rss(process)
    socks = [_connect(port) for _ in range(12)]
    pushed: list[int] = []

    def attack(sock: socket.socket) -> None:
        sock.sendall(
            f"POST /v2/mcp/x HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode()
        )
        pushed.append(_push(sock, size))

    threads = [threading.Thread(target=attack, args=(s,)) for s in socks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60_000 * MS)
    grown = _rss(process) - before
    assert grown < 24 * MIB, f"RSS grew {grown / MIB:.0f} MiB"
    assert all(sent < size for sent in pushed)


def _post_head(stack: Stack, path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {stack.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_a_stalled_body_is_cut_off_but_a_slow_one_is_not(limited: Stack) -> None:
    """A body that stops arriving gets 408; one whose pieces keep coming may take longer."""
    limited.start_runner()
    body = b'{"text": "slow"}'
    sock = _connect(_port(limited))
    sock.sendall(_post_head(limited, "/v2/models/hello/predict", len(body)) + body[:5])
    start = time.monotonic()
    status, _, doc = _response(_read_all(sock, BODY_S + 5000 * MS))
    assert status == 408 and doc["error"]["code"] == "BODY_TIMEOUT"
    assert BODY_S * 0.8 <= time.monotonic() - start < BODY_S + 5000 * MS

    padded = b'{"text": "slow"' + b" " * 10 + b"}"
    sock = _connect(_port(limited))
    sock.sendall(_post_head(limited, "/v2/models/hello/predict", len(padded)))
    start = time.monotonic()
    for i in range(len(padded)):  # one byte per third of the idle limit: 3x longer in all
        sock.sendall(padded[i : i + 1])
        time.sleep(BODY_S / 3)
    assert time.monotonic() - start > 2 * BODY_S
    assert _read_until(sock, b"Hello, slow!", 5000 * MS).startswith(b"HTTP/1.1 200")


def test_the_body_clock_stops_while_the_server_holds_the_body_up(
    limited: Stack, tmp_path: Path
) -> None:
    """A pipelined request waits (reading paused) longer than the idle limit, then is served."""
    limited.start_runner(write_model(tmp_path, "slow", SLOW_MODEL), pool_size=1)
    first = json.dumps({"seconds": BODY_S * 4}).encode()
    second = b'{"seconds": 0' + b" " * 100_000 + b"}"  # over uvicorn's 64 KiB high-water mark
    half = len(second) // 2
    sock = _connect(_port(limited))
    # The second request's headers and half its body arrive while the first one runs: it
    # waits behind the first, and uvicorn stops reading once it buffered 64 KiB of it.
    sock.sendall(
        _post_head(limited, "/v2/models/slow/wait", len(first))
        + first
        + _post_head(limited, "/v2/models/slow/wait", len(second))
        + second[:half]
    )
    reply = _read_until(sock, b'"output":"done"}', BODY_S * 4 + 10_000 * MS)
    assert reply.startswith(b"HTTP/1.1 200")
    sock.sendall(second[half:])
    answer = _read_until(sock, b'"output":"done"}', 10_000 * MS)
    assert answer.startswith(b"HTTP/1.1 200")


class _PausingApp:
    """An ASGI app that takes its body's first piece, then takes no more until ``resume`` is
    set (as an app whose consumer is slower than the body), then answers the body's size."""

    def __init__(self) -> None:
        self.first_piece = asyncio.Event()
        self.resume = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        size, more, pieces = 0, True, 0
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
            pieces += 1
            if pieces == 1:
                self.first_piece.set()
                await self.resume.wait()
        body = b"%d" % size
        headers = [(b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def pausing_server(loop_thread: LoopThread) -> Iterator[tuple[_PausingApp, int]]:
    """uvicorn with the guarded protocol (a short body idle limit) serving :class:`_PausingApp`."""
    app = _PausingApp()
    limits = HttpLimits(header_timeout=HEADER_S, body_idle_timeout=BODY_S)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        http=guarded_protocol(limits),
        lifespan="off",
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    serving = loop_thread.submit(server.serve())
    wait_for(lambda: server.started, "uvicorn to listen")
    port = server.servers[0].sockets[0].getsockname()[1]
    yield app, port
    loop_thread.call(app.resume.set)  # a test that failed leaves the app waiting
    server.should_exit = True
    serving.result(10_000 * MS)


def test_the_body_clock_stops_while_the_app_has_not_taken_a_piece(
    pausing_server: tuple[_PausingApp, int], loop_thread: LoopThread, request: pytest.FixtureRequest
) -> None:
    """A piece below uvicorn's high-water mark that the app has not taken yet means the app
    holds the body up: no 408 however long it waits, and the body is whole afterwards."""
    app, port = pausing_server
    sock = _connect(port)
    request.addfinalizer(sock.close)
    sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n0123456789")
    loop_thread.run(asyncio.wait_for(app.first_piece.wait(), 10_000 * MS))
    sock.sendall(b"abcde")  # waits in uvicorn's buffer: the app is not reading
    sock.settimeout(BODY_S * 3)
    with pytest.raises(TimeoutError):  # three idle limits: the connection stays open
        sock.recv(1)
    loop_thread.call(app.resume.set)
    sock.sendall(b"fghij")
    assert _read_until(sock, b"\r\n\r\n20", 5000 * MS).startswith(b"HTTP/1.1 200")


# -- connection cap ------------------------------------------------------------------------------


def test_the_connection_cap_answers_503_and_others_are_served(stack: Stack) -> None:
    """Past max_connections a new connection gets 503 JSON; open ones work; it recovers."""
    stack.stop_control()
    stack.start_control(max_connections=4)
    url = f"{stack.api_base}/v2/models"
    with httpx.Client(headers=stack.headers) as kept:
        assert kept.get(url).status_code == 200  # connection 1, kept alive
        idle = [_connect(_port(stack)) for _ in range(3)]  # connections 2-4
        refused = httpx.get(url, headers=stack.headers)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "TOO_MANY_CONNECTIONS"
        assert "--max-connections" in refused.json()["error"]["message"]
        assert kept.get(url).status_code == 200  # the open ones are still served
        for sock in idle:
            sock.close()
        wait_for(
            lambda: httpx.get(url, headers=stack.headers).status_code == 200,
            "a new connection to be served again",
        )


def test_a_websocket_tunnel_counts_as_one_connection(stack: Stack) -> None:
    """A runner's WebSocket tunnel takes one connection of the cap, no more, and stays up."""
    stack.stop_control()
    stack.start_control(max_connections=3)
    stack.start_runner(transport="ws")  # its tunnel: one connection
    plane = stack.plane
    assert plane is not None
    wait_for(lambda: plane.open_connections == 1, "only the tunnel's connection to stay open")
    url = f"{stack.api_base}/v2/models/hello/predict"
    idle = _connect(_port(stack))
    wait_for(lambda: plane.open_connections == 2, "the idle connection")
    served = httpx.post(url, headers=stack.headers, json={"text": "ws"})  # the third
    assert served.json()["output"] == "Hello, ws!"
    idle_too = _connect(_port(stack))
    refused = httpx.post(url, headers=stack.headers, json={"text": "ws"})  # a fourth
    assert refused.status_code == 503
    idle.close()
    idle_too.close()
    wait_for(
        lambda: httpx.post(url, headers=stack.headers, json={"text": "ws"}).status_code == 200,
        "the tunnel to serve again under the cap",
    )


# -- tunnels ---------------------------------------------------------------------------------------


def _grpc_tunnel(stack: Stack, channel: grpc.Channel, metadata: tuple[tuple[str, str], ...] = ()):  # type: ignore[no-untyped-def]
    """Open a Connect call that sends nothing (its request iterator blocks until told)."""
    release = threading.Event()

    def nothing() -> Iterator[bytes]:
        release.wait()
        return
        yield b""

    call = channel.stream_stream(CONNECT_METHOD)(
        nothing(),
        metadata=(("authorization", f"Bearer {stack.token}"), *metadata),
        timeout=30_000 * MS,
    )
    return call, release


def _outcome(call: Any) -> grpc.StatusCode:
    try:
        for _ in call:
            pass
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_grpc_tunnels_past_the_cap_are_resource_exhausted(stack: Stack) -> None:
    """Past max_connections concurrent tunnels, the next gets RESOURCE_EXHAUSTED at once."""
    stack.stop_control()
    stack.start_control(max_connections=2)
    assert stack.plane is not None
    with grpc.insecure_channel(f"127.0.0.1:{stack.plane.grpc_port}") as channel:
        held = [_grpc_tunnel(stack, channel) for _ in range(2)]
        wait_for(lambda: all(call.is_active() for call, _ in held), "two tunnels to open")
        time.sleep(200 * MS)  # both reach the server (and wait for their Hello)
        extra, release = _grpc_tunnel(stack, channel)
        start = time.monotonic()
        assert _outcome(extra) is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert time.monotonic() - start < 5000 * MS
        release.set()
        for call, gone in held:
            gone.set()
            call.cancel()

        def opens() -> bool:
            again, gone = _grpc_tunnel(stack, channel)
            time.sleep(200 * MS)  # refused at once, or waiting for its Hello
            accepted = again.is_active()
            again.cancel()
            gone.set()
            return accepted

        wait_for(opens, "a tunnel to be accepted again once the others closed")


def test_grpc_metadata_over_the_limit_is_refused(stack: Stack) -> None:
    """Metadata over max_header_bytes (here under grpc's own 8 KiB default) is refused."""
    stack.stop_control()
    stack.start_control(max_header_bytes=4096)
    assert stack.plane is not None
    with grpc.insecure_channel(f"127.0.0.1:{stack.plane.grpc_port}") as channel:
        call, release = _grpc_tunnel(stack, channel, (("x-big", "a" * 6000),))
        code = _outcome(call)
        release.set()
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED, code
        fits, release = _grpc_tunnel(stack, channel, (("x-fits", "a" * 2000),))
        time.sleep(200 * MS)
        assert fits.is_active()  # it got in, and waits for its Hello
        fits.cancel()
        release.set()
    stack.start_runner()  # a well-formed tunnel gets in
    with httpx.Client(headers=stack.headers) as client:
        r = client.post(f"{stack.api_base}/v2/models/hello/predict", json={"text": "g"})
        assert r.json()["output"] == "Hello, g!"


def test_a_grpc_tunnel_without_hello_is_closed_after_the_handshake_timeout(
    limited: Stack,
) -> None:
    """An authenticated tunnel that never says Hello ends with DEADLINE_EXCEEDED."""
    assert limited.plane is not None
    with grpc.insecure_channel(f"127.0.0.1:{limited.plane.grpc_port}") as channel:
        call, release = _grpc_tunnel(limited, channel)
        start = time.monotonic()
        assert _outcome(call) is grpc.StatusCode.DEADLINE_EXCEEDED
        release.set()
        assert HANDSHAKE_S * 0.8 <= time.monotonic() - start < HANDSHAKE_S + 5000 * MS


def test_a_silent_connection_to_the_grpc_port_is_closed(stack: Stack, tmp_path: Path) -> None:
    """A TCP connection that never starts its TLS handshake is closed after the timeout."""
    from edge_runner.control.tls import self_signed

    files = self_signed(tmp_path / "tls", ["127.0.0.1"])
    stack.stop_control()
    stack.start_control(tls_cert=files.cert, tls_key=files.key, handshake_timeout=HANDSHAKE_S)
    assert stack.plane is not None
    sock = _connect(stack.plane.grpc_port)
    start = time.monotonic()
    assert _read_all(sock, HANDSHAKE_S + 10_000 * MS) == b""
    assert HANDSHAKE_S * 0.8 <= time.monotonic() - start < HANDSHAKE_S + 10_000 * MS


def test_an_idle_grpc_connection_is_closed(limited: Stack) -> None:
    """A gRPC connection with no tunnel on it is closed after the handshake timeout."""
    assert limited.plane is not None
    with grpc.insecure_channel(f"127.0.0.1:{limited.plane.grpc_port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=5000 * MS)
        assert channel._channel.check_connectivity_state(False) == 2  # type: ignore[attr-defined]  # READY
        states: list[grpc.ChannelConnectivity] = []
        channel.subscribe(states.append)
        wait_for(
            lambda: states and states[-1] is grpc.ChannelConnectivity.IDLE,
            "the server to close the idle connection",
            timeout=HANDSHAKE_S + 10_000 * MS,
        )


def test_a_websocket_tunnel_without_hello_is_closed(limited: Stack) -> None:
    """An authenticated WebSocket tunnel that never says Hello is closed with 1008."""
    url = f"ws://127.0.0.1:{_port(limited)}/v2/tunnel"
    with ws_connect(url, additional_headers=limited.headers, open_timeout=5000 * MS) as ws:
        start = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=HANDSHAKE_S + 10_000 * MS)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert "no Hello" in closed.value.rcvd.reason
    assert HANDSHAKE_S * 0.8 <= time.monotonic() - start < HANDSHAKE_S + 5000 * MS


# -- flags ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag",
    [
        "--max-connections",
        "--max-header-bytes",
        "--header-timeout",
        "--body-idle-timeout",
        "--handshake-timeout",
    ],
)
def test_limits_must_be_positive(flag: str, tmp_path: Path) -> None:
    """A zero or negative limit is one line on stderr and exit code 2."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "edge_runner", "control", "--port", "0", "--grpc-port", "0"]
        + ["--data-dir", str(tmp_path), flag, "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert f"{flag} must be positive" in result.stderr and "Traceback" not in result.stderr


def test_control_flags_set_the_limits(tmp_path: Path) -> None:
    """`edge-runner control --header-timeout --max-connections` are the limits it enforces."""
    proc, info = spawn_ready(
        ["control", "--port", "0", "--grpc-port", "0", "--data-dir", str(tmp_path)]
        + ["--header-timeout", str(HEADER_S), "--max-connections", "2"],
        dict(os.environ),
    )
    try:
        port = int(info["api_base"].rsplit(":", 1)[1])
        first, second = _connect(port), _connect(port)
        refused = httpx.get(f"{info['api_base']}/healthz")
        assert refused.status_code == 503
        start = time.monotonic()
        assert _read_all(first, HEADER_S + 5000 * MS) == b""
        assert time.monotonic() - start < HEADER_S + 5000 * MS
        second.close()
        wait_for(
            lambda: httpx.get(f"{info['api_base']}/healthz").status_code == 200, "the cap to free"
        )
    finally:
        stop_process(proc)
