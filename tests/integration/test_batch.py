"""Batch predict through the real control plane, tunnel and runners: a JSON array of argument
objects on a unary method runs as one task per item, in parallel, answered in order."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from edge_runner.client import AsyncClient, BatchResult
from edge_runner.errors import BadRequest, TaskFailed
from tests.conftest import HELLO, MS, Stack, wait_for, write_model

#: a model whose ``meet`` returns only once ``n`` calls are inside it at the same time (each
#: leaves a file in the folder ``room``; runners of their own meet there too)
MEETING = (
    "    @ModelClass.method\n"
    "    def meet(self, i: int, room: str, n: int) -> int:\n"
    "        open(os.path.join(room, str(i)), 'w').close()\n"
    f"        deadline = time.monotonic() + {10_000 * MS}\n"
    "        while len(os.listdir(room)) < n:\n"
    "            if time.monotonic() > deadline:\n"
    "                raise TimeoutError(f'{len(os.listdir(room))} of {n} calls met')\n"
    "            time.sleep(0.005)\n"
    "        return i * 10\n"
)

#: a model whose ``hold`` returns once the file ``path`` exists (or it is cancelled)
HOLDING = (
    "    @ModelClass.method\n"
    "    def hold(self, path: str) -> str:\n"
    "        while not self.cancelled() and not os.path.exists(path):\n"
    "            time.sleep(0.005)\n"
    "        return 'cancelled' if self.cancelled() else 'released'\n"
)


#: a model whose predict fails for the text "boom" and upper-cases anything else
PICKY_MODEL = (
    "    @ModelClass.method\n"
    "    def predict(self, text: str) -> str:\n"
    "        if text == 'boom':\n"
    "            raise ValueError('the model exploded')\n"
    "        return text.upper()\n"
)


def _meeting(root: Path) -> Path:
    return write_model(root, "meeting", MEETING, imports="import os")


def _room(root: Path) -> str:
    room = root / "room"
    room.mkdir()
    return str(room)


def _post(stack: Stack, model: str, method: str, body: object) -> httpx.Response:
    return httpx.post(
        f"{stack.api_base}/v2/models/{model}/{method}",
        json=body,
        headers=stack.headers,
        timeout=30,
    )


def test_batch_answers_each_item_in_order(hello_stack: Stack) -> None:
    """A JSON array on a unary method answers one result per item, in the request's order."""
    r = _post(hello_stack, "hello", "predict", [{"text": str(i)} for i in range(20)])
    assert r.status_code == 200
    body = r.json()
    assert body["failed"] == 0
    assert [item["index"] for item in body["results"]] == list(range(20))
    assert [item["output"] for item in body["results"]] == [f"Hello, {i}!" for i in range(20)]
    assert len({item["task_id"] for item in body["results"]}) == 20  # a task per item


def test_a_failing_item_has_its_error_in_place_and_the_rest_answer(
    stack: Stack, tmp_path: Path
) -> None:
    """An item whose call raises is reported with its index, code and status; others succeed."""
    folder = write_model(tmp_path, "picky", PICKY_MODEL)
    stack.start_runner(folder)
    r = _post(stack, "picky", "predict", [{"text": "a"}, {"text": "boom"}, {"text": "c"}])
    assert r.status_code == 200
    results = r.json()["results"]
    assert r.json()["failed"] == 1
    assert results[0]["output"] == "A" and results[2]["output"] == "C"
    error = results[1]["error"]
    assert results[1]["index"] == 1 and "task_id" in results[1]
    assert error["code"] == "MODEL_ERROR" and error["status"] == 500
    assert "ValueError: the model exploded" in error["message"]


