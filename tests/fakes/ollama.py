"""FAKE: a small stand-in for the Ollama server, which cannot run on these machines.

It is a real HTTP server on ``127.0.0.1:0`` (stdlib ``ThreadingHTTPServer``) that follows the
JSON shapes of Ollama's documented REST API (``docs/api.md``) for the endpoints we use:
``GET /``, ``GET /api/version``, ``GET /api/tags``, ``GET /api/ps``, ``POST /api/show``,
``POST /api/pull``, ``POST /api/chat``, ``POST /api/generate`` and ``POST /api/embed``. Streams
are NDJSON over chunked transfer encoding, as Ollama sends them; errors are ``{"error": ...}``.
The "model" echoes: it answers ``"echo: " + <last user message>`` in word pieces, one word
counting as one token. A model is loaded into memory by its first request (or an empty one, as
Ollama's docs describe), which ``/api/ps`` then lists.

Tests steer it through plain attributes: ``hold`` pauses streams between chunks, ``hold_pull``
pauses a pull after its first progress, ``hold_load`` pauses loading a model, ``stream_error``
ends the next streams with an error line, ``die()``/``revive()`` stop the server abruptly and
bring it back on the same port; ``paused``/``pull_paused``/``load_paused`` say something waits
on a hold, ``disconnects``/``disconnected`` report clients that went away mid-response,
``chunks_sent`` counts content chunks written, ``requests`` records every body.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import select
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["FakeModel", "FakeOllama", "normalize_name"]

VERSION = "0.0.0-fake"
EMBEDDING_SIZE = 8
_POLL_S = 0.002  # how often a held stream looks for a closed client or a release
_NDJSON = "application/x-ndjson"


@dataclass(frozen=True)
class FakeModel:
    """A model the fake registry knows.

    Attributes:
        present: Whether it is already pulled (listed by ``/api/tags``, usable for inference).
        capabilities: What ``/api/show`` lists; a model without ``completion`` refuses chat and
            generate with Ollama's 400 (an embedding model).
        size: Bytes on disk, split across the layers a pull reports.
        family: ``details.family`` in ``/api/tags``.
        parameter_size: ``details.parameter_size`` in ``/api/tags``.
        quantization_level: ``details.quantization_level`` in ``/api/tags``.
    """

    present: bool = True
    capabilities: tuple[str, ...] = ("completion", "tools")
    size: int = 2_019_393_189
    family: str = "llama"
    parameter_size: str = "3.2B"
    quantization_level: str = "Q4_K_M"


def normalize_name(name: str) -> str:
    """Return Ollama's full ``model:tag`` form, adding the default ``latest`` tag."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _words(text: str) -> int:
    return len(text.split())


