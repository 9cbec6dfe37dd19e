"""The OpenAI-upstream backend: serve the models of any local OpenAI-compatible server.

vLLM (``vllm serve``), the llama.cpp server, LM Studio, SGLang, Ollama's own ``/v1``: whatever
answers ``GET /v1/models`` and ``POST /v1/chat/completions``. The runner proxies OpenAI
requests to it through the tunnel as they are (``model`` swapped for the upstream's name and
back), streaming included, and offers the native methods too: ``predict``/``generate``/``chat``
over chat completions and ``embed`` over embeddings, so ``edge-runner predict`` and
``edge-runner chat`` work.

Readiness: the models are READY once ``/v1/models`` lists them; a :class:`Watcher` probes it
every ``probe_interval`` s and marks them UNAVAILABLE while it does not answer. A cancelled task
shuts its socket down (see :mod:`.http_cancel`), which ends the generation upstream.

Cold start: engines take seconds to minutes to load a model, and "not answering" then looks
like a refused connection or a timeout (vLLM, llama-cpp-python's server: no socket until the
model is loaded) or a 5xx (llama.cpp's ``llama-server``: 503 "Loading model"). With
``start_timeout`` > 0 the backend waits for it instead of failing:

- model names known (``models=``): :meth:`~OpenAIUpstreamBackend.load` returns at once and the
  models are LOADING ("waiting for the OpenAI-compatible server at URL to answer (reason)");
  calls fail retryably with ``MODEL_LOADING``. When the listing answers, the models it lists
  become READY and the others FAILED (withdrawn, naming what it lists). When ``start_timeout``
  passes first, they become UNAVAILABLE with :data:`START_HINT`, and still heal when it answers.
- names unknown (serve what it lists): ``load`` blocks, polling, until it answers or
  ``start_timeout`` passes (a ConfigError, saying how long it waited). A stop of the runner
  ends the wait (:meth:`~OpenAIUpstreamBackend.interrupt_load`).

A server that answers at once is checked at once, as with ``start_timeout`` 0: a wanted model
it does not list is a ConfigError before anything registers. A 4xx answer (401: a wrong key;
404: not an OpenAI base) is a configuration error at once, waiting or not. The same
preparation (list, then READY or FAILED) runs at start and whenever the server answers again
after an outage.
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
    error_message,
    without_traceback,
)
from edge_runner.backends.watch import StartWait, Watcher
from edge_runner.errors import BackendError, BackendUnreachable, ConfigError, ErrorCode
from edge_runner.models.config import MODEL_ID_PATTERN
from edge_runner.models.wire import model_spec
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.views import JSONObject, JSONValue

__all__ = ["START_HINT", "OpenAIUpstreamBackend", "normalize_base_url"]

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
        start_timeout: seconds to wait for a server that does not answer at start (0: fail
            at once; see the module's docstring for what the wait looks like).
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
        start_timeout: float = 0.0,
    ) -> None:
        super().__init__()
        if not start_timeout >= 0:  # (NaN too)
            raise ValueError(f"start_timeout must be >= 0 seconds, got {start_timeout!r}")
        self.base_url = normalize_base_url(base_url)
        self.start_timeout = start_timeout
        self._wanted = models
        self.names: dict[str, str] = {}
        #: ids of the models the server does not list (withdrawn from specs(), for good)
        self.failed: set[str] = set()
        #: set by interrupt_load() and close(): a wait for the server ends
        self._closed = threading.Event()
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
            self._what,
            probe_interval,
            prepare=self._prepare,
            probe=self._answers,
            went_down=self._went_down,
            busy=lambda: self._in_flight > 0,
            guard=self._in_flight_lock,
            waiting=self._waiting,
            hint=START_HINT,
        )

    @property
    def _what(self) -> str:
        return f"the OpenAI-compatible server at {self.base_url}"

    # -- lifecycle --------------------------------------------------------------------------

    def load(self) -> None:
        """List the upstream's models and pick the ones to serve; wait for it if it is starting.

        Returns early, with nothing to serve, when :meth:`interrupt_load` ends a wait.

        Raises:
            ConfigError: nothing answers at ``base_url`` (within ``start_timeout``), it
                refuses the listing (4xx), or it answers without a wanted model.
        """
        try:
            listed = self._listed()
        except BackendUnreachable as exc:
            if self.start_timeout <= 0:
                raise ConfigError(f"no {self._listing_what} ({exc}); {START_HINT}") from exc
            if self._wanted is not None:
                self._cold_start(str(exc))
                return
            waited = self._wait_for_listing(exc)
            if waited is None:
                return
            listed = waited
        wanted = self._wanted_names(listed)
        missing = [m for m in wanted.values() if m not in listed]
        if missing:
            raise ConfigError(self._not_served(missing, listed))
        self._pick(wanted)
        logger.info("serving %s from %s", ", ".join(sorted(self.names.values())), self.base_url)
        self._watcher.start()

    def interrupt_load(self) -> None:
        """End a wait for the server at start (the runner is stopping)."""
        self._closed.set()

    def close(self) -> None:
        """Stop waiting and probing, and close the HTTP clients."""
        self._closed.set()
        self._watcher.stop()
        self._http.close()
        self._probe_http.close()

    def specs(self) -> list[pb.ModelSpec]:
        """One spec per upstream model still served (one it does not list is withdrawn)."""
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
            if model_id not in self.failed
        ]

    # -- start ------------------------------------------------------------------------------

    @property
    def _listing_what(self) -> str:
        return f"OpenAI-compatible server answers GET {self.base_url}/models"

    def _wanted_names(self, listed: Sequence[str]) -> Mapping[str, str]:
        wanted = self._wanted if self._wanted is not None else listed
        if isinstance(wanted, Mapping):
            return wanted
        return {_model_id(name): name for name in wanted}

    def _pick(self, wanted: Mapping[str, str]) -> None:
        for model_id, name in wanted.items():
            if not MODEL_ID_PATTERN.fullmatch(model_id):
                logger.warning("skipping upstream model %r: no usable model id", name)
                continue
            self.names[model_id] = name
        if not self.names:
            raise ConfigError(f"{self.base_url} lists no model to serve")

    def _cold_start(self, reason: str) -> None:
        """The names are known: register them LOADING and let the watcher wait for the server."""
        self._pick(self._wanted_names(()))
        self._waiting(reason)
        logger.info(
            "serving %s from %s once it answers",
            ", ".join(sorted(self.names.values())),
            self.base_url,
        )
        self._watcher.start(wait_up_to=self.start_timeout)

    def _wait_for_listing(self, first: BackendUnreachable) -> list[str] | None:
        """Poll the listing every probe interval until it answers, ``start_timeout`` passes,
        or :meth:`interrupt_load` (None then).

        Raises:
            ConfigError: the time passed; or it answered with a 4xx.
        """
        wait = StartWait(self._what, self.start_timeout, START_HINT)
        reason = str(first)
        while True:
            wait.note(reason)
            if self._closed.wait(min(self._watcher.interval, wait.remaining)):
                logger.info("stopped waiting for %s", self._what)
                return None
            try:
                listed = self._listed()
            except BackendUnreachable as exc:
                reason = str(exc)
                if wait.over:
                    raise ConfigError(
                        f"no {self._listing_what}: waited {wait.elapsed:.1f} s "
                        f"(--upstream-start-timeout {self.start_timeout:g}); the last try: "
                        f"{reason}; {START_HINT}"
                    ) from exc
                continue
            logger.info("%s answers, after %.1f s", self._what, wait.elapsed)
            return listed

    # -- readiness (the watcher's thread) ---------------------------------------------------

    def _listed(self) -> list[str]:
        """The names ``GET /models`` lists.

        Raises:
            BackendUnreachable: it does not answer: no connection, a timeout, or a 5xx (a
                server still loading its model: llama.cpp's ``llama-server`` answers 503).
            ConfigError: it refuses (4xx), or its answer is not a model list.
        """
        try:
            response = self._probe_http.get("/models")
        except httpx.HTTPError as exc:
            raise BackendUnreachable(describe_http_error(exc)) from exc
        if response.status_code >= 500:
            raise BackendUnreachable(
                f"{response.status_code}: {_error_text(response.content) or 'no message'}"
            )
        if response.status_code >= 400:
            raise ConfigError(self._refused(response))
        try:
            return [str(m["id"]) for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"GET {self.base_url}/models answered, but not with an OpenAI model list "
                f"({type(exc).__name__}: {exc}); is --openai-upstream the server's OpenAI base "
                "(http://HOST:PORT/v1)?"
            ) from exc

    def _refused(self, response: httpx.Response) -> str:
        status = response.status_code
        said = _error_text(response.content)
        what = f"{self.base_url} refused GET /models ({status}{': ' + said if said else ''})"
        if status in (401, 403):
            return (
                f"{what}: a wrong or missing API key; put the key in an environment variable "
                "and name it with --upstream-api-key-env (a model folder: toolkit.api_key_env)"
            )
        return f"{what}; is --openai-upstream the server's OpenAI base (http://HOST:PORT/v1)?"

    def _not_served(self, missing: Sequence[str], listed: Sequence[str]) -> str:
        return (
            f"{self.base_url} does not serve {', '.join(map(repr, missing))}; "
            f"it lists: {', '.join(listed) or 'nothing'}"
        )

    def _answers(self) -> None:
        """The probe: raises while the server does not answer (a 4xx is an answer)."""
        with contextlib.suppress(ConfigError):
            self._listed()

    def _prepare(self) -> None:
        """List, then mark each model READY, or FAILED when the server does not list it (or
        refuses the listing); at start and after every outage alike."""
        try:
            listed = self._listed()
        except BackendUnreachable as exc:
            if not self._closed.is_set():
                self._watcher.down(str(exc))
            return
        except ConfigError as exc:
            self._fail(list(self.names), str(exc))
            return
        missing = [m for m, name in self.names.items() if name not in listed]
        if missing:
            names = [self.names[m] for m in missing]
            self._fail(missing, self._not_served(names, listed))
        for model_id in self.names:
            if model_id not in self.failed:
                self.set_status(model_id, pb.READY)

    def _fail(self, model_ids: Sequence[str], message: str) -> None:
        fresh = [m for m in model_ids if m not in self.failed]
        if not fresh:
            return
        logger.error("%s", message)
        self.failed.update(fresh)  # before the statuses: the runner asks specs() on FAILED
        for model_id in fresh:
            self.set_status(model_id, pb.FAILED, message)

    def _waiting(self, reason: str) -> None:
        for model_id in self.names:
            if model_id not in self.failed:
                self.set_status(
                    model_id,
                    pb.LOADING,
                    f"waiting for {self._what} to answer ({reason})",
                )

    def _went_down(self, reason: str) -> None:
        hint = "" if self._watcher.answered else f"; {START_HINT}"
        for model_id, name in self.names.items():
            if model_id not in self.failed:
                self.set_status(
                    model_id,
                    pb.UNAVAILABLE,
                    f"{name} is unavailable: {self.base_url} is not answering ({reason}); "
                    f"the runner checks again every {self._watcher.interval:g} s{hint}",
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
        if model_id in self.failed:
            status = self.status(model_id)
            why = status.message if status is not None else "withdrawn"
            raise BackendError(
                ErrorCode.NOT_FOUND, f"this runner no longer serves {model_id!r}: {why}"
            )
        self.check_ready(model_id)
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
        # Usage in the stream's last chunk (servers that ignore the option, such as
        # llama-cpp-python 0.3, send none: the answer then has no usage, as they gave none).
        body: JSONObject = {
            **self._chat_body(name, args, messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
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
                events = 0
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
                        events += 1
                        finished = finished or _has_finish_reason(doc)
                        yield doc
            if not cancel.is_set() and events == 0:
                # The HTTP answer ended in good order (a cut one raises above), so the server
                # is up: it refused this request without saying why.
                raise BackendError(
                    ErrorCode.MODEL_ERROR,
                    f"{self.base_url} answered with an empty event stream (no chunk, no error, "
                    "no [DONE]); llama-cpp-python's server answers a streamed prompt longer "
                    "than its context that way",
                )
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
    """The message of an answer carrying ``{"error": ...}``, else the answer as text."""
    error = doc.get("error") if isinstance(doc, dict) else None
    return error_message(error if error is not None else doc)


def _error_text(body: bytes, limit: int = 300) -> str:
    """The message of an error answer's body (OpenAI's ``{"error": {"message": ...}}``), up
    to ``limit`` characters, without a traceback."""
    try:
        message = _message(json.loads(body))
    except ValueError:
        message = body.decode(errors="replace")
    return without_traceback(message, limit)


def _upstream_error(status: int, body: bytes) -> BackendError:
    message = _error_text(body, 2000) or "no message"
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
