"""Reliability timings with production defaults: how fast edge-runner recovers and cancels.

Usage: ``python bench/recovery.py [--cancels 50] [--restarts 3] [--kills 3]``

- **restart**: SIGTERM the control plane and start it again at once on the same ports and
  database; time from the signal to the runner registered again (the Goodbye hint is 1 s; the
  control plane itself takes ~0.7 s to start), and the same after SIGKILL (the runner finds out
  by itself and backs off).
- **re-queue**: two runners, a 0.5 s task on one of them, SIGKILL that runner; time from the
  kill to the client's answer (computed on the survivor after the 10 s lease).
- **cancel**: start a stream, DELETE /v2/tasks/{id}; time until the runner gave the slot back
  (the control plane's free slots are whole again). Reported as p50/p99.

A benchmark, not a test: it prints numbers and asserts nothing. Loopback only.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from common import free_port, spawn_ready

ROOT = Path(__file__).resolve().parent.parent
SLOW = ROOT / "bench" / "models" / "slow"


def _until(condition: Callable[[], bool], limit: float = 60.0) -> float:
    """Poll every 2 ms; return the seconds it took."""
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > limit:
            raise SystemExit("timed out")
        time.sleep(0.002)
    return time.perf_counter() - start


class Bench:
    """A control plane on fixed ports and its runners."""

    def __init__(self, home: Path) -> None:
        self.env = dict(os.environ, EDGE_RUNNER_HOME=str(home), EDGE_RUNNER_SECRET_BACKEND="file")
        self.port, self.grpc_port = free_port(), free_port()
        self.data = home / "control"
        self.control = self.start_control()
        self.base = f"http://127.0.0.1:{self.port}"
        self.token = (self.data / "admin-token").read_text().strip()
        self.http = httpx.Client(headers={"Authorization": f"Bearer {self.token}"}, timeout=60)
        self.runners: list[subprocess.Popen[bytes]] = []

    def start_control(self) -> subprocess.Popen[bytes]:
        args = ["control", "--port", str(self.port), "--grpc-port", str(self.grpc_port)]
        proc, _ = spawn_ready([*args, "--data-dir", str(self.data)], self.env)
        return proc

    def start_runner(self, pool: int = 4) -> subprocess.Popen[bytes]:
        env = dict(self.env, EDGE_RUNNER_API_BASE=self.base, EDGE_RUNNER_PAT=self.token)
        proc, _ = spawn_ready(
            [
                "runner",
                str(SLOW),
                "--pool-size",
                str(pool),
                "--runner-id",
                f"bench-{len(self.runners)}",
            ],
            env,
        )
        self.runners.append(proc)
        return proc

    def runners_view(self) -> list[dict[str, Any]]:
        try:
            return list(self.http.get(f"{self.base}/v2/runners").json()["runners"])
        except (httpx.HTTPError, ValueError, KeyError):
            return []

    def connected(self, n: int) -> bool:
        return sum(r["status"] == "connected" for r in self.runners_view()) >= n

    def close(self) -> None:
        for proc in [*self.runners, self.control]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.runners, self.control]:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.http.close()


def bench_restart(home: Path, rounds: int) -> dict[str, list[float]]:
    b = Bench(home)
    out: dict[str, list[float]] = {"planned": [], "crash": []}
    try:
        b.start_runner()
        _until(lambda: b.connected(1))
        for _ in range(rounds):
            for kind, sig in (("planned", signal.SIGTERM), ("crash", signal.SIGKILL)):
                start = time.perf_counter()
                b.control.send_signal(sig)
                b.control.wait(30)
                b.control = b.start_control()
                _until(lambda: b.connected(1))
                out[kind].append(time.perf_counter() - start)
    finally:
        b.close()
    return out


def bench_requeue(home: Path, rounds: int) -> list[float]:
    times = []
    for i in range(rounds):
        b = Bench(home / str(i))
        try:
            victim = b.start_runner(pool=1)
            _until(lambda: b.connected(1))  # noqa: B023 - used at once, in this iteration
            result: list[httpx.Response] = []

            def call(bench: Bench = b, out: list[httpx.Response] = result) -> None:
                url = f"{bench.base}/v2/models/slow/wait"
                out.append(bench.http.post(url, json={"seconds": 0.5}))

            caller = threading.Thread(target=call)
            caller.start()
            _until(lambda: any(r["busy"] for r in b.runners_view()))  # noqa: B023
            b.start_runner(pool=1)  # the survivor, idle
            killed = time.perf_counter()
            victim.kill()
            victim.wait()
            caller.join(60)
            times.append(time.perf_counter() - killed)
            if not result or result[0].status_code != 200:
                raise SystemExit(f"the re-queued task failed: {result}")
        finally:
            b.close()
    return times


def bench_cancel(home: Path, rounds: int) -> list[float]:
    b = Bench(home)
    times = []
    try:
        b.start_runner(pool=1)
        _until(lambda: b.connected(1))

        def free() -> int:
            return sum(int(r["free"]) for r in b.runners_view() if r["status"] == "connected")

        for _ in range(rounds):
            with b.http.stream("POST", f"{b.base}/v2/models/slow/count", json={}) as r:
                task_id = r.headers["x-task-id"]
                for line in r.iter_lines():
                    if line.startswith("data:"):
                        break
                start = time.perf_counter()
                b.http.delete(f"{b.base}/v2/tasks/{task_id}")
                _until(lambda: free() == 1)
                times.append(time.perf_counter() - start)
    finally:
        b.close()
    return times


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(round(0.99 * (len(values) - 1))))]
    return (
        f"n={len(values)} p50 {statistics.median(values) * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {values[-1] * 1000:.0f} ms"
    )


def main() -> int:
    """Run the three measurements and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cancels", type=int, default=50)
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cancel = bench_cancel(Path(tmp) / "c", args.cancels)
        print(f"cancel → slot free:                 {_ms(cancel)}", flush=True)
        restart = bench_restart(Path(tmp) / "r", args.restarts)
        print(f"restart (SIGTERM) → runner back:    {_ms(restart['planned'])}", flush=True)
        print(f"restart (SIGKILL) → runner back:    {_ms(restart['crash'])}", flush=True)
        requeue = bench_requeue(Path(tmp) / "q", args.kills)
        print(f"runner SIGKILL → answer from other: {_ms(requeue)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
