"""Stream-in methods through an NDJSON request body on the native route: line 1 the other
arguments, then one input item per line, answered with Server-Sent Events while the body still
arrives; refusals with their status before the answer starts and as an error event after;
back-pressure from a model slower than its input reaches the client through TCP; a client that
leaves or stops sending ends the task and frees its runner slot.

One control plane (a small stream window and line limit, a short body idle limit) with a runner
of the echo folder and one of a gated model serves the whole file. Clients are httpx where the
body is small, and raw sockets that send chunked pieces and read the answer meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_runner.testing import ECHO_MODEL
from tests.conftest import MS, LoopThread, RunningRunner, Stack, wait_for, write_model

WINDOW = 4  # input items a task may have in flight (the control plane's stream window)
MAX_LINE = 64 * 1024  # --max-body-bytes: the longest line
BODY_S = 400 * MS  # --body-idle-timeout
NDJSON = "application/x-ndjson"

#: class body of a model that measures each item, waiting for its gate before each
GATED_MODEL = (
    "    gate = threading.Event()\n"
    "    read = 0\n\n"
    "    @ModelClass.method\n"
    "    def measure(self, items: Iterator[str], scale: int = 1) -> Iterator[int]:\n"
    "        '''The length of each item times scale, once the gate is open.'''\n"
    "        for item in items:\n"
    "            type(self).read += 1\n"
    "            while not self.gate.wait(0.005):\n"
    "                if self.cancelled():\n"
    "                    return\n"
    "            yield len(item) * scale\n\n"
    "    @ModelClass.method\n"
    "    def head(self, items: Iterator[int], n: int = 2) -> Iterator[int]:\n"
    "        '''The first n items; the rest is not read.'''\n"
    "        for i, item in enumerate(items):\n"
    "            if i == n:\n"
    "                return\n"
    "            yield item\n"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, RunningRunner]]:
    """The control plane with a runner of the echo folder and one (pool 1) of the gated model."""
    tmp = tmp_path_factory.mktemp("ndjson")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EDGE_RUNNER_HOME", str(tmp / "home"))
        env.setenv("EDGE_RUNNER_SECRET_BACKEND", "file")
        loop = LoopThread()
        stack = Stack(tmp / "control", loop, model=ECHO_MODEL)
        try:
            stack.start_control(
                stream_window=WINDOW, max_body_bytes=MAX_LINE, body_idle_timeout=BODY_S
            )
            stack.start_runner(ECHO_MODEL)
            folder = write_model(tmp, "gated", GATED_MODEL, imports="import threading\n")
            yield stack, stack.start_runner(folder, pool_size=1)
        finally:
            stack.close()
            loop.close()


@pytest.fixture
def stack(served: tuple[Stack, RunningRunner]) -> Iterator[Stack]:
    """The shared stack; afterwards no task of this test is left and the gate is open."""
    stack, _ = served
    yield stack
    _gated(served).gate.set()
    wait_for(lambda: not _dispatcher(stack).tasks, "the test's tasks to end")


@pytest.fixture
def gated(served: tuple[Stack, RunningRunner]) -> Any:
    """The gated model's class, its gate closed and its count of items read at 0."""
    model = _gated(served)
    model.gate.clear()
    model.read = 0
    return model


def _gated(served: tuple[Stack, RunningRunner]) -> Any:
    return type(served[1].backend._instance)  # type: ignore[attr-defined]


def _dispatcher(stack: Stack) -> Any:
    assert stack.plane is not None and stack.plane.state is not None
    return stack.plane.state.dispatcher


def _task_view(stack: Stack, task_id: str) -> dict[str, Any]:
    """The task as ``GET /v2/tasks`` shows it."""
    answer = httpx.get(f"{stack.api_base}/v2/tasks", headers=stack.headers, timeout=10)
    views = [t for t in answer.json()["tasks"] if t["task_id"] == task_id]
    assert views, f"no task {task_id} in GET /v2/tasks"
    return dict(views[0])


