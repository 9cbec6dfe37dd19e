"""The OpenAI-upstream backend: serve the models of any local OpenAI-compatible server.

vLLM (``vllm serve``), the llama.cpp server, LM Studio, SGLang, Ollama's own ``/v1``: whatever
answers ``GET /v1/models`` and ``POST /v1/chat/completions``. The runner proxies OpenAI
requests to it through the tunnel as they are (``model`` swapped for the upstream's name and
back), streaming included, and offers the native methods too: ``predict``/``generate``/``chat``
over chat completions and ``embed`` over embeddings, so ``edge-runner predict`` and
``edge-runner chat`` work.

Readiness: the models are READY once ``/v1/models`` answers at start; a :class:`Watcher` probes
it every ``probe_interval`` s and marks them UNAVAILABLE while it does not. A cancelled task
shuts its socket down (see :mod:`.http_cancel`), which ends the generation upstream.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from edge_runner._http import describe_http_error
from edge_runner.backends.base import (
    Backend,
    Reply,
    StreamReply,
    json_arguments,
    no_input_stream,
)
from edge_runner.backends.http_cancel import PerThread, cancel_scope, client_options
from edge_runner.backends.llm_methods import LLM_SIGNATURES, collect
from edge_runner.backends.openai_format import (
    CHAT_METHOD,
    COMPLETIONS_METHOD,
    EMBEDDINGS_METHOD,
    OPENAI_METHODS,
)
from edge_runner.backends.watch import Watcher
from edge_runner.errors import BackendError, ConfigError, ErrorCode
from edge_runner.models.config import MODEL_ID_PATTERN
from edge_runner.models.wire import model_spec
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.views import JSONObject, JSONValue

__all__ = ["OpenAIUpstreamBackend", "normalize_base_url"]

logger = logging.getLogger(__name__)

START_HINT = (
    "start the server first (e.g. `vllm serve MODEL`, `llama-server -m FILE --port 8080`, "
    "LM Studio's local server) or fix --openai-upstream"
)
_PATHS = {
    CHAT_METHOD: "/chat/completions",
    COMPLETIONS_METHOD: "/completions",
    EMBEDDINGS_METHOD: "/embeddings",
}
_STATUS_CODES = {
    400: ErrorCode.INVALID_ARGUMENT,
    404: ErrorCode.NOT_FOUND,
    413: ErrorCode.INVALID_ARGUMENT,
}


def normalize_base_url(url: str) -> str:
    """The upstream's ``/v1`` base: ``http://host:8000`` becomes ``http://host:8000/v1``."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    if not urlsplit(url).path:
        url += "/v1"
    return url


def _model_id(name: str) -> str:
    """A model id for an upstream name: ``/`` as ``--``, other odd characters as ``-``."""
    model_id = re.sub(r"[^A-Za-z0-9._:-]", "-", name.replace("/", "--")).lstrip("._:-")
    return model_id[:128]


