"""GPU placement for a model folder: which GPUs its runner process may see.

Pure logic over a :class:`~edge_runner.telemetry.GpuReport` and the folder's
:class:`~edge_runner.models.compute.ComputeInfo`; the runner applies the answer by setting
``CUDA_VISIBLE_DEVICES`` (by UUID, with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``) before anything in the
process initialises CUDA — one model folder per runner process is what makes that work.

- ``--gpus 0,1`` (``override``) wins; ``--gpus none`` hides every GPU.
- ``num_accelerators: 0`` hides every GPU; no ``num_accelerators`` leaves the environment as it
  is (the model sees what the runner sees).
- ``num_accelerators: N`` takes the N GPUs with the most free memory among those whose name
  matches ``accelerator_type`` (``NVIDIA-*``; case-insensitive) and that have
  ``accelerator_memory`` free. Fewer than N: :class:`PlacementError` saying what was asked and
  what exists.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from edge_runner.errors import ConfigError
from edge_runner.models.compute import ComputeInfo
from edge_runner.telemetry.gpu import GpuInfo, GpuReport, accelerator_names

__all__ = ["Placement", "PlacementError", "parse_gpus_option", "place"]

#: the value of ``CUDA_VISIBLE_DEVICES`` that hides every GPU
HIDE_ALL = ""


class PlacementError(ConfigError):
    """No set of GPUs here satisfies the model folder."""


@dataclass(frozen=True)
class Placement:
    """The GPUs a model gets.

    Attributes:
        gpus: the chosen GPUs (empty: none, or not restricted).
        visible: the ``CUDA_VISIBLE_DEVICES`` value to set, or None to leave it alone.
        reason: one line for the log.
    """

    gpus: tuple[GpuInfo, ...]
    visible: str | None
    reason: str


def parse_gpus_option(value: str | None) -> list[int] | None:
    """``--gpus``: ``0,1`` → [0, 1]; ``none`` → []; absent → None.

    Raises:
        ConfigError: not a comma-separated list of GPU indices.
    """
    if value is None:
        return None
    if value.strip().lower() in ("none", ""):
        return []
    try:
        indices = [int(part) for part in value.split(",") if part.strip()]
    except ValueError as exc:
        raise ConfigError(
            f"--gpus {value!r}: give GPU indices like 0,1 (see `edge-runner gpus`) or none"
        ) from exc
    if len(set(indices)) != len(indices) or any(i < 0 for i in indices):
        raise ConfigError(f"--gpus {value!r}: indices must be distinct and >= 0")
    return indices


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def _describe(gpus: tuple[GpuInfo, ...]) -> str:
    return "; ".join(
        f"GPU {g.index} {g.name} ({_size(g.memory_free)} free of {_size(g.memory_total)})"
        for g in gpus
    )


def _visible(gpus: list[GpuInfo] | tuple[GpuInfo, ...]) -> str:
    return ",".join(g.uuid for g in gpus)


def place(info: ComputeInfo, report: GpuReport, override: list[int] | None = None) -> Placement:
    """Choose the GPUs for a model (see the module docstring).

    Raises:
        PlacementError: nothing here fits; the message says what was asked and what exists.
    """
    by_index = {g.index: g for g in report.gpus}
    if override is not None:
        if not override:
            return Placement((), HIDE_ALL, "--gpus none: no GPU is visible to the model")
        missing = [i for i in override if i not in by_index]
        if missing:
            have = _describe(report.gpus) or report.note or "no GPU"
            raise PlacementError(
                f"--gpus asks for GPU {', '.join(map(str, missing))}, which this machine does "
                f"not have; it has: {have}"
            )
        chosen = tuple(by_index[i] for i in override)
        return Placement(chosen, _visible(chosen), f"--gpus {','.join(map(str, override))}")
    wanted = info.num_accelerators
    if wanted is None:
        return Placement((), None, "the model folder asks for no particular GPUs")
    if wanted == 0:
        return Placement((), HIDE_ALL, "num_accelerators: 0 hides every GPU from the model")
    fitting = [
        g
        for g in report.gpus
        if _type_matches(g, info.accelerator_types)
        and (info.accelerator_memory is None or g.memory_free >= info.accelerator_memory)
    ]
    fitting.sort(key=lambda g: (-g.memory_free, g.index))
    if len(fitting) < wanted:
        raise PlacementError(_not_enough(info, report, len(fitting)))
    chosen = tuple(sorted(fitting[:wanted], key=lambda g: g.index))
    return Placement(
        chosen,
        _visible(chosen),
        f"placed on {_describe(chosen)} (most free memory first)",
    )


def _type_matches(gpu: GpuInfo, patterns: tuple[str, ...]) -> bool:
    if not patterns:
        return True
    names = [n.lower() for n in accelerator_names(gpu.name)]
    return any(fnmatch.fnmatchcase(n, p.lower()) for p in patterns for n in names)


def _not_enough(info: ComputeInfo, report: GpuReport, fitting: int) -> str:
    asked = f"{info.num_accelerators} GPU{'s' if info.num_accelerators != 1 else ''}"
    if info.accelerator_types:
        asked += f" of type {' or '.join(info.accelerator_types)}"
    if info.accelerator_memory is not None:
        asked += f" with {_size(info.accelerator_memory)} free each"
    if not report.gpus:
        have = report.note or "no GPU"
    else:
        have = _describe(report.gpus) + f" ({fitting} fit)"
    return (
        f"the model folder asks for {asked}; this machine has: {have}. Free a GPU, change "
        "inference_compute_info in config.yaml, or pick GPUs with --gpus"
    )