def _sse(text: str) -> list[tuple[str, Any]]:
    """The (event, data) pairs of a Server-Sent Events text."""
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def _post(
    stack: Stack, method: str, lines: list[bytes], content_type: str = NDJSON, model: str = "echo"
) -> httpx.Response:
    """A call whose body is ``lines`` sent as chunked pieces (httpx sends all, then reads)."""
    headers = {**stack.headers, "Content-Type": content_type}
    return httpx.post(
        f"{stack.api_base}/v2/models/{model}/{method}",
        content=iter(lines),
        headers=headers,
        timeout=10,
    )


class RawCall:
    """A call over a raw socket: body pieces go as chunks when the test says, and a thread
    reads the answer meanwhile (as curl does)."""

    def __init__(self, stack: Stack, model: str, method: str, first: bytes = b"{}\n") -> None:
        assert stack.plane is not None
        self.sock = socket.create_connection(("127.0.0.1", stack.plane.port))
        self.sock.sendall(
            f"POST /v2/models/{model}/{method} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {stack.token}\r\nContent-Type: {NDJSON}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        self.raw = b""
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if first:
            self.send(first)

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            with self._lock:
                self.raw += data
        self.closed.set()

    def send(self, data: bytes) -> None:
        """One chunk of body."""
        self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    def end(self) -> None:
        """The body's last chunk."""
        self.sock.sendall(b"0\r\n\r\n")

    def head(self) -> tuple[int, dict[str, str]] | None:
        """Status and headers, once they arrived."""
        with self._lock:
            head, found, _ = self.raw.partition(b"\r\n\r\n")
        if not found:
            return None
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        return int(lines[0].split(" ")[1]), headers

    def body(self) -> bytes:
        """The answer's body so far (de-chunked)."""
        with self._lock:
            _, _, rest = self.raw.partition(b"\r\n\r\n")
        if b"transfer-encoding: chunked" not in self.raw.lower().partition(b"\r\n\r\n")[0]:
            return rest
        body = b""
        while True:
            size, found, after = rest.partition(b"\r\n")
            if not found or len(after) < int(size, 16) + 2:
                return body
            body += after[: int(size, 16)]
            rest = after[int(size, 16) + 2 :]

    def events(self) -> list[tuple[str, Any]]:
        """The (event, data) pairs so far."""
        return _sse(self.body().decode())

    def wait_events(self, count: int) -> list[tuple[str, Any]]:
        """Wait for ``count`` events."""
        wait_for(lambda: len(self.events()) >= count, f"{count} events ({self.events()})")
        return self.events()

    def close(self) -> None:
        """Hang up."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._reader.join(10_000 * MS)


@pytest.fixture
def calls() -> Iterator[list[RawCall]]:
    """Raw calls to close after the test."""
    opened: list[RawCall] = []
    yield opened
    for call in opened:
        call.close()


def _works(stack: Stack) -> None:
    """The control plane and both runners still serve a stream-in call."""
    answer = _post(stack, "chat", [b'{"prefix": "+"}\n', b'"ok"\n'])
    assert [e for e in _sse(answer.text)][0] == ("chunk", {"index": 0, "output": "+ok"})
    gated = _post(stack, "measure", [b"{}\n", b'"abc"\n'], model="gated")
    assert _sse(gated.text)[0] == ("chunk", {"index": 0, "output": 3})


# -- the line format and the answer ------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "lines", "outputs"),
    [
        (NDJSON, [b'{"prefix": "> "}\n', b'"a"\n', b'"b"\n"c"\n'], ["> a", "> b", "> c"]),
        ("application/jsonl", [b"{}\r\n", b'\n"a"\r\n', b"\n", b'"b"'], ["a", "b"]),
        (f"{NDJSON}; charset=utf-8", [b"{}\n", b'"\xc3\xa9t\xc3\xa9"\n'], ["\u00e9t\u00e9"]),
        (NDJSON, [b"{}"], []),
        (NDJSON, [], []),
    ],
    ids=["arguments", "jsonl-crlf-blank-lines-no-final-newline", "utf-8", "no-items", "empty"],
)
def test_items_stream_through_and_done_counts_them(
    stack: Stack, content_type: str, lines: list[bytes], outputs: list[str]
) -> None:
    """Line 1 is the other arguments (defaults fill in), each later line an item; the answer
    is a chunk per output and a done event with the counts, which GET /v2/tasks shows too."""
    answer = _post(stack, "chat", lines, content_type)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/event-stream")
    task_id = answer.headers["x-task-id"]
    events = _sse(answer.text)
    assert events[:-1] == [("chunk", {"index": i, "output": o}) for i, o in enumerate(outputs)]
    done = {"task_id": task_id, "inputs": len(outputs), "outputs": len(outputs)}
    assert events[-1] == ("done", done)
    view = _task_view(stack, task_id)
    assert (view["status"], view["inputs"], view["outputs"]) == ("done", *[len(outputs)] * 2)


def test_outputs_arrive_while_the_body_is_still_open(stack: Stack, calls: list[RawCall]) -> None:
    """Each item's answer comes before the next item is sent: input and output flow at once."""
    call = RawCall(stack, "echo", "chat", b'{"prefix": "#"}\n')
    calls.append(call)
    for i in range(3):
        call.send(b'"%d"\n' % i)
        assert call.wait_events(i + 1)[i] == ("chunk", {"index": i, "output": f"#{i}"})
    call.end()
    assert call.wait_events(4)[3][0] == "done"
    wait_for(call.closed.is_set, "the connection to close after the answer")


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "lines", "status", "code", "words"),
    [
        (NDJSON, [b'{"prefix": \n', b'"a"\n'], 400, "INVALID_JSON", "line 1"),
        (NDJSON, [b"\n", b'["a"]\n'], 400, "INVALID_BODY", "line 2"),
        (NDJSON, [b'{"nope": 1}\n'], 400, "INVALID_ARGUMENT", "nope"),
        (NDJSON, [b'{"prefix": 3}\n'], 400, "INVALID_ARGUMENT", "prefix"),
        (NDJSON, [b'{"messages": ["a"]}\n'], 400, "INVALID_ARGUMENT", "input stream"),
        (NDJSON, [b'{"prefix": "' + b"x" * MAX_LINE + b'"}\n'], 413, "BODY_TOO_LARGE", "line 1"),
        ("application/json", [b'{"messages": ["a"]}'], 415, "UNSUPPORTED_MEDIA_TYPE", "/ws"),
        ("text/plain", [b"{}\n"], 415, "UNSUPPORTED_MEDIA_TYPE", NDJSON),
    ],
    ids=[
        "bad-json",
        "not-an-object",
        "unknown-argument",
        "wrong-type",
        "stream-as-argument",
        "line-too-long",
        "json-body",
        "text",
    ],
)
def test_a_bad_start_is_refused_with_its_status(
    stack: Stack, content_type: str, lines: list[bytes], status: int, code: str, words: str
) -> None:
    """What is wrong before the task starts has its HTTP status and a message that says what
    to send; the control plane goes on serving."""
    answer = _post(stack, "chat", lines, content_type)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code and words in error["message"], error
    _works(stack)


