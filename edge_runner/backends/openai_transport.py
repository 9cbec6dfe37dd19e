"""OpenAI requests served through an OpenAIModelClass folder's transport methods.

A folder whose class has ``openai_transport`` (edge-runner's OpenAIModelClass, or Clarifai's,
adapted) is declared as serving ``chat.completions`` and ``embeddings``, the OpenAI operations
both the class and edge-runner's ``/v1`` route. The control plane forwards the request body;
here it becomes the transport's message (``openai_endpoint`` added), the folder's own
``openai_transport`` answers it (``openai_stream_transport`` for ``stream: true``), and the
answer goes back with our model id in ``model``. A folder that overrides either method is
obeyed.

This is also the one boundary where the transports' in-band errors (Clarifai's
``{"code": 21313, "description": ..., "details": ...}``) become task errors, on ``/v1`` and on
a ``/v2`` call of the transport methods alike, classified by the exception the class noted on
the call's record (:class:`~edge_runner.models.model_class.CallRecord`): the server's 4xx is the
request's fault (its status and message kept), a server that does not answer is retryable
(``BACKEND_UNAVAILABLE``, 503), a failure before the server was asked (JSON that does not
parse, an unknown ``openai_endpoint``) is ``INVALID_ARGUMENT``. No traceback crosses.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

from edge_runner.backends.base import Reply, StreamReply
from edge_runner.backends.openai_format import (
    CHAT_METHOD,
    EMBEDDINGS_METHOD,
    error_message,
    include_usage,
    without_traceback,
)
from edge_runner.errors import BackendError, ErrorCode, ModelFolderError
from edge_runner.models.model_class import (
    CallRecord,
    ModelClass,
    iterate_with_cancel_event,
    recording_call,
    run_with_cancel_event,
)
from edge_runner.models.openai_class import PREDICTION_FAILED
from edge_runner.models.signatures import MethodSignature
from edge_runner.proto import tunnel_pb2 as pb

__all__ = [
    "STREAM_TRANSPORT",
    "TRANSPORT",
    "TRANSPORT_OPS",
    "check_upstream",
    "checked_stream",
    "checked_text",
    "serve_openai",
    "serves_transport",
    "translated_items",
    "transport_error",
    "upstream_error",
    "upstream_errors",
    "usage_of",
]

logger = logging.getLogger(__name__)

TRANSPORT = "openai_transport"
STREAM_TRANSPORT = "openai_stream_transport"
#: task method -> the transport's ``openai_endpoint``
_ENDPOINTS = {CHAT_METHOD: "/chat/completions", EMBEDDINGS_METHOD: "/embeddings"}
#: the operations a transport folder is declared with (ModelSpec.openai)
TRANSPORT_OPS = ("chat.completions", "embeddings")
_STATUS_CODES = {
    400: ErrorCode.INVALID_ARGUMENT,
    404: ErrorCode.NOT_FOUND,
    408: ErrorCode.BACKEND_UNAVAILABLE,
    413: ErrorCode.INVALID_ARGUMENT,
    422: ErrorCode.INVALID_ARGUMENT,
    502: ErrorCode.BACKEND_UNAVAILABLE,
    503: ErrorCode.BACKEND_UNAVAILABLE,
    504: ErrorCode.BACKEND_UNAVAILABLE,
}
#: exception class names (anywhere in the MRO) that mean the server did not answer
_UNREACHABLE = frozenset(
    {"APIConnectionError", "APITimeoutError", "TransportError", "ConnectionError", "TimeoutError"}
)


def serves_transport(signatures: tuple[MethodSignature, ...]) -> bool:
    """Whether a folder's methods include ``openai_transport`` (an OpenAIModelClass's)."""
    return any(sig.name == TRANSPORT for sig in signatures)


def check_upstream(instance: ModelClass, name: str) -> None:
    """After ``load_model()``: ``client`` and ``model`` are set, and the server lists ``model``.

    A server that does not answer yet is only logged (its requests fail retryably until it
    does, as with Clarifai); one that answers without the model, or refuses the listing
    (a 4xx: a wrong key), fails the load.

    Raises:
        ModelFolderError: what is wrong, and what to set.
    """
    client: Any = getattr(instance, "client", None)
    model = getattr(instance, "model", None)
    if client is None or isinstance(client, bool):
        raise ModelFolderError(
            f"{name}.client is {client!r} after load_model(): set it to the OpenAI client of "
            'the server this folder wraps, `OpenAI(base_url="http://HOST:PORT/v1", api_key=...)`'
        )
    if not isinstance(model, str) or not model:
        raise ModelFolderError(
            f"{name}.model is {model!r} after load_model(): set it to the name of the model "
            "the server serves (or leave it None to use the first one it lists)"
        )
    where = getattr(client, "base_url", None) or "the server"
    try:
        listed = [str(card.id) for card in client.models.list().data]
    except Exception as exc:
        status = getattr(exc, "status_code", None)
        said = without_traceback(str(exc), 300)
        if isinstance(status, int) and 400 <= status < 500:
            raise ModelFolderError(
                f"{where} refused to list its models ({status}: {said}); "
                f"check the api_key of {name}.client"
            ) from exc
        logger.warning(
            "%s: %s does not list its models (%s); its requests fail until it answers",
            name,
            where,
            said,
        )
        return
    if model not in listed and f"{model}:latest" not in listed:
        raise ModelFolderError(
            f"{name}.model is {model!r}, but {where} does not serve it; it lists: "
            f"{', '.join(listed) or 'nothing'}. Set model to one of those"
        )


def serve_openai(
    instance: ModelClass,
    method: str,
    body: dict[str, Any],
    cancel: threading.Event,
    *,
    model_id: str,
) -> Reply | StreamReply:
    """Answer one ``/v1`` request (task ``method``) with the folder's transport methods."""
    endpoint = _ENDPOINTS.get(method)
    if endpoint is None:
        raise BackendError(
            ErrorCode.NOT_FOUND,
            f"model {model_id} serves OpenAI's chat completions and embeddings, not {method!r}",
        )
    streamed = bool(body.get("stream")) and method == CHAT_METHOD
    wants_usage = include_usage(body)
    msg = json.dumps({**body, "openai_endpoint": endpoint})
    where = f"{model_id}.{STREAM_TRANSPORT if streamed else TRANSPORT}()"
    record = CallRecord()
    if not streamed:
        with recording_call(record):
            text = run_with_cancel_event(cancel, instance.openai_transport, msg)  # type: ignore[attr-defined]
        doc = _answer(checked_text(text, record, where), where)
        doc["model"] = model_id
        return Reply(json.dumps(doc).encode(), usage_of(record, doc.get("usage")))
    with recording_call(record):
        pieces = run_with_cancel_event(cancel, instance.openai_stream_transport, msg)  # type: ignore[attr-defined]
    reply = StreamReply(iter(()))

    def chunks() -> Iterator[bytes]:
        for text in checked_stream(iterate_with_cancel_event(cancel, pieces), record, where):
            doc = _answer(text, where)
            if "error" in doc:
                raise BackendError(
                    ErrorCode.MODEL_ERROR, f"upstream: {error_message(doc['error'])}"
                )
            usage = doc.get("usage")
            if usage:
                reply.usage = usage_of(record, usage)
                if not doc.get("choices") and not wants_usage:
                    continue  # the class always asks for usage; the client did not
            doc["model"] = model_id
            yield json.dumps(doc).encode()
        if reply.usage is None:
            reply.usage = usage_of(record, None)

    reply.chunks = chunks()
    return reply


