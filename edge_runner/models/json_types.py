"""The JSON-shaped types a model method may take and return, and how values are checked.

A :class:`TypeSpec` is built from a Python type hint (:func:`spec_from_hint`) on the runner and
travels as its readable text (``"list[dict]"``, ``"int | None"``); the control plane parses the
text back (:func:`parse_spec`) to validate request arguments. Grammar::

    spec := simple | "list[" spec "]" | "dict[str, " spec "]" | "Iterator[" spec "]"
            | "tuple[" spec ("," spec)* "]" | "NamedFields[" field ("," field)* "]"
            | spec " | None"
    field := name ": " spec
    simple := "str" | "int" | "float" | "bool" | "list" | "dict" | "any" | "bytes"
              | "Text" | "Image" | "Audio" | "Video" | "Concept" | "Region" | "Frame"

The data types (``bytes`` and the classes of :mod:`edge_runner.models.data_types`) travel in
their JSON forms (``{"base64": ...}``, ...); :func:`check_value` checks those forms, and
:mod:`edge_runner.models.codec` turns them into objects and back on the runner.
"""

from __future__ import annotations

import collections.abc
import functools
import types
import typing
from dataclasses import dataclass
from typing import Any

from edge_runner.errors import TypeMismatch, UnsupportedType
from edge_runner.models.data_types import DATA_TYPES, MessageData, NamedFields, is_base64
from edge_runner.views import JSONValue

__all__ = [
    "DATA_TYPE_NAMES",
    "SIMPLE_TYPES",
    "SUPPORTED_TYPES_TEXT",
    "TypeSpec",
    "base64_size",
    "check_base64",
    "check_value",
    "json_type_name",
    "mismatch_message",
    "parse_spec",
    "spec_from_hint",
]

#: The data types by their spec names: ``bytes`` and the rich types (Image, Concept, ...).
DATA_TYPE_NAMES: tuple[str, ...] = ("bytes", *DATA_TYPES)

#: The base types a parameter or result may have.
SIMPLE_TYPES: tuple[str, ...] = (
    "str",
    "int",
    "float",
    "bool",
    "list",
    "dict",
    "any",
    *DATA_TYPE_NAMES,
)

#: The supported hints as a person writes them, for error messages.
SUPPORTED_TYPES_TEXT = (
    "str, int, float, bool, bytes, list, dict, list[X], dict[str, X], tuple[X, Y], Any, "
    "Optional[X] / X | None, Text, Image, Audio, Video, Concept, Region, Frame, "
    "NamedFields(name=X, ...)"
)

_SCALARS: dict[type, str] = {str: "str", int: "int", float: "float", bool: "bool"}
_STREAM_ORIGINS = (
    collections.abc.Iterator,
    collections.abc.Iterable,
    collections.abc.Generator,
)
_NONE_SUFFIX = " | None"


@dataclass(frozen=True)
class TypeSpec:
    """A parsed JSON-shaped type.

    Attributes:
        base: one of :data:`SIMPLE_TYPES`, ``"tuple"``, ``"NamedFields"``, or ``"Iterator"``
            for a stream.
        args: element spec(s): one for ``list``/``Iterator``, key and value for ``dict``, one
            per position for ``tuple``, one per field for ``NamedFields``.
        optional: whether ``None`` (JSON ``null``) is accepted.
        fields: the field names of a ``NamedFields`` spec, in the order of ``args``.
    """

    base: str
    args: tuple[TypeSpec, ...] = ()
    optional: bool = False
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = self.base
        if self.fields:
            text += (
                "["
                + ", ".join(f"{n}: {a}" for n, a in zip(self.fields, self.args, strict=True))
                + "]"
            )
        elif self.args:
            text += "[" + ", ".join(str(a) for a in self.args) + "]"
        return text + _NONE_SUFFIX if self.optional else text

    def with_optional(self, optional: bool = True) -> TypeSpec:
        """Return the same spec with ``optional`` set."""
        return TypeSpec(self.base, self.args, optional, self.fields)


