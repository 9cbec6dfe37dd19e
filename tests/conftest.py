"""Shared test fixtures: an isolated home, a scalable time unit, and the real stack on loopback.

The stack, the helpers for daemons as processes and the model-folder writer are the public
kit :mod:`edge_runner.testing` (re-exported here for the suite): the control plane and runners
run on an asyncio loop in a background thread, listening on 127.0.0.1:0 and meeting through
the real gRPC tunnel; tests talk to them with real HTTP clients. Nothing of ours is mocked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_runner.client import Client
from edge_runner.testing import (
    MS,
    LoopThread,
    RunningRunner,
    Stack,
    spawn_ready,
    stop_process,
    wait_for,
    write_model,
)
from tests.fuzzing import register_profiles

__all__ = [
    "HELLO",
    "MS",
    "ROOT",
    "SLOW_MODEL",
    "LoopThread",
    "RunningRunner",
    "Stack",
    "model_record",
    "model_status",
    "post_predict",
    "spawn_ready",
    "stop_process",
    "wait_for",
    "write_model",
]

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello"


def model_record(stack: Stack, model_id: str) -> dict[str, Any] | None:
    """The control plane's record of ``model_id`` (``GET /v2/models``), or None."""
    with Client(stack.api_base, stack.token) as client:
        return next((m for m in client.models() if m["id"] == model_id), None)


def model_status(stack: Stack, model_id: str) -> str:
    """The model's status as the control plane shows it ("online", "loading", ...), or
    "absent" when it has no record of it."""
    model = model_record(stack, model_id)
    return "absent" if model is None else str(model["status"])


def post_predict(stack: Stack, model_id: str) -> httpx.Response:
    """``POST /v2/models/{model_id}/predict`` with a short prompt, whatever it answers."""
    return httpx.post(
        f"{stack.api_base}/v2/models/{model_id}/predict",
        headers=stack.headers,
        json={"prompt": "hi"},
        timeout=10,
    )


register_profiles()  # Hypothesis: derandomized in the suite, open-ended under `make fuzz`


@pytest.fixture(autouse=True)
def er_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own config/data/runtime dirs and the 0600 file secret store."""
    home = tmp_path / "home"
    monkeypatch.setenv("EDGE_RUNNER_HOME", str(home))
    monkeypatch.setenv("EDGE_RUNNER_SECRET_BACKEND", "file")
    for name in (
        "EDGE_RUNNER_PAT",
        "EDGE_RUNNER_API_BASE",
        "EDGE_RUNNER_CONTEXT",
        "EDGE_RUNNER_USER_ID",
        "EDGE_RUNNER_CONFIG",
    ):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    """A background event loop."""
    lt = LoopThread()
    yield lt
    lt.close()


@pytest.fixture
def stack(loop_thread: LoopThread, tmp_path: Path) -> Iterator[Stack]:
    """A control plane (started) ready for runners; everything is stopped afterwards."""
    s = Stack(tmp_path / "control", loop_thread, model=HELLO)
    s.start_control()
    yield s
    s.close()


@pytest.fixture
def tls_stack(stack: Stack, tmp_path: Path) -> Stack:
    """``stack`` with its control plane serving TLS from a private CA (as --tls-self-signed);
    the CA file is ``tls_stack.ca``."""
    from edge_runner.control.tls import self_signed

    files = self_signed(tmp_path / "tls-data", ["127.0.0.1"])
    stack.stop_control()
    stack.start_control(tls_cert=files.cert, tls_key=files.key)
    stack.ca = files.ca
    return stack


@pytest.fixture
def hello_stack(stack: Stack) -> Stack:
    """The stack with one runner serving examples/hello."""
    stack.start_runner(HELLO)
    return stack


#: class body of a model whose ``wait(seconds)`` blocks until cancelled or the time is up
SLOW_MODEL = (
    "    @ModelClass.method\n"
    "    def wait(self, seconds: float) -> str:\n"
    "        '''Block until cancelled or the time is up.'''\n"
    "        end = time.monotonic() + seconds\n"
    "        while not self.cancelled() and time.monotonic() < end:\n"
    "            time.sleep(0.005)\n"
    "        return 'cancelled' if self.cancelled() else 'done'\n"
)
