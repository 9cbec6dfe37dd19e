"""Start ``ollama serve`` as a child of the runner when no Ollama answers.

Used only for a loopback address: a remote Ollama is somebody else's to start. The child gets
``OLLAMA_HOST`` for the address the runner will use, none of edge-runner's own variables (no
token), and nothing on its command line but ``serve``. Its output goes to the runner's stderr
with ``--verbose``, else to a log file whose path errors name. It runs in its own process group,
dies with the runner (SIGTERM when the runner stops, and on Linux a parent-death signal should
the runner be killed), and is awaited.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import httpx

from edge_runner.errors import ConfigError
from edge_runner.net import is_loopback

__all__ = ["OllamaServe", "ensure_ollama"]

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/api/version", timeout=1.0).raise_for_status()
    except httpx.HTTPError:
        return False
    return True


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class OllamaServe:
    """A running ``ollama serve`` child; :meth:`stop` ends it."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path | None) -> None:
        self.process = process
        self.log = log

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        logger.info("stopped the `ollama serve` this runner started")


def ensure_ollama(
    url: str, *, verbose: bool, log_dir: Path, timeout: float = 30.0
) -> OllamaServe | None:
    """Make sure an Ollama answers at ``url``; start ``ollama serve`` when none does.

    Returns:
        The child, or None when an Ollama was already answering.

    Raises:
        ConfigError: none answers and none can be started here (not loopback, no binary, it
            exited or never answered); the message says what was tried and what to do.
    """
    if _answers(url):
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    binary = shutil.which("ollama")
    if not is_loopback(host):
        raise ConfigError(
            f"no Ollama answers at {url}; start it there (`ollama serve`), or point "
            "--ollama-host / OLLAMA_HOST at one that runs"
        )
    if binary is None:
        raise ConfigError(
            f"no Ollama answers at {url} and no `ollama` binary is on PATH; install Ollama from "
            "https://ollama.com/download (Linux: `curl -fsSL https://ollama.com/install.sh | "
            "sh`), then run `ollama serve`, or point --ollama-host / OLLAMA_HOST at a running one"
        )
    # Our own variables (a token in EDGE_RUNNER_PAT, say) are none of Ollama's business.
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RUNNER_")}
    env["OLLAMA_HOST"] = f"{parts.hostname}:{parts.port or 11434}"
    log: Path | None = None
    out: int | IO[bytes]
    if verbose:
        out = sys.stderr.fileno()
    else:
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / "ollama-serve.log"
        out = log.open("ab")
    logger.info("no Ollama answers at %s; starting `%s serve`", url, binary)
    try:
        process = subprocess.Popen(
            [binary, "serve"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            # preexec_fn is unsafe with threads that hold locks; this one only calls prctl.
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    finally:
        if not isinstance(out, int):
            out.close()
    child = OllamaServe(process, log)
    where = f"; its log: {log}" if log else ""
    deadline = time.monotonic() + timeout
    while not _answers(url):
        if process.poll() is not None:
            raise ConfigError(
                f"`ollama serve` exited with code {process.returncode} before answering at "
                f"{url}{where}"
            )
        if time.monotonic() > deadline:
            child.stop()
            raise ConfigError(f"`ollama serve` did not answer at {url} within {timeout:g} s{where}")
        time.sleep(0.05)
    logger.info("`ollama serve` answers at %s (pid %d%s)", url, process.pid, where)
    return child
