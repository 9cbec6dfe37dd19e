"""Stream-in calls: chunks/s through one stream-in/stream-out echo, and the latency each chunk adds.

Usage::

    .venv/bin/python bench/stream_in.py                       # 20,000 items, 2,000 round trips
    .venv/bin/python bench/stream_in.py --items 50000 --pings 5000 --size 1024
    .venv/bin/python bench/stream_in.py --transport ws        # the runner's tunnel over WebSocket
    .venv/bin/python bench/stream_in.py --json

Starts ``edge-runner control`` and ``edge-runner runner bench/echo`` as subprocesses on 127.0.0.1
(OS-chosen ports, a throwaway ``EDGE_RUNNER_HOME``); the model's ``echo_stream`` method yields
each input item back as it takes it, so the numbers are edge-runner's overhead alone. Through
``Client.stream`` (the control plane's WebSocket route, the tunnel, the runner's worker thread
and back):

- **throughput**: one call sends ``--items`` items of ``--size`` bytes as fast as the path takes
  them while the caller reads the echoes; chunks/s is items over the time from the first send to
  the last echo. The CPU of each daemon and of this process (the client) over that time says
  where it goes.
- **added latency per chunk**: one call, ``--pings`` times: send one item, wait for its echo,
  then send the next. The round trip is what a chunk costs on its way in and out (the model
  does nothing); p50/p99. For scale, the same number of sequential unary ``predict`` calls of
  the same size over one keep-alive HTTP connection.

Loopback only; a benchmark, not a test (it checks only that every echo came back in order).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402 - sibling module
    bench_env,
    cpu_seconds,
    percentile,
    spawn_ready,
    stop_all,
)

from edge_runner.client import Client  # noqa: E402

ECHO_MODEL = Path(__file__).resolve().parent / "echo"


def _pcts(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(samples) * 1000, 3),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 3),
        "mean_ms": round(statistics.fmean(samples) * 1000, 3),
    }


def throughput(client: Client, items: int, size: int, pids: dict[str, int]) -> dict[str, Any]:
    """One call, ``items`` items as fast as they go; chunks/s and CPU per process."""
    payload = "x" * size
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.perf_counter()
    count = 0
    for output in client.stream("echo", "echo_stream", (payload for _ in range(items))):
        if output != payload:
            raise SystemExit(f"echo {count} came back wrong: {str(output)[:40]!r}")
        count += 1
    elapsed = time.perf_counter() - started
    if count != items:
        raise SystemExit(f"{count} echoes came back for {items} items")
    cpu = {name: (cpu_seconds(pid) - before[name]) / elapsed * 100 for name, pid in pids.items()}
    return {
        "items": items,
        "size": size,
        "seconds": round(elapsed, 3),
        "chunks_per_s": round(items / elapsed),
        "mib_per_s_each_way": round(items * size / elapsed / 2**20, 2),
        "cpu_pct_of_one_core": {name: round(v) for name, v in cpu.items()},
    }


def ping_pong(client: Client, pings: int, size: int) -> dict[str, Any]:
    """One call, one item at a time: each round trip is a chunk's added latency."""
    payload = "y" * size
    turn: queue.SimpleQueue[None] = queue.SimpleQueue()
    sent_at: list[float] = []

    def inputs() -> Iterator[str]:
        for _ in range(pings):
            sent_at.append(time.perf_counter())
            yield payload
            turn.get()  # the echo of this one came back

    rtts: list[float] = []
    for output in client.stream("echo", "echo_stream", inputs()):
        rtts.append(time.perf_counter() - sent_at[len(rtts)])
        if output != payload:
            raise SystemExit("a ping came back wrong")
        turn.put(None)
    warm = rtts[min(50, len(rtts) // 10) :]  # the first ones pay for warming up
    return {"pings": pings, "size": size, **_pcts(warm)}


def unary(client: Client, calls: int, size: int) -> dict[str, Any]:
    """Sequential unary predicts of the same size, for scale."""
    payload = "z" * size
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        if client.predict("echo", "predict", text=payload) != payload:
            raise SystemExit("a predict came back wrong")
        samples.append(time.perf_counter() - started)
    return {"calls": calls, "size": size, **_pcts(samples[min(50, calls // 10) :])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000, help="items of the throughput call")
    parser.add_argument("--pings", type=int, default=2_000, help="round trips of the latency call")
    parser.add_argument("--size", type=int, default=64, help="characters per item")
    parser.add_argument("--transport", choices=("grpc", "ws"), default="grpc")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    # `timeout` or Ctrl-C: unwind through the finally below, which stops the daemons.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        env = bench_env(tmp)
        procs = []
        try:
            control, info = spawn_ready(["control", "--port", "0", "--grpc-port", "0"], env)
            procs.append(control)
            token = Path(info["admin_token_file"]).read_text().strip()
            runner_env = dict(env, EDGE_RUNNER_API_BASE=info["api_base"], EDGE_RUNNER_PAT=token)
            runner, _ = spawn_ready(
                ["runner", str(ECHO_MODEL), "--transport", args.transport], runner_env
            )
            procs.append(runner)
            pids = {"control": control.pid, "runner": runner.pid, "client": os.getpid()}
            with Client(info["api_base"], token, timeout=60) as client:
                ping_pong(client, 100, args.size)  # warm up both paths
                throughput(client, 1_000, args.size, pids)
                result = {
                    "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                    f"Python {platform.python_version()}",
                    "transport": args.transport,
                    "throughput": throughput(client, args.items, args.size, pids),
                    "latency": ping_pong(client, args.pings, args.size),
                    "unary_for_scale": unary(client, args.pings, args.size),
                }
        finally:
            stop_all(procs)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    t, lat, one = result["throughput"], result["latency"], result["unary_for_scale"]
    print(f"{result['machine']}; runner tunnel over {args.transport}")
    print(
        f"throughput: {t['items']} items of {t['size']} B in {t['seconds']} s: "
        f"{t['chunks_per_s']} chunks/s ({t['mib_per_s_each_way']} MiB/s each way); CPU % of "
        f"one core: {t['cpu_pct_of_one_core']}"
    )
    print(
        f"per chunk:  round trip p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms "
        f"({lat['pings']} pings)"
    )
    print(f"unary:      predict p50 {one['p50_ms']} ms, p99 {one['p99_ms']} ms (for scale)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
