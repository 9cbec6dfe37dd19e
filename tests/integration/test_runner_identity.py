"""A runner id is bound to the user whose runner registered it first: another user's token
cannot connect under it, take over its tunnel or tasks, list it, drain it or read its logs —
on both tunnel transports, across disconnects and control-plane restarts."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import grpc
import httpx
import pytest

from edge_runner.client import Client
from edge_runner.errors import Forbidden
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import decode_control, encode
from edge_runner.runner.transport import CONNECT_METHOD, TransportKind
from tests.conftest import MS, SLOW_MODEL, RunningRunner, Stack, wait_for, write_model

TRANSPORTS = [TransportKind.GRPC, TransportKind.WS]


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def bob(stack: Stack) -> str:
    """A second user's token (all user scopes, runner included)."""
    r = httpx.post(f"{stack.api_base}/v2/users", headers=stack.headers, json={"id": "bob"})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


@pytest.fixture(params=TRANSPORTS, ids=lambda t: t.value)
def transport(request: pytest.FixtureRequest) -> TransportKind:
    """The tunnel transport a test runs on."""
    return TransportKind(request.param)


@pytest.fixture
def alice(stack: Stack, tmp_path: Path, transport: TransportKind) -> RunningRunner:
    """The admin user's runner, serving a model with a slow method, on the chosen transport."""
    folder = write_model(tmp_path, "slow", SLOW_MODEL)
    return stack.start_runner(folder, runner_id="runner-alice", transport=transport)


def _hello_frame(runner_id: str, inflight: tuple[tuple[str, int], ...] = ()) -> bytes:
    hello = pb.Hello(
        runner_id=runner_id,
        protocol=pb.ProtocolVersion(major=1, minor=1),
        inflight=[pb.TaskRef(task_id=t, attempt=a) for t, a in inflight],
    )
    return encode(pb.RunnerMessage(hello=hello))


def _raw_hello(
    stack: Stack, transport: TransportKind, token: str, frame: bytes
) -> tuple[list[pb.ControlMessage], str]:
    """Send one Hello by hand; return what came back and how the tunnel ended."""
    assert stack.plane is not None
    if transport is TransportKind.GRPC:
        received: list[pb.ControlMessage] = []
        with grpc.insecure_channel(f"127.0.0.1:{stack.plane.grpc_port}") as channel:
            call = channel.stream_stream(CONNECT_METHOD)(
                iter([frame]), metadata=(("authorization", f"Bearer {token}"),), timeout=5
            )
            try:
                received.extend(decode_control(f) for f in call)
            except grpc.RpcError as exc:
                return received, exc.code().name  # type: ignore[attr-defined]
        return received, "OK"
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    url = stack.api_base.replace("http://", "ws://") + "/v2/tunnel"
    with connect(url, additional_headers=_auth(token), open_timeout=5) as ws:
        ws.send(frame)
        received = []
        try:
            while True:
                received.append(decode_control(ws.recv(timeout=5)))  # type: ignore[arg-type]
        except ConnectionClosed as closed:
            return received, str(closed.rcvd.code if closed.rcvd else "?")


def _refused(received: list[pb.ControlMessage], end: str, transport: TransportKind) -> None:
    assert end == ("PERMISSION_DENIED" if transport is TransportKind.GRPC else "1008")
    assert [m.WhichOneof("kind") for m in received] == ["error"]
    assert received[0].error.code == "PERMISSION_DENIED"
    assert "belongs to another user" in received[0].error.message


def _runner_ids(stack: Stack, token: str) -> list[str]:
    r = httpx.get(f"{stack.api_base}/v2/runners", headers=_auth(token))
    return [runner["id"] for runner in r.json()["runners"]]


