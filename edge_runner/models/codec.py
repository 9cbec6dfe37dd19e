"""The runner's side of the data types: JSON arguments into objects, results back into JSON.

The control plane checks a request's JSON against each parameter's :class:`TypeSpec`
(:func:`~edge_runner.models.json_types.check_value`); the runner then turns it into what the
method's hints promise (:func:`decode_value`: an ``Image``, ``bytes``, a ``tuple``, a
``NamedFields``...) and turns what the method returns back into JSON (:func:`encode_value`).
Pure functions, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from edge_runner.errors import TypeMismatch
from edge_runner.models.data_types import (
    DATA_TYPES,
    Image,
    MessageData,
    NamedFields,
    Text,
    b64decode,
    b64encode,
)
from edge_runner.models.json_types import (
    TypeSpec,
    base64_size,
    check_base64,
    json_type_name,
)
from edge_runner.views import JSONValue

__all__ = [
    "DEFAULT_MAX_MEDIA_BYTES",
    "decode_value",
    "encode_value",
    "json_default",
    "to_jsonable",
]

#: The default cap on one binary value (an image, ``bytes``) a runner decodes.
DEFAULT_MAX_MEDIA_BYTES = 64 * 1024 * 1024


def decode_value(
    spec: TypeSpec,
    value: JSONValue,
    *,
    max_media_bytes: int | None = DEFAULT_MAX_MEDIA_BYTES,
    where: str = "",
) -> Any:
    """Turn a checked JSON value into the Python value its spec promises.

    Args:
        spec: the parameter's type.
        value: the JSON value (already checked by ``check_value``).
        max_media_bytes: the most bytes one binary value may hold; ``None`` for no cap.
        where: the path of ``value`` inside the argument, for the error.

    Raises:
        TypeMismatch: the value does not match (malformed base64, an oversized image, ...).
    """
    if value is None:
        return None
    base = spec.base
    if base in ("list", "Iterator") and spec.args and isinstance(value, list):
        return [
            decode_value(spec.args[0], v, max_media_bytes=max_media_bytes, where=f"{where}[{i}]")
            for i, v in enumerate(value)
        ]
    if base == "dict" and spec.args and isinstance(value, dict):
        return {
            k: decode_value(
                spec.args[1], v, max_media_bytes=max_media_bytes, where=f"{where}[{k!r}]"
            )
            for k, v in value.items()
        }
    if base == "tuple" and isinstance(value, list):
        if len(value) != len(spec.args):
            raise TypeMismatch(where, f"a list of {len(value)}", f"expected {len(spec.args)}")
        return tuple(
            decode_value(s, v, max_media_bytes=max_media_bytes, where=f"{where}[{i}]")
            for i, (s, v) in enumerate(zip(spec.args, value, strict=True))
        )
    if base == "NamedFields" and isinstance(value, dict):
        return NamedFields(
            **{
                name: decode_value(
                    s, value.get(name), max_media_bytes=max_media_bytes, where=f"{where}[{name!r}]"
                )
                for name, s in zip(spec.fields, spec.args, strict=True)
            }
        )
    if base == "bytes":
        return _bytes(value, where, max_media_bytes)
    cls = DATA_TYPES.get(base)
    if cls is None:
        return value
    if not isinstance(value, dict):
        raise TypeMismatch(where, json_type_name(value), f"{base} is a JSON object")
    _check_media_size(value, where, max_media_bytes)
    try:
        return cls.from_json(value)
    except ValueError as exc:
        raise TypeMismatch(where, "a malformed " + base, str(exc)) from exc


def _bytes(value: JSONValue, where: str, max_bytes: int | None) -> bytes:
    if not isinstance(value, dict) or not isinstance(value.get("base64"), str):
        raise TypeMismatch(where, json_type_name(value), 'bytes are {"base64": "..."}')
    raw = value["base64"]
    assert isinstance(raw, str)  # checked above; narrows for mypy
    check_base64(raw, f"{where}['base64']", max_bytes)
    return b64decode(raw)


def _check_media_size(value: Mapping[str, object], where: str, max_bytes: int | None) -> None:
    """Refuse an oversized ``base64`` anywhere in a data type's JSON before decoding it."""
    for key, item in value.items():
        path = f"{where}[{key!r}]"
        if key == "base64" and isinstance(item, str) and max_bytes is not None:
            if base64_size(item) > max_bytes:
                check_base64(item, path, max_bytes)
        elif isinstance(item, dict):
            _check_media_size(item, path, max_bytes)
        elif isinstance(item, list):
            for i, element in enumerate(item):
                if isinstance(element, dict):
                    _check_media_size(element, f"{path}[{i}]", max_bytes)


def encode_value(spec: TypeSpec | None, value: object) -> Any:
    """Prepare a method's result for ``json.dumps(..., default=json_default)``.

    Where the declared type leads (a ``str`` where ``Text`` is declared becomes
    ``{"text": ...}``, a Pillow image where ``Image`` is declared is encoded as PNG) the value
    is converted here; everything else is left to :func:`json_default`, so a result of plain
    JSON types is passed through untouched.
    """
    if spec is None or value is None or not _leads(spec):
        return value
    base = spec.base
    if base == "Text" and isinstance(value, str):
        return Text(value)
    if base == "Image" and _is_pil_image(value):
        return Image.from_pil(value)
    if base in ("list", "Iterator") and spec.args and isinstance(value, list | tuple):
        return [encode_value(spec.args[0], v) for v in value]
    if base == "tuple" and isinstance(value, list | tuple):
        return [encode_value(s, v) for s, v in zip(spec.args, value, strict=False)]
    if base == "dict" and spec.args and isinstance(value, Mapping):
        return {k: encode_value(spec.args[1], v) for k, v in value.items()}
    if base == "NamedFields" and isinstance(value, NamedFields | Mapping):
        items = dict(value.items())
        led = dict(zip(spec.fields, spec.args, strict=True))
        return {k: encode_value(led.get(k), v) for k, v in items.items()}
    return value


def _leads(spec: TypeSpec) -> bool:
    return spec.base in ("Text", "Image") or any(_leads(a) for a in spec.args)


def _is_pil_image(value: object) -> bool:
    return any(
        c.__module__.startswith("PIL.") and c.__name__ == "Image" for c in type(value).__mro__
    )


def json_default(value: object) -> Any:
    """The ``default=`` of ``json.dumps`` for results: data types by their JSON forms, ``bytes``
    as ``{"base64": ...}``, NamedFields as objects.

    Raises:
        TypeError: a value that has no JSON form (as ``json.dumps`` would).
    """
    if isinstance(value, MessageData):
        return value.to_json()
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": b64encode(bytes(value))}
    if isinstance(value, NamedFields):
        return dict(value.items())
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def to_jsonable(spec: TypeSpec | None, value: object) -> JSONValue:
    """The JSON value a result becomes on the wire (what :func:`encode_value` and
    :func:`json_default` make of it), as Python objects.

    Raises:
        TypeError: a value (or a part of it) that has no JSON form.
    """
    result: JSONValue = json.loads(json.dumps(encode_value(spec, value), default=json_default))
    return result
