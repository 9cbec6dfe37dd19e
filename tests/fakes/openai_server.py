"""A FAKE OpenAI-compatible engine that starts slowly, as llama.cpp's C++ ``llama-server`` does.

``llama-server`` (not installable on these machines; llama-cpp-python's server, which the engine
tests run, only listens once its model is loaded) listens at once and answers every request
with 503 ``{"error": {"message": "Loading model", ...}}`` until its model is loaded. This server
does the same until :attr:`FakeOpenAIServer.loaded` is set, then lists its models and answers
chat completions (``echo: <last message>``, whole or streamed). It can also start late (bound
only by :meth:`~FakeOpenAIServer.start`, on a port chosen before: "connection refused" until
then, as vLLM gives while it loads) and ask for an API key (401 without it).
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Sequence
from typing import Any

from edge_runner.testing.processes import free_port

__all__ = ["FakeOpenAIServer"]

_LOADING = {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}


class FakeOpenAIServer:
    """The fake engine (a FAKE: see the module docstring), on 127.0.0.1.

    Args:
        models: the model names it lists once loaded.
        api_key: answer 401 to a request without ``Authorization: Bearer <api_key>``.

    Attributes:
        port: its port, chosen when made (it listens from :meth:`start` on).
        loaded: set: the model is loaded (before that, 503 "Loading model").
        requests: the paths requested, in order.
    """

    def __init__(self, models: Sequence[str] = ("m",), *, api_key: str | None = None) -> None:
        self.models = list(models)
        self.api_key = api_key
        self.port = free_port()
        self.loaded = threading.Event()
        self.requests: list[str] = []
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """Its OpenAI base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        """Listen (loading until :attr:`loaded` is set)."""
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    """One request per connection (HTTP/1.0): a stopped server leaves no live connection."""

    server_fake: FakeOpenAIServer

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the handler's API
        if not self._admitted():
            return
        if self.path.rstrip("/") != "/v1/models":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        data = [{"id": name, "object": "model"} for name in self.server_fake.models]
        self._send(200, {"object": "list", "data": data})

    def do_POST(self) -> None:  # noqa: N802 - the handler's API
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if not self._admitted():
            return
        if self.path != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        text = "echo: " + str(body["messages"][-1]["content"])
        if not body.get("stream"):
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
            self._send(
                200, {"object": "chat.completion", "model": body["model"], "choices": [choice]}
            )
            return
        chunk = {
            "object": "chat.completion.chunk",
            "model": body["model"],
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}],
        }
        stream = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
        self._write(200, stream, "text/event-stream")

    def _admitted(self) -> bool:
        fake = self.server_fake
        fake.requests.append(self.path)
        key = fake.api_key
        if key is not None and self.headers.get("Authorization") != f"Bearer {key}":
            self._send(
                401, {"error": {"message": "Invalid API Key", "type": "authentication_error"}}
            )
            return False
        if not fake.loaded.is_set():
            self._send(503, _LOADING)
            return False
        return True

    def _send(self, status: int, doc: dict[str, Any]) -> None:
        self._write(status, json.dumps(doc).encode(), "application/json")

    def _write(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