def spec_from_hint(hint: object, *, allow_stream: bool = False) -> TypeSpec:
    """Build a spec from a resolved type hint.

    Args:
        hint: a hint as :func:`typing.get_type_hints` returns it.
        allow_stream: accept ``Iterator``/``Iterable``/``Generator`` at the top level.

    Raises:
        UnsupportedType: the hint (or a part of it) is not supported.
    """
    if hint is Any:
        return TypeSpec("any")
    if isinstance(hint, type) and hint in _SCALARS:
        return TypeSpec(_SCALARS[hint])
    if hint is list or hint is tuple:
        return TypeSpec("list")
    if hint is dict:
        return TypeSpec("dict")
    if hint is bytes:
        return TypeSpec("bytes")
    data_type = _data_type_name(hint)
    if data_type is not None:
        return TypeSpec(data_type)
    if isinstance(hint, type) and issubclass(hint, NamedFields):
        declared = hint.field_types()
        if not declared:
            raise UnsupportedType("NamedFields without fields (declare them: NamedFields(a=int))")
        return TypeSpec(
            "NamedFields",
            tuple(spec_from_hint(h) for h in declared.values()),
            fields=tuple(declared),
        )
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is list and len(args) == 1:
        return TypeSpec("list", (spec_from_hint(args[0]),))
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]: any length
            return TypeSpec("list", (spec_from_hint(args[0]),))
        return TypeSpec("tuple", tuple(spec_from_hint(a) for a in args))
    if origin is dict and len(args) == 2:
        if args[0] is not str:
            raise UnsupportedType(
                f"{_hint_text(hint)} (JSON object keys are strings; use dict[str, ...])"
            )
        return TypeSpec("dict", (TypeSpec("str"), spec_from_hint(args[1])))
    if origin in (typing.Union, types.UnionType):
        others = [a for a in args if a is not type(None)]
        if len(others) == 1 and len(args) == 2:
            return spec_from_hint(others[0]).with_optional()
        raise UnsupportedType(f"{_hint_text(hint)} (only X | None unions are supported)")
    if allow_stream and (hint in _STREAM_ORIGINS or origin in _STREAM_ORIGINS):
        element = spec_from_hint(args[0]) if args else TypeSpec("any")
        return TypeSpec("Iterator", (element,))
    raise UnsupportedType(_hint_text(hint))


def _data_type_name(hint: object) -> str | None:
    """The spec name of a data-type class: ours, a subclass, or one of the same name from
    ``clarifai.runners.utils.data_types`` (a folder running against the real package)."""
    if not isinstance(hint, type):
        return None
    if issubclass(hint, MessageData):
        for cls in hint.__mro__:
            if cls.__name__ in DATA_TYPES and DATA_TYPES[cls.__name__] is cls:
                return cls.__name__
    if hint.__module__.startswith("clarifai.runners.utils.data_types") and (
        hint.__name__ in DATA_TYPES
    ):
        return hint.__name__
    return None


def _hint_text(hint: object) -> str:
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__qualname__
    return repr(hint).replace("typing.", "")


@functools.lru_cache(maxsize=1024)
def parse_spec(text: str) -> TypeSpec:
    """Parse a spec's text (as ``str(spec)`` writes it) back into a spec.

    Raises:
        ValueError: the text does not follow the grammar.
    """
    text = text.strip()
    if text.endswith(_NONE_SUFFIX):
        return parse_spec(text[: -len(_NONE_SUFFIX)]).with_optional()
    if "[" not in text:
        if text in SIMPLE_TYPES:
            return TypeSpec(text)
        raise ValueError(f"unknown type {text!r}; expected one of {', '.join(SIMPLE_TYPES)}")
    if not text.endswith("]"):
        raise ValueError(f"malformed type {text!r}")
    base, inner = text[: text.index("[")], text[text.index("[") + 1 : -1]
    if base == "NamedFields":
        return _parse_named_fields(text, _split_top_level(inner))
    parts = tuple(parse_spec(p) for p in _split_top_level(inner))
    if base in ("list", "Iterator") and len(parts) == 1:
        return TypeSpec(base, parts)
    if base == "dict" and len(parts) == 2 and parts[0] == TypeSpec("str"):
        return TypeSpec(base, parts)
    if base == "tuple" and parts:
        return TypeSpec(base, parts)
    raise ValueError(f"malformed type {text!r}")


def _parse_named_fields(text: str, items: list[str]) -> TypeSpec:
    names: list[str] = []
    specs: list[TypeSpec] = []
    for item in items:
        name, colon, spec_text = item.partition(":")
        name = name.strip()
        if not colon or not name.isidentifier() or name in names:
            raise ValueError(f"malformed type {text!r}: expected NamedFields[name: type, ...]")
        names.append(name)
        specs.append(parse_spec(spec_text))
    return TypeSpec("NamedFields", tuple(specs), fields=tuple(names))


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    start = 0
    for i, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def json_type_name(value: object) -> str:
    """Name a value's type the way a JSON user thinks of it (``null``, ``int``, ``list``...)."""
    if value is None:
        return "null"
    for cls, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
        if isinstance(value, cls):
            return name
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return type(value).__name__


def base64_size(text: str) -> int:
    """The number of bytes standard base64 ``text`` decodes to, from its length alone."""
    padding = 2 if text.endswith("==") else 1 if text.endswith("=") else 0
    return len(text) // 4 * 3 - padding


def check_base64(text: str, where: str, max_bytes: int | None = None) -> None:
    """Check that ``text`` is standard base64 of at most ``max_bytes`` decoded bytes.

    Nothing is decoded (the control plane checks an image without holding a copy of its
    bytes); the size is judged from the length.

    Raises:
        TypeMismatch: malformed base64, or too many bytes.
    """
    size = base64_size(text)
    if max_bytes is not None and size > max_bytes:
        raise TypeMismatch(
            where,
            "too large",
            f"{size} bytes, over the {max_bytes}-byte limit for one value (--max-media-bytes)",
        )
    if not is_base64(text):
        raise TypeMismatch(
            where,
            "malformed base64",
            "not standard base64 (A-Z a-z 0-9 + /, padded with = to a multiple of 4)",
        )


