"""The Ollama backend: serve the models of a local Ollama through the tunnel.

Each Ollama model is registered under its name (``/`` becomes ``--``) with three native methods
and OpenAI chat:

- ``predict(prompt: str) -> str`` and ``generate(prompt: str) -> Iterator[str]`` over
  ``/api/generate``;
- ``chat(messages: list[dict], max_tokens: int = 512, temperature: float = 0.8)
  -> Iterator[str]`` over ``/api/chat``;
- ``openai.chat.completions``: the OpenAI request mapped onto ``/api/chat`` (options
  ``num_predict``, ``temperature``, ``top_p``, ``stop``, ``seed``, ``num_ctx``; tools passed
  through), answered in OpenAI's format with ``usage`` from Ollama's token counts.

Calls run in the runner's worker threads with a blocking httpx client; a cancelled task closes
its streaming response, which cancels the request in Ollama.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from edge_runner.backends.base import Backend, BackendError, CancelEvent, Reply, StreamReply
from edge_runner.backends.openai_adapter import CHAT_METHOD, CompletionWriter
from edge_runner.errors import ConfigError
from edge_runner.models.signatures import MethodKind, MethodSignature, Param
from edge_runner.models.wire import model_spec
from edge_runner.proto import tunnel_pb2 as pb

__all__ = ["OllamaBackend", "model_id_for"]

logger = logging.getLogger(__name__)

_SIGNATURES = (
    MethodSignature(
        "chat",
        MethodKind.SERVER_STREAM,
        (
            Param("messages", "list[dict]", True),
            Param("max_tokens", "int", False, 512),
            Param("temperature", "float", False, 0.8),
        ),
        "Iterator[str]",
        "Chat with the model; streams the answer.",
    ),
    MethodSignature(
        "generate",
        MethodKind.SERVER_STREAM,
        (Param("prompt", "str", True),),
        "Iterator[str]",
        "Complete a prompt; streams the answer.",
    ),
    MethodSignature(
        "predict",
        MethodKind.UNARY,
        (Param("prompt", "str", True),),
        "str",
        "Complete a prompt.",
    ),
)

#: OpenAI request field -> Ollama option
_OPTIONS = (
    ("max_tokens", "num_predict"),
    ("max_completion_tokens", "num_predict"),
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("stop", "stop"),
    ("seed", "seed"),
)


def model_id_for(name: str) -> str:
    """Ollama names may contain ``/``; model ids may not (``a/b`` → ``a--b``)."""
    return name.replace("/", "--")


class OllamaBackend(Backend):
    """Serves ``models`` of the Ollama at ``host`` (``http://127.0.0.1:11434``)."""

    name = "ollama"

    def __init__(
        self,
        host: str,
        models: list[str],
        *,
        num_ctx: int | None = None,
        keep_alive: str | None = None,
        timeout: float = 600.0,
    ) -> None:
        if not models:
            raise ValueError("name at least one Ollama model")
        self.host = host.rstrip("/")
        self.names = {model_id_for(m): m for m in models}
        self.num_ctx = num_ctx
        self.keep_alive = keep_alive
        self._http = httpx.Client(base_url=self.host, timeout=httpx.Timeout(timeout, connect=5.0))

    # -- lifecycle --------------------------------------------------------------------------

    def load(self) -> None:
        """Check Ollama answers and pull the models it does not have, logging progress."""
        try:
            present = {m["name"] for m in self._http.get("/api/tags").json().get("models", [])}
        except (httpx.HTTPError, ValueError) as exc:
            raise ConfigError(
                f"no Ollama answers at {self.host} ({exc}); "
                "start `ollama serve` or set OLLAMA_HOST / --ollama-host"
            ) from exc
        for name in self.names.values():
            if name in present or f"{name}:latest" in present:
                continue
            self._pull(name)

    def _pull(self, name: str) -> None:
        logger.info("pulling %s from Ollama's registry", name)
        last = -1
        with self._http.stream("POST", "/api/pull", json={"model": name, "stream": True}) as r:
            for line in r.iter_lines():
                if not line:
                    continue
                event = json.loads(line)
                if "error" in event:
                    raise ConfigError(f"pulling {name} from Ollama failed: {event['error']}")
                total, done = event.get("total"), event.get("completed")
                if total and done is not None:
                    percent = int(100 * done / total)
                    if percent >= last + 10:
                        logger.info("%s is downloading: %d %%", name, percent)
                        last = percent
        logger.info("%s pulled", name)

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()

    def slots(self, model_id: str) -> int | None:
        """Ollama runs ``OLLAMA_NUM_PARALLEL`` requests per model at once (1 when unset)."""
        del model_id
        return max(1, int(os.environ.get("OLLAMA_NUM_PARALLEL") or 1))

    def specs(self) -> list[pb.ModelSpec]:
        """One spec per Ollama model, all with the same methods."""
        return [
            model_spec(model_id, _SIGNATURES, backend=self.name, chat=True, model_type_id="ollama")
            for model_id in sorted(self.names)
        ]

    # -- calls ------------------------------------------------------------------------------

    def call(
        self, model_id: str, method: str, payload: bytes, cancel: threading.Event
    ) -> Reply | StreamReply:
        """Run one task against Ollama."""
        name = self.names.get(model_id)
        if name is None:
            raise BackendError("NOT_FOUND", f"this runner does not serve {model_id!r}")
        try:
            args = json.loads(payload or b"{}")
        except ValueError as exc:
            raise BackendError("INVALID_ARGUMENT", f"task payload is not JSON: {exc}") from exc
        if method == CHAT_METHOD:
            return self._openai_chat(name, model_id, args, cancel)
        if method == "predict":
            body = self._body(name, {"prompt": args["prompt"], "stream": False})
            answer = self._post("/api/generate", body)
            return Reply(json.dumps(answer.get("response", "")).encode(), _usage(answer))
        if method == "generate":
            body = self._body(name, {"prompt": args["prompt"]})
            return self._stream("/api/generate", body, cancel, lambda e: e.get("response", ""))
        if method == "chat":
            options = {
                "num_predict": args.get("max_tokens"),
                "temperature": args.get("temperature"),
            }
            body = self._body(name, {"messages": args["messages"]}, options)
            return self._stream(
                "/api/chat", body, cancel, lambda e: (e.get("message") or {}).get("content", "")
            )
        raise BackendError("NOT_FOUND", f"Ollama models have no method {method!r}")

    def _body(
        self, name: str, fields: dict[str, Any], options: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        opts = {k: v for k, v in (options or {}).items() if v is not None}
        if self.num_ctx:
            opts.setdefault("num_ctx", self.num_ctx)
        body = {"model": name, **fields}
        if opts:
            body["options"] = opts
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        return body

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            r = self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise BackendError("UNAVAILABLE", f"Ollama at {self.host} failed: {exc}") from exc
        if r.status_code >= 400:
            raise _ollama_error(r.status_code, r.text)
        return dict(r.json())

    def _stream(
        self, path: str, body: dict[str, Any], cancel: threading.Event, piece: Any
    ) -> StreamReply:
        reply = StreamReply(iter(()))
        reply.chunks = self._events(path, body, cancel, piece, reply)
        return reply

    def _events(
        self,
        path: str,
        body: dict[str, Any],
        cancel: threading.Event,
        piece: Any,
        reply: StreamReply,
    ) -> Iterator[bytes]:
        try:
            with self._http.stream("POST", path, json={**body, "stream": True}) as r:
                if isinstance(cancel, CancelEvent):
                    # A read blocked on Ollama cannot poll the event: closing wakes it.
                    cancel.on_set(lambda: _abort(r))
                if r.status_code >= 400:
                    raise _ollama_error(r.status_code, r.read().decode(errors="replace"))
                for line in r.iter_lines():
                    if cancel.is_set():
                        return  # leaving the block closes the response: Ollama stops
                    if not line:
                        continue
                    event = json.loads(line)
                    if "error" in event:
                        raise BackendError("MODEL_ERROR", str(event["error"]))
                    if event.get("done"):
                        reply.usage = _usage(event)
                        return
                    text = piece(event)
                    if text:
                        yield json.dumps(text).encode()
        except (httpx.HTTPError, httpx.StreamError) as exc:
            if cancel.is_set():
                return  # we closed it ourselves
            raise BackendError("UNAVAILABLE", f"Ollama at {self.host} failed: {exc}") from exc

    def _openai_chat(
        self, name: str, model_id: str, request: dict[str, Any], cancel: threading.Event
    ) -> Reply | StreamReply:
        options = {ours: request.get(theirs) for theirs, ours in _OPTIONS}
        fields: dict[str, Any] = {"messages": request.get("messages", [])}
        if request.get("tools"):
            fields["tools"] = request["tools"]
        body = self._body(name, fields, options)
        writer = CompletionWriter(model_id)
        if not request.get("stream"):
            answer = self._post("/api/chat", {**body, "stream": False})
            message = answer.get("message") or {}
            out: dict[str, Any] = {"role": "assistant", "content": message.get("content", "")}
            if message.get("tool_calls"):
                out["tool_calls"] = _openai_tool_calls(message["tool_calls"])
            finish = "tool_calls" if "tool_calls" in out else "stop"
            return writer.completion(out, finish, _usage(answer))
        inner = StreamReply(iter(()))
        events = self._events(
            "/api/chat", body, cancel, lambda e: (e.get("message") or {}).get("content", ""), inner
        )
        return writer.stream(
            (json.loads(piece) for piece in events),
            lambda count: inner.usage,
            bool((request.get("stream_options") or {}).get("include_usage")),
        )


def _abort(response: httpx.Response) -> None:
    """Cut a streaming response from another thread, waking a read blocked on it.

    ``close()`` alone does not wake a thread blocked in ``recv`` on Linux; shutting the socket
    down does, and Ollama sees the client leave and stops generating.
    """
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    else:
        response.close()


def _usage(event: dict[str, Any]) -> pb.Usage:
    return pb.Usage(
        prompt_tokens=int(event.get("prompt_eval_count") or 0),
        completion_tokens=int(event.get("eval_count") or 0),
    )


def _openai_tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, call in enumerate(calls):
        function = call.get("function") or {}
        out.append(
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {
                    "name": function.get("name", ""),
                    "arguments": json.dumps(function.get("arguments") or {}),
                },
            }
        )
    return out


def _ollama_error(status: int, text: str) -> BackendError:
    try:
        message = str(json.loads(text).get("error", text))
    except ValueError:
        message = text[:300]
    code = "NOT_FOUND" if status == 404 else "MODEL_ERROR"
    return BackendError(code, f"Ollama: {message}")
