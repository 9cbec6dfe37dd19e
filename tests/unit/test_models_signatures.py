"""Signatures derived from type hints, their wire form, hash and rendering; the cancel context."""

from __future__ import annotations

import json
import threading
import typing
from collections.abc import Generator, Iterable, Iterator
from typing import Any, Optional

import pytest

from edge_runner.errors import ModelFolderError
from edge_runner.models import (
    MethodKind,
    MethodSignature,
    ModelClass,
    Param,
    current_cancel_event,
    iterate_with_cancel_event,
    run_with_cancel_event,
    signature_hash,
    signature_of,
    signatures_of,
)


class Image:
    """A custom class, which JSON arguments cannot carry."""


class _Sample(ModelClass):
    @ModelClass.method
    def predict(self, text: str) -> str:
        """Say hello.

        More text that is not part of the description.
        """
        return text

    @ModelClass.method
    def generate(self, text: str, n: int = 5) -> Iterator[str]:
        yield text * n

    @ModelClass.method()
    def stream(self, chunks: Iterator[str]) -> Iterator[str]:
        yield from chunks

    def helper(self, x: int) -> int:
        return x


def test_unary_signature_from_hints() -> None:
    """A `-> str` method is unary with its first docstring line as description."""
    sig = signature_of(_Sample.predict)
    assert sig == MethodSignature(
        name="predict",
        kind=MethodKind.UNARY,
        params=(Param("text", "str", required=True),),
        returns="str",
        description="Say hello.",
    )


def test_server_stream_signature_renders_like_python() -> None:
    """An Iterator return makes a server stream, rendered as a Python-like line."""
    sig = signature_of(_Sample.generate)
    assert sig.kind is MethodKind.SERVER_STREAM
    assert sig.description == ""
    assert sig.render() == "generate(text: str, n: int = 5) -> Iterator[str]"


def test_iterator_parameter_makes_bidi() -> None:
    """An Iterator parameter plus an Iterator return is a bidi method."""
    sig = signature_of(_Sample.stream)
    assert sig.kind is MethodKind.BIDI
    assert sig.params[0].type == "Iterator[str]"
    assert sig.params[0].base_type == "Iterator"


@pytest.mark.parametrize(
    "hint",
    [Iterator[str], Iterable[str], Generator[str, None, None], typing.Iterator[str]],
)
def test_stream_return_spellings(hint: Any) -> None:
    """Iterator, Iterable and Generator (abc or typing) returns all mean a server stream."""

    def method(self: Any, text: str) -> None:
        del self, text

    method.__annotations__["return"] = hint
    sig = signature_of(method)
    assert (sig.kind, sig.returns) == (MethodKind.SERVER_STREAM, "Iterator[str]")


def test_supported_parameter_types() -> None:
    """Scalars, lists, dicts, Any and Optional map to readable types and base types."""

    def method(
        self: Any,
        a: str,
        b: int,
        c: float,
        d: bool,
        e: list,
        f: dict,
        g: list[dict],
        h: dict[str, int],
        i: Any,
        j: Optional[int] = None,  # noqa: UP045 - the typing spelling must work too
        k: list[str] | None = None,
    ) -> dict[str, Any]:
        return {}

    params = signature_of(method).params
    assert [p.type for p in params] == [
        "str",
        "int",
        "float",
        "bool",
        "list",
        "dict",
        "list[dict]",
        "dict[str, int]",
        "any",
        "int | None",
        "list[str] | None",
    ]
    assert [p.base_type for p in params][-3:] == ["any", "int", "list"]
    assert (params[-1].required, params[-1].default) == (False, None)


def test_float_default_widened_and_none_default_optional() -> None:
    """An int default for a float is kept as a float; a None default makes the type optional."""

    # `name: str = None` is the implicit-Optional spelling users write; mypy rightly objects
    def method(self: Any, t: float = 1, name: str = None) -> str:  # type: ignore[assignment]
        return ""

    t, name = signature_of(method).params
    assert t.default == 1.0 and isinstance(t.default, float)
    assert (name.type, name.required) == ("str | None", False)


def test_missing_parameter_hint_names_method_and_parameter() -> None:
    """A parameter without a type hint fails with the method, parameter and the fix."""

    def predict(self: Any, text) -> str:  # type: ignore[no-untyped-def]  # the case under test
        return ""

    with pytest.raises(ModelFolderError, match=r"predict\(\): parameter 'text' has no type hint"):
        signature_of(predict)


def test_missing_return_hint_is_an_error() -> None:
    """A method without a return hint fails and says to add one."""

    def predict(self: Any, text: str):  # type: ignore[no-untyped-def]  # the case under test
        return ""

    with pytest.raises(ModelFolderError, match="no return type hint; add one"):
        signature_of(predict)


