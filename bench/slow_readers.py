"""Memory and latency under slow and stopped stream readers: does back-pressure hold?

Usage::

    .venv/bin/python bench/slow_readers.py                    # 32 readers, pool 64, 30 s
    .venv/bin/python bench/slow_readers.py --readers 32 --duration 30 --pool-size 64
    .venv/bin/python bench/slow_readers.py --pythonpath /path/to/other/checkout   # compare

Starts ``edge-runner control`` and ``edge-runner runner bench/models/firehose`` (pool 64) as
subprocesses on 127.0.0.1 with a throwaway ``EDGE_RUNNER_HOME``. Measures a quick unary call's
latency (p50/p99 of sequential calls) alone; then opens ``--readers`` streams of 1 KiB chunks
that the model produces as fast as it is allowed to, half of them read slowly (1 KiB every
100 ms) and half never read, and for ``--duration`` seconds samples both daemons' resident
memory while the unary calls go on. Then the readers hang up and it times how long the runner
slots take to come back. ``--pythonpath`` runs the daemons from another checkout (the same
bench against an older build). Loopback only; a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_env, rss_mib, spawn_ready, stop_all  # noqa: E402 - sibling module

FIREHOSE = Path(__file__).resolve().parent / "models" / "firehose"


class Reader(threading.Thread):
    """One streaming call over a raw socket, read ``chunk`` bytes every ``every`` s (or never)."""

    def __init__(self, host: str, port: int, token: str, every: float | None) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection((host, port))
        body = b'{"n": 100000000, "size": 1024}'
        self.sock.sendall(
            b"POST /v2/models/firehose/stream HTTP/1.1\r\nHost: bench\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        self.every = every
        self.read_bytes = 0
        self.stop = threading.Event()

    def run(self) -> None:
        """Read slowly until stopped (a stopped reader only waits)."""
        while not self.stop.wait(self.every or 3600):
            try:
                data = self.sock.recv(1024)
            except OSError:
                return
            if not data:
                return
            self.read_bytes += len(data)

    def hang_up(self) -> None:
        """Close the connection."""
        self.stop.set()
        self.sock.close()


ERRORS: dict[str, int] = {}


def _latencies(client: httpx.Client, count: int) -> list[float]:
    """Time ``count`` sequential unary calls; failures are counted in ERRORS, not timed."""
    out = []
    for _ in range(count):
        start = time.perf_counter()
        try:
            r = client.post("/v2/models/firehose/ping", json={}, timeout=10)
        except httpx.HTTPError as exc:
            ERRORS[type(exc).__name__] = ERRORS.get(type(exc).__name__, 0) + 1
            continue
        if r.status_code != 200:
            ERRORS[str(r.status_code)] = ERRORS.get(str(r.status_code), 0) + 1
            continue
        out.append(time.perf_counter() - start)
    return out


def _pcts(values: list[float]) -> str:
    if not values:
        return "no call succeeded"
    values = sorted(values)
    p50 = statistics.median(values) * 1000
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))] * 1000
    return f"p50 {p50:.2f} ms, p99 {p99:.2f} ms ({len(values)} calls)"


def _busy(client: httpx.Client) -> int:
    try:
        runners = client.get("/v2/runners", timeout=10).json()["runners"]
    except httpx.HTTPError:
        return -1
    return sum(int(r["busy"]) for r in runners if r["status"] != "disconnected")


def main() -> int:
    """Run the bench and print what it measured."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=32)
    parser.add_argument("--pool-size", type=int, default=64)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--pythonpath", help="run the daemons from this checkout instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = bench_env(tmp)
        if args.pythonpath:
            env["PYTHONPATH"] = args.pythonpath
            os.chdir(tmp)  # `python -m` puts the working directory first on sys.path
        control_args = ["control", "--port", "0", "--grpc-port", "0"]
        if not args.pythonpath:  # a build without stream credit has no such option
            control_args += ["--max-paused-streams", str(args.readers)]
        control, info = spawn_ready(control_args, env)
        token = Path(info["admin_token_file"]).read_text().strip()
        runner_env = dict(env, EDGE_RUNNER_API_BASE=info["api_base"], EDGE_RUNNER_PAT=token)
        runner, _ = spawn_ready(
            ["runner", str(FIREHOSE), "--pool-size", str(args.pool_size)], runner_env
        )
        procs = [control, runner]
        readers: list[Reader] = []
        try:
            headers = {"Authorization": f"Bearer {token}"}
            client = httpx.Client(base_url=info["api_base"], headers=headers, timeout=60)
            _latencies(client, 50)  # warm-up
            before = _latencies(client, 300)
            rss0 = (rss_mib(control.pid), rss_mib(runner.pid))
            print(f"readers {args.readers}, pool {args.pool_size}, duration {args.duration:g} s")
            print(f"alone:   unary {_pcts(before)}")
            print(f"start:   control {rss0[0]:7.1f} MiB, runner {rss0[1]:7.1f} MiB")
            host, port = info["api_base"].removeprefix("http://").rsplit(":", 1)
            for i in range(args.readers):
                reader = Reader(host, int(port), token, 0.1 if i % 2 == 0 else None)
                reader.start()
                readers.append(reader)
            peak = list(rss0)
            during: list[float] = []
            settled: list[float] = []  # after the first 5 s, when the socket buffers are full
            started = time.monotonic()
            end = started + args.duration
            next_report = time.monotonic() + 5
            while time.monotonic() < end:
                batch = _latencies(client, 20)
                during += batch
                if time.monotonic() - started > 5:
                    settled += batch
                rss = (rss_mib(control.pid), rss_mib(runner.pid))
                peak = [max(peak[0], rss[0]), max(peak[1], rss[1])]
                if time.monotonic() >= next_report:
                    next_report += 5
                    print(
                        f"  t={args.duration - (end - time.monotonic()):4.0f} s: control "
                        f"{rss[0]:7.1f} MiB, runner {rss[1]:7.1f} MiB, busy slots "
                        f"{_busy(client)}",
                        flush=True,
                    )
            print(f"during:  unary {_pcts(during)}; failed calls: {ERRORS or 'none'}")
            if settled:
                print(f"  after the first 5 s: unary {_pcts(settled)}")
            print(f"peak:    control {peak[0]:7.1f} MiB, runner {peak[1]:7.1f} MiB")
            read = sum(r.read_bytes for r in readers)
            print(f"readers took {read / 2**20:.1f} MiB in all; busy slots {_busy(client)}")
            hung_up = time.monotonic()
            for reader in readers:
                reader.hang_up()
            while _busy(client) and time.monotonic() - hung_up < 60:
                time.sleep(0.05)
            print(f"after hang-up: slots free in {time.monotonic() - hung_up:.2f} s")
            rss1 = (rss_mib(control.pid), rss_mib(runner.pid))
            print(f"end:     control {rss1[0]:7.1f} MiB, runner {rss1[1]:7.1f} MiB")
        finally:
            for reader in readers:
                reader.hang_up()
            stop_all(procs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
