"""The Ollama backend: serve the models of a local Ollama through the tunnel.

Every call goes through the official ``ollama`` Python client. Each Ollama model is registered
under its name (``/`` becomes ``--``) with the same methods:

- ``predict(prompt, max_tokens, temperature) -> str`` and ``generate(...) -> Iterator[str]``
  over ``/api/generate``; ``chat(messages, max_tokens, temperature) -> Iterator[str]`` over
  ``/api/chat``; ``embed(input) -> list[list[float]]`` over ``/api/embed``;
- OpenAI ``chat.completions`` (options, tools, ``response_format``; ``usage`` from Ollama's
  token counts), ``completions`` and ``embeddings`` (float or base64).

This module translates tasks into Ollama calls and Ollama's answers and errors back. Readiness
(pulling, loading into memory, watching Ollama; see :class:`~edge_runner.backends.base.Backend`)
is :mod:`edge_runner.backends.ollama_ready`.

Calls run in the runner's worker threads, each with its own client (kept-alive connection). A
cancelled task shuts its socket down (see :mod:`.http_cancel`), which stops the generation in
Ollama.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import ollama

from edge_runner.backends.base import (
    Backend,
    Reply,
    StreamReply,
    json_arguments,
    no_input_stream,
)
from edge_runner.backends.http_cancel import PerThread, cancel_scope, client_options
from edge_runner.backends.llm_methods import LLM_SIGNATURES, collect
from edge_runner.backends.ollama_mapping import (
    chat_options,
    ollama_messages,
    openai_tool_calls,
    response_format,
    tool_call_deltas,
)
from edge_runner.backends.ollama_ready import (
    DEFAULT_HOST,
    FOREIGN,
    OllamaReadiness,
    describe,
    model_id_for,
    normalize_host,
    ollama_parallel,
)
from edge_runner.backends.openai_format import (
    CHAT_METHOD,
    COMPLETIONS_METHOD,
    EMBEDDINGS_METHOD,
    OPENAI_METHODS,
    CompletionWriter,
    Delta,
    TextCompletionWriter,
    embeddings_reply,
    include_usage,
)
from edge_runner.errors import BackendError, ErrorCode
from edge_runner.models.wire import model_spec
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.views import JSONObject

__all__ = ["DEFAULT_HOST", "OllamaBackend", "model_id_for", "normalize_host", "ollama_parallel"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_Part = TypeVar("_Part", ollama.GenerateResponse, ollama.ChatResponse)


@dataclass
class _StreamEnd:
    """What a streamed ollama call left at its end: tool calls seen, usage, why it stopped."""

    calls: int = 0
    tool_calls: list[ollama.Message.ToolCall] = field(default_factory=list)
    usage: pb.Usage | None = None
    reason: str | None = None


class OllamaBackend(Backend):
    """Serves ``models`` of the Ollama at ``host`` (``http://127.0.0.1:11434``).

    Args:
        host: Ollama's address (see :func:`normalize_host`).
        models: Ollama model names (``llama3.2``, ``qwen3:8b``, ``library/qwen2.5``), each
            served under :func:`model_id_for` its name; or a mapping of model id to name.
        num_ctx: the context length to run every model with.
        keep_alive: how long Ollama keeps a model loaded after a request (``5m``, ``-1``).
        preload: load each model into memory before it is READY (the cold start happens
            before the first request, not during it).
        probe_interval: seconds between liveness probes.
        timeout: seconds an Ollama call may stay silent before it fails.
        log_progress: log download progress every 10 % (off while a terminal shows a bar).
    """

    name = "ollama"

    def __init__(
        self,
        host: str,
        models: Sequence[str] | Mapping[str, str],
        *,
        num_ctx: int | None = None,
        keep_alive: str | None = None,
        preload: bool = True,
        probe_interval: float = 5.0,
        timeout: float = 600.0,
        log_progress: bool = True,
    ) -> None:
        super().__init__()
        if not models:
            raise ValueError("name at least one Ollama model")
        self.host = normalize_host(host)
        self.names = (
            dict(models) if isinstance(models, Mapping) else {model_id_for(m): m for m in models}
        )
        self.num_ctx = num_ctx
        self.keep_alive = keep_alive
        self.parallel = ollama_parallel()
        self.slots_setting = f"OLLAMA_NUM_PARALLEL={self.parallel}"
        options = client_options(httpx.Timeout(timeout, connect=5.0))
        self._clients: PerThread[ollama.Client] = PerThread(
            lambda: ollama.Client(self.host, **options), ollama.Client.close
        )
        self._readiness = OllamaReadiness(
            self.host,
            self.names,
            self._clients,
            self.set_status,
            num_ctx=num_ctx,
            keep_alive=keep_alive,
            preload=preload,
            probe_interval=probe_interval,
            log_progress=log_progress,
        )

    # -- lifecycle --------------------------------------------------------------------------

    def load(self) -> None:
        """Check Ollama answers, then prepare the models in the background.

        Raises:
            ConfigError: no Ollama answers at ``host``.
        """
        self._readiness.start()

    def close(self) -> None:
        """Stop preparing and watching (aborting a pull in progress) and close the clients."""
        self._readiness.close()
        self._clients.close()

    def slots(self, model_id: str) -> int | None:
        """Ollama runs ``OLLAMA_NUM_PARALLEL`` requests per model at once (1 when unset)."""
        del model_id
        return self.parallel

    def default_pool_size(self) -> int:
        """What Ollama runs at once, and no more: its parallel requests for every model."""
        return self.parallel * len(self.names)

    def specs(self) -> list[pb.ModelSpec]:
        """One spec per model still served (a FAILED one is withdrawn), all alike."""
        return [
            model_spec(
                model_id,
                LLM_SIGNATURES,
                backend=self.name,
                chat=True,
                model_type_id="ollama",
                openai=tuple(OPENAI_METHODS.values()),
            )
            for model_id in sorted(self.names)
            if model_id not in self._readiness.failed
        ]

    # -- calls (worker threads) -------------------------------------------------------------

    def call(
        self,
        model_id: str,
        method: str,
        payload: bytes,
        cancel: threading.Event,
        inputs: Iterator[bytes] | None = None,
    ) -> Reply | StreamReply:
        """Run one task against Ollama."""
        no_input_stream(inputs, model_id, method)
        name = self._serving(model_id)
        args = json_arguments(payload)
        handler = self._handlers.get(method)
        if handler is None:
            raise BackendError(ErrorCode.NOT_FOUND, f"Ollama models have no method {method!r}")
        return handler(self, name, model_id, args, cancel)

    def _serving(self, model_id: str) -> str:
        name = self.names.get(model_id)
        if name is None or model_id in self._readiness.failed:
            raise BackendError(ErrorCode.NOT_FOUND, f"this runner does not serve {model_id!r}")
        self.check_ready(model_id)
        return name

    def _body(self, request: JSONObject, *, chat: bool) -> dict[str, Any]:
        """Keyword arguments shared by chat and generate calls."""
        body: dict[str, Any] = {"options": chat_options(request, self.num_ctx) or None}
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        fmt = response_format(request)
        if fmt is not None:
            body["format"] = fmt
        if chat and request.get("tools"):
            body["tools"] = request["tools"]
        return body

    def _text_stream(
        self,
        cancel: threading.Event,
        start: Callable[[], Iterator[_Part]],
        text: Callable[[_Part], str | None],
    ) -> StreamReply:
        """A stream of the text pieces of an ollama streaming call, with usage at its end."""
        reply = StreamReply(iter(()))

        def pieces() -> Iterator[bytes]:
            for part in self._stream(cancel, start):
                if piece := text(part):
                    yield json.dumps(piece).encode()
                if part.done:
                    reply.usage = _usage(part)

        reply.chunks = pieces()
        return reply

    def _native_generate(
        self, name: str, model_id: str, args: JSONObject, cancel: threading.Event
    ) -> StreamReply:
        prompt = _text(args, "prompt")
        body = self._body(args, chat=False)
        return self._text_stream(
            cancel,
            lambda: self._clients.get().generate(name, prompt, stream=True, **body),
            lambda part: part.response,
        )

    def _native_predict(
        self, name: str, model_id: str, args: JSONObject, cancel: threading.Event
    ) -> Reply:
        return collect(self._native_generate(name, model_id, args, cancel))

    def _native_chat(
        self, name: str, model_id: str, args: JSONObject, cancel: threading.Event
    ) -> StreamReply:
        messages = ollama_messages(args.get("messages"))
        body = self._body(args, chat=True)
        return self._text_stream(
            cancel,
            lambda: self._clients.get().chat(name, messages, stream=True, **body),
            lambda part: part.message.content,
        )

    def _native_embed(
        self, name: str, model_id: str, args: JSONObject, cancel: threading.Event
    ) -> Reply:
        texts = _texts(args.get("input"), "input")
        response = self._unary(cancel, lambda: self._clients.get().embed(name, texts))
        vectors = [list(v) for v in response.embeddings]
        return Reply(
            json.dumps(vectors).encode(),
            pb.Usage(prompt_tokens=int(response.prompt_eval_count or 0)),
        )

    def _openai_chat(
        self, name: str, model_id: str, request: JSONObject, cancel: threading.Event
    ) -> Reply | StreamReply:
        messages = ollama_messages(request.get("messages"))
        body = self._body(request, chat=True)
        writer = CompletionWriter(model_id)
        final = _StreamEnd()

        def deltas() -> Iterator[Delta]:
            for part in self._stream(
                cancel, lambda: self._clients.get().chat(name, messages, stream=True, **body)
            ):
                message = part.message
                if message.tool_calls:
                    yield {"tool_calls": tool_call_deltas(message.tool_calls, final.calls)}
                    final.calls += len(message.tool_calls)
                    final.tool_calls.extend(message.tool_calls)
                if message.content:
                    yield message.content
                if part.done:
                    final.usage = _usage(part)
                    final.reason = part.done_reason

        def finish() -> str:
            if final.calls:
                return "tool_calls"
            return "length" if final.reason == "length" else "stop"

        if request.get("stream"):
            return writer.stream(deltas(), lambda _: final.usage, include_usage(request), finish)
        text = "".join(d for d in deltas() if isinstance(d, str))
        out: dict[str, object] = {"role": "assistant", "content": text}
        if final.calls:
            out["tool_calls"] = openai_tool_calls(final.tool_calls)
            out["content"] = text or None
        return writer.completion(out, finish(), final.usage)

    def _openai_completions(
        self, name: str, model_id: str, request: JSONObject, cancel: threading.Event
    ) -> Reply | StreamReply:
        prompt = request.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise BackendError(
                ErrorCode.INVALID_ARGUMENT,
                "`prompt` must be a string (Ollama completes one at a time)",
            )
        body = self._body(request, chat=False)
        suffix = request.get("suffix")
        if isinstance(suffix, str) and suffix:
            body["suffix"] = suffix
        writer = TextCompletionWriter(model_id)
        final = _StreamEnd()

        def pieces() -> Iterator[str]:
            if request.get("echo"):
                yield prompt
            for part in self._stream(
                cancel, lambda: self._clients.get().generate(name, prompt, stream=True, **body)
            ):
                if part.response:
                    yield part.response
                if part.done:
                    final.usage = _usage(part)
                    final.reason = part.done_reason

        def finish() -> str:
            return "length" if final.reason == "length" else "stop"

        def usage() -> pb.Usage | None:
            return final.usage

        if request.get("stream"):
            return writer.stream(pieces(), usage, include_usage(request), finish)
        text = "".join(pieces())
        return writer.completion(text, finish(), usage())

    def _openai_embeddings(
        self, name: str, model_id: str, request: JSONObject, cancel: threading.Event
    ) -> Reply:
        texts = _texts(request.get("input"), "input")
        encoding = request.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise BackendError(
                ErrorCode.INVALID_ARGUMENT, "`encoding_format` must be float or base64"
            )
        dimensions = request.get("dimensions")
        if dimensions is not None and (not isinstance(dimensions, int) or dimensions < 1):
            raise BackendError(
                ErrorCode.INVALID_ARGUMENT, "`dimensions` must be a positive integer"
            )
        response = self._unary(
            cancel,
            lambda: self._clients.get().embed(
                name, texts, dimensions=dimensions, keep_alive=self.keep_alive
            ),
        )
        return embeddings_reply(
            model_id, response.embeddings, int(response.prompt_eval_count or 0), encoding
        )

    _handlers: dict[str, Callable[..., Reply | StreamReply]] = {
        "predict": _native_predict,
        "generate": _native_generate,
        "chat": _native_chat,
        "embed": _native_embed,
        CHAT_METHOD: _openai_chat,
        COMPLETIONS_METHOD: _openai_completions,
        EMBEDDINGS_METHOD: _openai_embeddings,
    }

    # -- the translation boundary -----------------------------------------------------------

    def _stream(self, cancel: threading.Event, start: Callable[[], Iterator[_T]]) -> Iterator[_T]:
        """Iterate a streaming ollama call so a cancel cuts it; translate its errors."""
        try:
            with cancel_scope(cancel):
                for part in start():
                    if cancel.is_set():
                        return
                    yield part
        except FOREIGN as exc:
            if cancel.is_set():
                return  # we cut the connection ourselves
            raise self._translate(exc) from exc

    def _unary(self, cancel: threading.Event, call: Callable[[], _T]) -> _T:
        try:
            with cancel_scope(cancel):
                return call()
        except FOREIGN as exc:
            if cancel.is_set():
                raise BackendError(ErrorCode.CANCELLED, "the task was cancelled") from exc
            raise self._translate(exc) from exc

    def _translate(self, exc: BaseException) -> BackendError:
        if isinstance(exc, ollama.ResponseError):
            if exc.status_code == 404:
                return BackendError(
                    ErrorCode.NOT_FOUND, f"Ollama: {exc.error} (pull it with `ollama pull NAME`)"
                )
            code = ErrorCode.INVALID_ARGUMENT if exc.status_code == 400 else ErrorCode.MODEL_ERROR
            return BackendError(code, f"Ollama: {exc.error}")
        if isinstance(exc, ollama.RequestError):
            return BackendError(ErrorCode.INVALID_ARGUMENT, f"Ollama request: {exc.error}")
        if isinstance(exc, httpx.HTTPError | ConnectionError):
            self._readiness.lost()  # let it confirm and mark the models unavailable
            return BackendError(
                ErrorCode.BACKEND_UNAVAILABLE,
                f"Ollama at {self.host} stopped answering ({describe(exc)}); "
                "the runner marks its models unavailable until it is back",
            )
        return BackendError(
            ErrorCode.MODEL_ERROR, f"Ollama sent an answer that cannot be read: {exc}"
        )


def _usage(part: ollama.GenerateResponse | ollama.ChatResponse) -> pb.Usage:
    return pb.Usage(
        prompt_tokens=int(part.prompt_eval_count or 0),
        completion_tokens=int(part.eval_count or 0),
    )


def _text(args: JSONObject, name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str):
        raise BackendError(ErrorCode.INVALID_ARGUMENT, f"`{name}` must be a string")
    return value


def _texts(value: object, name: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise BackendError(
        ErrorCode.INVALID_ARGUMENT, f"`{name}` must be a string or a non-empty list of strings"
    )
