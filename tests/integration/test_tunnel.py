"""The gRPC tunnel with hostile or unlucky peers: bad tokens, garbage, conflicts, late starts."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import grpc
import httpx
import pytest

from edge_runner.client import Client
from edge_runner.errors import Unauthorized
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import PROTOCOL_VERSION, decode_control, encode, format_version
from edge_runner.runner.daemon import CONNECT_METHOD
from tests.conftest import HELLO, MS, Stack, wait_for, write_model


def _raw_tunnel(
    stack: Stack, frames: list[bytes], token: str | None = None
) -> tuple[list[bytes], grpc.RpcError | None]:
    """Open a tunnel by hand, send ``frames``, and collect what comes back until it closes."""
    assert stack.plane is not None
    address = f"127.0.0.1:{stack.plane.grpc_port}"
    received: list[bytes] = []
    with grpc.insecure_channel(address) as channel:
        call = channel.stream_stream(CONNECT_METHOD)(
            iter(frames),
            metadata=(("authorization", f"Bearer {token or stack.token}"),),
            timeout=5000 * MS,
        )
        try:
            for frame in call:
                received.append(frame)
        except grpc.RpcError as exc:
            return received, exc
    return received, None


def _hello(runner_id: str = "raw", major: int = 1) -> bytes:
    hello = pb.Hello(runner_id=runner_id, protocol=pb.ProtocolVersion(major=major, minor=0))
    return encode(pb.RunnerMessage(hello=hello))


def test_garbage_frame_closes_that_tunnel_only(hello_stack: Stack) -> None:
    """Garbage on a tunnel closes it with INVALID_ARGUMENT; other runners keep serving."""
    received, error = _raw_tunnel(hello_stack, [b"\xff\xfe garbage \x00\x01"])
    assert error is not None and error.code() is grpc.StatusCode.INVALID_ARGUMENT
    frames = [decode_control(f) for f in received]
    assert frames and frames[-1].WhichOneof("kind") == "error"
    assert frames[-1].error.code == "MALFORMED_FRAME"
    with Client(hello_stack.api_base, hello_stack.token) as client:
        assert client.predict("hello", text="still") == "Hello, still!"


def test_garbage_after_hello_closes_the_tunnel(hello_stack: Stack) -> None:
    """A valid Hello followed by garbage is welcomed, then closed with an Error frame."""
    received, error = _raw_tunnel(hello_stack, [_hello("raw-1"), b"\x08\x96\x01\xff"])
    kinds = [decode_control(f).WhichOneof("kind") for f in received]
    assert kinds[0] == "welcome" and kinds[-1] == "error"
    assert error is not None and error.code() is grpc.StatusCode.INVALID_ARGUMENT
    with Client(hello_stack.api_base, hello_stack.token) as client:
        assert client.predict("hello", text="ok") == "Hello, ok!"


def test_major_version_mismatch_is_refused_naming_both(stack: Stack) -> None:
    """A runner speaking protocol 2.x is refused with a message naming both versions."""
    received, error = _raw_tunnel(stack, [_hello(major=2)])
    assert error is not None and error.code() is grpc.StatusCode.INVALID_ARGUMENT
    message = decode_control(received[-1]).error.message
    assert "2.0" in message and format_version(PROTOCOL_VERSION) in message


def test_bad_token_tunnel_is_rejected_and_logged_once(
    hello_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """A tunnel with a bad token gets UNAUTHENTICATED; repeats are not logged again."""
    caplog.set_level(logging.DEBUG, logger="edge_runner.control.tunnel_grpc")
    for _ in range(3):
        _, error = _raw_tunnel(hello_stack, [_hello()], token="er_pat_not-a-real-token")
        assert error is not None and error.code() is grpc.StatusCode.UNAUTHENTICATED
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "refused" in r.message
    ]
    assert len(warnings) == 1
    with Client(hello_stack.api_base, hello_stack.token) as client:
        assert client.predict("hello", text="fine") == "Hello, fine!"


def test_runner_with_bad_token_stops_with_a_clear_error(stack: Stack) -> None:
    """A runner whose token is rejected fails with Unauthorized instead of retrying forever."""
    running = stack.start_runner(token="er_pat_bogus", wait=False)
    with pytest.raises(Unauthorized, match="rejected this runner's token"):
        running.task.result(10_000 * MS)


def test_conflicting_signatures_are_refused(hello_stack: Stack, tmp_path: Path) -> None:
    """A second runner registering 'hello' with other signatures is refused; the first serves."""
    other = write_model(
        tmp_path,
        "hello",
        "    @ModelClass.method\n"
        "    def predict(self, number: int) -> int:\n"
        "        return number\n",
    )
    intruder = hello_stack.start_runner(other, wait=False, runner_id="intruder")
    assert hello_stack.plane is not None and hello_stack.plane.state is not None
    state = hello_stack.plane.state
    wait_for(
        lambda: "signatures" in intruder.runner.connection.last_error,
        "the refusal to reach the runner",
    )
    assert "intruder" not in state.dispatcher.links
    assert (
        "already served with different method signatures" in intruder.runner.connection.last_error
    )
    with Client(hello_stack.api_base, hello_stack.token) as client:
        assert client.predict("hello", text="x") == "Hello, x!"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_runner_started_before_control_plane_connects_when_it_comes_up(
    loop_thread: object, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A runner retries with backoff until the control plane is up, logging the outage once."""
    from tests.conftest import LoopThread

    assert isinstance(loop_thread, LoopThread)
    caplog.set_level(logging.INFO, logger="edge_runner.runner.connection")
    stack = Stack(tmp_path / "control", loop_thread, model=HELLO)
    port = _free_port()
    # The token exists only once the control plane bootstraps; write it first by starting and
    # stopping a control plane on the data dir, so the runner starts with a valid token.
    stack.start_control(port=port)
    stack.stop_control()
    try:
        running = stack.start_runner(
            HELLO,
            wait=False,
            api_base=f"http://127.0.0.1:{port}",
            backoff_initial=20 * MS,
            backoff_cap=100 * MS,
        )
        wait_for(
            lambda: running.runner.connection.outage_since is not None,
            "the runner to see the outage",
        )
        stack.start_control(port=port)
        wait_for(lambda: running.runner.connected, "the runner to connect")
        with Client(stack.api_base, stack.token) as client:
            assert client.predict("hello", text="late") == "Hello, late!"
        starts = [r for r in caplog.records if "is down" in r.message]
        ends = [r for r in caplog.records if "is back" in r.message]
        assert len(starts) == 1 and len(ends) == 1
    finally:
        stack.close()


