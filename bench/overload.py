"""Memory under repeated 10x overload: does anything in the control plane grow without bound?

Usage: ``python bench/overload.py [--rounds 5] [--requests 500]``. Starts a control plane
(``--max-queue 64``) and a runner (pool 4) serving ``bench/models/slow``, then floods
``wait(0.02)`` with far more concurrent requests than pool + queue, round after round, and
prints the control plane's and runner's resident memory (VmRSS) after each round together with
how many requests were shed with 429. Flat RSS across rounds means queues and task records are
released. A benchmark, not a test; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_env, spawn_ready  # noqa: E402 - sibling benchmark module
from recovery import SLOW  # noqa: E402 - sibling benchmark module


def rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def flood(base: str, token: str, requests: int) -> dict[int, int]:
    """Fire ``requests`` calls at once; count answers by status."""
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=120, limits=limits) as client:
        url = f"{base}/v2/models/slow/wait"
        answers = await asyncio.gather(
            *(client.post(url, json={"seconds": 0.02}) for _ in range(requests)),
            return_exceptions=True,
        )
    counts: dict[int, int] = {}
    for answer in answers:
        status = answer.status_code if isinstance(answer, httpx.Response) else -1
        counts[status] = counts.get(status, 0) + 1
    return counts


def main() -> int:
    """Run the rounds and print memory after each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = bench_env(tmp)
        control, info = spawn_ready(
            ["control", "--port", "0", "--grpc-port", "0", "--max-queue", "64"], env
        )
        token = Path(info["admin_token_file"]).read_text().strip()
        runner_env = dict(env, EDGE_RUNNER_API_BASE=info["api_base"], EDGE_RUNNER_PAT=token)
        runner, _ = spawn_ready(["runner", str(SLOW), "--pool-size", "4"], runner_env)
        try:
            print(
                f"start:    control {rss_mib(control.pid):6.1f} MiB, "
                f"runner {rss_mib(runner.pid):6.1f} MiB"
            )
            for i in range(args.rounds):
                counts = asyncio.run(flood(info["api_base"], token, args.requests))
                print(
                    f"round {i + 1}:  control {rss_mib(control.pid):6.1f} MiB, "
                    f"runner {rss_mib(runner.pid):6.1f} MiB, answers {counts}",
                    flush=True,
                )
        finally:
            for proc in (runner, control):
                proc.terminate()
                proc.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
