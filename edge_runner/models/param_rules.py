"""What a parameter allows besides its type: a description, a list of choices, a range.

A Clarifai folder says it with ``Param(default, description=, choices=, min_value=,
max_value=)``; the compatibility layer records that on the method function as
:data:`PARAM_INFO_ATTR` (a ``{name: ParamInfo}`` dict), and :func:`~.signatures.signature_of`
reads it into the signature. :func:`check_rules` is the request-time check. Pure, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edge_runner.errors import InvalidArgument
from edge_runner.views import JSONValue

__all__ = ["PARAM_INFO_ATTR", "ParamInfo", "check_rules"]

#: Set on a method function: ``{parameter name: ParamInfo}`` for its ``Param(...)`` defaults.
PARAM_INFO_ATTR = "__edge_runner_param_info__"


@dataclass(frozen=True)
class ParamInfo:
    """What a ``Param(...)`` default says about its parameter, besides the default.

    Attributes:
        description: a sentence for people and tool schemas.
        choices: the values allowed, when listed.
        min_value: the smallest value allowed, when set.
        max_value: the largest value allowed, when set.
        is_param: Clarifai's flag for an inference setting (as opposed to an input).
    """

    description: str | None = None
    choices: tuple[Any, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None
    is_param: bool = True


def _show(value: JSONValue) -> str:
    return json.dumps(value, ensure_ascii=False)


def check_rules(
    name: str,
    value: JSONValue,
    *,
    choices: Sequence[JSONValue] | None,
    min_value: float | None,
    max_value: float | None,
) -> None:
    """Refuse a (type-checked) value outside ``choices`` or the range.

    ``None`` passes: an optional parameter's ``null`` means "not set", which the type allows.
    A range applies to a number, and to each number of a list (``list[float]``).

    Raises:
        InvalidArgument: the value is not allowed; the message names the parameter and what is.
    """
    if value is None:
        return
    if choices is not None and not any(_same(value, c) for c in choices):
        allowed = ", ".join(_show(c) for c in choices)
        raise InvalidArgument(
            f"argument '{name}' must be one of {allowed}; got {_show(value)}", argument=name
        )
    if min_value is None and max_value is None:
        return
    numbers = value if isinstance(value, list) else [value]
    for number in numbers:
        if isinstance(number, bool) or not isinstance(number, int | float):
            continue  # the type check already decided what non-numbers may be
        low = min_value is not None and number < min_value
        high = max_value is not None and number > max_value
        if low or high:
            raise InvalidArgument(
                f"argument '{name}' must be {_range(min_value, max_value)}; got {_show(number)}",
                argument=name,
            )


def _same(value: JSONValue, choice: JSONValue) -> bool:
    # True == 1 in Python; a bool choice only matches a bool (and a number only a number)
    if isinstance(value, bool) or isinstance(choice, bool):
        return isinstance(value, bool) and isinstance(choice, bool) and value is choice
    return value == choice


def _bound(value: float | None) -> str:
    # bounds travel as floats; `between 1 and 3` reads right for an int parameter
    return f"{value:g}" if isinstance(value, float) and value.is_integer() else _show(value)


def _range(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"between {_bound(low)} and {_bound(high)}"
    if low is not None:
        return f"at least {_bound(low)}"
    return f"at most {_bound(high)}"