def _embedding(text: str) -> list[float]:
    """Return a deterministic unit vector of ``EMBEDDING_SIZE`` floats for ``text``."""
    raw = hashlib.sha256(text.encode()).digest()
    values = [(raw[i] - 127.5) / 127.5 for i in range(EMBEDDING_SIZE)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class _ClientGone(Exception):
    """The client closed the connection before the response was complete."""


class FakeOllama:
    """FAKE Ollama server on loopback, used as a context manager.

    ``with FakeOllama(models={"llama3.2": FakeModel()}) as fake:`` serves on ``fake.url``.

    Args:
        models: The registry, by name (a missing tag means ``latest``); models with
            ``present=False`` must be pulled first. Defaults to ``{"llama3.2": FakeModel()}``.
        pull_delay: Seconds between pull progress lines.
        pull_steps: Progress lines per layer, after the first one at ``completed=0``.
        fail_pull: If set, every pull fails with ``{"error": fail_pull}`` after the manifest.
        port: The port to listen on (0: any free one).
        token_delay: Seconds between streamed tokens (a model's pace, for benchmarks).

    Attributes:
        url: ``http://127.0.0.1:PORT`` while running.
        requests: ``(path, body)`` for every request in arrival order; ``body`` is the parsed
            JSON, or ``None`` for a GET.
        hold: While set, chat and generate responses stop before each chunk after the first
            (and before a non-streamed answer) until it is cleared.
        paused: Set while a response is waiting on ``hold``.
        hold_pull: While set, a pull stops after its first progress line with bytes done.
        pull_paused: Set while a pull is waiting on ``hold_pull``.
        hold_load: While set, a request that must load its model first waits before loading.
        load_paused: Set while a load is waiting on ``hold_load``.
        stream_error: If set, chat and generate streams send ``{"error": stream_error}`` after
            their first chunk and end there (as Ollama does when a runner fails mid-answer).
        loaded: Full names of the models in memory (what ``/api/ps`` lists).
        disconnected: Set when a client leaves before its response was complete.
        disconnects: How many clients did so.
        chunks_sent: Content chunks (``"done": false``) of chat/generate written to clients.
        pull_delay, pull_steps, fail_pull: As the arguments; may be changed while running.
    """

    def __init__(
        self,
        models: Mapping[str, FakeModel] | None = None,
        *,
        pull_delay: float = 0.001,
        pull_steps: int = 3,
        fail_pull: str | None = None,
        port: int = 0,
        token_delay: float = 0.0,
    ) -> None:
        registry = {"llama3.2": FakeModel()} if models is None else models
        self._registry = {normalize_name(name): spec for name, spec in registry.items()}
        self._present = {name for name, spec in self._registry.items() if spec.present}
        self.pull_delay = pull_delay
        self.token_delay = token_delay
        self.pull_steps = pull_steps
        self.fail_pull = fail_pull
        self.url = ""
        self.requests: list[tuple[str, Any]] = []
        self.hold = threading.Event()
        self.paused = threading.Event()
        self.disconnected = threading.Event()
        self.disconnects = 0
        self.chunks_sent = 0
        self.hold_pull = threading.Event()
        self.pull_paused = threading.Event()
        self.hold_load = threading.Event()
        self.load_paused = threading.Event()
        self.stream_error: str | None = None
        self.loaded: set[str] = set()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._dead = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port = port
        self._connections: set[socket.socket] = set()

    def __enter__(self) -> FakeOllama:
        self._start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing.set()  # releases held responses so their threads end
        self._stop()

    def _start(self) -> None:
        self._closing.clear()
        self._dead.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]  # the handler finds its fake here
        self._server = server
        self._port = server.server_address[1]
        self.url = f"http://127.0.0.1:{self._port}"
        self._thread = threading.Thread(
            target=server.serve_forever, args=(_POLL_S * 10,), name="fake-ollama", daemon=True
        )
        self._thread.start()

    def _stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def die(self) -> None:
        """Stop as a crashed Ollama does: the port refuses, open streams are cut mid-way."""
        self._dead.set()  # no handler writes another byte
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._closing.set()
        self._stop()
        self.loaded.clear()

    def revive(self) -> None:
        """Serve again on the same port (an Ollama that was restarted), nothing loaded."""
        self._start()

    @property
    def present(self) -> list[str]:
        """Full names of the models that are pulled, sorted."""
        with self._lock:
            return sorted(self._present)

    # The handler calls these; they hold the shared state behind one lock.

    def _record(self, path: str, body: Any) -> None:
        with self._lock:
            self.requests.append((path, body))

    def _is_present(self, name: str) -> bool:
        with self._lock:
            return normalize_name(name) in self._present

    def _mark_present(self, name: str) -> None:
        with self._lock:
            self._present.add(normalize_name(name))

    def _track(self, conn: socket.socket, live: bool) -> None:
        with self._lock:
            if live:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _capabilities(self, name: str) -> tuple[str, ...]:
        return self._registry[normalize_name(name)].capabilities

    def _count_chunk(self) -> None:
        with self._lock:
            self.chunks_sent += 1

    def _count_disconnect(self) -> None:
        with self._lock:
            self.disconnects += 1
        self.disconnected.set()

    def _tag(self, name: str) -> dict[str, Any]:
        spec = self._registry[name]
        return {
            "name": name,
            "model": name,
            "modified_at": _now(),
            "size": spec.size,
            "digest": _digest(name),
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": spec.family,
                "families": [spec.family],
                "parameter_size": spec.parameter_size,
                "quantization_level": spec.quantization_level,
            },
        }

    def _ps_entry(self, name: str) -> dict[str, Any]:
        entry = self._tag(name)
        entry.pop("modified_at")
        entry["expires_at"] = _now()
        entry["size_vram"] = entry["size"]
        return entry

    def _layers(self, name: str) -> list[tuple[str, int]]:
        """Return ``(digest, total)`` per layer: the weights, then a small template layer."""
        size = self._registry[name].size
        return [
            (f"sha256:{_digest(name + '/weights')}", size - 1_024),
            (f"sha256:{_digest(name + '/template')}", 1_024),
        ]


