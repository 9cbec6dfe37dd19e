"""Faults with a real engine behind edge-runner: the engine killed mid-stream, and a client that
cancels mid-stream (the engine must stop generating, not only edge-runner stop reading).

Each test starts an engine of its own (one is killed), with a context long enough that an
answer takes seconds: the tiny model makes ~40 tokens/s on one thread here, and its end token
is suppressed (``logit_bias``) so the answer does not stop early by chance.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from edge_runner.backends.openai_upstream import OpenAIUpstreamBackend
from tests.conftest import MS, RunningRunner, Stack, wait_for
from tests.engines.conftest import Engine, start_llama, stop_engine

#: a long answer, with the model's end-of-text token (id 2) ruled out
LONG = {"max_tokens": 400, "logit_bias": {"2": -100}}


@pytest.fixture
def engine(tiny_gguf: Path) -> Iterator[Engine]:
    """An engine of this test's own."""
    from tests.engines.conftest import _need

    _need("llama_cpp.server")
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
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 10 ms


def _busy_share(pid: int, window: float = 300 * MS) -> float:
    """The share of one core ``pid`` used over ``window`` seconds."""
    before = _cpu_seconds(pid)
    time.sleep(window)  # a measurement window, not a wait for a condition
    return (_cpu_seconds(pid) - before) / window


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
    """Hanging up on a streamed answer stops the generation in the engine itself: its process
    goes back to idle long before the answer would have ended."""
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
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data:"))
        assert _busy_share(engine.proc.pid) > 0.3  # it is generating
    started = time.monotonic()
    wait_for(lambda: _busy_share(engine.proc.pid) < 0.1, "the engine to stop generating")
    assert time.monotonic() - started < 5  # an answer of 400 tokens takes ~10 s here
    executor = proxy.runner._executor
    assert executor is not None
    wait_for(lambda: executor.busy == 0, "the runner slot to come back")
