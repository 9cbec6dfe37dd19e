"""No phone-home: the quick start and the air-gapped setup inside a network namespace that has
only loopback (``unshare -n``), so any connection elsewhere — from us, a child process, grpc's
own sockets, a library's DNS lookup — fails, and the steps with it.

The steps are in ``offline_driver.py``; pytest re-runs it under ``unshare -n``. Every Python
process in there also loads ``netaudit/sitecustomize.py``, whose audit hook logs any attempt at
a non-loopback address, so an attempt that fails quietly (a swallowed update check) is seen too.
The driver's first step makes one such attempt on purpose (a UDP ``connect()`` to TEST-NET-1,
which sends no packet) to prove the log works; nothing else may be in it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.conftest import MS, ROOT
from tests.integration.netns import AUDIT_DIR, LAN_ADDRESS, run_isolated, skip_reason
from tests.integration.offline_driver import LanSetup, QuickStart

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
]


def _drive(scenario: str, tmp_path: Path, *, lan: bool = False) -> tuple[str, list[str]]:
    """Run the driver's ``scenario`` isolated; its output and the audit log's lines."""
    log = tmp_path / "netaudit.log"
    env = dict(os.environ)
    env.update(
        PYTHONPATH=f"{AUDIT_DIR}{os.pathsep}{ROOT}",
        EDGE_RUNNER_NETAUDIT_LOG=str(log),
        EDGE_RUNNER_NETAUDIT_ALLOW=LAN_ADDRESS if lan else "",
        PYTHONUNBUFFERED="1",
    )
    done = run_isolated(
        f"exec {sys.executable} -m tests.integration.offline_driver {scenario}",
        env=env,
        cwd=ROOT,
        timeout=120_000 * MS,
        lan=lan,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    lines = log.read_text().splitlines() if log.exists() else []
    return done.stdout, lines


def _only_the_probe(lines: list[str]) -> None:
    probe = [line for line in lines if "'192.0.2.1'" in line and "offline_driver" in line]
    assert len(probe) == 1, f"the audit hook did not see the driver's probe: {lines}"
    others = [line for line in lines if line not in probe]
    assert others == [], "non-loopback addresses were tried:\n" + "\n".join(others)


def test_quick_start_with_only_loopback(tmp_path: Path) -> None:
    """up + predict + generate + OpenAI SDK + dashboard + MCP tool: all work with no network."""
    out, audit = _drive("quickstart", tmp_path)
    for step in QuickStart().steps():
        assert f"ok: {step.__name__} (" in out, out
    _only_the_probe(audit)


def test_air_gapped_setup_on_a_lan_address(tmp_path: Path) -> None:
    """docs/air-gapped.md: a TLS control plane with a private CA on a LAN address, a runner
    token, a runner box that trusts the copied CA, a call; nothing contacted but that address
    and loopback."""
    out, audit = _drive("lan", tmp_path, lan=True)
    for step in LanSetup(tmp_path).steps():
        assert f"ok: {step.__name__} (" in out, out
    _only_the_probe(audit)