def test_bad_items_fail_alone_with_their_index(hello_stack: Stack) -> None:
    """An item that is not an object, has a wrong type or lacks an argument is a 400 error in
    its place (INVALID_ARGUMENT, naming the argument); the good items still run."""
    items = [{"text": "a"}, "text", {"text": 5}, {}, {"text": "e"}, [1]]
    r = _post(hello_stack, "hello", "predict", items)
    assert r.status_code == 200
    body = r.json()
    assert body["failed"] == 4
    results = body["results"]
    assert [x["index"] for x in results] == list(range(6))
    assert results[0]["output"] == "Hello, a!" and results[4]["output"] == "Hello, e!"
    for index in (1, 2, 3, 5):
        error = results[index]["error"]
        assert error["code"] == "INVALID_ARGUMENT" and error["status"] == 400, results[index]
        assert "task_id" not in results[index]  # refused before it became a task
    assert "JSON string" in results[1]["error"]["message"]
    assert results[2]["error"]["param"] == "text"
    assert results[3]["error"]["param"] == "text"
    assert "JSON array" in results[5]["error"]["message"]


def test_a_batch_of_only_bad_items_answers_each_error(hello_stack: Stack) -> None:
    """A batch none of whose items is valid still answers 200, an error per item, no tasks."""
    assert hello_stack.plane is not None
    dispatcher = hello_stack.plane.state.dispatcher
    before = sum(dispatcher.requests.values())
    r = _post(hello_stack, "hello", "predict", [1, {"nope": 1}])
    assert r.status_code == 200
    assert r.json()["failed"] == 2
    assert [x["error"]["code"] for x in r.json()["results"]] == ["INVALID_ARGUMENT"] * 2
    assert sum(dispatcher.requests.values()) == before


def test_batches_the_api_refuses_whole(hello_stack: Stack) -> None:
    """An empty batch, a batch on a streaming method (400) and one over --max-batch (413) are
    refused before anything runs; a body that is neither object nor array stays a 400."""
    assert hello_stack.plane is not None
    limit = hello_stack.plane.settings.max_batch
    dispatcher = hello_stack.plane.state.dispatcher
    before = sum(dispatcher.requests.values())

    empty = _post(hello_stack, "hello", "predict", [])
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "INVALID_BODY"
    assert "empty" in empty.json()["error"]["message"]

    stream = _post(hello_stack, "hello", "generate", [{"text": "a"}])
    assert stream.status_code == 400 and stream.json()["error"]["code"] == "INVALID_BODY"
    assert "hello.generate streams" in stream.json()["error"]["message"]

    big = _post(hello_stack, "hello", "predict", [{"text": "x"}] * (limit + 1))
    assert big.status_code == 413 and big.json()["error"]["code"] == "BATCH_TOO_LARGE"
    assert f"limit of {limit}" in big.json()["error"]["message"]
    assert "--max-batch" in big.json()["error"]["message"]

    scalar = _post(hello_stack, "hello", "predict", "hi")
    assert scalar.status_code == 400 and scalar.json()["error"]["code"] == "INVALID_BODY"
    assert "got a JSON string" in scalar.json()["error"]["message"]
    assert sum(dispatcher.requests.values()) == before  # nothing became a task


def test_items_run_in_parallel_on_the_pool(stack: Stack, tmp_path: Path) -> None:
    """Four items run at the same time on a pool of four: each waits for all four to be in."""
    stack.start_runner(_meeting(tmp_path), pool_size=4)
    room = _room(tmp_path)
    r = _post(stack, "meeting", "meet", [{"i": i, "room": room, "n": 4} for i in range(4)])
    assert r.status_code == 200, r.text
    assert [item.get("output") for item in r.json()["results"]] == [0, 10, 20, 30]


def test_items_spread_over_several_runners(stack: Stack, tmp_path: Path) -> None:
    """With two runners of two slots, a batch of four runs on both at once."""
    folder = _meeting(tmp_path)
    stack.start_runner(folder, pool_size=2, runner_id="runner-a")
    stack.start_runner(folder, pool_size=2, runner_id="runner-b")
    room = _room(tmp_path)
    r = _post(stack, "meeting", "meet", [{"i": i, "room": room, "n": 4} for i in range(4)])
    assert r.status_code == 200, r.text
    assert [item.get("output") for item in r.json()["results"]] == [0, 10, 20, 30]
    assert stack.plane is not None
    ids = {item["task_id"] for item in r.json()["results"]}
    runners = {t.runner_id for t in stack.plane.state.dispatcher.recent if t.task_id in ids}
    assert runners == {"runner-a", "runner-b"}