def checked_text(text: object, record: CallRecord, where: str) -> str:
    """A transport's answer, or the task error its in-band error object stands for."""
    if isinstance(text, bytes):
        # Clarifai's class answers its error object as pydantic_core.to_json's bytes
        try:
            text = text.decode()
        except UnicodeDecodeError as exc:
            raise BackendError(ErrorCode.MODEL_ERROR, f"{where} returned bytes, not text") from exc
    if not isinstance(text, str):
        raise BackendError(ErrorCode.MODEL_ERROR, f"{where} returned a {type(text).__name__}")
    error = _in_band_error(text)
    if error is not None:
        raise transport_error(error, record, where)
    return text


def checked_stream(pieces: Iterator[object], record: CallRecord, where: str) -> Iterator[str]:
    """A stream transport's chunks, each checked as :func:`checked_text` checks an answer.

    ``record`` is installed around each ``next()``: the class notes errors and usage as it
    produces the chunk.
    """
    while True:
        with recording_call(record):
            try:
                piece = next(pieces)
            except StopIteration:
                return
        yield checked_text(piece, record, where)


def transport_error(error: dict[str, Any], record: CallRecord, where: str) -> BackendError:
    """The task error for a transport's in-band error object, by the exception it noted."""
    details = without_traceback(
        str(error.get("details") or error.get("description") or "no details")
    )
    exc = record.errors[-1] if record.errors else None
    if exc is None:
        # Clarifai's class notes nothing before the request reaches _route_request: it was
        # the request that failed (JSON that does not parse, an endpoint it does not stream)
        return BackendError(ErrorCode.INVALID_ARGUMENT, f"{where}: {details}")
    known = upstream_error(exc, where, details)
    if known is not None:
        return known
    if isinstance(exc, ValueError | TypeError | KeyError):
        return BackendError(ErrorCode.INVALID_ARGUMENT, f"{where}: {details}")
    return BackendError(ErrorCode.MODEL_ERROR, f"{where}: {type(exc).__name__}: {details}")


