"""Requests in OpenAI's shape (and our native methods' arguments) mapped onto Ollama's API.

Pure functions, no I/O: messages (text parts, ``data:`` images, assistant tool calls, tool
results), sampling options, ``response_format``, and Ollama's tool calls mapped back. Anything
that cannot be mapped is a :class:`BackendError` with ``INVALID_ARGUMENT`` naming the field.

Images are decoded here and handed to the client as bytes: the ``ollama`` client reads a string
image that names an existing file from disk, which a remote caller must never be able to make
the runner do.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

import ollama
import pydantic

from edge_runner.backends.openai_format import stop_list
from edge_runner.errors import BackendError, ErrorCode
from edge_runner.views import JSONObject

__all__ = [
    "chat_options",
    "ollama_messages",
    "openai_tool_calls",
    "response_format",
    "tool_call_deltas",
]

#: OpenAI request field -> Ollama option
_OPTIONS = (
    ("max_tokens", "num_predict"),
    ("max_completion_tokens", "num_predict"),
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("seed", "seed"),
    ("frequency_penalty", "frequency_penalty"),
    ("presence_penalty", "presence_penalty"),
)
_ROLES = {"system", "user", "assistant", "tool", "developer"}


def _invalid(message: str) -> BackendError:
    return BackendError(ErrorCode.INVALID_ARGUMENT, message)


def chat_options(request: JSONObject, num_ctx: int | None) -> dict[str, object]:
    """Ollama ``options`` from an OpenAI request (unset fields are left to the model)."""
    options: dict[str, object] = {}
    for theirs, ours in _OPTIONS:
        value = request.get(theirs)
        if value is None or ours in options:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid(f"`{theirs}` must be a number")
        options[ours] = value
    stop = stop_list(request.get("stop"))
    if stop:
        options["stop"] = stop
    if num_ctx:
        options["num_ctx"] = num_ctx
    return options


def response_format(request: dict[str, Any]) -> str | dict[str, object] | None:
    """Ollama's ``format`` for OpenAI's ``response_format`` (JSON mode or a JSON schema)."""
    spec = request.get("response_format")
    if spec is None:
        return None
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (spec.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            return schema
    raise _invalid(
        "`response_format` must be {type: text}, {type: json_object} or "
        "{type: json_schema, json_schema: {schema: {...}}}"
    )


def ollama_messages(messages: object) -> list[ollama.Message]:
    """OpenAI chat messages (or Ollama-shaped ones) as the ``ollama`` client's Message objects."""
    if not isinstance(messages, list) or not messages:
        raise _invalid("`messages` must be a non-empty array of message objects")
    tool_names: dict[str, str] = {}  # tool_call_id -> function name, for tool results
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid(f"messages[{i}] must be an object")
        out.append(_message(i, message, tool_names))
    return out


def _message(i: int, message: dict[str, Any], tool_names: dict[str, str]) -> ollama.Message:
    role = message.get("role")
    if role not in _ROLES:
        raise _invalid(f"messages[{i}].role must be one of {', '.join(sorted(_ROLES))}")
    text, images = _content(i, message.get("content"))
    images += [
        _image_bytes(f"messages[{i}].images", image) for image in message.get("images") or []
    ]
    fields: dict[str, object] = {"role": "system" if role == "developer" else role, "content": text}
    if images:
        fields["images"] = [ollama.Image(value=data) for data in images]
    calls = message.get("tool_calls")
    if calls:
        fields["tool_calls"] = [_tool_call(i, call, tool_names) for call in calls]
    if role == "tool":
        name = message.get("name") or tool_names.get(str(message.get("tool_call_id")))
        if name:
            fields["tool_name"] = name
    try:
        return ollama.Message.model_validate(fields)
    except pydantic.ValidationError as exc:
        raise _invalid(f"messages[{i}] is not a valid message: {exc.errors()[0]['msg']}") from exc


def _content(i: int, content: object) -> tuple[str, list[bytes]]:
    """Text and images of a message's ``content`` (a string or OpenAI's array of parts)."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise _invalid(f"messages[{i}].content must be a string or an array of parts")
    texts, images = [], []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            images.append(_data_url(f"messages[{i}].content", url))
        else:
            raise _invalid(f"messages[{i}].content has a part of unsupported type {kind!r}")
    return "".join(texts), images


def _data_url(where: str, url: object) -> bytes:
    if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
        raise _invalid(
            f"{where}: images must be data: URLs (data:image/png;base64,...); the runner does "
            "not fetch remote images"
        )
    return _image_bytes(where, url.split(";base64,", 1)[1])


def _image_bytes(where: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise _invalid(f"{where}: an image must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _invalid(f"{where}: an image is not valid base64") from exc


def _tool_call(i: int, call: Any, tool_names: dict[str, str]) -> dict[str, object]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise _invalid(f"messages[{i}].tool_calls: each call needs function.name")
    arguments = function.get("arguments") or {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            raise _invalid(f"messages[{i}].tool_calls: arguments are not JSON") from exc
    if not isinstance(arguments, dict):
        raise _invalid(f"messages[{i}].tool_calls: arguments must be a JSON object")
    if call.get("id"):
        tool_names[str(call["id"])] = function["name"]
    return {"function": {"name": function["name"], "arguments": arguments}}


def openai_tool_calls(
    calls: Sequence[ollama.Message.ToolCall] | None,
) -> list[dict[str, object]]:
    """Ollama's tool calls as OpenAI ``tool_calls`` (arguments as a JSON string)."""
    out: list[dict[str, object]] = []
    for i, call in enumerate(calls or ()):
        function = call.function
        out.append(
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {
                    "name": function.name,
                    "arguments": json.dumps(dict(function.arguments or {})),
                },
            }
        )
    return out


def tool_call_deltas(
    calls: Sequence[ollama.Message.ToolCall], first_index: int
) -> list[dict[str, object]]:
    """Tool calls for a stream chunk's ``delta`` (each with its ``index``)."""
    deltas = openai_tool_calls(calls)
    for offset, call in enumerate(deltas):
        call["index"] = first_index + offset
        call["id"] = f"call_{first_index + offset}"
    return deltas
