"""An OpenAI-compatible upstream that starts slowly: the runner waits, shows the models loading,
then serves them, through the real control plane and tunnel.

The upstream is the labelled fake of a loading ``llama-server`` (tests/fakes/openai_server.py):
not listening yet ("connection refused", as vLLM or llama-cpp-python while they load), or
answering 503 "Loading model" (llama.cpp's C++ server), then listing its models.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_runner.backends.openai_upstream import START_HINT, OpenAIUpstreamBackend
from edge_runner.backends.source import ModelSource, build_backend
from edge_runner.errors import ConfigError
from tests.conftest import MS, Stack, model_record, model_status, post_predict, wait_for
from tests.fakes.openai_server import FakeOpenAIServer

#: a start timeout no test reaches (the tests that wait for it set their own)
LONG = 600.0


@pytest.fixture
def engine() -> Iterator[FakeOpenAIServer]:
    """The fake engine, not listening yet (each test starts it when it means to)."""
    with FakeOpenAIServer(["m", "other"]) as fake:
        yield fake


def _backend(
    engine: FakeOpenAIServer, models: list[str] | None, **options: Any
) -> OpenAIUpstreamBackend:
    options.setdefault("start_timeout", LONG)
    return OpenAIUpstreamBackend(engine.url, models, probe_interval=20 * MS, **options)


@pytest.mark.parametrize("listening", [False, True], ids=["refused", "503-loading"])
def test_named_models_are_loading_while_it_starts_then_serve(
    stack: Stack, engine: FakeOpenAIServer, listening: bool
) -> None:
    """Known names: the runner registers at once, the model is loading (503 MODEL_LOADING with
    Retry-After and the reason), and it serves once the server lists it."""
    if listening:
        engine.start()  # llama-server: listening, 503 "Loading model"
    stack.start_runner(backend=_backend(engine, ["m"]))
    # (the statuses follow the Hello on the tunnel: the first look may precede them)
    wait_for(lambda: model_status(stack, "m") == "loading", "the model to show as loading")
    model = model_record(stack, "m")
    assert model is not None
    assert f"waiting for the OpenAI-compatible server at {engine.url} to answer" in model["message"]
    reason = "Loading model" if listening else "onnect"  # ConnectError: ... refused
    wait_for(lambda: reason in str((model_record(stack, "m") or {}).get("message")), "the reason")
    response = post_predict(stack, "m")
    assert response.status_code == 503
    assert 1 <= int(response.headers["retry-after"]) <= 30
    error = response.json()["error"]
    assert (
        error["code"] == "MODEL_LOADING" and "waiting for the OpenAI-compatible" in error["message"]
    )
    if not listening:
        engine.start()
    engine.loaded.set()
    wait_for(lambda: model_status(stack, "m") == "online", "the model to be online")
    assert post_predict(stack, "m").json()["output"] == "echo: hi"


def test_unknown_names_wait_for_the_listing_then_register(
    stack: Stack, engine: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Serving whatever it lists: the runner waits (saying so once, with the hint) before it
    registers, then registers what the server lists."""
    caplog.set_level(logging.INFO, logger="edge_runner.backends")
    running = stack.start_runner(backend=_backend(engine, None), wait=False)
    wait_for(lambda: "waiting up to 600 s" in caplog.text, "the wait to be logged")
    waiting = [r.getMessage() for r in caplog.records if "waiting up to" in r.getMessage()]
    assert len(waiting) == 1 and engine.url in waiting[0] and START_HINT in waiting[0]
    assert not running.task.done() and model_record(stack, "m") is None
    engine.start()  # listening, still loading: not yet
    wait_for(lambda: "/v1/models" in engine.requests, "a probe of the loading server")
    assert model_record(stack, "m") is None
    engine.loaded.set()
    wait_for(lambda: model_status(stack, "m") == "online", "the listed models to register")
    assert model_status(stack, "other") == "online"
    assert post_predict(stack, "other").json()["output"] == "echo: hi"


def test_a_wanted_model_the_server_does_not_list_is_withdrawn(
    stack: Stack, engine: FakeOpenAIServer
) -> None:
    """Once it answers, a named model it lacks is withdrawn with what it lists; the rest serve."""
    backend = _backend(engine, ["m", "gone"])
    stack.start_runner(backend=backend)
    wait_for(lambda: model_status(stack, "gone") == "loading", "the model to show as loading")
    engine.start()
    engine.loaded.set()
    wait_for(lambda: model_status(stack, "gone") == "absent", "the missing model to be withdrawn")
    status = backend.status("gone")
    assert status is not None
    assert status.message == f"{engine.url} does not serve 'gone'; it lists: m, other"
    wait_for(lambda: model_status(stack, "m") == "online", "the listed model to be online")
    assert post_predict(stack, "m").status_code == 200


def test_a_runner_whose_only_model_is_not_listed_stops_saying_why(
    stack: Stack, engine: FakeOpenAIServer
) -> None:
    """Nothing left to serve once it answers: the runner stops with the listing in the error."""
    running = stack.start_runner(backend=_backend(engine, ["gone"]))
    engine.start()
    engine.loaded.set()
    wait_for(running.task.done, "the runner to stop")
    with pytest.raises(ConfigError, match="nothing left to serve: .* does not serve 'gone'"):
        running.task.result()


