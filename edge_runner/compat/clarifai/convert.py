"""The installed ``clarifai`` package's data types and edge-runner's, turned into each other.

With the real package installed, a folder's type hints name ``clarifai.runners.utils.data_types``
classes and its methods take and build their objects (``Concept("cat", 0.9)``). The runner
derives signatures from and encodes its own types, so an adapted method
(:func:`adapted_method`) declares the hints translated to ours (:func:`hint_to_ours`), gets its
arguments as the package's objects (:func:`to_real`) and returns ours (:func:`to_ours`): the
same name and fields, inside lists, tuples, dicts and named fields too.
"""

from __future__ import annotations

import collections.abc
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from edge_runner.models import data_types as ours

__all__ = ["adapted_method", "hint_to_ours", "to_ours", "to_real"]

_REAL_MODULE = "clarifai.runners.utils.data_types"


def to_ours(value: Any) -> Any:
    """``value`` with every real-clarifai data-type object replaced by ours (others as they are)."""
    if isinstance(value, list):
        return [to_ours(v) for v in value]
    if isinstance(value, tuple):
        return tuple(to_ours(v) for v in value)
    if isinstance(value, dict):
        return {k: to_ours(v) for k, v in value.items()}
    kind = type(value)
    if not kind.__module__.startswith(_REAL_MODULE):
        return value
    name = kind.__name__
    if name == "NamedFields" or any(c.__name__ == "NamedFields" for c in kind.__mro__):
        return ours.NamedFields(**{k: to_ours(v) for k, v in _items(value)})
    if name == "Text":
        return ours.Text(value.text or None, url=value.url or None)
    if name in ("Image", "Audio", "Video"):
        cls = getattr(ours, name)
        return cls(bytes=value.bytes or None, url=value.url or None)
    if name == "Concept":
        return ours.Concept(value.name, float(value.value), id=value.id or None)
    if name == "Region":
        point = value.point
        return ours.Region(
            box=list(value.box) or None,
            concepts=[to_ours(c) for c in value.concepts],
            mask=to_ours(value.mask) if _has_media(value.mask) else None,
            point=tuple(point) if point else None,
            track_id=value.track_id or None,
            text=value.text or None,
            id=value.id or None,
        )
    if name == "Frame":
        return ours.Frame(
            image=to_ours(value.image),
            regions=[to_ours(r) for r in value.regions],
            time=value.time,
            index=value.index,
        )
    return value


def _items(value: Any) -> list[tuple[str, object]]:
    items = value.items() if callable(getattr(value, "items", None)) else vars(value).items()
    return list(items)


def _has_media(value: object) -> bool:
    return value is not None and bool(getattr(value, "bytes", None) or getattr(value, "url", None))


def adapted_method(func: Callable[..., object]) -> Callable[..., object]:
    """``func`` declared with our types: arguments made real, results (or items) made ours.

    The wrapper keeps ``func``'s name, docstring and attributes, and its ``__wrapped__`` leads
    signatures and source lines back to ``func``; its ``__annotations__`` are ``func``'s hints
    translated by :func:`hint_to_ours`.
    """

    def call(*args: object, **kwargs: object) -> object:
        result = func(*(to_real(a) for a in args), **{k: to_real(v) for k, v in kwargs.items()})
        if inspect.isgenerator(result) or (
            isinstance(result, Iterator) and not isinstance(result, Mapping)
        ):
            return _converted(result)
        return to_ours(result)

    for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(call, attr, getattr(func, attr, None))
    call.__dict__.update(func.__dict__)
    call.__wrapped__ = func  # type: ignore[attr-defined]  # as functools.wraps sets it
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # unresolvable: signatures_of reports it, naming the method
        hints = dict(getattr(func, "__annotations__", {}))
    else:
        hints = {k: hint_to_ours(v) for k, v in hints.items()}
    call.__annotations__ = hints
    return call


def hint_to_ours(hint: object) -> object:
    """A type hint with the package's data types (and named fields) replaced by ours."""
    if _is_real(hint) or _is_real(type(hint)):
        fields = _named_fields(hint)
        if fields is not None:
            return ours.NamedFields(**{k: hint_to_ours(v) for k, v in fields.items()})
        if isinstance(hint, type) and hint.__name__ in ours.DATA_TYPES:
            return ours.DATA_TYPES[hint.__name__]
        return hint
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is None or not args:
        return hint
    translated = tuple(hint_to_ours(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return typing.Union[translated]  # noqa: UP007  # rebuilding a Union from its args
    if (
        origin is collections.abc.Iterator
        or origin in (list, dict, tuple)
        or isinstance(origin, type)
    ):
        return origin[translated if len(translated) > 1 else translated[0]]
    return hint


def _is_real(obj: object) -> bool:
    return str(getattr(obj, "__module__", "")).startswith(_REAL_MODULE)


def _named_fields(hint: object) -> dict[str, object] | None:
    kind = hint if isinstance(hint, type) else type(hint)
    if not any(c.__name__ == "NamedFields" for c in kind.__mro__):
        return None
    if isinstance(hint, type):
        return dict(hint.__dict__.get("__annotations__", {}))
    # `NamedFields(a=str, b=List[str])` is an instance in the package (List[str] is no type)
    return dict(vars(hint))


def to_real(value: object) -> object:
    """``value`` with every one of our data-type objects replaced by the package's."""
    if isinstance(value, list):
        return [to_real(v) for v in value]
    if isinstance(value, tuple):
        return tuple(to_real(v) for v in value)
    if isinstance(value, dict):
        return {k: to_real(v) for k, v in value.items()}
    if isinstance(value, Iterator):  # a stream-in method's input: converted as it is read
        return _real_items(value)
    if not isinstance(value, ours.MessageData | ours.NamedFields):
        return value
    real = importlib.import_module(_REAL_MODULE)
    if isinstance(value, ours.NamedFields):
        return real.NamedFields(**{k: to_real(v) for k, v in value.items()})
    if isinstance(value, ours.Text):
        return real.Text(value.text, url=value.url)
    if isinstance(value, ours.Image | ours.Audio | ours.Video):
        cls = getattr(real, type(value).__name__)
        return cls(bytes=value.bytes, url=value.url)
    if isinstance(value, ours.Concept):
        return real.Concept(value.name, value.value, id=value.id)
    if isinstance(value, ours.Region):
        return real.Region(
            box=value.box or None,
            concepts=[to_real(c) for c in value.concepts] or None,
            mask=to_real(value.mask) if value.mask is not None else None,
            point=value.point,
            track_id=value.track_id or None,
            text=value.text or None,
            id=value.id,
        )
    if isinstance(value, ours.Frame):
        return real.Frame(
            image=to_real(value.image),
            regions=[to_real(r) for r in value.regions] or None,
            time=value.time,
            index=value.index,
        )
    return value


def _real_items(items: Iterator[object]) -> Iterator[object]:
    for item in items:
        yield to_real(item)


def _converted(items: Iterator[object]) -> Iterator[object]:
    try:
        for item in items:
            yield to_ours(item)
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()  # the model's own finally blocks run now, not at garbage collection