def test_runner_id_reconnect_replaces_the_old_tunnel(hello_stack: Stack) -> None:
    """A Hello with a runner id that is already connected replaces the old tunnel."""
    first = hello_stack.runners[0]
    received, _ = _raw_tunnel(hello_stack, [_hello(first.runner_id)])
    assert decode_control(received[0]).WhichOneof("kind") == "welcome"
    # The raw tunnel closed when its iterator ended; the real runner reconnects by itself.
    wait_for(lambda: first.runner.reconnects >= 1, "the runner to reconnect")
    r = httpx.post(
        f"{hello_stack.api_base}/v2/models/hello/predict",
        json={"text": "again"},
        headers=hello_stack.headers,
    )
    assert r.json()["output"] == "Hello, again!"


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (pb.ModelSpec(model_id="bad id/with space"), "not valid"),
        (
            pb.ModelSpec(
                model_id="m",
                methods=[pb.MethodSpec(name="f", params=[pb.ParamSpec(name="x", type="matrix")])],
            ),
            "malformed method signature",
        ),
    ],
)
def test_malformed_model_spec_is_refused(stack: Stack, spec: pb.ModelSpec, words: str) -> None:
    """A Hello with an invalid model id or signature is refused with a reason; nothing breaks."""
    hello = pb.Hello(runner_id="odd", protocol=pb.ProtocolVersion(major=1), models=[spec])
    received, error = _raw_tunnel(stack, [encode(pb.RunnerMessage(hello=hello))])
    assert error is not None and error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert words in decode_control(received[-1]).error.message
    assert httpx.get(f"{stack.api_base}/v2/models", headers=stack.headers).json() == {"models": []}


def _ws_url(stack: Stack) -> str:
    return stack.api_base.replace("http://", "ws://") + "/v2/tunnel"


def test_runner_over_websocket_serves(stack: Stack) -> None:
    """A runner with --transport ws registers and serves like a gRPC one."""
    from edge_runner.runner.transport import TransportKind

    stack.start_runner(transport=TransportKind.WS)
    with Client(stack.api_base, stack.token) as client:
        assert client.predict("hello", text="ws") == "Hello, ws!"
        assert list(client.generate("hello", text="w", n=2)) == ["0: Hello, w!\n", "1: Hello, w!\n"]


@pytest.mark.parametrize(
    ("frame", "code"),
    [(b"\xff\xfe garbage", "MALFORMED_FRAME"), ("a text frame", None)],
    ids=["garbage", "text"],
)
def test_websocket_bad_frames_close_that_tunnel_only(
    hello_stack: Stack, frame: bytes | str, code: str | None
) -> None:
    """Garbage or text on the WebSocket tunnel closes it with 1002; the server keeps serving."""
    from websockets.exceptions import ConnectionClosedError
    from websockets.sync.client import connect

    with connect(
        _ws_url(hello_stack),
        additional_headers={"Authorization": f"Bearer {hello_stack.token}"},
        open_timeout=5,
    ) as ws:
        ws.send(frame)
        received = []
        with pytest.raises(ConnectionClosedError) as closed:
            while True:
                received.append(ws.recv(timeout=5))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1002
    if code is not None:
        assert decode_control(received[-1]).error.code == code  # type: ignore[arg-type]
    with Client(hello_stack.api_base, hello_stack.token) as client:
        assert client.predict("hello", text="still") == "Hello, still!"


def test_websocket_bad_token_is_refused(stack: Stack) -> None:
    """The WebSocket tunnel refuses a bad token at the handshake (HTTP 403)."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus) as refused:
        connect(_ws_url(stack), additional_headers={"Authorization": "Bearer er_pat_nope"})
    assert refused.value.response.status_code == 403
    from edge_runner.runner.transport import TransportKind

    running = stack.start_runner(token="er_pat_bogus", wait=False, transport=TransportKind.WS)
    with pytest.raises(Unauthorized):
        running.task.result(10_000 * MS)
