"""The pure parts of stream-in calls on the client side: URLs, errors, reading stdin lines."""

from __future__ import annotations

import io
import json

import pytest

from edge_runner._stream_in import _error, _output, ws_url
from edge_runner.cli.stream_cmd import read_items
from edge_runner.errors import BadRequest, InvalidArgument, NotFound, Overloaded, TaskFailed


def test_ws_url_follows_the_api_base_scheme() -> None:
    """http becomes ws, https becomes wss, the path is appended as it is."""
    assert ws_url("http://127.0.0.1:7070", "/v2/x/ws") == "ws://127.0.0.1:7070/v2/x/ws"
    assert ws_url("https://cp.example:8443", "/v2/x/ws") == "wss://cp.example:8443/v2/x/ws"


@pytest.mark.parametrize(
    ("code", "cls", "status"),
    [
        ("UNKNOWN_MODEL", NotFound, 404),
        ("INVALID_ARGUMENT", BadRequest, 400),
        ("RUNNER_TOO_OLD", BadRequest, 501),
        ("QUEUE_FULL", Overloaded, 429),
        ("RUNNER_LOST", TaskFailed, 502),
        ("SOMETHING_NEW", TaskFailed, 500),
    ],
)
def test_error_messages_become_the_client_error_tree(code: str, cls: type, status: int) -> None:
    """An ``error`` message raises the class its code maps to, with its status and message."""
    with pytest.raises(cls) as caught:
        _output(json.dumps({"type": "error", "code": code, "message": "why"}))
    assert caught.value.status == status and caught.value.code == code
    assert "why" in str(caught.value)
    assert isinstance(_error({"code": code}), cls)


def test_server_messages_that_are_not_ours_fail_clearly() -> None:
    """A message that is not JSON, or has no type, is a TaskFailed naming the problem."""
    for raw in ("not json", "[]", '{"data": 1}'):
        with pytest.raises(TaskFailed, match="not ours"):
            _output(raw)
    assert _output('{"type":"output","index":0,"data":{"a":1}}') == ("output", {"a": 1})


def test_read_items_as_text_keeps_each_line_whole() -> None:
    """Text items: each line without its line end, blank lines included (they are inputs)."""
    lines = io.StringIO("Ada\r\n\nBob Smith\n")
    assert list(read_items(lines, as_text=True)) == ["Ada", "", "Bob Smith"]


def test_read_items_as_json_skips_blank_lines_and_names_a_bad_one() -> None:
    """JSON items: one value a line, blank lines skipped; a bad line names its number, and
    the items before it were already handed on (the call streams)."""
    items = read_items(io.StringIO('{"a": 1}\n\n[2]\n{oops\n'), as_text=False)
    assert next(items) == {"a": 1}
    assert next(items) == [2]
    with pytest.raises(InvalidArgument, match="line 4"):
        next(items)
