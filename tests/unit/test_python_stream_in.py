"""Stream-in (bidirectional) methods of a real model folder, called through the Python backend:
the input stream is decoded item by item as the model reads it."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_runner.backends.base import CancelEvent, StreamReply
from edge_runner.backends.python_model import PythonModelBackend
from edge_runner.compat.clarifai.convert import to_real
from edge_runner.errors import BackendError, ErrorCode, InvalidArgument
from edge_runner.models.signatures import MethodKind, input_stream_param, validate_arguments
from edge_runner.runner.input_feed import InputFeed
from edge_runner.testing import EchoBackend
from tests.conftest import MS, wait_for, write_model

BODY = '''
    def load_model(self) -> None:
        self.closed: list[str] = []

    @ModelClass.method
    def echo(self, items: Iterator[str], prefix: str = "") -> Iterator[str]:
        """Each item with the prefix."""
        for item in items:
            yield prefix + item

    @ModelClass.method
    def total(self, numbers: Iterator[int]) -> Iterator[int]:
        """The running total."""
        running = 0
        for n in numbers:
            running += n
            yield running

    @ModelClass.method
    def first(self, items: Iterator[str]) -> Iterator[str]:
        """Only the first item; the rest is never read."""
        try:
            for item in items:
                yield item.upper()
                return
        finally:
            self.closed.append("first")

    @ModelClass.method
    def sizes(self, blobs: Iterator[bytes]) -> Iterator[int]:
        """The length of each blob."""
        for blob in blobs:
            yield len(blob)

    @ModelClass.method
    def watch(self, items: Iterator[str]) -> Iterator[str]:
        """Each item, then how the input ended."""
        for item in items:
            yield item
        yield "cancelled" if self.cancelled() else "ended"

    @ModelClass.method
    def upper(self, text: str) -> str:
        """A unary method."""
        return text.upper()
'''


@pytest.fixture
def backend(tmp_path: Path) -> PythonModelBackend:
    """The folder above, loaded, with a 4-byte cap on media."""
    loaded = PythonModelBackend(write_model(tmp_path, "bidi", BODY), max_media_bytes=4)
    loaded.load()
    return loaded


def _items(*values: object) -> Iterator[bytes]:
    return iter([json.dumps(v).encode() for v in values])


def _stream(
    backend: PythonModelBackend, method: str, inputs: Iterator[bytes], payload: bytes = b"{}"
) -> StreamReply:
    reply = backend.call("bidi", method, payload, threading.Event(), inputs=inputs)
    assert isinstance(reply, StreamReply)
    return reply


def test_a_stream_in_method_echoes_and_transforms_its_input(backend: PythonModelBackend) -> None:
    """Each input item is decoded to the element type; the other arguments come from the payload."""
    echoed = _stream(backend, "echo", _items("a", "b"), b'{"prefix": ">"}')
    assert list(echoed.chunks) == [b'">a"', b'">b"']
    totals = _stream(backend, "total", _items(1, 2, 3, 4))
    assert list(totals.chunks) == [b"1", b"3", b"6", b"10"]
    assert list(_stream(backend, "total", iter([])).chunks) == []
    assert backend.methods["echo"].kind is MethodKind.BIDI


def test_a_bad_input_item_fails_the_task_naming_the_parameter_and_the_index(
    backend: PythonModelBackend,
) -> None:
    """An item of the wrong type, one that is not JSON, and a blob over the media cap are
    INVALID_ARGUMENT, raised where the model reads them, after the good items' outputs."""
    cases = [
        ("total", iter([b"1", b'"two"']), "input item 1 of 'numbers' must be int"),
        ("total", iter([b"{"]), "input item 0 of 'numbers' is not JSON"),
        (
            "sizes",
            _items({"base64": base64.b64encode(b"ok").decode()}, {"base64": "AAAAAAAA"}),
            "input item 1 of 'blobs'",
        ),
    ]
    for method, inputs, message in cases:
        reply = _stream(backend, method, inputs)
        out: list[bytes] = []
        with pytest.raises(BackendError) as caught:
            out.extend(reply.chunks)
        assert caught.value.code == ErrorCode.INVALID_ARGUMENT
        assert message in caught.value.message, caught.value.message
    assert out == [b"2"]  # the good blob was answered before the bad one


def test_a_method_may_return_without_reading_all_its_input(backend: PythonModelBackend) -> None:
    """A method that stops early ends the stream; the unread items are never decoded."""
    reply = _stream(backend, "first", iter([b'"a"', b"not json"]))
    assert list(reply.chunks) == [b'"A"']
    assert backend._instance is not None and backend._instance.closed == ["first"]  # type: ignore[attr-defined]


