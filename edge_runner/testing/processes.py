"""Daemons as child processes: start one and wait for its ready line, stop it, free ports.

Every daemon command takes a hidden ``--ready-fd N``: once serving it writes one JSON line (its
ports, ids and models) to that descriptor. :func:`spawn_ready` waits for that line instead of
polling a port.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import IO

from edge_runner.testing.timing import MS
from edge_runner.views import JSONObject

__all__ = ["NotReady", "daemon_env", "free_port", "spawn_ready", "stop_all", "stop_process"]


def daemon_env(home: str | os.PathLike[str], **extra: str) -> dict[str, str]:
    """The environment for throwaway daemons: this one without its ``EDGE_RUNNER_*``
    variables (no context, token or address of the caller's leaks in), plus their own
    ``EDGE_RUNNER_HOME``, the 0600 file secret store (no keyring prompt), warnings only on
    stderr, unbuffered output; ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RUNNER_")}
    env.update(
        EDGE_RUNNER_HOME=str(home),
        EDGE_RUNNER_SECRET_BACKEND="file",
        EDGE_RUNNER_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def free_port() -> int:
    """A port free on 127.0.0.1 right now (prefer port 0 where the daemon takes it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NotReady(RuntimeError):
    """A daemon exited, or stayed silent, before its ready line.

    Attributes:
        proc: the process (still running when it timed out).
    """

    def __init__(self, message: str, proc: subprocess.Popen[bytes]) -> None:
        super().__init__(message)
        self.proc = proc


def spawn_ready(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    stdout: int | IO[bytes] | None = None,
    stderr: int | IO[bytes] | None = None,
    timeout: float | None = None,
    entry: Sequence[str] = ("-m", "edge_runner"),
    new_session: bool = False,
) -> tuple[subprocess.Popen[bytes], JSONObject]:
    """Start ``python -m edge_runner ARGS --ready-fd N``; return it and its ready line.

    Args:
        args: the command and its options (``["control", "--port", "0"]``).
        env: its environment (:func:`daemon_env`).
        stdout: where its output goes (default: ours).
        stderr: where its log goes (default: ours).
        timeout: how long to wait for the ready line (default: as long as it runs).
        entry: what follows ``python`` before ``args`` (``("-c", CODE)`` for a variant).
        new_session: start it in its own session, so a Ctrl-C reaches only the caller.

    Raises:
        NotReady: it exited, or was silent for ``timeout``, before it was ready (a process
            still running then is left to the caller, on the exception).
    """
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, *entry, *args, "--ready-fd", str(write_fd)],
            pass_fds=(write_fd,),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=new_session,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    try:
        line = _read_line(read_fd, timeout)
    finally:
        os.close(read_fd)
    if line:
        return proc, dict(json.loads(line))
    try:  # the pipe closed: it is exiting (or timed out, and still running)
        code = proc.wait(None if timeout is None else 0.1)
    except subprocess.TimeoutExpired:
        raise NotReady(f"`edge-runner {args[0]}` was not ready in {timeout:g} s", proc) from None
    raise NotReady(f"`edge-runner {args[0]}` exited with code {code}", proc)


def _read_line(fd: int, timeout: float | None) -> bytes:
    """Up to the first newline; b"" on end of file (the child exited) or timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return b""
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            return b""
        chunk = os.read(fd, 4096)
        if not chunk:
            return b""
        data += chunk
    return data.split(b"\n", 1)[0]


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10_000 * MS) -> int:
    """SIGTERM (a planned stop: drain, then exit) and wait; SIGKILL after ``timeout``.

    Returns:
        The exit code, or -9 when it had to be killed.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        return -9


def stop_all(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 15_000 * MS) -> None:
    """SIGTERM every process first (so they drain in parallel), then wait; kill stragglers."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