def test_unsupported_type_lists_supported_ones() -> None:
    """A custom class parameter fails naming the class and the supported types."""

    def predict(self: Any, image: Image) -> str:
        return ""

    with pytest.raises(ModelFolderError) as info:
        signature_of(predict)
    assert "unsupported type Image" in str(info.value)
    assert "supported types: str, int, float, bool" in str(info.value)


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("def m(self, *args: str) -> str: ...", r"\*args"),
        ("def m(self, **kwargs: str) -> str: ...", r"\*\*kwargs"),
        ("def m(self, a: str, /) -> str: ...", "positional-only"),
        ("def m(self, a: dict[int, str]) -> str: ...", "keys are strings"),
        ("def m(self, a: int | str) -> str: ...", "only X | None"),
        ("def m(self, a: int = (1, 2)) -> str: ...", "is not int"),
        ("def m(self, a: Iterator[str]) -> str: ...", "does not return one"),
        ("async def m(self, a: str) -> str: ...", "is async"),
        ("def m(self, a: str) -> set: ...", "returns unsupported type set"),
    ],
)
def test_rejected_signatures(source: str, match: str) -> None:
    """Shapes a request cannot call by name with JSON values are rejected with a reason."""
    namespace: dict[str, Any] = {"Iterator": Iterator}
    exec(source, namespace)
    with pytest.raises(ModelFolderError, match=match):
        signature_of(namespace["m"])


def test_signatures_of_finds_marked_methods_sorted() -> None:
    """Only marked methods are collected, sorted by name."""
    assert [s.name for s in signatures_of(_Sample)] == ["generate", "predict", "stream"]


def test_signatures_of_without_marked_methods_says_how_to_mark() -> None:
    """A class with no marked method fails and names the decorator."""

    class Bare(ModelClass):
        def predict(self, text: str) -> str:
            return text

    with pytest.raises(ModelFolderError, match="mark at least one method with @ModelClass.method"):
        signatures_of(Bare)


def test_to_dict_round_trips_through_json() -> None:
    """to_dict is JSON-able and from_dict rebuilds an equal signature."""
    for sig in signatures_of(_Sample):
        wire = json.loads(json.dumps(sig.to_dict()))
        assert MethodSignature.from_dict(wire) == sig


def test_from_dict_rejects_malformed_data() -> None:
    """from_dict raises ValueError for a dict that is not a signature or has a bad type."""
    with pytest.raises(ValueError):
        MethodSignature.from_dict({"name": "x"})
    bad = signature_of(_Sample.predict).to_dict()
    bad["params"][0]["type"] = "Picture"
    with pytest.raises(ValueError):
        MethodSignature.from_dict(bad)


def test_signature_hash_is_stable_and_ignores_descriptions() -> None:
    """The hash ignores order and docstrings but changes with the API."""
    sigs = signatures_of(_Sample)
    assert signature_hash(sigs) == signature_hash(reversed(sigs))
    assert len(signature_hash(sigs)) == 64
    predict = signature_of(_Sample.predict)
    reworded = MethodSignature(predict.name, predict.kind, predict.params, predict.returns, "other")
    assert signature_hash([predict]) == signature_hash([reworded])
    changed = MethodSignature(predict.name, predict.kind, (), predict.returns)
    assert signature_hash([predict]) != signature_hash([changed])


def test_cancelled_follows_the_installed_event() -> None:
    """cancelled() is False outside a task and follows the event run_with_cancel_event installs."""
    model = _Sample()
    event = threading.Event()
    assert model.cancelled() is False
    assert run_with_cancel_event(event, model.cancelled) is False
    event.set()
    assert run_with_cancel_event(event, model.cancelled) is True
    assert current_cancel_event.get() is None


def test_iterate_with_cancel_event_reaches_generator_body() -> None:
    """A generator sees the event on each next() and stops when it is set."""

    class Counter(ModelClass):
        def count(self) -> Iterator[int]:
            i = 0
            while not self.cancelled():
                yield i
                i += 1

    event = threading.Event()
    out = []
    for item in iterate_with_cancel_event(event, Counter().count()):
        out.append(item)
        if item == 2:
            event.set()
    assert out == [0, 1, 2]
    assert current_cancel_event.get() is None


def test_closing_iteration_closes_the_model_generator() -> None:
    """Closing the wrapper runs the model generator's finally with the event installed."""
    seen: list[threading.Event | None] = []

    def gen() -> Iterator[int]:
        try:
            yield 1
            yield 2
        finally:
            seen.append(current_cancel_event.get())

    event = threading.Event()
    wrapper = iterate_with_cancel_event(event, gen())
    assert next(wrapper) == 1
    wrapper.close()
    assert seen == [event]
