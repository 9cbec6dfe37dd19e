"""The Ollama backend: serve the models of a local Ollama through the tunnel.

Every call goes through the official ``ollama`` Python client. Each Ollama model is registered
under its name (``/`` becomes ``--``) with the same methods:

- ``predict(prompt, max_tokens, temperature) -> str`` and ``generate(...) -> Iterator[str]``
  over ``/api/generate``; ``chat(messages, max_tokens, temperature) -> Iterator[str]`` over
  ``/api/chat``; ``embed(input) -> list[list[float]]`` over ``/api/embed``;
- OpenAI ``chat.completions`` (options, tools, ``response_format``; ``usage`` from Ollama's
  token counts), ``completions`` and ``embeddings`` (float or base64).

Readiness (see :class:`~edge_runner.backends.base.Backend`): one thread per backend prepares the
models and then watches Ollama. A model Ollama lacks is pulled, with progress (LOADING, "llama3.2
is downloading: 42 %"); each model is then loaded into memory (LOADING) and becomes READY. A pull
that fails leaves the model FAILED (withdrawn; the message lists the local models and how to
pull). When Ollama stops answering — a probe every ``probe_interval`` s, or a call that could not
reach it — every model becomes UNAVAILABLE; when it answers again they are prepared again.

Calls run in the runner's worker threads, each with its own client (kept-alive connection). A
cancelled task shuts its socket down (see :mod:`.http_cancel`), which stops the generation in
Ollama.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx
import ollama
import pydantic

from edge_runner.backends.base import (
    Backend,
    CancelEvent,
    Reply,
    StreamReply,
    json_arguments,
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
from edge_runner.backends.openai_format import (
    CHAT_METHOD,
    COMPLETIONS_METHOD,
    EMBEDDINGS_METHOD,
    OPENAI_METHODS,
    CompletionWriter,
    TextCompletionWriter,
    embeddings_reply,
    include_usage,
)
from edge_runner.backends.watch import Watcher
from edge_runner.errors import BackendError, BackendUnreachable, ConfigError, PullFailed
from edge_runner.models.wire import model_spec
from edge_runner.proto import tunnel_pb2 as pb

__all__ = ["DEFAULT_HOST", "OllamaBackend", "model_id_for", "normalize_host", "ollama_parallel"]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "http://127.0.0.1:11434"
INSTALL_HINT = (
    "install Ollama from https://ollama.com/download and start it with `ollama serve`, or point "
    "--ollama-host / OLLAMA_HOST at a running one"
)
_T = TypeVar("_T")

#: errors of the ollama client and the HTTP stack under it, translated in one place
_FOREIGN = (ollama.ResponseError, ollama.RequestError, httpx.HTTPError, ConnectionError)
_FOREIGN_ANSWER = (pydantic.ValidationError, ValueError)


def model_id_for(name: str) -> str:
    """Ollama names may contain ``/``; model ids may not (``a/b`` → ``a--b``)."""
    return name.replace("/", "--")


def normalize_host(host: str | None) -> str:
    """An Ollama address as a URL: ``host``, ``host:port``, ``:port`` or a URL (port 11434)."""
    host = (host or "").strip().rstrip("/")
    if not host:
        return DEFAULT_HOST
    scheme, sep, rest = host.partition("://")
    if sep:
        return host  # a URL keeps its scheme's default port, as the ollama client has it
    hostport = host.split("/", 1)[0]
    if hostport.startswith(":"):
        host = f"127.0.0.1{host}"
    elif ":" not in hostport.rsplit("]", 1)[-1]:
        host = host.replace(hostport, f"{hostport}:11434", 1)
    return f"http://{host}"


def ollama_parallel() -> int:
    """How many requests per model Ollama runs at once: ``OLLAMA_NUM_PARALLEL``, else 1."""
    raw = os.environ.get("OLLAMA_NUM_PARALLEL", "").strip()
    if not raw:
        return 1
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"OLLAMA_NUM_PARALLEL={raw!r} is not a positive integer")
    return int(raw)


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
        self.preload = preload
        self.log_progress = log_progress
        self.parallel = ollama_parallel()
        self.slots_setting = f"OLLAMA_NUM_PARALLEL={self.parallel}"
        options = client_options(httpx.Timeout(timeout, connect=5.0))
        self._clients: PerThread[ollama.Client] = PerThread(
            lambda: ollama.Client(self.host, **options), ollama.Client.close
        )
        self._probe_http = httpx.Client(base_url=self.host, timeout=2.0)
        self._failed: set[str] = set()
        self._closed = CancelEvent()  # also aborts a pull or a load in progress
        self._watcher = Watcher(
            f"Ollama at {self.host}",
            probe_interval,
            prepare=self._prepare,
            probe=self._probe,
            went_down=self._went_down,
        )

    # -- lifecycle --------------------------------------------------------------------------

    def load(self) -> None:
        """Check Ollama answers, then prepare the models in the background.

        Raises:
            ConfigError: no Ollama answers at ``host``.
        """
        try:
            version = self._probe_http.get("/api/version").json().get("version", "?")
            present = self._local_models()
        except (*_FOREIGN, *_FOREIGN_ANSWER) as exc:
            raise ConfigError(
                f"no Ollama answers at {self.host} ({_describe(exc)}); {INSTALL_HINT}"
            ) from exc
        logger.info("Ollama %s at %s has %d model(s)", version, self.host, len(present))
        for model_id, name in self.names.items():
            if _resolve(name, present) is None:
                self.set_status(model_id, pb.LOADING, f"{name} is waiting to be downloaded")
            elif self.preload:
                self.set_status(model_id, pb.LOADING, f"{name} is loading into memory")
        self._watcher.start()

    def close(self) -> None:
        """Stop the watcher (aborting a pull in progress) and close the clients."""
        self._closed.set()
        self._watcher.stop()
        self._clients.close()
        self._probe_http.close()

    def slots(self, model_id: str) -> int | None:
        """Ollama runs ``OLLAMA_NUM_PARALLEL`` requests per model at once (1 when unset)."""
        del model_id
        return self.parallel

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
            if model_id not in self._failed
        ]

    # -- preparing (the watcher's thread) ---------------------------------------------------

    def _prepare(self) -> None:
        """Pull what is missing, load, mark READY; stops at the first sign Ollama is down."""
        for model_id, name in self.names.items():
            if self._closed.is_set() or model_id in self._failed:
                continue
            try:
                with cancel_scope(self._closed):
                    present = self._local_models()
                    resolved = _resolve(name, present)
                    if resolved is None:
                        self._pull(model_id, name)
                        resolved = name
                    if self.preload:
                        self._load_into_memory(model_id, name, resolved)
            except PullFailed as exc:
                self._failed.add(model_id)
                message = self._pull_failure(exc.name, exc.error)
                logger.error("%s", message)
                self.set_status(model_id, pb.FAILED, message)
                continue
            except BackendUnreachable as exc:
                if not self._closed.is_set():
                    self._watcher.down(str(exc))
                return
            except (*_FOREIGN, *_FOREIGN_ANSWER) as exc:
                if not self._closed.is_set():
                    self._watcher.down(_describe(exc))
                return
            self.set_status(model_id, pb.READY, f"{name} is ready")
            logger.info("%s is ready", name)

    def _probe(self) -> None:
        self._probe_http.get("/api/version").raise_for_status()

    def _went_down(self, reason: str) -> None:
        for model_id, name in self.names.items():
            if model_id not in self._failed:
                self.set_status(
                    model_id,
                    pb.UNAVAILABLE,
                    f"{name} is unavailable: Ollama at {self.host} is not answering ({reason}); "
                    f"the runner checks again every {self._watcher.interval:g} s",
                )

    def _local_models(self) -> set[str]:
        return {m.model for m in self._clients.get().list().models if m.model}

    def _pull(self, model_id: str, name: str) -> None:
        logger.info("pulling %s from Ollama's registry", name)
        progress = _PullProgress(name)
        started = time.monotonic()
        try:
            for part in self._clients.get().pull(name, stream=True):
                update = progress.feed(part)
                if update is None:
                    continue
                fraction, message, eta = update
                self.set_status(model_id, pb.LOADING, message, progress=fraction, eta_s=eta)
                if self.log_progress and progress.crossed_tenth():
                    logger.info("%s", message)
        except ollama.ResponseError as exc:
            raise PullFailed(name, exc.error) from exc
        except (httpx.HTTPError, ConnectionError) as exc:
            raise BackendUnreachable(_describe(exc)) from exc
        logger.info("%s pulled in %.1f s", name, time.monotonic() - started)

    def _pull_failure(self, name: str, error: str) -> str:
        try:
            local = sorted(self._local_models())
        except (*_FOREIGN, *_FOREIGN_ANSWER):
            local = []
        known = ", ".join(local) or "none"
        if "does not exist" in error or "not found" in error:
            return (
                f"Ollama's registry has no model {name!r} ({error}); models on this Ollama: "
                f"{known}. Pick one of those, or find a name at https://ollama.com/library and "
                f"pull it with `ollama pull NAME`"
            )
        return (
            f"pulling {name} failed: {error}; nothing was registered for it. Fix the cause (disk "
            f"space, network) and start the runner again, or run `ollama pull {name}` yourself "
            f"(models on this Ollama: {known})"
        )

    def _load_into_memory(self, model_id: str, name: str, resolved: str) -> None:
        loaded = {m.model for m in self._clients.get().ps().models}
        if resolved in loaded or f"{resolved}:latest" in loaded:
            return
        self.set_status(model_id, pb.LOADING, f"{name} is loading into memory")
        started = time.monotonic()
        options = {"num_ctx": self.num_ctx} if self.num_ctx else None
        try:
            self._clients.get().generate(model=name, keep_alive=self.keep_alive, options=options)
        except ollama.ResponseError as exc:
            # An embedding model cannot generate; a model too big for memory says so here. Either
            # way requests will carry Ollama's own message.
            logger.warning("loading %s into memory failed: %s", name, exc.error)
            return
        logger.info("%s loaded into memory in %.1f s", name, time.monotonic() - started)

    # -- calls (worker threads) -------------------------------------------------------------

    def call(
        self, model_id: str, method: str, payload: bytes, cancel: threading.Event
    ) -> Reply | StreamReply:
        """Run one task against Ollama."""
        name = self._serving(model_id)
        args = json_arguments(payload)
        handler = self._handlers.get(method)
        if handler is None:
            raise BackendError("NOT_FOUND", f"Ollama models have no method {method!r}")
        return handler(self, name, model_id, args, cancel)

    def _serving(self, model_id: str) -> str:
        name = self.names.get(model_id)
        if name is None or model_id in self._failed:
            raise BackendError("NOT_FOUND", f"this runner does not serve {model_id!r}")
        status = self.status(model_id)
        if status is not None and status.state != pb.READY:
            code = "MODEL_LOADING" if status.state == pb.LOADING else "BACKEND_UNAVAILABLE"
            raise BackendError(code, status.message, retryable=True)
        return name

    def _body(self, request: dict[str, Any], *, chat: bool) -> dict[str, Any]:
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
        start: Callable[[], Iterator[Any]],
        text: Callable[[Any], Any],
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
        self, name: str, model_id: str, args: dict[str, Any], cancel: threading.Event
    ) -> StreamReply:
        prompt = _text(args, "prompt")
        body = self._body(args, chat=False)
        return self._text_stream(
            cancel,
            lambda: self._clients.get().generate(name, prompt, stream=True, **body),
            lambda part: part.response,
        )

    def _native_predict(
        self, name: str, model_id: str, args: dict[str, Any], cancel: threading.Event
    ) -> Reply:
        return collect(self._native_generate(name, model_id, args, cancel))

    def _native_chat(
        self, name: str, model_id: str, args: dict[str, Any], cancel: threading.Event
    ) -> StreamReply:
        messages = ollama_messages(args.get("messages"))
        body = self._body(args, chat=True)
        return self._text_stream(
            cancel,
            lambda: self._clients.get().chat(name, messages, stream=True, **body),
            lambda part: part.message.content,
        )

    def _native_embed(
        self, name: str, model_id: str, args: dict[str, Any], cancel: threading.Event
    ) -> Reply:
        texts = _texts(args.get("input"), "input")
        response = self._unary(cancel, lambda: self._clients.get().embed(name, texts))
        vectors = [list(v) for v in response.embeddings]
        return Reply(
            json.dumps(vectors).encode(),
            pb.Usage(prompt_tokens=int(response.prompt_eval_count or 0)),
        )

    def _openai_chat(
        self, name: str, model_id: str, request: dict[str, Any], cancel: threading.Event
    ) -> Reply | StreamReply:
        messages = ollama_messages(request.get("messages"))
        body = self._body(request, chat=True)
        writer = CompletionWriter(model_id)
        final: dict[str, Any] = {"calls": 0}

        def deltas() -> Iterator[str | dict[str, Any]]:
            for part in self._stream(
                cancel, lambda: self._clients.get().chat(name, messages, stream=True, **body)
            ):
                message = part.message
                if message.tool_calls:
                    yield {"tool_calls": tool_call_deltas(message.tool_calls, final["calls"])}
                    final["calls"] += len(message.tool_calls)
                    final.setdefault("tool_calls", []).extend(message.tool_calls)
                if message.content:
                    yield message.content
                if part.done:
                    final["usage"] = _usage(part)
                    final["reason"] = part.done_reason

        def finish() -> str:
            if final["calls"]:
                return "tool_calls"
            return "length" if final.get("reason") == "length" else "stop"

        if request.get("stream"):
            return writer.stream(
                deltas(), lambda _: final.get("usage"), include_usage(request), finish
            )
        text = "".join(d for d in deltas() if isinstance(d, str))
        out: dict[str, Any] = {"role": "assistant", "content": text}
        if final["calls"]:
            out["tool_calls"] = openai_tool_calls(final["tool_calls"])
            out["content"] = text or None
        return writer.completion(out, finish(), final.get("usage"))

    def _openai_completions(
        self, name: str, model_id: str, request: dict[str, Any], cancel: threading.Event
    ) -> Reply | StreamReply:
        prompt = request.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise BackendError(
                "INVALID_ARGUMENT", "`prompt` must be a string (Ollama completes one at a time)"
            )
        body = self._body(request, chat=False)
        suffix = request.get("suffix")
        if isinstance(suffix, str) and suffix:
            body["suffix"] = suffix
        writer = TextCompletionWriter(model_id)
        final: dict[str, Any] = {}

        def pieces() -> Iterator[str]:
            if request.get("echo"):
                yield prompt
            for part in self._stream(
                cancel, lambda: self._clients.get().generate(name, prompt, stream=True, **body)
            ):
                if part.response:
                    yield part.response
                if part.done:
                    final["usage"] = _usage(part)
                    final["reason"] = part.done_reason

        def finish() -> str:
            return "length" if final.get("reason") == "length" else "stop"

        def usage() -> pb.Usage | None:
            return final.get("usage")

        if request.get("stream"):
            return writer.stream(pieces(), usage, include_usage(request), finish)
        text = "".join(pieces())
        return writer.completion(text, finish(), usage())

    def _openai_embeddings(
        self, name: str, model_id: str, request: dict[str, Any], cancel: threading.Event
    ) -> Reply:
        texts = _texts(request.get("input"), "input")
        encoding = request.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise BackendError("INVALID_ARGUMENT", "`encoding_format` must be float or base64")
        dimensions = request.get("dimensions")
        if dimensions is not None and (not isinstance(dimensions, int) or dimensions < 1):
            raise BackendError("INVALID_ARGUMENT", "`dimensions` must be a positive integer")
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
        except (*_FOREIGN, *_FOREIGN_ANSWER) as exc:
            if cancel.is_set():
                return  # we cut the connection ourselves
            raise self._translate(exc) from exc

    def _unary(self, cancel: threading.Event, call: Callable[[], _T]) -> _T:
        try:
            with cancel_scope(cancel):
                return call()
        except (*_FOREIGN, *_FOREIGN_ANSWER) as exc:
            if cancel.is_set():
                raise BackendError("CANCELLED", "the task was cancelled") from exc
            raise self._translate(exc) from exc

    def _translate(self, exc: BaseException) -> BackendError:
        if isinstance(exc, ollama.ResponseError):
            if exc.status_code == 404:
                return BackendError(
                    "NOT_FOUND", f"Ollama: {exc.error} (pull it with `ollama pull NAME`)"
                )
            code = "INVALID_ARGUMENT" if exc.status_code == 400 else "MODEL_ERROR"
            return BackendError(code, f"Ollama: {exc.error}")
        if isinstance(exc, ollama.RequestError):
            return BackendError("INVALID_ARGUMENT", f"Ollama request: {exc.error}")
        if isinstance(exc, httpx.HTTPError | ConnectionError):
            self._watcher.wake()  # let it confirm and mark the models unavailable
            return BackendError(
                "BACKEND_UNAVAILABLE",
                f"Ollama at {self.host} stopped answering ({_describe(exc)}); "
                "the runner marks its models unavailable until it is back",
            )
        return BackendError("MODEL_ERROR", f"Ollama sent an answer that cannot be read: {exc}")


class _PullProgress:
    """Turns ``/api/pull`` progress lines into (fraction, message, eta seconds)."""

    #: besides every whole percent, refresh the rate and ETA this often
    _EVERY_S = 1.0

    def __init__(self, name: str) -> None:
        self.name = name
        self.layers: dict[str, tuple[int, int]] = {}
        self.started = time.monotonic()
        self.last_sent = 0.0
        self.last_status = ""
        self.last_tenth = -1
        self.last_percent = -1
        self.fraction = 0.0

    def feed(self, part: ollama.ProgressResponse) -> tuple[float, str, float] | None:
        """Digest one line; return an update at each whole percent, new phase or second."""
        if part.digest and part.total:
            self.layers[part.digest] = (int(part.completed or 0), int(part.total))
        done = sum(c for c, _ in self.layers.values())
        total = sum(t for _, t in self.layers.values())
        self.fraction = min(1.0, done / total) if total else 0.0
        status = part.status or ""
        now = time.monotonic()
        new_phase = not status.startswith("pulling ") and status != self.last_status
        self.last_status = status
        percent = int(self.fraction * 100)
        if not new_phase and percent == self.last_percent and now - self.last_sent < self._EVERY_S:
            return None
        self.last_sent, self.last_percent = now, percent
        elapsed = max(now - self.started, 1e-3)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 and total else 0.0
        if status.startswith("pulling ") or not status:
            detail = f" ({_size(done)} of {_size(total)}, {_size(rate)}/s)" if total else ""
            message = f"{self.name} is downloading: {percent} %{detail}"
        else:
            message = f"{self.name} is downloading: {status}"
        return self.fraction, message, eta

    def crossed_tenth(self) -> bool:
        """Whether progress passed another 10 % since the last time this said so."""
        tenth = int(self.fraction * 10)
        if tenth > self.last_tenth:
            self.last_tenth = tenth
            return True
        return False


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover - the loop returns at GB


def _resolve(name: str, present: set[str]) -> str | None:
    """The local name of ``name`` (``llama3.2`` is ``llama3.2:latest``), if Ollama has it."""
    for candidate in (name, f"{name}:latest"):
        if candidate in present:
            return candidate
    return None


def _usage(part: Any) -> pb.Usage:
    return pb.Usage(
        prompt_tokens=int(part.prompt_eval_count or 0),
        completion_tokens=int(part.eval_count or 0),
    )


def _text(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str):
        raise BackendError("INVALID_ARGUMENT", f"`{name}` must be a string")
    return value


def _texts(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise BackendError(
        "INVALID_ARGUMENT", f"`{name}` must be a string or a non-empty list of strings"
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ollama.ResponseError):
        return f"Ollama said: {exc.error}"
    text = str(exc)
    if isinstance(exc, ConnectionError) and "Failed to connect to Ollama" in text:
        return "connection refused"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