def test_a_batch_counts_against_max_queue(stack: Stack, tmp_path: Path) -> None:
    """A batch whose waiting items would overfill --max-queue is refused whole (429, nothing
    runs); one that fits fills the queue like that many requests, so a single call then gets
    429 too; released, every item is answered."""
    stack.stop_control()
    stack.start_control(max_queue=2)
    stack.start_runner(write_model(tmp_path, "holding", HOLDING, imports="import os"), pool_size=2)
    assert stack.plane is not None
    dispatcher = stack.plane.state.dispatcher
    release = tmp_path / "release"
    item = {"path": str(release)}

    too_many = _post(stack, "holding", "hold", [item] * 5)  # 2 slots + 2 places < 5
    assert too_many.status_code == 429, too_many.text
    assert too_many.json()["error"]["code"] == "QUEUE_FULL"
    assert "--max-queue" in too_many.json()["error"]["message"]
    assert too_many.headers["retry-after"] == "1"
    assert dispatcher.tasks == {}  # all or nothing: no item was submitted

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        batch = pool.submit(_post, stack, "holding", "hold", [item] * 4)
        wait_for(lambda: dispatcher.queued("admin", "holding") == 2, "two items queued")
        single = _post(stack, "holding", "hold", item)
        assert single.status_code == 429
        assert single.json()["error"]["code"] == "QUEUE_FULL"
        release.touch()
        answer = batch.result(timeout=10_000 * MS)
    assert answer.status_code == 200
    assert [x["output"] for x in answer.json()["results"]] == ["released"] * 4


def test_an_item_past_the_deadline_fails_alone(stack: Stack, tmp_path: Path) -> None:
    """An item still running at --request-timeout is cancelled and answered 504 in its place;
    the items that finished in time keep their outputs."""
    stack.stop_control()
    stack.start_control(request_timeout=1000 * MS)
    stack.start_runner(write_model(tmp_path, "holding", HOLDING, imports="import os"), pool_size=2)
    assert stack.plane is not None
    released = tmp_path / "released"
    released.touch()
    items = [{"path": str(released)}, {"path": str(tmp_path / "never")}, {"path": str(released)}]
    r = _post(stack, "holding", "hold", items)
    assert r.status_code == 200
    results = r.json()["results"]
    assert results[0]["output"] == "released" and results[2]["output"] == "released"
    assert results[1]["error"]["code"] == "DEADLINE_EXCEEDED"
    assert results[1]["error"]["status"] == 504
    dispatcher = stack.plane.state.dispatcher
    wait_for(lambda: dispatcher.tasks == {}, "the late item cancelled")


def test_client_leaving_cancels_every_item(stack: Stack, tmp_path: Path) -> None:
    """A client that hangs up on a batch cancels its running and queued items."""
    stack.start_runner(write_model(tmp_path, "holding", HOLDING, imports="import os"), pool_size=2)
    assert stack.plane is not None
    dispatcher = stack.plane.state.dispatcher
    body = json.dumps([{"path": str(tmp_path / "never")}] * 3).encode()
    host, port = urlsplit(stack.api_base).netloc.split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v2/models/holding/hold HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (stack.token.encode(), len(body), body)
        )
        wait_for(lambda: len(dispatcher.tasks) == 3, "three items submitted (two run, one waits)")
    wait_for(lambda: dispatcher.tasks == {}, "every item cancelled")
    statuses = [t.status for t in dispatcher.recent if t.model_id == "holding"]
    assert statuses == ["cancelled"] * 3


