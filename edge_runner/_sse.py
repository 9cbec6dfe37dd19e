"""Server-Sent Events as the client reads them: a line parser, and the native stream's events
turned into outputs (re-exported by :mod:`edge_runner.client`)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from edge_runner.errors import TaskFailed
from edge_runner.views import JSONValue

__all__ = ["SSEParser", "parse_sse", "stream_item"]


class SSEParser:
    """Incremental Server-Sent Events parser: feed text lines, get ``(event, data)`` pairs."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[str, str] | None:
        """Consume one line; returns a complete event at a blank line."""
        if not line:
            if not self._data:
                return None
            event, data = self._event, "\n".join(self._data)
            self._event, self._data = "message", []
            return event, data
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def end(self) -> tuple[str, str] | None:
        """Flush an event not followed by a blank line."""
        return self.feed("")


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """Parse Server-Sent Events from text lines into ``(event, data)`` pairs."""
    parser = SSEParser()
    for line in lines:
        item = parser.feed(line)
        if item is not None:
            yield item
    last = parser.end()
    if last is not None:
        yield last


def stream_item(event: str, data: str) -> JSONValue:
    """Turn one native SSE event into an output, None at the end, or an error."""
    doc = json.loads(data)
    if event == "chunk":
        return doc["output"]
    if event == "error":
        raise TaskFailed(0, str(doc.get("code")), str(doc.get("message")))
    return None
