"""``clarifai.runners.utils.openai_convertor``: the helpers OpenAIModelClass folders call.

Clarifai's templates (vllm, sglang, lmstudio, ollama, ``model init --model-type-id openai``)
build a chat from a ``predict``/``generate`` method's arguments with
:func:`build_openai_messages`; the rest are the module's other public helpers, with the same
names, arguments and results as clarifai 12.5.0. Media become OpenAI content parts
(:func:`process_image`, ...), which ``clarifai.runners.utils.data_utils`` exports too. A media
input given only by URL is passed on as that URL (an image), or refused (audio, video: Clarifai
downloads them; here the runner's ``--allow-url-fetch`` fills their bytes before the method
runs, or the client sends the bytes).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

__all__ = [
    "build_openai_messages",
    "generate_id",
    "is_openai_chat_format",
    "openai_response",
    "openai_to_hf_messages",
    "process_audio",
    "process_image",
    "process_video",
]

_ROLES = frozenset({"system", "user", "assistant", "function", "developer", "tool"})


def generate_id() -> str:
    """A chat completion id, ``chatcmpl-`` and 32 hex digits."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def process_image(image: Any) -> dict[str, Any]:
    """An Image as an OpenAI ``image_url`` content part (its bytes as a data URL, else its URL).

    Raises:
        ValueError: it has neither bytes nor a URL.
    """
    if getattr(image, "bytes", None):
        return {
            "type": "image_url",
            "image_url": {"url": f"data:image/jpeg;base64,{image.to_base64_str()}"},
        }
    if getattr(image, "url", None):
        return {"type": "image_url", "image_url": {"url": image.url}}
    raise ValueError("Image must contain either bytes or URL")


def process_audio(audio: Any) -> dict[str, Any]:
    """An Audio as an OpenAI ``input_audio`` content part (wav, base64).

    Raises:
        ValueError: it has no bytes (a URL alone: send the bytes, or start the runner with
            ``--allow-url-fetch`` so they are fetched before the method runs).
    """
    if getattr(audio, "bytes", None):
        data = audio.to_base64_str()
        return {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}
    raise ValueError(_needs_bytes("Audio", audio))


def process_video(video: Any) -> dict[str, Any]:
    """A Video as an OpenAI ``video_url`` content part (an mp4 data URL).

    Raises:
        ValueError: it has no bytes (see :func:`process_audio`).
    """
    if getattr(video, "bytes", None):
        url = f"data:video/mp4;base64,{video.to_base64_str()}"
        return {"type": "video_url", "video_url": {"url": url}}
    raise ValueError(_needs_bytes("Video", video))


def _needs_bytes(kind: str, item: Any) -> str:
    if getattr(item, "url", None):
        return (
            f"{kind} has only a URL ({str(item.url)[:200]}); send its bytes, or start the runner "
            "with --allow-url-fetch so edge-runner fetches them before the method runs"
        )
    return f"{kind} must contain either bytes or URL"


def _non_streaming(
    text: str,
    model: str,
    id: str,
    created: int,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    finish_reason: str,
) -> dict[str, Any]:
    message = {"role": "assistant", "content": text}
    choice = {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
    response: dict[str, Any] = {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
    }
    if prompt_tokens is not None and completion_tokens is not None:
        response["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    return response


def _streaming(
    chunks: Any, model: str, id: str, created: int, finish_reason: str
) -> Iterator[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [choice],
        }

    for piece in chunks:
        yield chunk({"content": piece}, None)
    yield chunk({}, finish_reason)


def openai_response(
    generated_text: Any,
    model: str = "custom-model",
    id: str | None = None,
    created: int | None = None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    finish_reason: str = "stop",
    stream: bool = True,
) -> Any:
    """An OpenAI chat answer for text a model produced.

    ``stream=True`` (the default, as in Clarifai): ``generated_text`` is an iterable of pieces
    and the result an iterator of ``chat.completion.chunk`` dicts, a last one with the finish
    reason. ``stream=False``: one ``chat.completion`` dict, with ``usage`` when both token
    counts are given.
    """
    id = id or generate_id()
    created = int(time.time()) if created is None else created
    if stream:
        return _streaming(generated_text, model, id, created, finish_reason)
    return _non_streaming(
        generated_text, model, id, created, prompt_tokens, completion_tokens, finish_reason
    )


def openai_to_hf_messages(openai_messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI chat messages in the form of Hugging Face's ``apply_chat_template()``.

    Text parts stay text; ``image_url`` parts become ``{"type": "image", "base64"|"url"}``,
    ``video_url`` parts ``{"type": "video", "url"}``.

    Raises:
        ValueError: a base64 video, or a part of another type.
    """
    hf_messages = []
    for message in openai_messages:
        content = message["content"]
        if isinstance(content, list):
            converted = []
            for part in content:
                kind = part["type"]
                if kind == "text":
                    converted.append({"type": "text", "text": part["text"]})
                elif kind == "image_url":
                    url = part["image_url"]["url"]
                    if url.startswith("data:image"):
                        converted.append({"type": "image", "base64": url.split(",")[1]})
                    else:
                        converted.append({"type": "image", "url": url})
                elif kind == "video_url":
                    url = part["video_url"]["url"]
                    if url.startswith("data:video"):
                        raise ValueError("Base64 video data is not supported in HF format.")
                    converted.append({"type": "video", "url": url})
                else:
                    raise ValueError(f"Unsupported content type: {kind} for conversion.")
            content = converted
        hf_messages.append({"role": message["role"], "content": content})
    return hf_messages


def build_openai_messages(
    prompt: str | None = None,
    image: Any = None,
    images: list[Any] | None = None,
    audio: Any = None,
    audios: list[Any] | None = None,
    video: Any = None,
    videos: list[Any] | None = None,
    messages: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """OpenAI chat messages: the history in ``messages`` (when it is in OpenAI's chat format),
    then one user message of the prompt and the media given, in that order.

    A media part comes from :func:`process_image` (and the audio/video ones). With no prompt
    and no media no user message is added.
    """
    chat: list[dict[str, Any]] = []
    if messages and is_openai_chat_format(messages):
        chat.extend(messages)
    content: list[dict[str, Any]] = []
    if prompt and prompt.strip():
        content.append({"type": "text", "text": prompt})
    for one, many, convert in (
        (image, images, process_image),
        (audio, audios, process_audio),
        (video, videos, process_video),
    ):
        if one:
            content.append(convert(one))
        for item in many or ():
            content.append(convert(item))
    if content:
        chat.append({"role": "user", "content": content})
    return chat


def is_openai_chat_format(messages: Any) -> bool:
    """Return True when ``messages`` is a list of OpenAI chat messages (role and content;
    content a string or a list of part dicts)."""
    if not isinstance(messages, list):
        return False
    for message in messages:
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            return False
        if message["role"] not in _ROLES:
            return False
        content = message["content"]
        if isinstance(content, list) and not all(isinstance(part, dict) for part in content):
            return False
    return True
