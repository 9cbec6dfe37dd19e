"""Faults with a real engine behind edge-runner: the engine killed mid-stream, and a client that
cancels mid-stream (the engine must stop generating, not only edge-runner stop reading).

Each test starts an engine of its own (one is killed), with a context long enough that an
answer takes seconds: the tiny model makes ~40 tokens/s on one thread here, and its end token
is suppressed (``logit_bias``) so the answer does not stop early by chance.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from edge_runner.backends.openai_upstream import OpenAIUpstreamBackend
from edge_runner.client import Client
from tests.conftest import MS, RunningRunner, Stack, wait_for
from tests.engines.conftest import Engine, start_llama, stop_engine

pytestmark = pytest.mark.engine

#: a long answer, with the model's end-of-text token (id 2) ruled out
LONG = {"max_tokens": 400, "logit_bias": {"2": -100}}


@pytest.fixture
def engine(tiny_gguf: Path) -> Iterator[Engine]:
    """An engine of this test's own."""
    from tests.engines.conftest import need

    need("llama_cpp")
    started = start_llama(tiny_gguf, "--n-ctx", "1024")
    yield started
    stop_engine(started)


@pytest.fixture
def proxy(stack: Stack, engine: Engine) -> RunningRunner:
    """A runner proxying to the engine."""
    backend = OpenAIUpstreamBackend(engine.base_url, api_key="", probe_interval=50 * MS)
    return stack.start_runner(backend=backend)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_an_engine_killed_mid_stream_ends_the_answer_clearly(
    stack: Stack, engine: Engine, proxy: RunningRunner
) -> None:
    """The client gets an error it can read (not a hang, not a silent end), and the runner's
    slot comes back."""
    client = openai.OpenAI(base_url=f"{stack.api_base}/v1", api_key=stack.token, max_retries=0)
    stream = client.chat.completions.create(
        model=engine.model,
        messages=[{"role": "user", "content": "go on"}],
        stream=True,
        extra_body=LONG,
    )
    chunks = iter(stream)
    next(chunks)
    engine.proc.kill()
    with pytest.raises(openai.APIError) as caught:
        for _ in chunks:
            pass
    assert caught.value.message  # says what happened
    executor = proxy.runner._executor
    assert executor is not None
    wait_for(lambda: executor.busy == 0, "the runner slot to come back")


def test_a_client_that_cancels_mid_stream_stops_the_engine(
    stack: Stack, engine: Engine, proxy: RunningRunner
) -> None:
    """Hanging up on a streamed answer stops the generation in the engine itself. Left alone,
    the engine would go on until edge-runner's buffers fill (a stream window of tokens and the
    sockets' buffers: over a second of generating here); after a hang-up it uses next to no
    CPU over the next 1.5 s, and the runner's slot comes back."""
    body = {
        "model": engine.model,
        "messages": [{"role": "user", "content": "go on"}],
        "stream": True,
        **LONG,
    }
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST", f"{stack.api_base}/v1/chat/completions", headers=stack.headers, json=body
        ) as response,
    ):
        data = (line for line in response.iter_lines() if line.startswith("data:"))
        for _ in range(10):  # a few tokens, read as they come
            next(data)
    executor = proxy.runner._executor
    assert executor is not None
    wait_for(lambda: executor.busy == 0, "the runner slot to come back")
    # An observation window (that the engine does NOT work can only be seen over time).
    before = _cpu_seconds(engine.proc.pid)
    time.sleep(1.5)
    spent = _cpu_seconds(engine.proc.pid) - before
    assert spent < 0.3, f"the engine spent {spent:.2f} s of CPU after the client hung up"


def test_an_engine_outage_is_503_then_heals(
    stack: Stack, engine: Engine, proxy: RunningRunner, tiny_gguf: Path
) -> None:
    """The engine gone: its model is unavailable (503 MODEL_UNAVAILABLE, the runner stays up);
    started again on the same port, it serves again."""
    port = int(engine.base_url.rsplit(":", 1)[1].split("/")[0])
    stop_engine(engine)

    def status() -> str:
        with Client(stack.api_base, stack.token) as client:
            return str(client.model(engine.model)["status"])

    wait_for(lambda: status() == "unavailable", "the model to be unavailable")
    response = httpx.post(
        f"{stack.api_base}/v2/models/{engine.model}/predict",
        headers=stack.headers,
        json={"prompt": "x", "max_tokens": 2},
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "MODEL_UNAVAILABLE"
    again = start_llama(tiny_gguf, "--port", str(port))
    try:
        wait_for(lambda: status() == "online", "the model to be back")
        with Client(stack.api_base, stack.token) as client:
            assert isinstance(client.predict(engine.model, prompt="y", max_tokens=2), str)
    finally:
        stop_engine(again)