def test_runners_too_old_for_input_streams_are_a_501(
    loop_thread: LoopThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runners before protocol 1.3 only: RUNNER_TOO_OLD naming both versions, before any
    answer; their other methods still serve."""
    monkeypatch.setattr("edge_runner.protocol.runner_session.PROTOCOL_VERSION", (1, 2))
    with Stack(tmp_path / "control", loop_thread, model=ECHO_MODEL) as old:
        old.start_runner(ECHO_MODEL)
        answer = _post(old, "chat", [b"{}\n", b'"a"\n'])
        assert answer.status_code == 501, answer.text
        error = answer.json()["error"]
        assert error["code"] == "RUNNER_TOO_OLD", error
        assert "1.2" in error["message"] and "1.3" in error["message"]
        predict = httpx.post(
            f"{old.api_base}/v2/models/echo/predict", headers=old.headers, json={"text": "a"}
        )
        assert predict.json()["output"] == "a"


def test_a_bad_item_before_any_output_is_its_status(stack: Stack) -> None:
    """An item of the wrong type before the answer started: 400 naming its line; the task
    is cancelled."""
    answer = _post(stack, "measure", [b"{}\n", b"\n", b"[1]\n"], model="gated")
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "INVALID_ARGUMENT" and "line 3" in error["message"], error
    assert "must be str" in error["message"]
    assert _task_view(stack, answer.headers["x-task-id"])["status"] == "cancelled"


@pytest.mark.parametrize(
    ("line", "code", "words"),
    [
        (b"7\n", "INVALID_ARGUMENT", "line 4"),
        (b'"unterminated\n', "INVALID_JSON", "line 4"),
        (b'"' + b"x" * MAX_LINE + b'"\n', "BODY_TOO_LARGE", f"{MAX_LINE}-byte limit per line"),
    ],
    ids=["wrong-type", "bad-json", "line-too-long"],
)
def test_a_bad_item_after_the_answer_started_is_an_error_event(
    stack: Stack, calls: list[RawCall], line: bytes, code: str, words: str
) -> None:
    """Once chunks went out, a bad line ends the stream with an error event naming it; the
    task is cancelled and the runner serves on."""
    call = RawCall(stack, "echo", "chat", b"{}\n\n")
    calls.append(call)
    call.send(b'"a"\n')
    call.wait_events(1)
    call.send(line)
    events = call.wait_events(2)
    assert events[1][0] == "error" and events[1][1]["code"] == code, events
    assert words in events[1][1]["message"]
    head = call.head()
    assert head is not None and head[0] == 200
    assert _task_view(stack, head[1]["x-task-id"])["status"] == "cancelled"
    wait_for(call.closed.is_set, "the connection to close")
    _works(stack)


def test_malformed_chunked_encoding_cancels_the_task(stack: Stack, calls: list[RawCall]) -> None:
    """A chunk size that is not hex, after the answer started: the connection closes, the
    task is cancelled and the control plane serves on."""
    call = RawCall(stack, "echo", "chat")
    calls.append(call)
    call.send(b'"a"\n')
    call.wait_events(1)
    head = call.head()
    assert head is not None
    call.sock.sendall(b"zz\r\nnot a chunk\r\n")
    wait_for(call.closed.is_set, "the connection to close")
    wait_for(
        lambda: _task_view(stack, head[1]["x-task-id"])["status"] == "cancelled",
        "the task to be cancelled",
    )
    _works(stack)


# -- flow and time -----------------------------------------------------------------------------


def test_a_model_slower_than_its_input_holds_the_client_back(
    stack: Stack, gated: Any, calls: list[RawCall]
) -> None:
    """While the model waits, the control plane sends it one window of items and reads no
    further: the client's sends block (TCP), for longer than the body idle limit without a
    408; once the model goes on every item is answered, in order."""
    item = b'"' + b"x" * 32_000 + b'"\n'
    count = 2048  # 64 MiB: more than loopback's socket buffers hold
    call = RawCall(stack, "gated", "measure", b'{"scale": 2}\n')
    calls.append(call)
    sent = [0]

    def push() -> None:
        with contextlib.suppress(OSError):
            for _ in range(count):
                call.send(item)
                sent[0] += 1
            call.end()

    pusher = threading.Thread(target=push, daemon=True)
    pusher.start()
    wait_for(lambda: gated.read == 1, "the model to read the first item")
    task = next(iter(_dispatcher(stack).tasks.values()))
    wait_for(lambda: task.inputs >= WINDOW, "the window to be sent")
    time.sleep(3 * BODY_S)  # the body idle limit three times over: nothing may time out
    assert task.inputs <= 1 + WINDOW  # what the model read, and one window
    assert pusher.is_alive() and sent[0] < count // 2, sent[0]
    assert not call.closed.is_set() and call.head() is None
    gated.gate.set()
    pusher.join(30_000 * MS)
    events = call.wait_events(count + 1)
    assert events[:-1] == [("chunk", {"index": i, "output": 64_000}) for i in range(count)]
    assert events[-1][1]["inputs"] == count and events[-1][1]["outputs"] == count


def test_a_client_waiting_on_a_slow_model_is_not_timed_out(
    stack: Stack, gated: Any, calls: list[RawCall]
) -> None:
    """Items the control plane holds back for the model (the client sent them all and waits,
    body still open) stop the body idle clock: no 408 however long the model takes."""
    call = RawCall(stack, "gated", "measure", b"{}\n" + b'"ab"\n' * (WINDOW + 3))
    calls.append(call)
    wait_for(lambda: gated.read == 1, "the model to read the first item")
    time.sleep(3 * BODY_S)  # the body idle limit three times over
    assert not call.closed.is_set()
    gated.gate.set()
    assert len(call.wait_events(WINDOW + 3)) == WINDOW + 3
    call.send(b'"abc"\n')
    call.end()
    events = call.wait_events(WINDOW + 5)
    assert events[-2] == ("chunk", {"index": WINDOW + 3, "output": 3})
    assert events[-1][0] == "done"


def test_a_client_that_stops_sending_is_cut_off_by_the_body_idle_limit(
    stack: Stack, calls: list[RawCall]
) -> None:
    """A body that pauses longer than --body-idle-timeout: the stream ends with a
    BODY_TIMEOUT error event, the connection closes and the task is cancelled; before the
    answer started, the pause is a 408."""
    call = RawCall(stack, "echo", "chat")
    calls.append(call)
    call.send(b'"a"\n')
    call.wait_events(1)
    start = time.monotonic()
    head = call.head()
    assert head is not None
    wait_for(call.closed.is_set, "the body idle limit to close the connection")
    assert time.monotonic() - start >= BODY_S * 0.8
    error = call.events()[1]
    assert error[0] == "error" and error[1]["code"] == "BODY_TIMEOUT", error
    assert "--body-idle-timeout" in error[1]["message"]
    assert _task_view(stack, head[1]["x-task-id"])["status"] == "cancelled"

    early = RawCall(stack, "echo", "chat", b"")  # headers only: no line, no answer yet
    calls.append(early)
    wait_for(early.closed.is_set, "the body idle limit to close the connection")
    assert early.head() is not None and early.head()[0] == 408
    assert json.loads(early.body())["error"]["code"] == "BODY_TIMEOUT"


@pytest.mark.parametrize("model_waits", [False, True], ids=["reading-body", "holding-items"])
def test_a_client_that_leaves_mid_body_cancels_the_task(
    stack: Stack, gated: Any, model_waits: bool
) -> None:
    """A client that hangs up mid-body cancels the task at once, whether the control plane was
    reading its body or holding items back for a slow model, and the runner slot (pool 1) is
    free for the next call."""
    items = WINDOW + 3 if model_waits else 1
    if not model_waits:
        gated.gate.set()
    call = RawCall(stack, "gated", "measure", b"{}\n" + b'"ab"\n' * items)
    wait_for(lambda: gated.read == items if not model_waits else gated.read == 1, "the items")
    task = next(iter(_dispatcher(stack).tasks.values()))
    call.close()
    wait_for(lambda: task.finished, "the task to end")
    assert _task_view(stack, task.task_id)["status"] == "cancelled"
    gated.gate.set()
    _works(stack)


def test_a_method_may_stop_before_its_input_ends(stack: Stack, calls: list[RawCall]) -> None:
    """A method that returns after two items answers done; the rest of the body is not read
    and the connection closes."""
    call = RawCall(stack, "gated", "head", b"{}\n" + b"1\n2\n3\n")
    calls.append(call)
    events = call.wait_events(3)
    assert [e[1].get("output") for e in events[:2]] == [1, 2] and events[2][0] == "done"
    wait_for(call.closed.is_set, "the connection to close")


def test_the_openapi_document_describes_the_ndjson_body(stack: Stack) -> None:
    """The native route's request body has the NDJSON media type, and 415 is documented."""
    document = httpx.get(f"{stack.api_base}/openapi.json", headers=stack.headers).json()
    predict = document["paths"]["/v2/models/{model_id}/{method}"]["post"]
    assert NDJSON in predict["requestBody"]["content"]
    assert "UNSUPPORTED_MEDIA_TYPE" in predict["responses"]["415"]["description"]
    assert "/v2/models/{model_id}/{method}/ws" in document["x-websockets"]
