"""A cold start with a real engine: the runner comes up before llama.cpp's server (llama-cpp-python,
which listens only once its model is loaded), shows the model loading, then serves it.

This is `vllm serve X & edge-runner up --openai-upstream :8000` on a small scale: the port is
chosen first, the runner points at it while nothing listens there, and the engine starts later.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from edge_runner.backends.openai_upstream import OpenAIUpstreamBackend
from edge_runner.client import Client
from edge_runner.testing.processes import free_port
from tests.conftest import MS, Stack, model_status, wait_for
from tests.engines.conftest import need, start_llama, stop_engine

pytestmark = pytest.mark.engine


def test_a_runner_started_before_the_engine_loads_then_serves(
    stack: Stack, tiny_gguf: Path
) -> None:
    """Loading (503 MODEL_LOADING with Retry-After) while the engine is not up, online once
    it is, and a predict answers with the engine's text."""
    need("llama_cpp")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    backend = OpenAIUpstreamBackend(
        base_url, ["tiny"], api_key="", probe_interval=50 * MS, start_timeout=600.0
    )
    stack.start_runner(backend=backend)
    wait_for(lambda: model_status(stack, "tiny") == "loading", "the model to show as loading")
    response = httpx.post(
        f"{stack.api_base}/v2/models/tiny/predict",
        headers=stack.headers,
        json={"prompt": "hi", "max_tokens": 4},
        timeout=10,
    )
    assert response.status_code == 503 and "retry-after" in response.headers
    error = response.json()["error"]
    assert error["code"] == "MODEL_LOADING" and base_url in error["message"]
    engine = start_llama(tiny_gguf, "--port", str(port))
    try:
        assert engine.base_url == base_url
        wait_for(
            lambda: model_status(stack, "tiny") == "online", "the model to be online", 30_000 * MS
        )
        with Client(stack.api_base, stack.token) as client:
            answer = client.predict("tiny", prompt="hi", max_tokens=4)
        assert isinstance(answer, str)
    finally:
        stop_engine(engine)