def test_the_stream_parameter_comes_only_as_a_stream(backend: PythonModelBackend) -> None:
    """The stream parameter in the payload, a stream-in method without inputs, and inputs for
    a method that takes none are all INVALID_ARGUMENT; unknown arguments still are."""
    calls = [
        ("echo", b'{"items": ["a"]}', _items("a")),
        ("echo", b"{}", None),
        ("echo", b'{"nope": 1}', _items("a")),
        ("upper", b'{"text": "a"}', _items("a")),
    ]
    for method, payload, inputs in calls:
        with pytest.raises(BackendError) as caught:
            backend.call("bidi", method, payload, threading.Event(), inputs=inputs)
        assert caught.value.code == ErrorCode.INVALID_ARGUMENT, (method, payload)
    assert backend.call("bidi", "upper", b'{"text": "a"}', threading.Event()).payload == b'"A"'  # type: ignore[union-attr]


def test_validation_leaves_the_stream_out_only_when_asked(backend: PythonModelBackend) -> None:
    """Without ``input_stream`` a stream-in signature still wants its stream argument (as
    before); with it, the stream parameter is neither required nor returned."""
    sig = backend.methods["echo"]
    assert input_stream_param(sig) is not None and input_stream_param(sig).name == "items"  # type: ignore[union-attr]
    assert input_stream_param(backend.methods["upper"]) is None
    with pytest.raises(InvalidArgument):
        validate_arguments(sig, {})
    assert validate_arguments(sig, {}, input_stream=True) == {"prefix": ""}
    unary = backend.methods["upper"]
    assert validate_arguments(unary, {"text": "x"}, input_stream=True) == {"text": "x"}
    with pytest.raises(InvalidArgument):
        validate_arguments(unary, {}, input_stream=True)


def test_a_cancel_ends_the_input_and_the_model_sees_it(backend: PythonModelBackend) -> None:
    """With the runner's input feed, a cancel ends the model's input at once, and the model,
    reading in its worker, sees its cancel event set."""
    cancel = CancelEvent()
    feed = InputFeed(4, cancel, lambda upto: None)
    cancel.on_set(feed.wake)
    reply = backend.call("bidi", "watch", b"{}", cancel, inputs=feed)
    assert isinstance(reply, StreamReply)
    got: list[bytes] = []
    worker = threading.Thread(target=lambda: got.extend(reply.chunks), daemon=True)
    worker.start()
    feed.put(b'"x"')
    wait_for(lambda: got == [b'"x"'], "the first output")
    cancel.set()
    worker.join(5_000 * MS)
    assert got == [b'"x"', b'"cancelled"']


def test_the_echo_backend_streams_one_answer_per_input_item() -> None:
    """EchoBackend's chat answers each input item with the prefix, and refuses a non-string."""
    backend = EchoBackend()
    reply = backend.call("echo", "chat", b'{"prefix": "> "}', threading.Event(), _items("a", "b"))
    assert isinstance(reply, StreamReply)
    assert list(reply.chunks) == [b'"> a"', b'"> b"']
    bad = backend.call("echo", "chat", b"{}", threading.Event(), _items(1))
    assert isinstance(bad, StreamReply)
    with pytest.raises(BackendError) as caught:
        list(bad.chunks)
    assert caught.value.code == ErrorCode.INVALID_ARGUMENT
    with pytest.raises(BackendError):
        backend.call("echo", "chat", b"{}", threading.Event())
    with pytest.raises(BackendError):
        backend.call("echo", "predict", b'{"text": "x"}', threading.Event(), _items("a"))


def test_a_clarifai_adapted_method_gets_its_input_stream_lazily() -> None:
    """The Clarifai adapter converts a stream-in argument item by item as it is read, never
    draining the stream up front."""
    read: list[int] = []

    def source() -> Iterator[int]:
        for n in range(3):
            read.append(n)
            yield n

    converted = to_real(source())
    assert isinstance(converted, Iterator) and read == []
    assert next(converted) == 0 and read == [0]
    assert list(converted) == [1, 2]


def test_clarifais_hello_world_stream_method_runs_as_a_stream_in_method() -> None:
    """The reference system's bidirectional ``stream(input_iterator)`` (Clarifai's hello-world
    folder, loaded through the compat shim) answers each input item as it is read."""
    corpus = Path(__file__).resolve().parent.parent / "clarifai_corpus" / "hello-world"
    backend = PythonModelBackend(corpus)
    backend.load()
    assert backend.methods["stream"].kind is MethodKind.BIDI
    reply = backend.call(backend.model_id, "stream", b"", threading.Event(), _items("a", "b"))
    assert isinstance(reply, StreamReply)
    assert list(reply.chunks) == [b'"aStream Hello World 0"', b'"bStream Hello World 1"']