class OpenAIUpstreamBackend(Backend):
    """Serves ``models`` (default: all it lists) of the server at ``base_url``.

    Args:
        base_url: the server's OpenAI base (``http://127.0.0.1:8000/v1``).
        models: upstream model names to serve (or a mapping of model id to name); None
            serves every model it lists.
        api_key: sent as ``Authorization: Bearer`` (read from an environment variable by the
            CLI, never from a flag).
        probe_interval: seconds between liveness probes.
        timeout: seconds a call may stay silent before it fails.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        models: Sequence[str] | Mapping[str, str] | None = None,
        *,
        api_key: str | None = None,
        probe_interval: float = 5.0,
        timeout: float = 600.0,
    ) -> None:
        super().__init__()
        self.base_url = normalize_base_url(base_url)
        self._wanted = models
        self.names: dict[str, str] = {}
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        options = client_options(httpx.Timeout(timeout, connect=5.0))
        self._http: PerThread[httpx.Client] = PerThread(
            lambda: httpx.Client(base_url=self.base_url, headers=headers, **options),
            httpx.Client.close,
        )
        self._probe_http = httpx.Client(base_url=self.base_url, headers=headers, timeout=2.0)
        #: calls waiting on the upstream now (the watcher does not probe while there are any)
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self._watcher = Watcher(
            f"the OpenAI-compatible server at {self.base_url}",
            probe_interval,
            prepare=self._mark_ready,
            probe=self._listed,
            went_down=self._went_down,
            busy=lambda: self._in_flight > 0,
            guard=self._in_flight_lock,
        )

    # -- lifecycle --------------------------------------------------------------------------

    def load(self) -> None:
        """List the upstream's models and pick the ones to serve.

        Raises:
            ConfigError: nothing answers at ``base_url``, or a wanted model is not listed.
        """
        try:
            listed = self._listed()
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"no OpenAI-compatible server answers GET {self.base_url}/models "
                f"({describe_http_error(exc)}); {START_HINT}"
            ) from exc
        wanted = self._wanted if self._wanted is not None else listed
        if not isinstance(wanted, Mapping):
            wanted = {_model_id(name): name for name in wanted}
        missing = [m for m in wanted.values() if m not in listed]
        if missing:
            raise ConfigError(
                f"{self.base_url} does not serve {', '.join(map(repr, missing))}; "
                f"it lists: {', '.join(listed) or 'nothing'}"
            )
        for model_id, name in wanted.items():
            if not MODEL_ID_PATTERN.fullmatch(model_id):
                logger.warning("skipping upstream model %r: no usable model id", name)
                continue
            self.names[model_id] = name
        if not self.names:
            raise ConfigError(f"{self.base_url} lists no model to serve")
        logger.info("serving %s from %s", ", ".join(sorted(self.names.values())), self.base_url)
        self._watcher.start()

    def close(self) -> None:
        """Stop probing and close the HTTP clients."""
        self._watcher.stop()
        self._http.close()
        self._probe_http.close()

    def specs(self) -> list[pb.ModelSpec]:
        """One spec per upstream model, all alike."""
        return [
            model_spec(
                model_id,
                LLM_SIGNATURES,
                backend=self.name,
                chat=True,
                model_type_id="openai",
                openai=tuple(OPENAI_METHODS.values()),
            )
            for model_id in sorted(self.names)
        ]

    def _listed(self) -> list[str]:
        response = self._probe_http.get("/models")
        response.raise_for_status()
        return [str(m["id"]) for m in response.json()["data"]]

    def _mark_ready(self) -> None:
        for model_id in self.names:
            self.set_status(model_id, pb.READY)

    def _went_down(self, reason: str) -> None:
        for model_id, name in self.names.items():
            self.set_status(
                model_id,
                pb.UNAVAILABLE,
                f"{name} is unavailable: {self.base_url} is not answering ({reason}); "
                f"the runner checks again every {self._watcher.interval:g} s",
            )

    # -- calls (worker threads) -------------------------------------------------------------

    def call(
        self,
        model_id: str,
        method: str,
        payload: bytes,
        cancel: threading.Event,
        inputs: Iterator[bytes] | None = None,
    ) -> Reply | StreamReply:
        """Run one task against the upstream."""
        no_input_stream(inputs, model_id, method)
        name = self.names.get(model_id)
        if name is None:
            raise BackendError(ErrorCode.NOT_FOUND, f"this runner does not serve {model_id!r}")
        status = self.status(model_id)
        if status is not None and status.state != pb.READY:
            raise BackendError(ErrorCode.BACKEND_UNAVAILABLE, status.message, retryable=True)
        args = json_arguments(payload)
        if method in _PATHS:
            return self._proxy(_PATHS[method], {**args, "model": name}, model_id, cancel)
        native = self._native.get(method)
        if native is None:
            raise BackendError(ErrorCode.NOT_FOUND, f"upstream models have no method {method!r}")
        return native(self, name, model_id, args, cancel)

    def _proxy(
        self, path: str, body: JSONObject, model_id: str, cancel: threading.Event
    ) -> Reply | StreamReply:
        """Forward an OpenAI request; answers carry our model id, not the upstream's name."""
        if not body.get("stream"):
            doc = self._post(path, body, cancel)
            doc["model"] = model_id
            return Reply(json.dumps(doc).encode(), _usage(doc.get("usage")))
        reply = StreamReply(iter(()))

        def chunks() -> Iterator[bytes]:
            for doc in self._events(path, body, cancel):
                doc["model"] = model_id
                if doc.get("usage"):
                    reply.usage = _usage(doc["usage"])
                yield json.dumps(doc).encode()

        reply.chunks = chunks()
        return reply

    def _chat_body(self, name: str, args: JSONObject, messages: JSONValue) -> JSONObject:
        body: JSONObject = {"model": name, "messages": messages}
        for field in ("max_tokens", "temperature"):
            if args.get(field) is not None:
                body[field] = args[field]
        return body

    def _native_text(
        self, name: str, model_id: str, args: JSONObject, cancel: threading.Event
    ) -> StreamReply:
        if "messages" in args:
            messages = args["messages"]
        else:
            if not isinstance(args.get("prompt"), str):
                raise BackendError(ErrorCode.INVALID_ARGUMENT, "`prompt` must be a string")
            messages = [{"role": "user", "content": args["prompt"]}]
        body = {**self._chat_body(name, args, messages), "stream": True}
        reply = StreamReply(iter(()))

        def pieces() -> Iterator[bytes]:
            for doc in self._events("/chat/completions", body, cancel):
                if doc.get("usage"):
                    reply.usage = _usage(doc["usage"])
                for choice in doc.get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield json.dumps(text).encode()

        reply.chunks = pieces()
        return reply

    def _native_predict(
        self, name: str, model_id: str, args: JSONObject, cancel: threading.Event
    ) -> Reply:
        return collect(self._native_text(name, model_id, args, cancel))

    def _native_embed(
        self, name: str, model_id: str, args: JSONObject, cancel: threading.Event
    ) -> Reply:
        doc = self._post(
            "/embeddings",
            {"model": name, "input": args.get("input"), "encoding_format": "float"},
            cancel,
        )
        vectors = [item["embedding"] for item in sorted(doc["data"], key=lambda d: d["index"])]
        return Reply(json.dumps(vectors).encode(), _usage(doc.get("usage")))

    _native: dict[str, Callable[..., Reply | StreamReply]] = {
        "predict": _native_predict,
        "generate": _native_text,
        "chat": _native_text,
        "embed": _native_embed,
    }

    # -- the translation boundary -----------------------------------------------------------

    @contextlib.contextmanager
    def _call_in_flight(self) -> Iterator[None]:
        with self._in_flight_lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1

    def _post(self, path: str, body: JSONObject, cancel: threading.Event) -> dict[str, Any]:
        with self._call_in_flight():
            return self._post_now(path, body, cancel)

    def _post_now(self, path: str, body: JSONObject, cancel: threading.Event) -> dict[str, Any]:
        try:
            with cancel_scope(cancel):
                response = self._http.get().post(path, json=body)
            if response.status_code >= 400:
                raise _upstream_error(response.status_code, response.content)
            doc = response.json()
        except httpx.HTTPError as exc:
            if cancel.is_set():
                raise BackendError(ErrorCode.CANCELLED, "the task was cancelled") from exc
            raise self._unreachable(exc) from exc
        except ValueError as exc:
            raise BackendError(
                ErrorCode.MODEL_ERROR, f"the upstream's answer is not JSON: {exc}"
            ) from exc
        if not isinstance(doc, dict):
            raise BackendError(ErrorCode.MODEL_ERROR, "the upstream's answer is not a JSON object")
        return doc

    def _events(
        self, path: str, body: JSONObject, cancel: threading.Event
    ) -> Iterator[dict[str, Any]]:
        """The JSON documents of an upstream SSE stream, until ``[DONE]``.

        A stream that ends without ``[DONE]`` was cut (the server died mid-answer, or a proxy
        closed the connection): that is an error, not a short answer.
        """
        with self._call_in_flight():
            yield from self._events_now(path, body, cancel)

    def _events_now(
        self, path: str, body: JSONObject, cancel: threading.Event
    ) -> Iterator[dict[str, Any]]:
        try:
            with cancel_scope(cancel), self._http.get().stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    raise _upstream_error(response.status_code, response.read())
                finished = False  # a choice said why it ended (finish_reason)
                for line in response.iter_lines():
                    if cancel.is_set():
                        return
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        if not finished:
                            raise self._cut_short()
                        return
                    doc = json.loads(data)
                    if isinstance(doc, dict) and "error" in doc:
                        raise BackendError(ErrorCode.MODEL_ERROR, f"upstream: {_message(doc)}")
                    if isinstance(doc, dict):
                        finished = finished or _has_finish_reason(doc)
                        yield doc
            if not cancel.is_set():
                self._watcher.wake()
                raise BackendError(
                    ErrorCode.BACKEND_UNAVAILABLE,
                    f"{self.base_url} ended its answer without [DONE]: the stream was cut "
                    "(the server stopped, or something between closed the connection)",
                )
        except httpx.HTTPError as exc:
            if cancel.is_set():
                return
            raise self._unreachable(exc) from exc
        except ValueError as exc:
            raise BackendError(
                ErrorCode.MODEL_ERROR, f"the upstream sent a bad stream line: {exc}"
            ) from exc

    def _cut_short(self) -> BackendError:
        return BackendError(
            ErrorCode.MODEL_ERROR,
            f"{self.base_url} ended its answer without saying why (no finish_reason): it was "
            "cut short. llama-cpp-python's server does that to a running answer whenever "
            "another request arrives; start it with --interrupt_requests False",
        )

    def _unreachable(self, exc: httpx.HTTPError) -> BackendError:
        self._watcher.wake()
        return BackendError(
            ErrorCode.BACKEND_UNAVAILABLE,
            f"{self.base_url} stopped answering ({describe_http_error(exc)}); "
            "the runner marks its models unavailable until it is back",
        )


def _has_finish_reason(doc: dict[str, Any]) -> bool:
    choices = doc.get("choices")
    return isinstance(choices, list) and any(
        isinstance(c, dict) and c.get("finish_reason") for c in choices
    )


def _message(doc: object) -> str:
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error if error is not None else doc)


def _upstream_error(status: int, body: bytes) -> BackendError:
    try:
        message = _message(json.loads(body))
    except ValueError:
        message = body.decode(errors="replace")[:300]
    return BackendError(
        _STATUS_CODES.get(status, ErrorCode.MODEL_ERROR), f"upstream ({status}): {message}"
    )


def _usage(doc: object) -> pb.Usage | None:
    if not isinstance(doc, dict):
        return None
    return pb.Usage(
        prompt_tokens=int(doc.get("prompt_tokens") or 0),
        completion_tokens=int(doc.get("completion_tokens") or 0),
    )
