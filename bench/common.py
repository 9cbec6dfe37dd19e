"""Helpers the benchmarks share: free ports, children that report ready on a pipe, stopping
them, and a process's CPU time and RSS from /proc."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["bench_env", "cpu_seconds", "free_port", "rss_mib", "spawn_ready", "stop_all"]

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def bench_env(home: str) -> dict[str, str]:
    """The environment of a bench's daemons: a throwaway home, the file secret store, and
    warnings only on stderr."""
    return dict(
        os.environ,
        EDGE_RUNNER_HOME=home,
        EDGE_RUNNER_SECRET_BACKEND="file",
        EDGE_RUNNER_LOG_LEVEL="WARNING",
    )


def free_port() -> int:
    """A port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn_ready(
    args: list[str], env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start ``python -m edge_runner ARGS --ready-fd N`` and wait for its ready line."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_runner", *args, "--ready-fd", str(write_fd)],
        pass_fds=(write_fd,),
        env=env,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as ready:
        line = ready.readline()
    if not line:
        raise SystemExit(f"{args[0]} exited with {proc.wait()} before it was ready")
    return proc, json.loads(line)


def stop_all(procs: Iterable[subprocess.Popen[Any]], grace: float = 15.0) -> None:
    """SIGTERM every process (so they drain at once, in parallel), then wait; kill stragglers."""
    procs = list(procs)
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) that process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` now, in MiB."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20
