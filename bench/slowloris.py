"""Slowloris against the control plane: how long trickling sockets are held, its memory, and a
normal client's predict latency while the attack runs.

Usage::

    .venv/bin/python bench/slowloris.py                          # 500 sockets, 20 s
    .venv/bin/python bench/slowloris.py --sockets 2000 --duration 30
    .venv/bin/python bench/slowloris.py --idle                   # sockets that send nothing

Starts ``edge-runner control`` (``--header-timeout``, default 10 s) and ``edge-runner runner
bench/echo`` as subprocesses on 127.0.0.1 (OS-chosen ports, a throwaway ``EDGE_RUNNER_HOME``).
A normal client calls ``POST /v2/models/echo/predict`` one call at a time on a kept-alive
connection it opened before the attack, first alone (``--baseline`` s), then while an attacker
process keeps ``--sockets`` connections open: each sends the start of a request head and one
more header line every ``--interval`` s (or nothing, with ``--idle``), and opens a new
connection whenever the server closes one, so the pressure stays on. Meanwhile a second client
opens a new connection for a call every 0.25 s (a client arriving mid-attack: past
``--max-connections`` it gets 503). The attacker is a process of its own, so its work does not
slow the client's measurements (it shares the machine's CPUs, as on a real host).

Prints: how long the server held each attacking socket (p50, max; a socket still open at the
end counts as held for the whole run), how many it cut off, the control plane's RSS before, at
its peak and after, and the client's predict latency p50/p99 alone and under attack. A
benchmark, not a test; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_env, rss_mib, spawn_ready, stop_all  # noqa: E402 - sibling benchmark module

ECHO = Path(__file__).resolve().parent / "echo"
HEAD = b"GET /v2/models HTTP/1.1\r\nHost: bench\r\n"


async def _attack(
    port: int, sockets: int, duration: float, interval: float, idle: bool
) -> dict[str, Any]:
    """Keep ``sockets`` slow connections open for ``duration`` s; how long each was held."""
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    cut: list[float] = []  # seconds from open to the server's answer or close
    open_at_end: list[float] = []  # ages of the sockets still open when the run ended
    errors = 0

    async def one() -> None:
        nonlocal errors
        while loop.time() < end:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                errors += 1
                await asyncio.sleep(interval)
                continue
            opened = loop.time()
            if not idle:
                writer.write(HEAD)
            answered = asyncio.ensure_future(reader.read(1))
            while not answered.done() and loop.time() < end:
                await asyncio.wait({answered}, timeout=min(interval, max(end - loop.time(), 0)))
                if not answered.done() and not idle:
                    writer.write(b"X-Slow: 1\r\n")
            if answered.done():
                cut.append(loop.time() - opened)
            else:
                answered.cancel()
                open_at_end.append(loop.time() - opened)
            writer.close()

    await asyncio.gather(*(one() for _ in range(sockets)))
    return {"cut": cut, "open_at_end": open_at_end, "errors": errors}


def _attacker(port: int, args: dict[str, Any], out: Any) -> None:
    out.send(
        asyncio.run(
            _attack(port, args["sockets"], args["duration"], args["interval"], args["idle"])
        )
    )


def _latencies(client: httpx.Client, seconds: float) -> list[float]:
    """Predict calls one after another on ``client`` for ``seconds``; each latency in ms."""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        r = client.post("/v2/models/echo/predict", json={"text": "hi"})
        out.append((time.perf_counter() - start) * 1000)
        r.raise_for_status()
    return out


def _fresh(base: str, token: str, stop: threading.Event, answers: dict[int, int]) -> None:
    """A new connection every 0.25 s (a client arriving now): count the answers by status."""
    headers = {"Authorization": f"Bearer {token}"}
    while not stop.wait(0.25):
        try:
            status = httpx.post(
                f"{base}/v2/models/echo/predict", json={"text": "hi"}, headers=headers, timeout=30
            ).status_code
        except httpx.HTTPError:
            status = 0
        answers[status] = answers.get(status, 0) + 1


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    """Run the attack and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--duration", type=float, default=20.0, help="attack length, s")
    parser.add_argument("--baseline", type=float, default=5.0, help="client alone first, s")
    parser.add_argument("--interval", type=float, default=1.0, help="s between header lines")
    parser.add_argument(
        "--header-timeout", type=float, help="passed to control (default: control's own, 10 s)"
    )
    parser.add_argument("--idle", action="store_true", help="attacking sockets send nothing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = bench_env(tmp)
        limits = (
            [] if args.header_timeout is None else ["--header-timeout", str(args.header_timeout)]
        )
        control, info = spawn_ready(["control", "--port", "0", "--grpc-port", "0", *limits], env)
        token = Path(info["admin_token_file"]).read_text().strip()
        runner_env = dict(env, EDGE_RUNNER_API_BASE=info["api_base"], EDGE_RUNNER_PAT=token)
        runner, _ = spawn_ready(["runner", str(ECHO), "--pool-size", "8"], runner_env)
        try:
            return _run(args, info["api_base"], token, control.pid)
        finally:
            stop_all([runner, control])


def _run(args: argparse.Namespace, base: str, token: str, control_pid: int) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    # One client connected before the attack, as the clients a server already has.
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        _latencies(client, 1.0)  # warm-up
        alone = _latencies(client, args.baseline)
        rss_before = rss_mib(control_pid)
        port = int(base.rsplit(":", 1)[1])
        receive, send = multiprocessing.Pipe(duplex=False)
        attack = multiprocessing.get_context("spawn").Process(
            target=_attacker, args=(port, vars(args), send)
        )
        attack.start()
        peak = rss_before
        stop = threading.Event()
        fresh: dict[int, int] = {}

        def sample() -> None:
            nonlocal peak
            while not stop.wait(0.25):
                peak = max(peak, rss_mib(control_pid))

        helpers = [
            threading.Thread(target=sample, daemon=True),
            threading.Thread(target=_fresh, args=(base, token, stop, fresh), daemon=True),
        ]
        time.sleep(min(2.0, args.duration / 4))  # the attack ramps up
        for helper in helpers:
            helper.start()
        under = _latencies(client, max(args.duration - 3.0, 1.0))
        stop.set()
        result = receive.recv()
        attack.join()
        for helper in helpers:
            helper.join()
        time.sleep(1.0)
        rss_after = rss_mib(control_pid)
    cut, left = result["cut"], result["open_at_end"]
    mode = "idle" if args.idle else f"trickling a header line every {args.interval:g} s"
    timeout = "default" if args.header_timeout is None else f"{args.header_timeout:g} s"
    print(f"{args.sockets} sockets {mode} for {args.duration:g} s; header timeout {timeout}")
    if cut:
        print(
            f"cut off by the server: {len(cut)} connections, held p50 "
            f"{statistics.median(cut):.2f} s, max {max(cut):.2f} s"
        )
    else:
        print("cut off by the server: none")
    print(
        f"still open when the run ended: {len(left)}, the oldest {max(left, default=0):.2f} s; "
        f"connect errors: {result['errors']}"
    )
    print(
        f"control RSS: before {rss_before:.1f} MiB, peak {peak:.1f} MiB, after {rss_after:.1f} MiB"
    )
    print(
        f"predict alone:        {len(alone):5d} calls, p50 {_pct(alone, 0.5):6.2f} ms, "
        f"p99 {_pct(alone, 0.99):6.2f} ms"
    )
    print(
        f"predict under attack: {len(under):5d} calls, p50 {_pct(under, 0.5):6.2f} ms, "
        f"p99 {_pct(under, 0.99):6.2f} ms (a connection opened before the attack)"
    )
    answers = ", ".join(f"{k or 'error'}: {v}" for k, v in sorted(fresh.items()))
    print(f"new connections during the attack, answers by status: {answers}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
