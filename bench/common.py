"""Helpers the benchmarks share: a process's CPU time and RSS from /proc, and (from the public
kit :mod:`edge_runner.testing`) daemons that report ready on a pipe, stopping them, free ports
and a throwaway environment."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from edge_runner import testing
from edge_runner.testing import daemon_env as bench_env
from edge_runner.testing import free_port, stop_all

__all__ = [
    "CLK_TCK",
    "bench_env",
    "cpu_seconds",
    "free_port",
    "model_online",
    "percentile",
    "rss_mib",
    "spawn_ready",
    "stop_all",
    "until",
]

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def spawn_ready(
    args: list[str], env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """:func:`edge_runner.testing.spawn_ready` with the daemon's log discarded (the benches
    print their own numbers)."""
    return testing.spawn_ready(args, env, stderr=subprocess.DEVNULL)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) that process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` now, in MiB."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


def until(condition: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Poll ``condition`` until it holds; exit naming ``what`` after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def model_online(http: httpx.Client, base: str, model: str) -> bool:
    """Whether the control plane at ``base`` lists ``model`` as online."""
    try:
        models = http.get(f"{base}/v2/models").json()["models"]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return any(m["id"] == model and m["status"] == "online" for m in models)
