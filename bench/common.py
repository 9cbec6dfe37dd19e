"""Helpers the benchmarks share: free ports and children that report ready on a pipe."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Any

__all__ = ["free_port", "spawn_ready"]


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