def upstream_error(exc: BaseException, where: str, details: str) -> BackendError | None:
    """The task error for an OpenAI client's exception (the server's status, or it not
    answering), or None for any other exception."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        code = _STATUS_CODES.get(status)
        if code is None:
            code = ErrorCode.INVALID_ARGUMENT if 400 <= status < 500 else ErrorCode.MODEL_ERROR
        return BackendError(code, f"upstream ({status}): {_upstream_message(exc, details)}")
    names = {c.__name__ for c in type(exc).__mro__}
    if names & _UNREACHABLE:
        client_url = getattr(getattr(exc, "request", None), "url", None)
        at = f" at {client_url}" if client_url else ""
        return BackendError(
            ErrorCode.BACKEND_UNAVAILABLE,
            f"{where}: the OpenAI-compatible server{at} is not answering ({details}); "
            "retry once it is up",
        )
    return None


@contextlib.contextmanager
def upstream_errors(where: str) -> Iterator[None]:
    """Translate an OpenAI client's exception escaping the block (a folder's own method
    calling its server) as :func:`upstream_error` does; others pass unchanged."""
    try:
        yield
    except Exception as exc:
        translated = upstream_error(exc, where, without_traceback(str(exc)))
        if translated is None:
            raise
        raise translated from exc


def translated_items(items: Iterator[object], where: str) -> Iterator[object]:
    """``items`` with :func:`upstream_errors` around each ``next()``."""
    while True:
        with upstream_errors(where):
            try:
                item = next(items)
            except StopIteration:
                return
        yield item


def usage_of(record: CallRecord, usage: object) -> pb.Usage | None:
    """The task's usage: the answer's ``usage``, else what the class reported, else None."""
    if isinstance(usage, dict) and (usage.get("prompt_tokens") or usage.get("completion_tokens")):
        return pb.Usage(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )
    if record.prompt_tokens is None and record.completion_tokens is None:
        return None
    return pb.Usage(
        prompt_tokens=int(record.prompt_tokens or 0),
        completion_tokens=int(record.completion_tokens or 0),
    )


def _in_band_error(text: str) -> dict[str, Any] | None:
    if '"code"' not in text:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if isinstance(doc, dict) and doc.get("code") == PREDICTION_FAILED and "choices" not in doc:
        return doc
    return None


def _answer(text: str, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        message = f"{where} answered text that is not JSON"
        raise BackendError(ErrorCode.MODEL_ERROR, message) from exc
    if not isinstance(doc, dict):
        raise BackendError(ErrorCode.MODEL_ERROR, f"{where} answered JSON that is not an object")
    return doc


def _upstream_message(exc: BaseException, details: str) -> str:
    body = getattr(exc, "body", None)  # openai.APIStatusError: the error object's body
    if isinstance(body, dict):
        return without_traceback(error_message(body.get("error", body)))
    return details
