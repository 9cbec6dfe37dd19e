"""Real inference engines for the engine tests: llama.cpp's server (llama-cpp-python) on a
generated tiny model, on 127.0.0.1.

``make test-engines`` installs the engine and sets ``EDGE_RUNNER_REQUIRE_ENGINES=1``: then an
engine that is missing or does not start fails the tests. Elsewhere (``make test`` on a
machine without the engine) they are skipped, saying how to run them.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import MS, wait_for

HERE = Path(__file__).resolve().parent
REQUIRED = os.environ.get("EDGE_RUNNER_REQUIRE_ENGINES") == "1"


def need(module: str) -> None:
    """Skip (or fail, under ``make test-engines``) when ``module`` is not installed. It is
    looked up, not imported: llama_cpp loads its native library and opens files at import,
    which the engine's own process does, not pytest's."""
    if importlib.util.find_spec(module) is None:
        message = f"{module} is not installed: run `make test-engines`"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class Engine:
    """A running engine: its OpenAI base URL (``…/v1``), the model id, its process, and the
    API key it requires (None: none)."""

    base_url: str
    model: str
    proc: subprocess.Popen[bytes]
    api_key: str | None = None

    @property
    def alive(self) -> bool:
        """Whether the engine's process still runs."""
        return self.proc.poll() is None


def start_llama(model_path: Path, *extra: str, api_key: str | None = None) -> Engine:
    """Start llama.cpp's server on a port the OS picks; return once it answers /v1/models.

    ``api_key``: the server requires it as a bearer token.
    """
    keyed = ["--api-key", api_key] if api_key else []
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "serve_llama.py"), str(model_path), *extra, *keyed],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("PORT "):
        proc.kill()
        pytest.fail(f"llama.cpp's server did not start (it printed {line!r})")
    engine = Engine(f"http://127.0.0.1:{int(line.split()[1])}/v1", "tiny", proc, api_key)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def answers() -> bool:
        try:
            response = httpx.get(f"{engine.base_url}/models", headers=headers, timeout=1)
            return response.status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(lambda: answers() or not engine.alive, "llama.cpp's server to answer", 30_000 * MS)
    if not engine.alive:
        pytest.fail(f"llama.cpp's server exited with {proc.returncode} while starting")
    return engine


def stop_engine(engine: Engine) -> None:
    """Stop the engine's process (kill after a grace period)."""
    if engine.alive:
        engine.proc.terminate()
        try:
            engine.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            engine.proc.kill()
            engine.proc.wait()
    if engine.proc.stdout is not None:
        engine.proc.stdout.close()


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated model (tests/engines/tiny_gguf.py), once per session."""
    need("gguf")
    from tests.engines.tiny_gguf import write_tiny_gguf

    return write_tiny_gguf(tmp_path_factory.mktemp("engine") / "tiny.gguf")


@pytest.fixture(scope="module")
def llama(tiny_gguf: Path) -> Iterator[Engine]:
    """llama.cpp's server on the tiny model, with embeddings on."""
    need("llama_cpp")
    engine = start_llama(tiny_gguf, "--embedding")
    yield engine
    stop_engine(engine)
