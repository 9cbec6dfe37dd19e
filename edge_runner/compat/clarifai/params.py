"""``clarifai.runners.utils.data_utils.Param``: a parameter's default and its metadata.

A Clarifai folder writes ``temperature: float = Param(default=0.7, min_value=0, max_value=2)``.
The runner fills every argument before a call, so the ``Param`` object itself reaches a method
only when the folder's own code calls it directly (its ``test()``): it then behaves like its
default, as Clarifai's does (``text + Param(default="!")`` is ``text + "!"``).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from edge_runner.models.param_rules import ParamInfo

__all__ = ["Param", "ParamInfo"]


class Param:
    """A default value with metadata; behaves like its default in expressions.

    Args:
        default: the value used when a request does not pass the argument.
        description: a sentence for people and tool schemas.
        min_value: the smallest value allowed.
        max_value: the largest value allowed.
        choices: the values allowed.
        is_param: Clarifai's flag for an inference setting.
    """

    def __init__(
        self,
        default: Any,
        description: str | None = None,
        min_value: float | None = None,
        max_value: float | None = None,
        choices: Sequence[object] | None = None,
        is_param: bool = True,
    ) -> None:
        self.default = default
        self.info = ParamInfo(
            description=description,
            choices=tuple(choices) if choices is not None else None,
            min_value=min_value,
            max_value=max_value,
            is_param=is_param,
        )

    @property
    def description(self) -> str | None:
        """The parameter's description."""
        return self.info.description

    @property
    def choices(self) -> tuple[object, ...] | None:
        """The values allowed, when listed."""
        return self.info.choices

    @property
    def min_value(self) -> float | None:
        """The smallest value allowed."""
        return self.info.min_value

    @property
    def max_value(self) -> float | None:
        """The largest value allowed."""
        return self.info.max_value

    @property
    def is_param(self) -> bool:
        """Clarifai's flag for an inference setting."""
        return self.info.is_param

    def __repr__(self) -> str:
        return f"Param(default={self.default!r})"

    def __getattr__(self, name: str) -> Any:
        # only reached for names Param lacks: the default's own (str.upper, list.append)
        if name == "default":  # not set yet (copy/pickle before __init__)
            raise AttributeError(name)
        return getattr(self.default, name)

    def __str__(self) -> str:
        return str(self.default)

    def __format__(self, spec: str) -> str:
        return format(self.default, spec)

    def __int__(self) -> int:
        return int(self.default)

    def __float__(self) -> float:
        return float(self.default)

    def __index__(self) -> int:
        return operator.index(self.default)

    def __bool__(self) -> bool:
        return bool(self.default)

    def __len__(self) -> int:
        return len(self.default)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.default)

    def __contains__(self, item: object) -> bool:
        return item in self.default

    def __getitem__(self, key: object) -> Any:
        return self.default[key]

    def __eq__(self, other: object) -> bool:
        return bool(self.default == other)

    def __hash__(self) -> int:
        return hash(self.default)

    def __lt__(self, other: object) -> bool:
        return bool(self.default < other)

    def __le__(self, other: object) -> bool:
        return bool(self.default <= other)

    def __gt__(self, other: object) -> bool:
        return bool(self.default > other)

    def __ge__(self, other: object) -> bool:
        return bool(self.default >= other)

    def __round__(self, ndigits: int | None = None) -> Any:
        return round(self.default, ndigits)

    def __neg__(self) -> Any:
        return -self.default


def _binary(op: Callable[[Any, Any], object], reflected: bool) -> Callable[[Param, object], Any]:
    if reflected:
        return lambda self, other: op(other, self.default)
    return lambda self, other: op(self.default, other)


# arithmetic both ways: `text + Param(default="!")` and `Param(default=2) * n`
for _name, _op in {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "truediv": operator.truediv,
    "floordiv": operator.floordiv,
    "mod": operator.mod,
    "pow": operator.pow,
}.items():
    setattr(Param, f"__{_name}__", _binary(_op, reflected=False))
    setattr(Param, f"__r{_name}__", _binary(_op, reflected=True))