class _Handler(BaseHTTPRequestHandler):
    """One request to the fake; Ollama's JSON shapes live here."""

    protocol_version = "HTTP/1.1"  # chunked streams and keep-alive, as Ollama serves them
    server_version = "FakeOllama"
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    @property
    def fake(self) -> FakeOllama:
        return self.server.fake  # type: ignore[attr-defined, no-any-return]

    def setup(self) -> None:
        """Remember the connection, so die() can cut it."""
        super().setup()
        self.fake._track(self.connection, True)

    def finish(self) -> None:
        """Forget the connection."""
        self.fake._track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: pytest shows failures, not access logs."""

    # ---- plumbing -----------------------------------------------------------------------

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self._write(data)

    def _send_text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self._write(data)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", _NDJSON)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _send_line(self, payload: Any) -> None:
        data = json.dumps(payload).encode() + b"\n"
        self._write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_stream(self) -> None:
        self._write(b"0\r\n\r\n")

    def _write(self, data: bytes) -> None:
        if self.fake._dead.is_set():
            raise _ClientGone
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError as exc:
            raise _ClientGone from exc

    def _peer_closed(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _wait_while_held(self) -> None:
        self._wait_on(self.fake.hold, self.fake.paused)

    def _wait_on(self, hold: threading.Event, paused: threading.Event) -> None:
        """While ``hold`` is set, wait (saying so with ``paused``) unless the client leaves."""
        fake = self.fake
        if not hold.is_set():
            return
        paused.set()
        try:
            while hold.is_set() and not fake._closing.is_set():
                if self._peer_closed():
                    raise _ClientGone
                fake._closing.wait(_POLL_S)
        finally:
            paused.clear()

    # ---- dispatch -----------------------------------------------------------------------

    def do_HEAD(self) -> None:
        """``HEAD /``: Ollama's liveness probe."""
        self._dispatch(None)

    def do_GET(self) -> None:
        """``GET /``, ``/api/version``, ``/api/tags``."""
        self._dispatch(None)

    def do_POST(self) -> None:
        """``POST /api/pull``, ``/api/chat``, ``/api/generate``, ``/api/embed``."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            self.fake._record(self.path, raw.decode(errors="replace"))
            self._send_json(400, {"error": "invalid character in request body"})
            return
        self._dispatch(body)

    def _dispatch(self, body: Any) -> None:
        self.fake._record(self.path, body)
        routes = {
            ("GET", "/"): self._root,
            ("HEAD", "/"): self._root,
            ("GET", "/api/version"): self._version,
            ("GET", "/api/tags"): self._tags,
            ("GET", "/api/ps"): self._ps,
            ("POST", "/api/show"): self._show,
            ("POST", "/api/pull"): self._pull,
            ("POST", "/api/chat"): self._chat,
            ("POST", "/api/generate"): self._generate,
            ("POST", "/api/embed"): self._embed,
        }
        route = routes.get((self.command, self.path))
        try:
            if route is None:
                self._send_text(404, "404 page not found")
            elif body is not None and not isinstance(body, dict):
                self._send_json(400, {"error": "request body must be a JSON object"})
            else:
                route(body or {})
        except _ClientGone:
            self.close_connection = True
            self.fake._count_disconnect()

    # ---- endpoints ----------------------------------------------------------------------

    def _root(self, body: dict[str, Any]) -> None:
        self._send_text(200, "Ollama is running")

    def _version(self, body: dict[str, Any]) -> None:
        self._send_json(200, {"version": VERSION})

    def _tags(self, body: dict[str, Any]) -> None:
        fake = self.fake
        self._send_json(200, {"models": [fake._tag(name) for name in fake.present]})

    def _ps(self, body: dict[str, Any]) -> None:
        fake = self.fake
        with fake._lock:
            loaded = sorted(fake.loaded)
        self._send_json(200, {"models": [fake._ps_entry(name) for name in loaded]})

    def _show(self, body: dict[str, Any]) -> None:
        name = self._require_model(body)
        if name is None:
            return
        tag = self.fake._tag(normalize_name(name))
        self._send_json(
            200,
            {
                "modelfile": f"FROM {name}",
                "parameters": "",
                "template": "{{ .Prompt }}",
                "details": tag["details"],
                "model_info": {"general.architecture": tag["details"]["family"]},
                "capabilities": list(self.fake._capabilities(name)),
                "modified_at": tag["modified_at"],
            },
        )

    def _load(self, name: str, body: dict[str, Any]) -> None:
        """Load ``name`` into memory (a cold start waits on ``hold_load``), or unload it."""
        fake = self.fake
        full = normalize_name(name)
        if body.get("keep_alive") in (0, "0", "0s"):
            with fake._lock:
                fake.loaded.discard(full)
            return
        with fake._lock:
            if full in fake.loaded:
                return
        if fake.hold_load.is_set():
            fake.load_paused.set()
            try:
                while fake.hold_load.is_set() and not fake._closing.is_set():
                    if self._peer_closed():
                        raise _ClientGone
                    fake._closing.wait(_POLL_S)
            finally:
                fake.load_paused.clear()
        with fake._lock:
            fake.loaded.add(full)

    def _pull(self, body: dict[str, Any]) -> None:
        fake = self.fake
        name = normalize_name(str(body.get("model") or body.get("name") or ""))
        if name == ":latest":
            self._send_json(400, {"error": "model is required"})
            return
        error: str | None
        if name not in fake._registry:
            error = "pull model manifest: file does not exist"
        else:
            error = fake.fail_pull
        lines = self._pull_lines(name, error)
        if body.get("stream", True) is False:
            last = list(lines)[-1]
            self._send_json(500 if "error" in last else 200, last)
            return
        self._start_stream()
        for line in lines:
            self._send_line(line)
        self._end_stream()

    def _pull_lines(self, name: str, error: str | None) -> Iterator[dict[str, Any]]:
        fake = self.fake
        yield {"status": "pulling manifest"}
        if error is not None:
            yield {"error": error}
            return
        steps = max(1, fake.pull_steps)
        held = False
        for digest, total in fake._layers(name):
            for step in range(steps + 1):
                time.sleep(fake.pull_delay)  # the fake's pace, not a wait in a test
                yield {
                    "status": f"pulling {digest[7:19]}",
                    "digest": digest,
                    "total": total,
                    "completed": total * step // steps,
                }
                if step and not held:
                    held = True
                    self._wait_on(fake.hold_pull, fake.pull_paused)
        yield {"status": "verifying sha256 digest"}
        yield {"status": "writing manifest"}
        fake._mark_present(name)
        yield {"status": "success"}

    def _require_model(self, body: dict[str, Any]) -> str | None:
        """Return the requested model name, or answer the error Ollama gives and return None."""
        name = body.get("model")
        if not name:
            self._send_json(400, {"error": "model is required"})
            return None
        if not self.fake._is_present(str(name)):
            self._send_json(404, {"error": f'model "{name}" not found, try pulling it first'})
            return None
        return str(name)

    def _require_completion(self, body: dict[str, Any], verb: str) -> str | None:
        """The model of a chat or generate request, loaded; else Ollama's error and None."""
        model = self._require_model(body)
        if model is None:
            return None
        if "completion" not in self.fake._capabilities(model):
            self._send_json(400, {"error": f'"{model}" does not support {verb}'})
            return None
        self._load(model, body)
        return model

    def _chat(self, body: dict[str, Any]) -> None:
        model = self._require_completion(body, "chat")
        if model is None:
            return
        messages = body.get("messages") or []
        if not messages:
            unload = body.get("keep_alive") in (0, "0", "0s")
            self._send_json(
                200,
                {
                    "model": model,
                    "created_at": _now(),
                    "message": {"role": "assistant", "content": ""},
                    "done_reason": "unload" if unload else "load",
                    "done": True,
                },
            )
            return
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        text = str(last_user.get("content", ""))
        if last_user.get("images"):
            text += f" ({len(last_user['images'])} images)"
        prompt_tokens = sum(_words(str(m.get("content", ""))) for m in messages)
        tools = body.get("tools") or []
        if tools and "use the tool" in text:
            self._tool_call(body, model, tools[0], text, prompt_tokens)
            return
        self._complete(body, model, text, prompt_tokens, chat=True)

    def _tool_call(
        self, body: dict[str, Any], model: str, tool: dict[str, Any], text: str, prompt_tokens: int
    ) -> None:
        """Answer with a call of ``tool`` (Ollama's shape: arguments as an object)."""
        call = {"function": {"name": tool["function"]["name"], "arguments": {"text": text}}}
        message = {"role": "assistant", "content": "", "tool_calls": [call]}
        final = {
            "model": model,
            "created_at": _now(),
            "message": message,
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": prompt_tokens,
            "eval_count": 1,
        }
        if body.get("stream", True) is False:
            self._send_json(200, final)
            return
        self._start_stream()
        self._send_line({**final, "done": False, "done_reason": None})
        self._send_line({**final, "message": {"role": "assistant", "content": ""}})
        self._end_stream()

    def _generate(self, body: dict[str, Any]) -> None:
        model = self._require_completion(body, "generate")
        if model is None:
            return
        prompt = str(body.get("prompt") or "")
        if not prompt:
            unload = body.get("keep_alive") in (0, "0", "0s")
            answer: dict[str, Any] = {
                "model": model,
                "created_at": _now(),
                "response": "",
                "done": True,
            }
            if unload:
                answer["done_reason"] = "unload"
            self._send_json(200, answer)
            return
        self._complete(body, model, prompt, _words(prompt), chat=False)

    def _complete(
        self, body: dict[str, Any], model: str, text: str, prompt_tokens: int, *, chat: bool
    ) -> None:
        """Answer chat or generate with the echo of ``text``, streamed unless told not to."""
        words = f"echo: {text}".split()
        limit = (body.get("options") or {}).get("num_predict")
        # As Ollama's runner: only a positive num_predict limits the answer (0, -1: no limit).
        truncated = isinstance(limit, int) and 0 < limit < len(words)
        if truncated:
            words = words[:limit]
        pieces = [w if i == 0 else f" {w}" for i, w in enumerate(words)]

        def content(piece: str) -> dict[str, Any]:
            if chat:
                return {"message": {"role": "assistant", "content": piece}}
            return {"response": piece}

        started = time.monotonic_ns()
        stream = body.get("stream", True) is not False

        def final(piece: str) -> dict[str, Any]:
            elapsed = max(1, time.monotonic_ns() - started)
            return {
                "model": model,
                "created_at": _now(),
                **content(piece),
                "done": True,
                "done_reason": "length" if truncated else "stop",
                "total_duration": elapsed,
                "load_duration": 1,
                "prompt_eval_count": prompt_tokens,
                "prompt_eval_duration": 1,
                "eval_count": len(pieces),
                "eval_duration": elapsed,
            }

        if not stream:
            self._wait_while_held()
            self._send_json(200, final("".join(pieces)))
            return
        self._start_stream()
        for i, piece in enumerate(pieces):
            if i:
                if self.fake.token_delay:
                    time.sleep(self.fake.token_delay)  # the model's pace
                self._wait_while_held()
                error = self.fake.stream_error
                if error is not None:
                    self._send_line({"error": error})
                    self._end_stream()
                    return
            self._send_line({"model": model, "created_at": _now(), **content(piece), "done": False})
            self.fake._count_chunk()
        self._wait_while_held()
        self._send_line(final(""))
        self._end_stream()

    def _embed(self, body: dict[str, Any]) -> None:
        model = self._require_model(body)
        if model is None:
            return
        self._load(model, body)
        given = body.get("input", [])
        texts = [given] if isinstance(given, str) else [str(t) for t in given]
        self._send_json(
            200,
            {
                "model": model,
                "embeddings": [_embedding(t) for t in texts],
                "total_duration": 1,
                "load_duration": 1,
                "prompt_eval_count": sum(_words(t) for t in texts),
            },
        )
