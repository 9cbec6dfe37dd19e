"""The control plane's JSON parser: strict RFC 8259, bounded nesting, no recursion blow-up."""

from __future__ import annotations

import pytest

from edge_runner.control.http_common import MAX_JSON_DEPTH, parse_json


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_nesting_up_to_the_limit_parses() -> None:
    """Exactly MAX_JSON_DEPTH levels of arrays and objects are fine."""
    assert parse_json(_nested(MAX_JSON_DEPTH)) is not None
    value = parse_json(b'{"a":' * (MAX_JSON_DEPTH - 1) + b"[1]" + b"}" * (MAX_JSON_DEPTH - 1))
    assert isinstance(value, dict)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 999, 5000, 200_000])
def test_deeper_nesting_is_refused_with_a_message(depth: int) -> None:
    """One level more, or past the interpreter's recursion limit, is a ValueError."""
    with pytest.raises(ValueError, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        parse_json(_nested(depth))


def test_brackets_inside_strings_do_not_count() -> None:
    """Brackets in string values are text, not nesting."""
    text = b'{"s": "' + b"[{" * 500 + b'", "n": [[1]]}'
    assert parse_json(text)["n"] == [[1]]


def test_many_shallow_containers_are_fine() -> None:
    """Lots of brackets side by side are not depth."""
    assert len(parse_json(b"[" + b",".join([b"[1]"] * 10_000) + b"]")) == 10_000


@pytest.mark.parametrize(
    "text", [b"NaN", b"[Infinity]", b'{"x": -Infinity}', b"1e400", b"[-1.5e309]"]
)
def test_non_finite_numbers_are_refused(text: bytes) -> None:
    """NaN, Infinity and floats that overflow are not JSON."""
    with pytest.raises(ValueError):
        parse_json(text)


def test_large_finite_numbers_parse() -> None:
    """The largest floats and long ints are still numbers."""
    assert parse_json(b"[1.7976931348623157e308, -1e-320, 123456789012345678901234567890]")[2] > 0