def test_client_predict_batch_sync_and_async(stack: Stack, tmp_path: Path) -> None:
    """predict_batch (blocking and asyncio) returns a BatchResult per input, in order; a failed
    item holds the error a single call would have raised, and unwrap() raises it."""
    folder = write_model(tmp_path, "picky", PICKY_MODEL)
    stack.start_runner(folder)
    inputs: list[dict[str, object]] = [{"text": "a"}, {"text": "boom"}, {"text": 5}, {"text": "d"}]

    def check(results: list[BatchResult]) -> None:
        assert [r.index for r in results] == [0, 1, 2, 3]
        assert [r.ok for r in results] == [True, False, False, True]
        assert results[0].unwrap() == "A" and results[3].output == "D"
        assert isinstance(results[1].error, TaskFailed)
        assert results[1].error.code == "MODEL_ERROR" and results[1].task_id
        assert isinstance(results[2].error, BadRequest) and results[2].task_id is None
        with pytest.raises(BadRequest, match="argument 'text' must be str"):
            results[2].unwrap()

    with stack.client() as client:
        check(client.predict_batch("picky", inputs))
        with pytest.raises(BadRequest) as refused:
            client.predict_batch("picky", [])
        assert refused.value.code == "INVALID_BODY"

    async def run() -> list[BatchResult]:
        async with AsyncClient(stack.api_base, stack.token) as client:
            return await client.predict_batch("picky", inputs)

    check(asyncio.run(run()))


def _cli(stack: Stack, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, EDGE_RUNNER_API_BASE=stack.api_base, EDGE_RUNNER_PAT=stack.token)
    return subprocess.run(
        [sys.executable, "-m", "edge_runner", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30_000 * MS,
        env=env,
    )


def test_cli_predict_batch_prints_a_line_per_input(stack: Stack, tmp_path: Path) -> None:
    """`predict MODEL --batch FILE` prints one JSON line per input in order, a failed one with
    its index and error, says how many failed on stderr and exits 1; all good exits 0."""
    folder = write_model(
        tmp_path,
        "picky",
        "    @ModelClass.method\n"
        "    def predict(self, text: str, suffix: str = '') -> str:\n"
        "        if text == 'boom':\n"
        "            raise ValueError('the model exploded')\n"
        "        return text.upper() + suffix\n",
    )
    stack.start_runner(folder)
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text(
        '{"text": "a"}\n\n{"text": "boom"}\n{"text": 5}\n{"text": "d", "suffix": "?"}\n'
    )

    run = _cli(stack, "predict", "picky", "--batch", str(inputs), "--suffix", "!")
    assert run.returncode == 1, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["index"] for line in lines] == [0, 1, 2, 3]
    assert lines[0] == {"index": 0, "output": "A!"}
    assert lines[3] == {"index": 3, "output": "D?"}  # a line's own value wins
    assert lines[1]["error"]["code"] == "MODEL_ERROR"
    assert "the model exploded" in lines[1]["error"]["message"]
    assert lines[2]["error"]["code"] == "INVALID_ARGUMENT"
    assert "2 of 4 inputs failed" in run.stderr

    good = _cli(stack, "predict", "picky", "--batch", "-", stdin='{"text": "x"}\n{"text": "y"}\n')
    assert good.returncode == 0, good.stderr
    assert good.stdout.splitlines() == [
        '{"index": 0, "output": "X"}',
        '{"index": 1, "output": "Y"}',
    ]


def test_cli_batch_refuses_a_bad_file_before_sending(stack: Stack, tmp_path: Path) -> None:
    """A line that is not a JSON object, an empty file or a streaming method is an error
    (exit 2) that names the line, and nothing is sent."""
    stack.start_runner(HELLO)
    assert stack.plane is not None
    dispatcher = stack.plane.state.dispatcher
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n["a"]\n')
    run = _cli(stack, "predict", "hello", "--batch", str(bad))
    assert run.returncode == 2
    assert "line 2: each line must be a JSON object" in run.stderr
    broken = _cli(stack, "predict", "hello", "--batch", "-", stdin='{"text": \n')
    assert broken.returncode == 2 and "stdin, line 1: not valid JSON" in broken.stderr
    empty = _cli(stack, "predict", "hello", "--batch", "-", stdin="\n")
    assert empty.returncode == 2 and "has no inputs" in empty.stderr
    stream = _cli(stack, "predict", "hello", "--method", "generate", "--batch", str(bad))
    assert stream.returncode == 2 and "--batch is for unary methods" in stream.stderr
    assert sum(dispatcher.requests.values()) == 0
