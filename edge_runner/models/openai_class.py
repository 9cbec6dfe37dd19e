"""The base class of a folder wrapping a local OpenAI-compatible server (``model_type_id: openai``).

The same class as Clarifai's ``clarifai.runners.models.openai_class.OpenAIModelClass``, which
folders import unchanged: a subclass sets ``client`` (an ``openai.OpenAI`` pointed at the
server) and, optionally, ``model`` (else the first model the server lists)::

    class MyModel(OpenAIModelClass):
        client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="notset")

        @OpenAIModelClass.method
        def predict(self, prompt: str = "") -> str:
            answer = self.client.chat.completions.create(
                model=self.model, messages=build_openai_messages(prompt=prompt)
            )
            return answer.choices[0].message.content

Its two methods, :meth:`~OpenAIModelClass.openai_transport` and
:meth:`~OpenAIModelClass.openai_stream_transport`, take an OpenAI request as JSON (with
``openai_endpoint``: ``/chat/completions``, ``/embeddings``, ``/images/generations``,
``/responses``) and answer the server's JSON. The runner serves ``/v1/chat/completions`` and
``/v1/embeddings`` through them, so a folder that overrides them is obeyed. As in Clarifai a
failure is answered in-band, ``{"code": 21313, "description": "Model prediction failed",
"details": ...}``; the exception is also noted on the call's record, and the runner turns it
into a task error of the right kind (the server's 4xx a 4xx, a server that does not answer a
retryable 503).

The ``openai`` package is the folder's (its ``requirements.txt``); this module never imports it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from edge_runner.models.model_class import ModelClass, current_call

__all__ = ["PREDICTION_FAILED", "OpenAIModelClass", "client_not_set", "note_transport_error"]

#: Clarifai's ``status_code_pb2.MODEL_PREDICTION_FAILED``, the ``code`` of an in-band error
PREDICTION_FAILED = 21313

logger = logging.getLogger("edge_runner.model")


def client_not_set(name: str) -> str:
    """The message for an OpenAIModelClass subclass ``name`` without a ``client``."""
    return (
        f"{name}.client is not set: set the class attribute `client = OpenAI("
        'base_url="http://HOST:PORT/v1", api_key=...)` for the OpenAI-compatible server this '
        "folder wraps (or `client = True` here and self.client in load_model())"
    )


def note_transport_error(exc: BaseException) -> None:
    """Put ``exc`` on the running call's record (the runner reads it to classify the error)."""
    record = current_call.get()
    if record is not None:
        record.errors.append(exc)


