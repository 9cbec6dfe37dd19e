"""The JSON-shaped types a model method may take and return, and how values are checked.

A :class:`TypeSpec` is built from a Python type hint (:func:`spec_from_hint`) on the runner and
travels as its readable text (``"list[dict]"``, ``"int | None"``); the control plane parses the
text back (:func:`parse_spec`) to validate request arguments. Grammar::

    spec := simple | "list[" spec "]" | "dict[str, " spec "]" | "Iterator[" spec "]"
            | spec " | None"
    simple := "str" | "int" | "float" | "bool" | "list" | "dict" | "any"
"""

from __future__ import annotations

import collections.abc
import functools
import types
import typing
from dataclasses import dataclass
from typing import Any

from edge_runner.errors import TypeMismatch, UnsupportedType
from edge_runner.views import JSONValue

__all__ = [
    "SIMPLE_TYPES",
    "SUPPORTED_TYPES_TEXT",
    "TypeSpec",
    "check_value",
    "json_type_name",
    "parse_spec",
    "spec_from_hint",
]

#: The base types a parameter or result may have.
SIMPLE_TYPES: tuple[str, ...] = ("str", "int", "float", "bool", "list", "dict", "any")

#: The supported hints as a person writes them, for error messages.
SUPPORTED_TYPES_TEXT = (
    "str, int, float, bool, list, dict, list[X], dict[str, X], Any, Optional[X] / X | None"
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
        base: one of :data:`SIMPLE_TYPES`, or ``"Iterator"`` for a stream.
        args: element spec(s): one for ``list``/``Iterator``, key and value for ``dict``.
        optional: whether ``None`` (JSON ``null``) is accepted.
    """

    base: str
    args: tuple[TypeSpec, ...] = ()
    optional: bool = False

    def __str__(self) -> str:
        text = self.base
        if self.args:
            text += "[" + ", ".join(str(a) for a in self.args) + "]"
        return text + _NONE_SUFFIX if self.optional else text

    def with_optional(self, optional: bool = True) -> TypeSpec:
        """Return the same spec with ``optional`` set."""
        return TypeSpec(self.base, self.args, optional)


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
    if hint is list:
        return TypeSpec("list")
    if hint is dict:
        return TypeSpec("dict")
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is list and len(args) == 1:
        return TypeSpec("list", (spec_from_hint(args[0]),))
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
    parts = tuple(parse_spec(p) for p in _split_top_level(inner))
    if base in ("list", "Iterator") and len(parts) == 1:
        return TypeSpec(base, parts)
    if base == "dict" and len(parts) == 2 and parts[0] == TypeSpec("str"):
        return TypeSpec(base, parts)
    raise ValueError(f"malformed type {text!r}")


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
    raise TypeMismatch(where, json_type_name(value))