def test_another_users_runner_with_the_id_stops_with_a_clear_error(
    stack: Stack,
    alice: RunningRunner,
    bob: str,
    transport: TransportKind,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bob's runner under Alice's id is refused as fatal; Alice's tunnel never drops."""
    caplog.set_level(logging.WARNING, "edge_runner.control.state")
    intruder = stack.start_runner(
        runner_id=alice.runner_id, token=bob, wait=False, transport=transport
    )
    with pytest.raises(Forbidden) as refused:
        intruder.task.result(10_000 * MS)
    assert "belongs to another user" in str(refused.value)
    assert "without --runner-id" in str(refused.value)
    assert alice.runner.reconnects == 0 and alice.runner.connected
    assert any("belongs to user admin" in r.getMessage() for r in caplog.records)
    assert _runner_ids(stack, stack.token) == [alice.runner_id]
    assert _runner_ids(stack, bob) == []


def test_a_refused_hello_leaves_the_owners_streams_and_tasks_alone(
    stack: Stack, alice: RunningRunner, bob: str, transport: TransportKind
) -> None:
    """A Hello under Alice's id listing her in-flight task is refused; her task ends with her
    runner's answer, and her tunnel stays up while a streaming call runs."""
    result: dict[str, object] = {}

    def call() -> None:
        with Client(stack.api_base, stack.token) as client:
            result["output"] = client.predict("slow", "wait", seconds=1.0)

    caller = threading.Thread(target=call)
    caller.start()
    wait_for(lambda: _running(stack), "Alice's task to start")
    task_id = _running(stack)[0]
    received, end = _raw_hello(
        stack, transport, bob, _hello_frame(alice.runner_id, ((task_id, 1), (task_id, 2)))
    )
    _refused(received, end, transport)
    caller.join(10_000 * MS)
    assert result == {"output": "done"}
    assert alice.runner.reconnects == 0
    tasks = httpx.get(f"{stack.api_base}/v2/tasks", headers=stack.headers).json()["tasks"]
    assert [(t["task_id"], t["status"], t["runner_id"]) for t in tasks] == [
        (task_id, "done", alice.runner_id)
    ]


def _running(stack: Stack) -> list[str]:
    tasks = httpx.get(f"{stack.api_base}/v2/tasks", headers=stack.headers).json()["tasks"]
    return [t["task_id"] for t in tasks if t["status"] == "running"]


def test_another_user_cannot_enrol_drain_or_read_the_logs_of_the_id(
    stack: Stack, alice: RunningRunner, bob: str
) -> None:
    """Enrolment is 403, drain and logs 404 for Bob; Alice's own calls work."""
    base = stack.api_base
    enrol = httpx.post(
        f"{base}/v2/runners/enroll", headers=_auth(bob), json={"runner_id": alice.runner_id}
    )
    assert enrol.status_code == 403 and enrol.json()["error"]["code"] == "PERMISSION_DENIED"
    mine = httpx.post(
        f"{base}/v2/runners/enroll", headers=stack.headers, json={"runner_id": alice.runner_id}
    )
    assert mine.status_code == 200 and mine.json()["token"].startswith("er_rt_")
    logs = f"{base}/v2/runners/{alice.runner_id}/logs"
    assert httpx.get(logs, headers=_auth(bob)).status_code == 404
    assert httpx.get(logs, headers=stack.headers).status_code == 200
    drain = httpx.post(f"{base}/v2/runners/{alice.runner_id}/drain", headers=_auth(bob))
    assert drain.status_code == 404
    assert alice.runner.connected and alice.runner.stop_level == 0
    with Client(base, stack.token) as client:
        assert client.predict("slow", "wait", seconds=0.0) == "done"


def test_the_id_stays_bound_across_disconnects_and_restarts(
    stack: Stack, alice: RunningRunner, bob: str, transport: TransportKind, tmp_path: Path
) -> None:
    """After Alice's runner stops, and after a control-plane restart, the id is still hers."""
    stack.stop_runner(alice)
    received, end = _raw_hello(stack, transport, bob, _hello_frame(alice.runner_id))
    _refused(received, end, transport)
    stack.stop_control()
    stack.start_control()
    received, end = _raw_hello(stack, transport, bob, _hello_frame(alice.runner_id))
    _refused(received, end, transport)
    again = stack.start_runner(tmp_path / "slow", runner_id=alice.runner_id, transport=transport)
    assert again.runner.connected
    assert _runner_ids(stack, stack.token) == [alice.runner_id]


@pytest.mark.parametrize(
    "runner_id",
    ["x" * 129, "x" * 200_000, "bad\x1b[31mid", "nul\x00", "new\nline", "-leading-dash", "spa ce"],
    ids=["long", "200KB", "esc", "nul", "newline", "dash", "space"],
)
def test_malformed_runner_ids_are_refused_at_the_hello(stack: Stack, runner_id: str) -> None:
    """A runner id with control characters or over 128 characters is refused, never stored."""
    received, end = _raw_hello(stack, TransportKind.GRPC, stack.token, _hello_frame(runner_id))
    assert end == "INVALID_ARGUMENT"
    assert received[-1].error.code == "INVALID_HELLO"
    assert "is not valid" in received[-1].error.message
    assert "\x1b" not in received[-1].error.message and "\x00" not in received[-1].error.message
    assert _runner_ids(stack, stack.token) == []
    enrol = httpx.post(
        f"{stack.api_base}/v2/runners/enroll", headers=stack.headers, json={"runner_id": runner_id}
    )
    assert enrol.status_code == (413 if len(runner_id) > 64 * 1024 else 400)  # 64 KiB bodies


def test_hello_strings_are_stored_printable_and_bounded(stack: Stack) -> None:
    """Hostname, labels and GPU names from a Hello lose control characters and excess length."""
    hello = pb.Hello(
        runner_id="runner-odd",
        protocol=pb.ProtocolVersion(major=1, minor=1),
        hostname="evil\x1b]0;owned\x07" + "h" * 1000,
        labels={"k\x1b": "v\n" * 500},
        gpus=[pb.Gpu(index=0, name="GPU\x00\x1b[2J")],
    )
    received, _ = _raw_hello(
        stack, TransportKind.GRPC, stack.token, encode(pb.RunnerMessage(hello=hello))
    )
    assert received[0].WhichOneof("kind") == "welcome"
    (view,) = httpx.get(f"{stack.api_base}/v2/runners", headers=stack.headers).json()["runners"]
    assert view["hostname"].startswith("evil?]0;owned?") and len(view["hostname"]) == 255
    assert view["labels"] == {"k?": "v?" * 128}
    assert all(
        s.isprintable() for s in [view["hostname"], *view["labels"], *view["labels"].values()]
    )
