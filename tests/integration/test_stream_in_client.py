"""The Python client and the CLI of stream-in calls, against a real control plane and runner
serving examples/hello (``stream(names: Iterator[str], greeting="Hello")``)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from edge_runner.client import AsyncClient, Client
from edge_runner.errors import BadRequest, NotFound, Unauthorized
from tests.conftest import MS, Stack, wait_for
from tests.integration.test_cli import run_cli


def _idle(stack: Stack) -> bool:
    """No task left in the control plane, and every runner slot free."""
    assert stack.plane is not None and stack.plane.state is not None
    runners = [r.runner._executor for r in stack.runners]
    return not stack.plane.state.dispatcher.tasks and all(
        e is not None and e.busy == 0 for e in runners
    )


def test_stream_sends_inputs_and_yields_outputs(hello_stack: Stack) -> None:
    """Inputs go in with the other arguments; each output comes back in order."""
    with Client(hello_stack.api_base, hello_stack.token) as client:
        out = list(client.stream("hello", "stream", ["Ada", "Bob"], greeting="Hi"))
        assert out == ["Hi, Ada!", "Hi, Bob!"]
        assert list(client.stream("hello", "stream", [])) == []
        tasks = client.tasks()
    done = [t for t in tasks if t["method"] == "stream" and t["status"] == "done"]
    assert {(t.get("inputs"), t.get("outputs")) for t in done} == {(2, 2), (0, 0)}


def test_inputs_are_read_as_the_model_takes_them(hello_stack: Stack) -> None:
    """A generator that waits for the first answer before it yields the second item works:
    the client does not read all input before it reads output."""
    answered = threading.Event()

    def names() -> Iterator[str]:
        yield "Ada"
        assert answered.wait(10_000 * MS), "the first answer never came while input was open"
        yield "Bob"

    with Client(hello_stack.api_base, hello_stack.token) as client:
        out = []
        for item in client.stream("hello", "stream", names()):
            out.append(item)
            answered.set()
    assert out == ["Hello, Ada!", "Hello, Bob!"]


def test_a_caller_that_pauses_with_both_directions_full_still_gets_everything(
    hello_stack: Stack,
) -> None:
    """The caller stops reading until the model waits for it and no input can go: the sender
    is then blocked on a full socket while outputs wait. The blocking client must still read
    them (websockets' own blocking client cannot: a blocked send holds the lock its reader
    needs, and the call would hang)."""
    assert hello_stack.plane is not None and hello_stack.plane.state is not None
    dispatcher = hello_stack.plane.state.dispatcher
    name = "x" * 65536  # 1000 of them: more than every buffer on the way can hold
    with Client(hello_stack.api_base, hello_stack.token, timeout=10_000 * MS) as client:
        outputs = client.stream("hello", "stream", (name for _ in range(1000)))
        assert next(outputs) == f"Hello, {name}!"
        wait_for(lambda: len(dispatcher.paused) == 1, "the model to wait for the caller")
        (task,) = dispatcher.paused.values()
        wait_for(lambda: dispatcher.input_room(task) == 0, "the input to be held back")
        count = 1 + sum(1 for out in outputs if out == f"Hello, {name}!")
    assert count == 1000


def test_async_stream_takes_sync_and_async_inputs(hello_stack: Stack) -> None:
    """AsyncClient.stream: the same call with a list and with an async generator."""

    async def names() -> AsyncIterator[str]:
        for name in ("Cy", "Di"):
            await asyncio.sleep(0)
            yield name

    async def main() -> tuple[list[object], list[object]]:
        async with AsyncClient(hello_stack.api_base, hello_stack.token) as client:
            first = [x async for x in client.stream("hello", "stream", ["Ada"])]
            second = [x async for x in client.stream("hello", "stream", names(), greeting="Yo")]
            return first, second

    assert asyncio.run(main()) == (["Hello, Ada!"], ["Yo, Cy!", "Yo, Di!"])


def test_errors_arrive_as_the_client_error_tree(hello_stack: Stack) -> None:
    """Unknown model, a method without an input stream, an item of the wrong type, an
    unknown argument and a bad token each raise their class with the server's message."""
    with Client(hello_stack.api_base, hello_stack.token) as client:
        with pytest.raises(NotFound, match="nope"):
            list(client.stream("nope", "stream", ["x"]))
        with pytest.raises(BadRequest, match="predict"):
            list(client.stream("hello", "predict", ["x"]))
        with pytest.raises(BadRequest, match="input item 1") as bad_item:
            list(client.stream("hello", "stream", ["ok", 5]))
        assert bad_item.value.code == "INVALID_ARGUMENT"
        with pytest.raises(BadRequest, match="colour"):
            list(client.stream("hello", "stream", ["x"], colour="red"))
    with Client(hello_stack.api_base, "er_pat_wrong") as client, pytest.raises(Unauthorized):
        list(client.stream("hello", "stream", ["x"]))
    wait_for(lambda: _idle(hello_stack), "every call to end and free its slot")
    with Client(hello_stack.api_base, hello_stack.token) as client:  # still serving
        assert list(client.stream("hello", "stream", ["Ada"])) == ["Hello, Ada!"]