def test_after_the_start_timeout_the_models_are_unavailable_then_heal(
    stack: Stack, engine: FakeOpenAIServer
) -> None:
    """No answer within start_timeout: unavailable, with how to start the server; it keeps
    checking, and the models come online when the server finally answers."""
    stack.start_runner(backend=_backend(engine, ["m"], start_timeout=150 * MS))
    wait_for(lambda: model_status(stack, "m") == "unavailable", "the wait to give up")
    model = model_record(stack, "m")
    assert model is not None and START_HINT in model["message"]
    response = post_predict(stack, "m")
    assert response.status_code == 503 and response.json()["error"]["code"] == "MODEL_UNAVAILABLE"
    engine.start()
    engine.loaded.set()
    wait_for(lambda: model_status(stack, "m") == "online", "the model to heal")
    assert post_predict(stack, "m").status_code == 200


def test_unknown_names_and_no_answer_within_the_timeout_fail_saying_how_long(
    engine: FakeOpenAIServer,
) -> None:
    """Serving whatever it lists, with no answer in time: the ConfigError of today, plus the
    wait."""
    backend = _backend(engine, None, start_timeout=100 * MS)
    started = time.monotonic()
    with pytest.raises(ConfigError, match="no OpenAI-compatible server answers") as caught:
        backend.load()
    backend.close()
    assert time.monotonic() - started >= 100 * MS
    message = str(caught.value)
    assert re.search(rf"waited \d+\.\d s \(--upstream-start-timeout {100 * MS:g}\)", message)
    assert f"{engine.url}/models" in message and START_HINT in message


@pytest.mark.parametrize("models", [None, ["m"]], ids=["any", "named"])
def test_a_refused_key_is_a_config_error_at_once(models: list[str] | None) -> None:
    """A 401 is not a server still loading: the load fails at once, naming the key option."""
    with FakeOpenAIServer(["m"], api_key="right") as engine:
        engine.start()
        backend = OpenAIUpstreamBackend(engine.url, models, api_key="wrong", start_timeout=LONG)
        started = time.monotonic()
        with pytest.raises(ConfigError, match=r"refused GET /models \(401: Invalid API Key\)") as e:
            backend.load()
        backend.close()
        assert time.monotonic() - started < 5_000 * MS
        assert "--upstream-api-key-env" in str(e.value)


def test_a_stop_while_it_waits_for_the_server_is_prompt(
    stack: Stack, engine: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGTERM's path (request_stop) during the blocking wait ends it at once: the runner stops
    without registering anything, long before the start timeout."""
    caplog.set_level(logging.INFO, logger="edge_runner.backends")
    running = stack.start_runner(backend=_backend(engine, None), wait=False)
    wait_for(lambda: "waiting up to" in caplog.text, "the wait to start")
    started = time.monotonic()
    stack.stop_runner(running, timeout=5_000 * MS)  # raises if the runner is still waiting
    assert time.monotonic() - started < 5_000 * MS
    assert running.task.result() is None  # a clean stop, not an error
    assert model_record(stack, "m") is None


def test_a_comeback_is_checked_against_the_listing(stack: Stack, engine: FakeOpenAIServer) -> None:
    """After an outage the server is listed again, as at start: a model it stopped serving is
    withdrawn instead of marked online."""
    engine.start()
    engine.loaded.set()
    stack.start_runner(backend=_backend(engine, ["m", "other"]))
    wait_for(lambda: model_status(stack, "other") == "online", "the models to be online")
    engine.close()
    wait_for(lambda: model_status(stack, "other") == "unavailable", "the outage to be seen")
    engine.models = ["m"]  # restarted with one model fewer
    engine.start()
    wait_for(lambda: model_status(stack, "other") == "absent", "the unlisted model to be withdrawn")
    wait_for(lambda: model_status(stack, "m") == "online", "the listed one to be back")


def test_a_model_folder_s_openai_toolkit_waits_as_long_as_the_source_says(
    stack: Stack, engine: FakeOpenAIServer, tmp_path: Path
) -> None:
    """--upstream-start-timeout reaches a model folder's openai toolkit (its model is named, so
    it registers at once, loading), and the folder's model serves once the server answers."""
    folder = tmp_path / "mine"
    folder.mkdir()
    toolkit = f"{{provider: openai, base_url: '{engine.url}', model: m}}"
    (folder / "config.yaml").write_text(f"model: {{id: mine}}\ntoolkit: {toolkit}\n")
    source = ModelSource(model_path=folder, upstream_start_timeout=LONG)
    backend = build_backend(source, probe_interval=20 * MS, log_progress=False)
    assert isinstance(backend, OpenAIUpstreamBackend) and backend.start_timeout == LONG
    stack.start_runner(backend=backend)
    wait_for(lambda: model_status(stack, "mine") == "loading", "the folder's model to be loading")
    engine.start()
    engine.loaded.set()
    wait_for(lambda: model_status(stack, "mine") == "online", "the folder's model to be online")
    assert post_predict(stack, "mine").json()["output"] == "echo: hi"