def mismatch_message(subject: str, expected: str, exc: TypeMismatch, at: str = "") -> str:
    """The message for a value that did not fit its type: ``argument 'n' must be int, got str``,
    then where inside it (after ``at``, the value's name) and why, when the check said."""
    where = f" at {at}{exc.where}" if exc.where else ""
    detail = f": {exc.detail}" if exc.detail else ""
    return f"{subject} must be {expected}, got {exc.got}{where}{detail}"


def check_value(spec: TypeSpec, value: JSONValue, where: str = "") -> JSONValue:
    """Check a JSON value against a spec and return it, with ints widened where floats go.

    Args:
        spec: the expected type.
        value: a value decoded from JSON.
        where: the path of ``value`` inside the top-level value, for the error.

    Raises:
        TypeMismatch: the value (or an element of it) has the wrong type.
    """
    if value is None:
        if spec.optional or spec.base == "any":
            return None
        raise TypeMismatch(where, "null")
    base = spec.base
    if base == "any":
        return value
    if base == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError as exc:  # an int of 309+ digits: input, not a bug
            raise TypeMismatch(where, "an int too large for a float") from exc
    if base in ("int", "float") and isinstance(value, bool):
        raise TypeMismatch(where, "bool")
    scalar = {"str": str, "int": int, "bool": bool}.get(base)
    if scalar is not None:
        if isinstance(value, scalar):
            return value
        raise TypeMismatch(where, json_type_name(value))
    if base in ("list", "Iterator"):
        if not isinstance(value, list):
            raise TypeMismatch(where, json_type_name(value))
        if not spec.args:
            return value
        return [check_value(spec.args[0], item, f"{where}[{i}]") for i, item in enumerate(value)]
    if base == "dict":
        if not isinstance(value, dict):
            raise TypeMismatch(where, json_type_name(value))
        if not spec.args:
            return value
        return {k: check_value(spec.args[1], v, f"{where}[{k!r}]") for k, v in value.items()}
    if base == "tuple":
        if not isinstance(value, list) or len(value) != len(spec.args):
            raise TypeMismatch(where, _sized_name(value), f"expected {len(spec.args)} items")
        return [
            check_value(s, item, f"{where}[{i}]")
            for i, (s, item) in enumerate(zip(spec.args, value, strict=True))
        ]
    if base == "NamedFields":
        return _check_fields(spec, value, where)
    if base == "bytes":
        if not isinstance(value, dict) or set(value) != {"base64"}:
            raise TypeMismatch(where, json_type_name(value), 'bytes are {"base64": "..."}')
        raw = value["base64"]
        if not isinstance(raw, str):
            raise TypeMismatch(f"{where}['base64']", json_type_name(raw))
        check_base64(raw, f"{where}['base64']")
        return value
    cls = DATA_TYPES.get(base)
    if cls is not None:
        if not isinstance(value, dict):
            raise TypeMismatch(where, json_type_name(value), f"{base} is a JSON object")
        if base in ("Image", "Audio", "Video"):  # the big ones: checked, never decoded here
            return _check_media(base, value, where)
        try:
            cls.from_json(value)
        except ValueError as exc:
            raise TypeMismatch(where, "a malformed " + base, str(exc)) from exc
        return value
    raise TypeMismatch(where, json_type_name(value))


def _check_media(base: str, value: dict[str, JSONValue], where: str) -> JSONValue:
    unknown = sorted(set(value) - {"base64", "url"})
    if unknown:
        raise TypeMismatch(
            f"{where}[{unknown[0]!r}]", "an unknown field", f"{base}'s fields are base64, url"
        )
    for key in ("base64", "url"):
        item = value.get(key)
        if item is not None and not isinstance(item, str):
            raise TypeMismatch(f"{where}[{key!r}]", json_type_name(item))
    raw = value.get("base64")
    if isinstance(raw, str):
        check_base64(raw, f"{where}['base64']")
    return value


def _sized_name(value: object) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return json_type_name(value)


def _check_fields(spec: TypeSpec, value: JSONValue, where: str) -> JSONValue:
    if not isinstance(value, dict):
        raise TypeMismatch(
            where, json_type_name(value), f"expected fields {', '.join(spec.fields)}"
        )
    unknown = sorted(set(value) - set(spec.fields))
    if unknown:
        raise TypeMismatch(
            f"{where}[{unknown[0]!r}]",
            "an unknown field",
            f"the fields are {', '.join(spec.fields)}",
        )
    out: dict[str, JSONValue] = {}
    for name, field_spec in zip(spec.fields, spec.args, strict=True):
        if name not in value and not field_spec.optional:
            raise TypeMismatch(f"{where}[{name!r}]", "nothing", f"field {name!r} is required")
        out[name] = check_value(field_spec, value.get(name), f"{where}[{name!r}]")
    return out
