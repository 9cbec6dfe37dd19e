"""Run commands in a network namespace that has only loopback (``unshare -n``; needs root).

Everything started inside — Python children, grpc's own C sockets, DNS lookups — sees no
network but 127.0.0.1 (and any address a test puts on ``lo``), so a connection anywhere else
fails. Nothing is ever sent outside: the namespace has no route out at all.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["AUDIT_DIR", "LAN_ADDRESS", "run_isolated", "skip_reason"]

#: a folder with a ``sitecustomize`` that logs every non-loopback address Python reaches for
AUDIT_DIR = Path(__file__).resolve().parent / "netaudit"
#: an address put on the namespace's ``lo`` to stand for a control plane on the LAN
LAN_ADDRESS = "10.99.0.1"


@functools.cache
def skip_reason() -> str | None:
    """Why network namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root for `unshare -n` (CI runs as root)"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"needs `{tool}` (util-linux / iproute2) for a network namespace"
    probe = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"`unshare -n` does not work here: {probe.stderr.strip() or probe.returncode}"
    return None


def run_isolated(
    script: str,
    *,
    env: dict[str, str],
    timeout: float,
    cwd: Path | None = None,
    lan: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run the sh ``script`` in a fresh network namespace with only ``lo`` up.

    Args:
        script: sh commands.
        env: the environment.
        timeout: seconds before it is killed.
        cwd: the working directory.
        lan: also put :data:`LAN_ADDRESS` on ``lo`` (a "LAN" address that exists only there).
    """
    setup = "ip link set lo up"
    if lan:
        setup += f" && ip addr add {LAN_ADDRESS}/32 dev lo"
    return subprocess.run(
        ["unshare", "-n", "sh", "-c", f"{setup} && {script}"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
