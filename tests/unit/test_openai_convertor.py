"""OpenAIModelClass's pieces without a server: the openai_convertor helpers (as clarifai 12.5.0
answers them), the transport's request rules, and the in-band errors' classification."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from edge_runner.backends.openai_transport import transport_error, usage_of
from edge_runner.compat.clarifai.openai_convertor import (
    build_openai_messages,
    is_openai_chat_format,
    openai_response,
    openai_to_hf_messages,
)
from edge_runner.errors import ErrorCode
from edge_runner.models.data_types import Audio, Image
from edge_runner.models.model_class import CallRecord, recording_call
from edge_runner.models.openai_class import PREDICTION_FAILED, OpenAIModelClass


def test_build_messages_history_prompt_and_media() -> None:
    """History first, then one user message: the prompt's text, then each image."""
    history = [{"role": "system", "content": "be brief"}]
    messages = build_openai_messages(
        prompt="what is this?",
        image=Image(bytes=b"\x89PNG"),
        images=[Image(url="https://example.com/a.png")],
        messages=history,
    )
    assert messages[0] == history[0]
    parts = messages[1]["content"]
    assert messages[1]["role"] == "user"
    assert parts[0] == {"type": "text", "text": "what is this?"}
    assert parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert parts[2] == {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}


def test_build_messages_ignores_history_not_in_chat_format() -> None:
    """A chat_history that is not OpenAI's chat format is left out, as in Clarifai."""
    assert build_openai_messages(prompt="hi", messages=[{"text": "x"}]) == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    ]
    assert build_openai_messages(prompt="  ") == []


def test_audio_needs_its_bytes() -> None:
    """An audio part carries its bytes; a URL alone says how to get them fetched."""
    part = build_openai_messages(prompt="", audio=Audio(bytes=b"RIFF"))[0]["content"][0]
    assert part["type"] == "input_audio" and part["input_audio"]["format"] == "wav"
    with pytest.raises(ValueError, match="--allow-url-fetch"):
        build_openai_messages(prompt="", audio=Audio(url="https://example.com/a.wav"))


def test_openai_response_whole_and_streamed() -> None:
    """Whole: one chat.completion with usage; streamed: a chunk per piece and a finish."""
    whole = openai_response("hello", stream=False, prompt_tokens=2, completion_tokens=1)
    assert whole["object"] == "chat.completion"
    assert whole["choices"][0]["message"]["content"] == "hello"
    assert whole["usage"]["total_tokens"] == 3
    chunks = list(openai_response(["a", "b"], model="m"))
    assert [c["choices"][0]["delta"] for c in chunks] == [{"content": "a"}, {"content": "b"}, {}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert len({c["id"] for c in chunks}) == 1


def test_chat_format_and_hf_messages() -> None:
    """The chat-format check, and the conversion to Hugging Face's chat template input."""
    assert is_openai_chat_format([{"role": "user", "content": "x"}])
    assert not is_openai_chat_format([{"role": "robot", "content": "x"}])
    assert not is_openai_chat_format("x")
    parts = [
        {"type": "text", "text": "t"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}},
    ]
    hf = openai_to_hf_messages([{"role": "user", "content": parts}])
    assert hf[0]["content"] == [{"type": "text", "text": "t"}, {"type": "image", "base64": "QUJD"}]


class _Listing:
    def __init__(self, *names: str) -> None:
        self.data = [type("Card", (), {"id": n, "max_model_len": 64})() for n in names]


class _Client:
    """A client double: lists models, and records the requests it is given."""

    base_url = "http://127.0.0.1:1/v1"

    def __init__(self, *names: str) -> None:
        self.names = names
        self.sent: list[dict[str, Any]] = []
        self.models = type("Models", (), {"list": lambda _: _Listing(*self.names)})()
        completions = type("Completions", (), {"create": lambda _, **kw: self._create(kw)})()
        self.chat = type("Chat", (), {"completions": completions})()

    def _create(self, kwargs: dict[str, Any]) -> Any:
        self.sent.append(kwargs)
        return type("Answer", (), {"usage": None, "model_dump_json": lambda _: '{"ok": 1}'})()


def test_model_is_the_first_listed_and_max_tokens_is_clamped() -> None:
    """model unset: the first listed; max_tokens above max_model_len is clamped, and both
    names of the limit reach the server."""

    class Wrapped(OpenAIModelClass):
        client = _Client("first", "second")

    model = Wrapped()
    assert (model.model, model.max_seq_len) == ("first", 64)
    msg = json.dumps({"messages": [], "max_tokens": 1000, "tools": None, "top_k": 5})
    assert model.openai_transport(msg) == '{"ok": 1}'
    sent = model.client.sent[0]
    assert (sent["max_tokens"], sent["max_completion_tokens"]) == (64, 64)
    assert "tools" not in sent and sent["extra_body"] == {"top_k": 5}
    assert sent["model"] == "first" and sent["stream"] is False


def test_in_band_errors_and_their_classes() -> None:
    """A transport failure is answered in-band, as in Clarifai, and noted for the runner."""

    class Wrapped(OpenAIModelClass):
        client = _Client("m")

    record = CallRecord()
    with recording_call(record):
        answer = json.loads(Wrapped().openai_transport('{"openai_endpoint": "/nope"}'))
    assert answer["code"] == PREDICTION_FAILED and "/nope" in answer["details"]
    error = transport_error(answer, record, "m.openai_transport()")
    assert error.code is ErrorCode.INVALID_ARGUMENT


class _StatusError(Exception):
    status_code = 429
    body = {"message": "slow down"}


class APIConnectionError(Exception):
    """Named as openai's: the class name is what is matched (openai is the folder's)."""


@pytest.mark.parametrize(
    ("exc", "code", "text"),
    [
        (_StatusError("x"), ErrorCode.INVALID_ARGUMENT, "upstream (429): slow down"),
        (APIConnectionError("Connection error."), ErrorCode.BACKEND_UNAVAILABLE, "not answering"),
        (RuntimeError("boom"), ErrorCode.MODEL_ERROR, "RuntimeError: boom"),
    ],
)
def test_error_classes(exc: Exception, code: ErrorCode, text: str) -> None:
    """The noted exception decides: the server's status, not answering, anything else."""
    record = CallRecord(errors=[exc])
    error = transport_error({"code": PREDICTION_FAILED, "details": str(exc)}, record, "w")
    assert error.code is code and text in str(error)


def test_usage_prefers_the_answer_then_the_report() -> None:
    """Usage: the answer's own, else what set_output_context reported, else none."""
    assert usage_of(CallRecord(), None) is None
    reported = usage_of(CallRecord(prompt_tokens=4, completion_tokens=2), None)
    assert reported is not None and (reported.prompt_tokens, reported.completion_tokens) == (4, 2)
    answered = usage_of(CallRecord(), {"prompt_tokens": 7, "completion_tokens": 1})
    assert answered is not None and answered.prompt_tokens == 7


def test_importing_edge_runner_does_not_import_openai() -> None:
    """The openai package is the folder's: edge_runner (and its OpenAIModelClass) never
    import it."""
    code = "import sys, edge_runner; print('openai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
