"""The base of the data types and the helpers their JSON forms share.

:class:`MessageData` is what every data type derives from; the base64 helpers are how every
JSON form writes bytes. The public names are re-exported by :mod:`edge_runner.models.data_types`.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import importlib
import re
from collections.abc import Mapping
from types import ModuleType
from typing import Any, ClassVar, Self

from edge_runner.views import JSONObject, JSONValue

__all__ = ["MessageData", "b64decode", "b64encode", "is_base64", "object_fields", "require_module"]

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def b64encode(data: builtins.bytes) -> str:
    """Standard base64 (RFC 4648, with padding), as every JSON form here writes bytes."""
    return base64.b64encode(data).decode("ascii")


def is_base64(text: str) -> bool:
    """Whether ``text`` is standard padded base64, checked without decoding it."""
    return not len(text) % 4 and _BASE64.fullmatch(text) is not None


def b64decode(text: str) -> builtins.bytes:
    """Decode standard base64 strictly.

    Raises:
        ValueError: ``text`` is not standard base64 (wrong alphabet, length or padding).
    """
    if not is_base64(text):
        raise ValueError("not standard base64 (A-Z a-z 0-9 + /, padded with = to a multiple of 4)")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not standard base64: {exc}") from exc


def require_module(module: str, package: str, what: str) -> ModuleType:
    """Import ``module``, or raise ImportError with the ``pip install`` line for ``package``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{what} needs {package}: pip install {package}") from exc


def object_fields(cls_name: str, data: object, keys: frozenset[str]) -> Mapping[str, Any]:
    """``data`` as a JSON object with no key outside ``keys``, or a ValueError naming the type."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls_name} must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - keys)
    if unknown:
        raise ValueError(
            f"{cls_name} has no field {unknown[0]!r}; its fields: {', '.join(sorted(keys))}"
        )
    return data


class MessageData:
    """The base of the data types: a JSON form both ways, and Clarifai's ``from_value``/``cast``."""

    #: The field names of the JSON form.
    json_keys: ClassVar[frozenset[str]] = frozenset()

    def to_json(self) -> JSONObject:
        """Return the JSON form (see the module docstring)."""
        raise NotImplementedError

    @classmethod
    def from_json(cls, data: JSONValue) -> Self:
        """Build an instance from its JSON form.

        Raises:
            ValueError: ``data`` is not this type's JSON form; the message says what is wrong.
        """
        raise NotImplementedError

    @classmethod
    def from_value(cls, value: object) -> Self:
        """Return ``value`` if it is already an instance, else ``cls(value)`` (as Clarifai does)."""
        return value if isinstance(value, cls) else cls(value)  # type: ignore[call-arg]  # subclasses take it

    def cast(self, python_type: object) -> object:
        """Return ``self`` as ``python_type``; only its own class is supported here."""
        if python_type is type(self):
            return self
        raise TypeError(f"cannot cast {type(self).__name__} to {python_type!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]  # mutable, like Clarifai's
