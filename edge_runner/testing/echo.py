"""An echo backend: a :class:`~edge_runner.backends.base.Backend` written in code, for tests of
the runner and the control plane that need a model but not a model folder.

It serves one model (``echo`` unless named otherwise) with ``predict(text) -> text``, a
streaming ``generate(text, n) -> text`` n times, and a stream-in ``chat(messages, prefix)`` that
answers each input item with ``prefix + item`` as it arrives. It checks arguments against those
signatures as every backend does, and records each call. A stream stops early when its task is
cancelled.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

from edge_runner.backends.base import (
    Backend,
    Reply,
    StreamReply,
    json_arguments,
    no_input_stream,
)
from edge_runner.errors import BackendError, ErrorCode, InvalidArgument
from edge_runner.models.model_class import ModelClass
from edge_runner.models.signatures import (
    input_stream_param,
    signatures_of,
    validate_arguments,
)
from edge_runner.models.wire import model_spec
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.views import JSONObject

__all__ = ["EchoBackend"]


class _Echo(ModelClass):
    """The signatures EchoBackend serves (never instantiated)."""

    @ModelClass.method
    def predict(self, text: str) -> str:
        """The text, unchanged."""
        return text

    @ModelClass.method
    def generate(self, text: str, n: int = 3) -> Iterator[str]:
        """The text ``n`` times, one chunk each."""
        yield from [text] * n

    @ModelClass.method
    def chat(self, messages: Iterator[str], prefix: str = "") -> Iterator[str]:
        """Each input item with ``prefix`` before it, as the items arrive."""
        for message in messages:
            yield prefix + message


class EchoBackend(Backend):
    """Echoes its input; ``calls`` lists ``(model_id, method, arguments)`` of every call."""

    name = "echo"

    def __init__(self, model_id: str = "echo") -> None:
        super().__init__()
        self.model_id = model_id
        self.calls: list[tuple[str, str, JSONObject]] = []
        self._signatures = {s.name: s for s in signatures_of(_Echo)}

    def load(self) -> None:
        """Nothing to load."""

    def specs(self) -> list[pb.ModelSpec]:
        """The one model."""
        return [
            model_spec(
                self.model_id, tuple(self._signatures.values()), backend=self.name, chat=False
            )
        ]

    def call(
        self,
        model_id: str,
        method: str,
        payload: bytes,
        cancel: threading.Event,
        inputs: Iterator[bytes] | None = None,
    ) -> Reply | StreamReply:
        """``predict`` answers at once; ``generate`` streams; ``chat`` streams one answer per
        input item.

        Raises:
            BackendError: ``NOT_FOUND`` for another model or method, ``INVALID_ARGUMENT`` for
                arguments that do not fit the signature (or an input item that is not a JSON
                string, or an input stream where there is none or none where there is one).
        """
        sig = self._signatures.get(method)
        if model_id != self.model_id or sig is None:
            raise BackendError(
                ErrorCode.NOT_FOUND, f"echo serves {self.model_id}.predict/generate/chat"
            )
        streamed = input_stream_param(sig)
        if streamed is None:
            no_input_stream(inputs, model_id, method)
        elif inputs is None:
            raise BackendError(ErrorCode.INVALID_ARGUMENT, f"{method} takes an input stream")
        try:
            args = validate_arguments(sig, json_arguments(payload), input_stream=True)
        except InvalidArgument as exc:
            raise BackendError(ErrorCode.INVALID_ARGUMENT, str(exc)) from exc
        self.calls.append((model_id, method, args))
        if inputs is not None:
            prefix = args.get("prefix")
            return StreamReply(self._replies(inputs, prefix if isinstance(prefix, str) else ""))
        text = json.dumps(args["text"]).encode()
        n = args.get("n", 3)
        if method == "predict":
            return Reply(text)
        return StreamReply(self._chunks(text, n if isinstance(n, int) else 3, cancel))

    def _chunks(self, chunk: bytes, n: int, cancel: threading.Event) -> Iterator[bytes]:
        for _ in range(n):
            if cancel.is_set():
                return
            yield chunk

    def _replies(self, inputs: Iterator[bytes], prefix: str) -> Iterator[bytes]:
        for index, raw in enumerate(inputs):
            try:
                item = json.loads(raw)
            except ValueError as exc:
                raise BackendError(
                    ErrorCode.INVALID_ARGUMENT, f"input item {index} of 'messages' is not JSON"
                ) from exc
            if not isinstance(item, str):
                raise BackendError(
                    ErrorCode.INVALID_ARGUMENT,
                    f"input item {index} of 'messages' must be str, got {type(item).__name__}",
                )
            yield json.dumps(prefix + item).encode()
