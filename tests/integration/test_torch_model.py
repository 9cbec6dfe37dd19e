"""A real neural network through the full path: examples/tiny-gpt (PyTorch, CPU here) served by a
runner, called through the control plane and the tunnel. Marked ``torch``; skipped without it
(``make test-torch`` installs the CPU build and runs these)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from edge_runner.backends.python_model import PythonModelBackend
from edge_runner.client import Client
from tests.conftest import MS, ROOT, Stack, wait_for

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch", reason="torch is not installed (make test-torch)")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of examples/tiny-gpt with weights trained briefly by its own script."""
    copy = tmp_path_factory.mktemp("tiny") / "tiny-gpt"
    shutil.copytree(ROOT / "examples" / "tiny-gpt", copy, ignore=shutil.ignore_patterns("*.pt"))
    result = subprocess.run(
        [sys.executable, str(copy / "make_weights.py"), "--steps", "40"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (copy / "1" / "weights.pt").stat().st_size > 10_000
    return copy


@pytest.fixture
def served(stack: Stack, folder: Path) -> Stack:
    """A runner serving the trained copy."""
    stack.start_runner(backend=PythonModelBackend(folder))
    return stack


def test_generate_streams_characters_reproducibly(served: Stack) -> None:
    """generate streams max_tokens pieces; the same seed gives the same text, another not."""
    with Client(served.api_base, served.token) as client:
        pieces = list(client.generate("tiny-gpt", prompt="A runner ", max_tokens=40, seed=3))
        again = "".join(client.generate("tiny-gpt", prompt="A runner ", max_tokens=40, seed=3))
        other = "".join(client.generate("tiny-gpt", prompt="A runner ", max_tokens=40, seed=4))
        whole = client.predict("tiny-gpt", prompt="A runner ", max_tokens=40, seed=3)
        info = client.predict("tiny-gpt", "info")
    assert len(pieces) == 40 and all(len(p) == 1 for p in pieces)
    assert "".join(pieces) == again == whole != other
    assert info["device"] == "cpu" and info["parameters"] > 50_000


def test_cancel_stops_the_network_mid_stream(served: Stack) -> None:
    """A client that leaves a long generation frees the slot within a second."""
    with (
        httpx.Client(headers=served.headers, timeout=30) as client,
        client.stream(
            "POST",
            f"{served.api_base}/v2/models/tiny-gpt/generate",
            json={"prompt": "x", "max_tokens": 100_000},
        ) as response,
    ):
        lines = response.iter_lines()
        assert next(lines).startswith("event: chunk")
    executor = served.runners[0].runner._executor
    assert executor is not None
    wait_for(lambda: executor.busy == 0, "the slot to be free", 1_000 * MS)


def test_missing_weights_are_made_on_first_load(tmp_path: Path, folder: Path) -> None:
    """A folder without weights trains them when it loads (no download)."""
    fresh = tmp_path / "fresh"
    shutil.copytree(folder, fresh, ignore=shutil.ignore_patterns("*.pt"))
    backend = PythonModelBackend(fresh)
    backend.load()
    assert (fresh / "1" / "weights.pt").exists()
