"""``inference_compute_info`` of a model folder's ``config.yaml``: what the model needs to run.

Clarifai's keys and Kubernetes quantities::

    inference_compute_info:
      cpu_limit: "2"                   # cores: 2, "2", "500m"
      cpu_memory: 8Gi                  # bytes: 8Gi, 1500Mi, 2G, 1e9, 1073741824
      num_accelerators: 1              # GPUs; 0 hides every GPU from the model
      accelerator_type: ["NVIDIA-*"]   # patterns matched against the GPU's name, dashed
      accelerator_memory: 24Gi         # free memory each chosen GPU must have

A bad value is a :class:`~edge_runner.errors.ModelFolderError` naming the field and the file.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from edge_runner.errors import ModelFolderError

__all__ = ["ComputeInfo", "parse_compute_info", "parse_quantity"]

logger = logging.getLogger(__name__)

_SUFFIXES: dict[str, int | Decimal] = {
    "": 1,
    "m": Decimal("0.001"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_QUANTITY = re.compile(r"([+]?[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|[+]?\.[0-9]+)([A-Za-z]*)")
_KEYS = {"cpu_limit", "cpu_memory", "cpu_requests", "cpu_memory_requests", "num_accelerators",
         "accelerator_type", "accelerator_memory"}  # fmt: skip


@dataclass(frozen=True)
class ComputeInfo:
    """What a model asked for; None where ``config.yaml`` says nothing."""

    num_accelerators: int | None = None
    accelerator_types: tuple[str, ...] = ()
    accelerator_memory: int | None = None
    cpu_limit: float | None = None
    cpu_memory: int | None = None


def parse_quantity(value: Any, field: str, where: Path | str = "config.yaml") -> Decimal:
    """A Kubernetes quantity (``24Gi``, ``1500Mi``, ``500m``, ``2``) as a number.

    Raises:
        ModelFolderError: not a quantity; the message names ``field``.
    """
    if isinstance(value, bool):
        raise _bad(where, field, value)
    if isinstance(value, int | float):
        number = Decimal(str(value))
    elif isinstance(value, str) and (match := _QUANTITY.fullmatch(value.strip())):
        digits, suffix = match.groups()
        if suffix not in _SUFFIXES:
            raise _bad(where, field, value)
        try:
            number = Decimal(digits) * Decimal(_SUFFIXES[suffix])
        except InvalidOperation as exc:
            raise _bad(where, field, value) from exc
    else:
        raise _bad(where, field, value)
    if number < 0:
        raise _bad(where, field, value)
    return number


def _bad(where: Path | str, field: str, value: Any) -> ModelFolderError:
    return ModelFolderError(
        f"{where}: inference_compute_info.{field} is {value!r}, not a quantity; write it as "
        "Kubernetes does: 24Gi, 1500Mi, 2G for memory, 2 or 500m for CPUs"
    )


def parse_compute_info(raw: Any, where: Path | str = "config.yaml") -> ComputeInfo:
    """Check ``inference_compute_info`` and turn it into a :class:`ComputeInfo`.

    Raises:
        ModelFolderError: a field is of the wrong kind or not a quantity (named with the file).
    """
    if raw is None:
        return ComputeInfo()
    if not isinstance(raw, dict):
        raise ModelFolderError(f"{where}: inference_compute_info must be a mapping")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:  # another tool's key, or a typo: say so, but do not refuse the folder
        logger.warning(
            "%s: unknown inference_compute_info key(s) %s (known: %s); ignored",
            where,
            ", ".join(unknown),
            ", ".join(sorted(_KEYS)),
        )
    count = raw.get("num_accelerators")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise ModelFolderError(
            f"{where}: inference_compute_info.num_accelerators must be a whole number >= 0, "
            f"got {count!r}"
        )
    types = raw.get("accelerator_type") or ()
    if isinstance(types, str):
        types = (types,)
    if not isinstance(types, list | tuple) or not all(isinstance(t, str) and t for t in types):
        raise ModelFolderError(
            f"{where}: inference_compute_info.accelerator_type must be a list of names or "
            'patterns, e.g. ["NVIDIA-*"] or ["NVIDIA-A10G", "NVIDIA-L4"]'
        )

    def quantity(field: str) -> Decimal | None:
        value = raw.get(field)
        return None if value is None else parse_quantity(value, field, where)

    memory, cpu, cpu_memory = (
        quantity("accelerator_memory"),
        quantity("cpu_limit"),
        quantity("cpu_memory"),
    )
    return ComputeInfo(
        num_accelerators=count,
        accelerator_types=tuple(types),
        accelerator_memory=None if memory is None else int(memory),
        cpu_limit=None if cpu is None else float(cpu),
        cpu_memory=None if cpu_memory is None else int(cpu_memory),
    )