def test_stopping_early_or_a_failing_input_cancels_the_call(hello_stack: Stack) -> None:
    """A caller that stops reading, or whose input iterable raises, ends the call: the task
    is cancelled and the runner slot comes back; the iterable's own error reaches the caller."""

    def endless() -> Iterator[str]:
        i = 0
        while True:
            yield f"n{i}"
            i += 1

    def broken() -> Iterator[str]:
        yield "Ada"
        raise ValueError("the microphone went away")

    with Client(hello_stack.api_base, hello_stack.token) as client:
        outputs = client.stream("hello", "stream", endless())
        assert next(outputs) == "Hello, n0!"
        outputs.close()  # type: ignore[attr-defined]
        wait_for(lambda: _idle(hello_stack), "the abandoned call to be cancelled")
        with pytest.raises(ValueError, match="microphone"):
            list(client.stream("hello", "stream", broken()))
        wait_for(lambda: _idle(hello_stack), "the broken call to be cancelled")
        statuses = {t["status"] for t in client.tasks() if t["method"] == "stream"}
    assert statuses == {"cancelled"}


def _cli_env(stack: Stack) -> dict[str, str]:
    return dict(os.environ, EDGE_RUNNER_API_BASE=stack.api_base, EDGE_RUNNER_PAT=stack.token)


def test_cli_stream_reads_stdin_lines_and_prints_outputs(hello_stack: Stack) -> None:
    """`edge-runner stream MODEL METHOD < lines`: one input a line, one output a line;
    -o jsonl prints JSON; other arguments as --NAME VALUE."""
    env = _cli_env(hello_stack)
    plain = run_cli("stream", "hello", stdin="Ada\nBob Smith\n", env=env)  # METHOD: stream
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == "Hello, Ada!\nHello, Bob Smith!\n"
    jsonl = run_cli(
        "stream", "hello", "stream", "--greeting", "Hi", "-o", "jsonl", stdin="Cy\n", env=env
    )
    assert jsonl.returncode == 0, jsonl.stderr
    assert jsonl.stdout == '"Hi, Cy!"\n'
    as_json = run_cli("stream", "hello", "stream", "--input", "json", stdin='"Di"\n', env=env)
    assert as_json.stdout == "Hello, Di!\n"


def test_cli_stream_refuses_bad_input_clearly(hello_stack: Stack) -> None:
    """A method without an input stream names the command to use; a line that is not JSON
    (with --input json) names the line; a wrong argument names the method's arguments."""
    env = _cli_env(hello_stack)
    unary = run_cli("stream", "hello", "predict", stdin="x\n", env=env)
    assert unary.returncode == 2 and "edge-runner predict hello" in unary.stderr
    not_json = run_cli("stream", "hello", "stream", "--input", "json", stdin='"a"\n{\n', env=env)
    assert not_json.returncode == 2 and "line 2" in not_json.stderr
    unknown = run_cli("stream", "hello", "stream", "--colour", "red", stdin="x\n", env=env)
    assert unknown.returncode == 2 and "colour" in unknown.stderr
    predict = run_cli("predict", "hello", "--method", "stream", env=env)
    assert predict.returncode == 2 and "edge-runner stream hello stream" in predict.stderr
    assert "Traceback" not in unary.stderr + not_json.stderr + unknown.stderr + predict.stderr
    wait_for(lambda: _idle(hello_stack), "every call to end and free its slot")