class OpenAIModelClass(ModelClass):
    """Wraps an OpenAI-compatible server; set ``client`` (and ``model``) in a subclass.

    Attributes:
        client: an ``openai.OpenAI`` for the server. Clarifai's templates that start the
            server in ``load_model()`` set ``client = True`` here and the real client there.
        model: the server's model name; when None, the first one ``client.models.list()``
            lists (at construction, as Clarifai does).
        max_seq_len: ``max_tokens`` above it is clamped; read from the listing's
            ``max_model_len`` (vLLM) when None.
    """

    ENDPOINT_CHAT_COMPLETIONS = "/chat/completions"
    ENDPOINT_IMAGES_GENERATE = "/images/generations"
    ENDPOINT_EMBEDDINGS = "/embeddings"
    ENDPOINT_RESPONSES = "/responses"
    DEFAULT_ENDPOINT = ENDPOINT_CHAT_COMPLETIONS

    client: Any = None
    model: Any = None
    max_seq_len: int | None = None

    def __init__(self) -> None:
        """Check ``client``; list the server's models when ``model`` (or ``max_seq_len``) is unset.

        Raises:
            NotImplementedError: ``client`` is not set, or ``model`` is unset and the server
                cannot list a model (as Clarifai's class; the message says what to set).
        """
        super().__init__()
        name = type(self).__name__
        if self.client is None:
            raise NotImplementedError(client_not_set(name))
        listing = None
        if self.model is None:
            try:
                listing = self.client.models.list()
                self.model = listing.data[0].id
            except Exception as exc:
                where = getattr(self.client, "base_url", None) or "the server"
                said = "it lists no model" if isinstance(exc, IndexError) else f"{exc}"
                raise NotImplementedError(
                    f"{name}.model is not set and {where} could not name one ({said}); set "
                    '`model = "NAME"` as a class attribute, or start the server first'
                ) from exc
        if self.max_seq_len is None and listing is not None:
            self.max_seq_len = _max_model_len(listing.data, self.model)

    # -- the calls, one per endpoint (names as in Clarifai, for folders that override them) ---

    def _retry_models_list(self, **kwargs: Any) -> Any:
        """``client.models.list()`` (the client retries a refused connection itself)."""
        return self.client.models.list(**kwargs)

    def _retry_chat_completions_create(self, **kwargs: Any) -> Any:
        """``client.chat.completions.create()``."""
        return self.client.chat.completions.create(**kwargs)

    def _retry_images_generate(self, **kwargs: Any) -> Any:
        """``client.images.generate()``."""
        return self.client.images.generate(**kwargs)

    def _retry_embeddings_create(self, **kwargs: Any) -> Any:
        """``client.embeddings.create()``."""
        return self.client.embeddings.create(**kwargs)

    def _retry_responses_create(self, **kwargs: Any) -> Any:
        """``client.responses.create()``."""
        return self.client.responses.create(**kwargs)

    def handle_liveness_probe(self) -> bool:
        """Whether the server lists its models."""
        return self._probe()

    def handle_readiness_probe(self) -> bool:
        """Whether the server lists its models."""
        return self._probe()

    def _probe(self) -> bool:
        try:
            self._retry_models_list()
        except Exception as exc:
            logger.warning("%s: the server does not list its models: %s", type(self).__name__, exc)
            return False
        return True

    def _create_completion_args(self, params: dict[str, Any]) -> dict[str, Any]:
        """The chat request for the server: our ``model``; a stream asks for its usage."""
        args = {**params, "model": self.model}
        stream = args.pop("stream", False)
        if stream:
            options = dict(params.pop("stream_options", None) or {})
            options["include_usage"] = True
            args["stream_options"] = options
        args["stream"] = stream
        return args

    def _set_usage(self, resp: Any) -> None:
        """Report the token counts of an answer (a chat completion, a chunk, a response)."""
        usage = getattr(resp, "usage", None)
        if usage is None:
            usage = getattr(getattr(resp, "response", None), "usage", None)
        if usage is None:
            return
        prompt = getattr(usage, "prompt_tokens", None) or getattr(usage, "input_tokens", 0) or 0
        total = getattr(usage, "total_tokens", None)
        if total:
            completion = total - prompt  # reasoning tokens count as completion, as in Clarifai
        else:
            completion = (
                getattr(usage, "completion_tokens", None) or getattr(usage, "output_tokens", 0) or 0
            )
        if prompt or completion:
            self.set_output_context(prompt_tokens=prompt, completion_tokens=completion)

    def _handle_chat_completions(self, request_data: dict[str, Any]) -> Any:
        completion = self._retry_chat_completions_create(
            **self._create_completion_args(request_data)
        )
        self._set_usage(completion)
        return completion

    def _handle_images_generate(self, request_data: dict[str, Any]) -> Any:
        return self._retry_images_generate(**{**request_data, "model": self.model})

    def _handle_embeddings(self, request_data: dict[str, Any]) -> Any:
        response = self._retry_embeddings_create(**{**request_data, "model": self.model})
        self._set_usage(response)
        return response

    def _handle_responses(self, request_data: dict[str, Any]) -> Any:
        response = self._retry_responses_create(**{**request_data, "model": self.model})
        self._set_usage(response)
        return response

    def _route_request(self, endpoint: str, request_data: dict[str, Any]) -> Any:
        """Send the request to the handler of ``endpoint``.

        Raises:
            ValueError: an endpoint it does not serve (the message lists those it does).
        """
        handlers = {
            self.ENDPOINT_CHAT_COMPLETIONS: self._handle_chat_completions,
            self.ENDPOINT_IMAGES_GENERATE: self._handle_images_generate,
            self.ENDPOINT_EMBEDDINGS: self._handle_embeddings,
            self.ENDPOINT_RESPONSES: self._handle_responses,
        }
        handler = handlers.get(endpoint)
        if handler is None:
            raise ValueError(
                f"Unsupported endpoint: {endpoint!r}; openai_endpoint is one of "
                f"{', '.join(handlers)}"
            )
        return handler(request_data)

    def _update_old_fields(self, request_data: dict[str, Any]) -> dict[str, Any]:
        """Bring a request from an older or newer OpenAI client to what servers take (in place).

        ``max_tokens`` and ``max_completion_tokens`` are synced (the latter wins) and clamped
        to ``max_seq_len``; ``top_k`` goes to ``extra_body``; a ``tools``/``tool_choice`` of
        None is dropped; the Clarifai playground's extra message fields are removed.
        """
        limit = request_data.get("max_completion_tokens")
        if limit is None:
            limit = request_data.get("max_tokens")
        if limit is not None:
            if self.max_seq_len is not None and limit > self.max_seq_len:
                logger.warning("clamping max_tokens %d to max_seq_len %d", limit, self.max_seq_len)
                limit = self.max_seq_len
            request_data["max_tokens"] = request_data["max_completion_tokens"] = limit
        if "top_p" in request_data:
            request_data["top_p"] = float(request_data["top_p"])
        if "top_k" in request_data:
            top_k = int(request_data.pop("top_k"))
            if top_k > 0:
                extra = request_data.get("extra_body") or {}
                if not isinstance(extra, dict):
                    raise ValueError("`extra_body` must be a dictionary")
                request_data["extra_body"] = {**extra, "top_k": top_k}
        for message in request_data.get("messages") or ():
            if isinstance(message, dict):
                for key in ("id", "file", "panelId"):
                    message.pop(key, None)
        for key in ("tools", "tool_choice"):
            if key in request_data and request_data[key] is None:
                del request_data[key]
        return request_data

    def _raw_sse_stream(self, completion_args: dict[str, Any]) -> Iterator[str]:
        """The server's stream chunks as their JSON text, usage reported as it comes."""
        stream = self._retry_chat_completions_create(**completion_args)
        events = getattr(stream, "_iter_events", None)  # the SDK's raw SSE (openai >= 1.82)
        try:
            if events is None:
                for chunk in stream:
                    self._set_usage(chunk)
                    yield chunk.model_dump_json()
                return
            for event in events():
                data = event.data
                if data.startswith("[DONE]"):
                    break
                if '"usage"' in data:
                    self._set_usage(_Usage.parse(data))
                yield data
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    def _transport_error(self, exc: Exception) -> str:
        note_transport_error(exc)
        logger.warning("%s: %s: %s", type(self).__name__, type(exc).__name__, exc)
        return json.dumps(
            {
                "code": PREDICTION_FAILED,
                "description": "Model prediction failed",
                "details": str(exc),
            }
        )

    @ModelClass.method
    def openai_transport(self, msg: str) -> str:
        """Send an OpenAI request (JSON, with ``openai_endpoint``) to the server; its answer.

        Args:
            msg: the request's JSON; ``openai_endpoint`` defaults to ``/chat/completions``.

        Returns:
            The server's answer as JSON, or the in-band error object.
        """
        try:
            request = self._update_old_fields(_request(msg))
            endpoint = request.pop("openai_endpoint", self.DEFAULT_ENDPOINT)
            return str(self._route_request(endpoint, request).model_dump_json())
        except Exception as exc:
            return self._transport_error(exc)

    @ModelClass.method
    def openai_stream_transport(self, msg: str) -> Iterator[str]:
        """Stream an OpenAI request's answer (chat completions or responses) from the server.

        Args:
            msg: the request's JSON, as for :meth:`openai_transport`.

        Returns:
            Each chunk's JSON (a final usage chunk included), or the in-band error object.
        """
        try:
            request = self._update_old_fields(_request(msg))
            endpoint = request.pop("openai_endpoint", self.DEFAULT_ENDPOINT)
            if endpoint not in (self.ENDPOINT_CHAT_COMPLETIONS, self.ENDPOINT_RESPONSES):
                raise ValueError(
                    f"Streaming is only supported for chat completions and responses, not "
                    f"{endpoint!r}"
                )
            if endpoint == self.ENDPOINT_RESPONSES:
                for chunk in self._route_request(endpoint, request):
                    self._set_usage(chunk)
                    yield chunk.model_dump_json()
            else:
                yield from self._raw_sse_stream(self._create_completion_args(request))
        except Exception as exc:
            yield self._transport_error(exc)


