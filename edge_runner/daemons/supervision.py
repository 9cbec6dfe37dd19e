"""How a daemon process talks to whoever started it: a ready line, a lifeline, its logs.

``--ready-fd N`` (used by ``up`` and the tests) makes the process write one JSON line to file
descriptor N once it is serving, so the supervisor learns the chosen ports and ids without
polling. ``--lifeline-fd N`` is the read end of a pipe whose write end only the supervisor
holds: when it goes away (even by SIGKILL) the daemon stops itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Mapping

__all__ = ["capture_logs", "watch_lifeline", "write_ready"]

logger = logging.getLogger(__name__)


def write_ready(fd: int | None, info: Mapping[str, object]) -> None:
    """Tell a supervisor we are serving (one JSON line on ``fd``), then close it."""
    if fd is None:
        return
    try:
        os.write(fd, json.dumps(info).encode() + b"\n")
    finally:
        os.close(fd)


def watch_lifeline(fd: int | None, on_lost: Callable[[], None]) -> None:
    """Call ``on_lost`` when the supervisor holding the other end of pipe ``fd`` goes away.

    ``up`` gives each child the read end of a pipe whose write end only it holds; if the
    supervisor dies (even by SIGKILL) the child sees end-of-file and stops itself, so no
    control plane or runner is left behind.
    """
    if fd is None:
        return
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            data = os.read(fd, 64)
        except BlockingIOError:
            return
        if data:
            return
        loop.remove_reader(fd)
        os.close(fd)
        logger.warning("the supervising `edge-runner up` went away; stopping")
        on_lost()

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)


def capture_logs(buffer: logging.Handler) -> None:
    """Keep INFO records in ``buffer`` (for `edge-runner logs`) even when stderr shows only
    warnings (`up`)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if handler.level == logging.NOTSET:
            handler.setLevel(root.level)  # what stderr shows stays as configured
    buffer.setLevel(min(root.level, logging.INFO))
    root.setLevel(min(root.level, logging.INFO))
    root.addHandler(buffer)
