"""The Python model-folder backend: ``config.yaml`` + ``1/model.py`` with a ModelClass."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from edge_runner.backends.base import Backend, Reply, StreamReply, no_input_stream
from edge_runner.backends.openai_adapter import CHAT_METHOD, chat_completion
from edge_runner.backends.openai_format import EMBEDDINGS_METHOD
from edge_runner.backends.openai_transport import (
    STREAM_TRANSPORT,
    TRANSPORT,
    TRANSPORT_OPS,
    check_upstream,
    checked_stream,
    checked_text,
    serve_openai,
    serves_transport,
    translated_items,
    upstream_errors,
    usage_of,
)
from edge_runner.backends.url_fetch import UrlFetcher
from edge_runner.errors import BackendError, ErrorCode, InvalidArgument, TypeMismatch
from edge_runner.models.codec import (
    DEFAULT_MAX_MEDIA_BYTES,
    decode_value,
    encode_value,
    json_default,
    url_only,
)
from edge_runner.models.data_types import Text
from edge_runner.models.json_types import TypeSpec, check_value, mismatch_message, parse_spec
from edge_runner.models.loader import ModelFolder, load_model_folder
from edge_runner.models.model_class import (
    CallRecord,
    ModelClass,
    iterate_with_cancel_event,
    recording_call,
    run_with_cancel_event,
)
from edge_runner.models.signatures import (
    MethodKind,
    MethodSignature,
    Param,
    input_stream_param,
    validate_arguments,
)
from edge_runner.models.wire import model_spec
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.views import JSONObject

__all__ = ["PythonModelBackend", "dump_output"]

logger = logging.getLogger(__name__)


def dump_output(value: object, where: str, spec: TypeSpec | None = None) -> bytes:
    """JSON-encode a method's output, or fail the task with a message naming the method.

    Data types (Image, Concept, ``bytes``, ...) become their JSON forms; ``spec``, the declared
    result type, lets a ``str`` stand for a ``Text`` and a Pillow image for an ``Image``.
    """
    try:
        return json.dumps(encode_value(spec, value), default=json_default).encode()
    except (TypeError, ValueError) as exc:
        raise BackendError(
            ErrorCode.MODEL_ERROR,
            f"{where} returned a {type(value).__name__}, which is not JSON: {exc}",
        ) from exc


class PythonModelBackend(Backend):
    """Serves one model folder; methods run in the executor's worker threads.

    Args:
        path: the model folder.
        max_media_bytes: the most bytes one binary argument (an image, ``bytes``) may hold;
            a larger one fails the task with ``INVALID_ARGUMENT`` before it is decoded.
        allow_url_fetch: fetch the URL of a media input that has no bytes (under the rules
            of :mod:`edge_runner.backends.url_fetch`); without it such an input fails the
            task with ``INVALID_ARGUMENT`` asking for the bytes.
    """

    name = "python"

    def __init__(
        self,
        path: str | Path,
        *,
        max_media_bytes: int | None = DEFAULT_MAX_MEDIA_BYTES,
        allow_url_fetch: bool = False,
    ) -> None:
        super().__init__()
        self.max_media_bytes = max_media_bytes
        self.fetcher: UrlFetcher | None = None
        if allow_url_fetch:
            self.fetcher = UrlFetcher(max_bytes=max_media_bytes or DEFAULT_MAX_MEDIA_BYTES)
        self.folder: ModelFolder = load_model_folder(path)
        self.model_id = self.folder.config.model_id
        self.methods: dict[str, MethodSignature] = {s.name: s for s in self.folder.signatures}
        #: an OpenAIModelClass folder: /v1 goes through its openai_transport methods
        self.openai = serves_transport(self.folder.signatures)
        if self.folder.config.model_type_id == "openai" and not self.openai:
            # Clarifai serves such a folder as a plain model too; say what /v1 needs
            logger.warning(
                "%s: model_type_id is openai, but %s is not an OpenAIModelClass, so /v1 "
                "serves %s; subclass OpenAIModelClass (`from edge_runner import "
                "OpenAIModelClass`, or Clarifai's `from clarifai.runners.models.openai_class "
                "import OpenAIModelClass`) and set its client to serve /v1 through its server",
                self.folder.model_file,
                self.folder.model_class.__qualname__,
                "its chat method only" if self.chat_signature is not None else "nothing",
            )
        self._instance: ModelClass | None = None

    @property
    def chat_signature(self) -> MethodSignature | None:
        """The ``chat`` method the OpenAI adapter uses, when the model has one."""
        sig = self.methods.get("chat")
        if sig is None or sig.kind is MethodKind.BIDI:
            return None
        if "messages" not in {p.name for p in sig.params}:
            return None
        return sig

    def load(self) -> None:
        """Instantiate the model class and run its ``load_model()``."""
        instance = self.folder.instantiate()
        if self.openai:
            check_upstream(instance, self.folder.model_class.__qualname__)
        self._instance = instance
        logger.info("model %s loaded from %s", self.model_id, self.folder.path)

    def specs(self) -> list[pb.ModelSpec]:
        """One spec: this folder's model."""
        return [
            model_spec(
                self.model_id,
                self.folder.signatures,
                backend=self.name,
                chat=self.openai or self.chat_signature is not None,
                model_type_id=self.folder.config.model_type_id,
                openai=TRANSPORT_OPS if self.openai else (),
            )
        ]

    def default_pool_size(self) -> int | None:
        """The folder's config.yaml ``num_threads``, if it sets one."""
        return self.folder.config.num_threads or None

    def call(
        self,
        model_id: str,
        method: str,
        payload: bytes,
        cancel: threading.Event,
        inputs: Iterator[bytes] | None = None,
    ) -> Reply | StreamReply:
        """Run ``method`` with the JSON keyword arguments in ``payload``.

        A stream-in (``BIDI``) method gets ``inputs`` as its stream parameter, each item
        decoded to the element type as it is read; a bad item fails the task with
        ``INVALID_ARGUMENT`` naming the parameter and the item's index.
        """
        instance = self._instance
        if instance is None:
            raise BackendError(ErrorCode.UNAVAILABLE, f"model {self.model_id} is not loaded yet")
        try:
            args = json.loads(payload) if payload else {}
        except ValueError as exc:
            raise BackendError(
                ErrorCode.INVALID_ARGUMENT, f"task payload is not JSON: {exc}"
            ) from exc
        if self.openai and method in (CHAT_METHOD, EMBEDDINGS_METHOD):
            no_input_stream(inputs, model_id, method)
            return serve_openai(instance, method, args, cancel, model_id=self.model_id)
        if method == CHAT_METHOD:
            chat = self.chat_signature
            if chat is None:
                raise BackendError(ErrorCode.NOT_FOUND, f"model {self.model_id} has no chat method")
            no_input_stream(inputs, model_id, method)
            return chat_completion(instance, chat, args, cancel, model_id=self.model_id)
        sig = self.methods.get(method)
        if sig is None:
            raise BackendError(
                ErrorCode.NOT_FOUND,
                f"model {self.model_id} has no method {method!r}; "
                f"its methods: {', '.join(sorted(self.methods))}",
            )
        streamed = input_stream_param(sig)
        if streamed is None:
            no_input_stream(inputs, model_id, method)
        elif inputs is None:
            raise BackendError(
                ErrorCode.INVALID_ARGUMENT,
                f"{self.model_id}.{method} takes its argument '{streamed.name}' as an input "
                "stream; call it as a stream (one input item per message)",
            )
        try:
            args = self._decoded(sig, validate_arguments(sig, args, input_stream=True))
        except InvalidArgument as exc:
            raise BackendError(ErrorCode.INVALID_ARGUMENT, str(exc)) from exc
        self._fetch_urls(args, cancel)
        if streamed is not None and inputs is not None:
            args[streamed.name] = self._input_items(streamed, inputs, cancel)
        fn = getattr(instance, method)
        where = f"{self.model_id}.{method}()"
        returns = None if sig.returns == "None" else parse_spec(sig.returns)
        # what the method reports (set_output_context) becomes the task's usage
        record = CallRecord()
        # an OpenAIModelClass's own method calls its server: that client's errors, translated
        translate = upstream_errors(where) if self.openai else contextlib.nullcontext()
        with recording_call(record), translate:
            result = run_with_cancel_event(cancel, fn, **args)
        if sig.kind is MethodKind.UNARY:
            if self.openai and method == TRANSPORT:
                result = checked_text(result, record, where)  # its in-band error, a task error
            return Reply(dump_output(result, where, returns), usage_of(record, None))
        element = returns.args[0] if returns is not None and returns.args else None
        items: Iterator[object] = iterate_with_cancel_event(cancel, result)
        if self.openai and method == STREAM_TRANSPORT:
            items = checked_stream(items, record, where)
        else:
            items = _recorded(items, record)
            if self.openai:
                items = translated_items(items, where)
        reply = StreamReply(iter(()))

        def chunks() -> Iterator[bytes]:
            yield from _json_chunks(items, where, element)
            reply.usage = usage_of(record, None)

        reply.chunks = chunks()
        return reply

    def _decoded(self, sig: MethodSignature, args: JSONObject) -> dict[str, object]:
        """The checked JSON arguments as the method's hints promise them (Image, bytes, ...)."""
        out: dict[str, object] = {}
        for p in sig.params:
            if p.name not in args:  # the input stream, which comes apart
                continue
            try:
                out[p.name] = decode_value(
                    p.spec,
                    args[p.name],
                    max_media_bytes=self.max_media_bytes,
                )
            except TypeMismatch as exc:
                message = mismatch_message(f"argument '{p.name}'", p.type, exc, at=p.name)
                raise InvalidArgument(message, argument=p.name) from exc
        return out

    def _input_items(
        self, param: Param, inputs: Iterator[bytes], cancel: threading.Event
    ) -> Iterator[object]:
        """Decode a stream-in task's raw input items, as the model reads them, like arguments.

        Raises:
            BackendError: ``INVALID_ARGUMENT`` for an item that is not JSON or not of the
                element type (raised inside the model's read, so it ends the task).
        """
        element = param.spec.args[0]  # signatures_of only admits Iterator[X]
        for index, raw in enumerate(inputs):
            where = f"input item {index} of '{param.name}'"
            try:
                value = decode_value(
                    element,
                    check_value(element, json.loads(raw)),
                    max_media_bytes=self.max_media_bytes,
                )
            except ValueError as exc:  # json.JSONDecodeError, and a bad UTF-8 byte
                raise BackendError(
                    ErrorCode.INVALID_ARGUMENT, f"{where} is not JSON: {exc}"
                ) from exc
            except TypeMismatch as exc:
                message = mismatch_message(where, str(element), exc)
                raise BackendError(ErrorCode.INVALID_ARGUMENT, message) from exc
            self._fetch_urls({f"{param.name}[{index}]": value}, cancel)
            yield value

    def _fetch_urls(self, args: dict[str, object], cancel: threading.Event) -> None:
        """Fill in the content of URL-only inputs, or refuse them when fetching is off."""
        for name, value in args.items():
            for item in url_only(value):
                url = str(getattr(item, "url", ""))
                if self.fetcher is None:
                    raise BackendError(
                        ErrorCode.INVALID_ARGUMENT,
                        f"argument '{name}' has only a URL ({url[:200]}); this runner does not "
                        'fetch URLs, so send the content itself ({"base64": "..."}, or '
                        '{"text": "..."} for Text), or start the runner with --allow-url-fetch',
                    )
                data = self.fetcher.fetch(url, cancel)
                if isinstance(item, Text):
                    try:
                        item.text = data.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise BackendError(
                            ErrorCode.INVALID_ARGUMENT,
                            f"argument '{name}': the text at {url[:200]} is not UTF-8",
                        ) from exc
                else:
                    item.bytes = data  # type: ignore[attr-defined]  # Image, Audio or Video


def _recorded(items: Iterator[object], record: CallRecord) -> Iterator[object]:
    """``items`` with ``record`` installed around each ``next()`` (generators report there)."""
    while True:
        with recording_call(record):
            try:
                item = next(items)
            except StopIteration:
                return
        yield item


def _json_chunks(items: Iterator[object], where: str, spec: TypeSpec | None) -> Iterator[bytes]:
    for item in items:
        yield dump_output(item, where, spec)
