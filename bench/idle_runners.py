"""What many connected, idle runners cost one control plane: its CPU and resident memory.

Starts ``edge-runner control`` on 127.0.0.1 (``--control-args`` adds options: a replica's
``--registry``/``--bus``), then opens ``--runners`` real gRPC tunnels from this one process:
each is a protocol session (Hello with the echo model's spec, a granted slot, READY) that sends a
heartbeat every ``--heartbeat`` seconds, as a real runner does, and runs nothing. Once the
control plane lists them all, it samples the control plane's CPU time and RSS
(``/proc/<pid>/stat``) over ``--seconds``. The simulated runners' own cost is this process'
and is not counted.

    .venv/bin/python bench/idle_runners.py                          # 1,000 runners, 30 s
    .venv/bin/python bench/idle_runners.py --runners 200 --seconds 10
    .venv/bin/python bench/idle_runners.py --control-args "--registry postgresql://... --bus nats://..."

Budget (issue 20): under 5 % of one core and 300 MB for 1,000 idle runners on one replica.
A benchmark, not a test. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import shlex
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import bench_env, cpu_seconds, rss_mib, spawn_ready, stop_all

from edge_runner.models.signatures import MethodKind, MethodSignature, Param
from edge_runner.models.wire import model_spec
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol.runner_session import RunnerSession
from edge_runner.runner.transport import TransportKind, open_transport


def _echo_spec() -> pb.ModelSpec:
    """bench/echo's spec: ``predict(text: str) -> str``."""
    predict = MethodSignature("predict", MethodKind.UNARY, (Param("text", "str", True),), "str", "")
    return model_spec("echo", (predict,), backend="python", chat=False)


async def _runner(
    i: int,
    grpc: str,
    token: str,
    spec: pb.ModelSpec,
    heartbeat: float,
    up: asyncio.Event,
    stop: asyncio.Event,
    opened: list[int],
) -> None:
    """One idle runner: Hello, READY and one slot, then heartbeats until ``stop``."""
    hello = pb.Hello(runner_id=f"idle-{i:05d}", pool_size=1, models=[spec], hostname="bench")
    session = RunnerSession(hello)
    async with open_transport(
        TransportKind.GRPC, grpc_address=grpc, ws_url="", token=token
    ) as transport:
        for frame in session.data_to_send():
            await transport.send(frame)
        welcome = await transport.recv()
        if welcome is None:
            raise RuntimeError(f"runner {i}: the control plane closed the tunnel at the Hello")
        session.receive_frame(welcome)
        session.send_model_status(pb.ModelStatus(model_id=spec.model_id, state=pb.READY))
        session.grant(spec.model_id, 1)
        for frame in session.data_to_send():
            await transport.send(frame)
        opened.append(i)
        if len(opened) == up_target[0]:
            up.set()

        async def read() -> None:
            while (data := await transport.recv()) is not None:
                session.receive_frame(data)  # heartbeats only: nothing calls the model

        reader = asyncio.create_task(read())
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), heartbeat)
                session.send_heartbeat(busy=0)
                for frame in session.data_to_send():
                    await transport.send(frame)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader


#: how many runners ``up`` waits for (set before the runners start)
up_target = [0]


async def _measure(args: argparse.Namespace, info: dict[str, str], token: str, pid: int) -> dict:
    spec = _echo_spec()
    up, stop = asyncio.Event(), asyncio.Event()
    opened: list[int] = []
    up_target[0] = args.runners
    started = time.monotonic()
    runners = []
    for i in range(args.runners):
        runners.append(
            asyncio.create_task(
                _runner(i, info["grpc"], token, spec, args.heartbeat, up, stop, opened)
            )
        )
        if i % 50 == 49:
            await asyncio.sleep(0)  # let the handshakes go out in waves
    try:
        await asyncio.wait_for(up.wait(), 120)
        connect_s = time.monotonic() - started
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
            deadline = time.monotonic() + 60
            while True:
                listed = (await http.get(f"{info['api_base']}/v2/runners")).json()["runners"]
                live = sum(1 for r in listed if r["status"] == "connected")
                if live == args.runners:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {live} of {args.runners} runners are connected")
                await asyncio.sleep(0.2)
        await asyncio.sleep(args.warmup)
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        rss = []
        while time.monotonic() - t0 < args.seconds:
            rss.append(rss_mib(pid))
            await asyncio.sleep(1.0)
        cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) * 100
        failed = [t for t in runners if t.done() and t.exception() is not None]
    finally:
        stop.set()
        await asyncio.gather(*runners, return_exceptions=True)
    return {
        "runners": args.runners,
        "connect_all_s": round(connect_s, 2),
        "seconds": args.seconds,
        "control_cpu_pct_of_one_core": round(cpu, 2),
        "control_rss_mib_max": round(max(rss), 1),
        "runners_failed_while_measured": len(failed),
    }


def main() -> int:
    """Run and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runners", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured (default 30)")
    parser.add_argument("--warmup", type=float, default=5.0, help="before measuring (default 5)")
    parser.add_argument("--heartbeat", type=float, default=5.0, help="runner heartbeat, s")
    parser.add_argument("--control-args", default="", help="more `edge-runner control` options")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, 4 * args.runners + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    with tempfile.TemporaryDirectory(prefix="edge-idle-runners-") as home:
        env = bench_env(Path(home))
        command = ["control", "--port", "0", "--grpc-port", "0"]
        command += ["--max-connections", str(args.runners + 64), *shlex.split(args.control_args)]
        control, info = spawn_ready(command, env)
        try:
            token = Path(info["admin_token_file"]).read_text().strip()
            result = asyncio.run(_measure(args, info, token, control.pid))
        finally:
            stop_all((control,))
    result["control_args"] = args.control_args
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['runners']} idle runners (all connected in {result['connect_all_s']} s), "
            f"{args.seconds:g} s: control plane CPU {result['control_cpu_pct_of_one_core']} % "
            f"of one core, RSS {result['control_rss_mib_max']} MiB max"
            + (f" ({args.control_args})" if args.control_args else "")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
