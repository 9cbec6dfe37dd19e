"""Request arguments checked against signatures, and CLI strings parsed by parameter type."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runner.errors import InvalidArgument
from edge_runner.models import (
    MethodKind,
    MethodSignature,
    Param,
    parse_cli_value,
    validate_arguments,
)

GENERATE = MethodSignature(
    name="generate",
    kind=MethodKind.SERVER_STREAM,
    params=(
        Param("text", "str", required=True),
        Param("n", "int", required=False, default=5),
        Param("temperature", "float", required=False, default=1.0),
        Param("stop", "list[str] | None", required=False, default=None),
        Param("options", "dict", required=False, default={"a": [1]}),
    ),
    returns="Iterator[str]",
)


def test_defaults_are_filled_in() -> None:
    """Arguments not passed get their defaults."""
    assert validate_arguments(GENERATE, {"text": "hi"}) == {
        "text": "hi",
        "n": 5,
        "temperature": 1.0,
        "stop": None,
        "options": {"a": [1]},
    }


def test_mutable_defaults_are_fresh_copies() -> None:
    """A default list or dict handed to one call is not shared with the next."""
    first = validate_arguments(GENERATE, {"text": "hi"})
    first["options"]["a"].append(2)
    assert validate_arguments(GENERATE, {"text": "hi"})["options"] == {"a": [1]}


def test_int_is_widened_to_float() -> None:
    """An int passed for a float parameter becomes a float."""
    out = validate_arguments(GENERATE, {"text": "hi", "temperature": 0})
    assert out["temperature"] == 0.0 and isinstance(out["temperature"], float)


def test_unknown_argument_lists_accepted_ones() -> None:
    """An unknown argument is named, with the accepted arguments in the message."""
    with pytest.raises(InvalidArgument) as info:
        validate_arguments(GENERATE, {"text": "hi", "count": 3})
    assert info.value.argument == "count"
    assert "unknown argument 'count'" in str(info.value)
    assert "text: str, n: int = 5" in str(info.value)


def test_missing_required_argument() -> None:
    """A missing required argument is named."""
    with pytest.raises(InvalidArgument, match="missing the required argument 'text'") as info:
        validate_arguments(GENERATE, {"n": 2})
    assert info.value.argument == "text"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"text": "hi", "n": "5"}, "argument 'n' must be int, got str"),
        ({"text": "hi", "n": True}, "argument 'n' must be int, got bool"),
        ({"text": "hi", "n": 5.0}, "argument 'n' must be int, got float"),
        ({"text": "hi", "temperature": True}, "argument 'temperature' must be float, got bool"),
        ({"text": 3}, "argument 'text' must be str, got int"),
        ({"text": None}, "argument 'text' must be str, got null"),
        ({"text": "hi", "stop": "x"}, "argument 'stop' must be list[str] | None, got str"),
        ({"text": "hi", "stop": ["a", 1]}, "must be list[str] | None, got int at stop[1]"),
        ({"text": "hi", "options": []}, "argument 'options' must be dict, got list"),
    ],
)
def test_wrong_types_are_named(args: dict[str, Any], message: str) -> None:
    """A value of the wrong JSON type fails naming the argument, wanted and actual types."""
    with pytest.raises(InvalidArgument) as info:
        validate_arguments(GENERATE, args)
    assert message in str(info.value)
    assert info.value.argument is not None


def test_optional_accepts_null_and_elements_are_checked() -> None:
    """Optional parameters accept null; list elements of the right type pass."""
    out = validate_arguments(GENERATE, {"text": "hi", "stop": None})
    assert out["stop"] is None
    assert validate_arguments(GENERATE, {"text": "hi", "stop": ["a"]})["stop"] == ["a"]


def test_nested_dict_values_are_checked() -> None:
    """dict[str, X] checks each value and names the key that is wrong."""
    sig = MethodSignature("m", MethodKind.UNARY, (Param("d", "dict[str, int]", True),), "str")
    assert validate_arguments(sig, {"d": {"a": 1}}) == {"d": {"a": 1}}
    with pytest.raises(InvalidArgument, match=r"got str at d\['b'\]"):
        validate_arguments(sig, {"d": {"a": 1, "b": "x"}})


def test_any_accepts_everything() -> None:
    """An `any` parameter accepts every JSON value, null included."""
    sig = MethodSignature("m", MethodKind.UNARY, (Param("x", "any", True),), "str")
    for value in (None, 1, "s", [1], {"a": 1}, True):
        assert validate_arguments(sig, {"x": value}) == {"x": value}


def test_body_that_is_not_an_object() -> None:
    """A body that is not a JSON object fails for the whole body."""
    with pytest.raises(InvalidArgument, match="must be a JSON object") as info:
        validate_arguments(GENERATE, ["hi"])  # type: ignore[arg-type]  # the case under test
    assert info.value.argument is None


@pytest.mark.parametrize(
    ("type_", "text", "value"),
    [
        ("str", " hi ", " hi "),
        ("int", "42", 42),
        ("float", "0.5", 0.5),
        ("float", "2", 2.0),
        ("bool", "Yes", True),
        ("bool", "0", False),
        ("bool", "false", False),
        ("list[str]", '["a", "b"]', ["a", "b"]),
        ("list[float]", "[1, 2.5]", [1.0, 2.5]),
        ("dict", '{"a": 1}', {"a": 1}),
        ("any", "[1]", [1]),
        ("int | None", "null", None),
        ("str | None", "null", "null"),
    ],
)
def test_parse_cli_value(type_: str, text: str, value: Any) -> None:
    """CLI strings are parsed by the parameter's type."""
    assert parse_cli_value(Param("x", type_, required=True), text) == value


@pytest.mark.parametrize(
    ("type_", "text", "match"),
    [
        ("int", "4.5", "argument 'x' must be int, got '4.5'"),
        ("float", "abc", "argument 'x' must be float"),
        ("bool", "maybe", "argument 'x' must be bool"),
        ("list[str]", "[a", "written as JSON"),
        ("list[str]", "[1]", "got int at x\\[0\\]"),
        ("dict", "[]", "must be dict, got list"),
        ("any", "hello", "written as JSON"),
    ],
)
def test_parse_cli_value_errors_name_the_argument(type_: str, text: str, match: str) -> None:
    """A CLI string that does not parse fails naming the argument."""
    with pytest.raises(InvalidArgument, match=match) as info:
        parse_cli_value(Param("x", type_, required=True), text)
    assert info.value.argument == "x"