def _request(msg: str) -> dict[str, Any]:
    try:
        request = json.loads(msg)
    except ValueError as exc:
        raise ValueError(f"the request is not JSON: {exc}") from exc
    if not isinstance(request, dict):
        raise ValueError(f"the request must be a JSON object, not {type(request).__name__}")
    return request


def _max_model_len(cards: Any, model: Any) -> int | None:
    """vLLM's ``max_model_len`` of ``model`` (else of the first card with one)."""
    ordered = sorted(cards, key=lambda card: getattr(card, "id", None) != model)
    for card in ordered:
        value = getattr(card, "max_model_len", None)
        if value is None and isinstance(getattr(card, "model_extra", None), dict):
            value = card.model_extra.get("max_model_len")
        if value is None:
            continue
        try:
            return int(value)
        except (TypeError, ValueError):
            continue
    return None


class _Usage:
    """The ``usage`` of a raw stream chunk, as attributes (what ``_set_usage`` reads)."""

    def __init__(self, usage: dict[str, Any]) -> None:
        self.prompt_tokens = usage.get("prompt_tokens")
        self.input_tokens = usage.get("input_tokens")
        self.completion_tokens = usage.get("completion_tokens")
        self.output_tokens = usage.get("output_tokens")
        self.total_tokens = usage.get("total_tokens")

    @classmethod
    def parse(cls, data: str) -> Any:
        """An object whose ``usage`` is the chunk's, or None when it has none."""
        try:
            doc = json.loads(data)
        except ValueError:
            return None
        usage = doc.get("usage") if isinstance(doc, dict) else None
        if not isinstance(usage, dict):
            return None
        holder = type("Chunk", (), {})()
        holder.usage = cls(usage)
        return holder
