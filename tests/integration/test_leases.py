"""Leases: a runner whose tunnel dies keeps its tasks for lease_ttl, resumes them if it comes
back in time, and loses them to another runner if it does not. Both transports."""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_runner.runner.transport import TransportKind
from tests.chaos.relay import Relay
from tests.conftest import MS, RunningRunner, Stack, wait_for, write_model

_ONCE = (
    "    @ModelClass.method\n"
    "    def work(self, seconds: float, log: str) -> str:\n"
    "        '''Log the start, wait, answer.'''\n"
    "        with open(log, 'a') as fh:\n"
    "            fh.write('start\\n')\n"
    "        end = time.monotonic() + seconds\n"
    "        while not self.cancelled() and time.monotonic() < end:\n"
    "            time.sleep(0.005)\n"
    "        return 'cancelled' if self.cancelled() else 'done'\n"
)

FAST = {
    "heartbeat_interval": 50 * MS,
    # a tunnel silent this long is lost. It was 300 ms: with three suites sharing two cores, a
    # healthy runner's loop can stall that long, and test_lease_expiry_requeues_to_another_runner
    # once saw its task run three times (the survivor's lease lost too, we believe)
    "silence_timeout": 1000 * MS,
}


def _through_relay(stack: Stack, relay: Relay, transport: TransportKind) -> dict[str, object]:
    """Runner settings that send the tunnel (only) through the relay."""
    assert stack.plane is not None
    if transport is TransportKind.GRPC:
        return {"tunnel_address": f"127.0.0.1:{relay.port}", "transport": transport}
    return {"api_base": f"http://127.0.0.1:{relay.port}", "transport": transport}


def _relay_target(stack: Stack, transport: TransportKind) -> int:
    assert stack.plane is not None
    return stack.plane.grpc_port if transport is TransportKind.GRPC else stack.plane.port


@pytest.fixture(params=[TransportKind.GRPC, TransportKind.WS], ids=["grpc", "ws"])
def transport(request: pytest.FixtureRequest) -> TransportKind:
    """Both tunnel transports."""
    return TransportKind(request.param)


@dataclass
class _Relayed:
    """A runner whose tunnel goes through a relay, and a client call running on it."""

    relay: Relay
    running: RunningRunner
    call: concurrent.futures.Future[httpx.Response]
    log: Path


@contextlib.contextmanager
def _task_through_relay(
    stack: Stack,
    tmp_path: Path,
    transport: TransportKind,
    *,
    lease_ttl: float,
    seconds: float,
    **runner: Any,
) -> Iterator[_Relayed]:
    """Restart the control plane with fast heartbeats, start a relayed runner, start a task."""
    stack.stop_control()
    stack.start_control(lease_ttl=lease_ttl, **FAST)
    log = tmp_path / "calls.log"
    relay = Relay(_relay_target(stack, transport))
    try:
        running = stack.start_runner(
            write_model(tmp_path, "once", _ONCE),
            backoff_initial=20 * MS,
            backoff_cap=100 * MS,
            **runner,
            **_through_relay(stack, relay, transport),
        )
        with (
            httpx.Client(headers=stack.headers, timeout=30) as client,
            concurrent.futures.ThreadPoolExecutor(1) as pool,
        ):
            call = pool.submit(
                client.post,
                f"{stack.api_base}/v2/models/once/work",
                json={"seconds": seconds, "log": str(log)},
            )
            wait_for(log.exists, "the task to start on the relayed runner")
            yield _Relayed(relay, running, call, log)
    finally:
        relay.close()


def test_runner_back_within_lease_resumes_its_task(
    stack: Stack, tmp_path: Path, transport: TransportKind
) -> None:
    """A half-open tunnel is detected; the runner reconnects and delivers the running task."""
    with _task_through_relay(
        stack, tmp_path, transport, lease_ttl=10_000 * MS, seconds=1500 * MS, pool_size=2
    ) as t:
        t.relay.freeze()
        assert stack.plane is not None and stack.plane.state is not None
        state = stack.plane.state
        wait_for(lambda: t.running.runner_id in state.suspects, "the control plane to notice")
        wait_for(
            lambda: t.running.runner.connection.outage_since is not None, "the runner to notice"
        )
        t.relay.thaw()
        answer = t.call.result(30)
        assert answer.status_code == 200 and answer.json()["output"] == "done"
        assert t.log.read_text() == "start\n"  # ran once: resumed, not re-run
        assert t.running.runner.reconnects >= 1


def test_lease_expiry_requeues_to_another_runner(
    stack: Stack, tmp_path: Path, transport: TransportKind
) -> None:
    """A runner gone past its lease loses the task to another runner; the client gets one answer.

    When the lost runner comes back it is told to drop the task (not adopted), so the answer
    the client got is the only one.
    """
    with _task_through_relay(
        stack,
        tmp_path,
        transport,
        lease_ttl=300 * MS,
        seconds=1000 * MS,
        pool_size=1,
        runner_id="doomed",
    ) as t:
        t.relay.freeze()
        stack.start_runner(tmp_path / "once", pool_size=1, runner_id="survivor")
        answer = t.call.result(30)
        assert answer.status_code == 200 and answer.json()["output"] == "done"
        assert t.log.read_text() == "start\nstart\n"  # re-run once, on the survivor
        t.relay.thaw()
        wait_for(lambda: t.running.runner.reconnects >= 1, "the doomed runner to come back")
        executor = t.running.runner._executor
        assert executor is not None
        wait_for(lambda: executor.busy == 0, "the abandoned copy to be cancelled")
