"""Named fields: a type hint for a JSON object with fixed keys, and its values.

Re-exported by :mod:`edge_runner.models.data_types`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["NamedFields"]


class _NamedFieldsMeta(type):
    """``NamedFields(a=int, b=str)`` with types makes a type; with values, an instance."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if not args and kwargs and all(_is_type_hint(v) for v in kwargs.values()):
            name = "NamedFields(" + ", ".join(kwargs) + ")"
            return _NamedFieldsMeta(name, (cls,), {"__annotations__": dict(kwargs)})
        return super().__call__(*args, **kwargs)


def _is_type_hint(value: object) -> bool:
    import typing

    return isinstance(value, type) or typing.get_origin(value) is not None or value is Any


class NamedFields(metaclass=_NamedFieldsMeta):
    """Named fields: ``NamedFields(summary=Text, score=float)`` as a type hint (a JSON object
    with exactly those keys), ``NamedFields(summary=..., score=0.9)`` as a value.

    A value reads like an object (``out.score``) and like a mapping (``out["score"]``).
    """

    def __init__(self, **fields: object) -> None:
        for key, value in fields.items():
            setattr(self, key, value)

    @classmethod
    def field_types(cls) -> dict[str, object]:
        """The declared fields and their hints (empty for the plain ``NamedFields`` class)."""
        return dict(cls.__dict__.get("__annotations__", {}))

    def keys(self) -> Iterator[str]:
        """The field names."""
        return iter(vars(self))

    def values(self) -> Iterator[object]:
        """The field values."""
        return iter(vars(self).values())

    def items(self) -> Iterator[tuple[str, object]]:
        """``(name, value)`` pairs."""
        return iter(vars(self).items())

    def __contains__(self, key: object) -> bool:
        return key in vars(self)

    def __getitem__(self, key: str) -> Any:
        try:
            return vars(self)[key]
        except KeyError as exc:
            raise KeyError(key) from exc

    def __setitem__(self, key: str, value: object) -> None:
        setattr(self, key, value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, NamedFields):
            return vars(self) == vars(other)
        if isinstance(other, Mapping):
            return vars(self) == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"NamedFields({inner})"
