"""A runner process's telemetry: GPU placement at start, then the 1 Hz sampler.

Placement runs in :func:`~edge_runner.daemons.build_runner` before the backend is built
(building it imports the model's code, which may initialise CUDA): it reads NVML once, picks
GPUs for a Python model folder (see :mod:`edge_runner.runner.placement`), sets
``CUDA_VISIBLE_DEVICES`` and ``CUDA_DEVICE_ORDER`` in this process's environment, and returns
the GPUs to register. The same reader then feeds the sampler, whose GPU summary rides on every
heartbeat; processes that are ours (this runner, an ``ollama serve`` it started and that
server's model runners) are labelled as such in the per-process GPU memory.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from edge_runner.backends.source import ModelSource
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.runner.placement import place
from edge_runner.telemetry import GpuReader, HostReader, Sampler

__all__ = ["RunnerTelemetry"]

logger = logging.getLogger(__name__)

_CHILDREN_TTL_S = 5.0


class RunnerTelemetry:
    """Placement and the sampler for one runner process."""

    def __init__(self, disk: Path) -> None:
        self._label = f"edge-runner runner (pid {os.getpid()})"
        self._children: dict[str, int] = {}
        self._owner_cache: dict[int, str] = {}
        self._owner_at = 0.0
        self.reader = GpuReader(owners=self._owners)
        self.sampler = Sampler(self.reader, HostReader(disk, watch=self._watched))

    def place(self, source: ModelSource, gpus: Sequence[int] | None = None) -> tuple[pb.Gpu, ...]:
        """Choose the model folder's GPUs (``gpus``: these indices, ``--gpus``) and hide the
        others; returns the GPUs to register.

        Raises:
            PlacementError: nothing here fits what the folder asks for.
        """
        override = list(gpus) if gpus is not None else None
        report = self.sampler.sample_now().gpu
        compute = None
        if source.serves_folder:
            from edge_runner.backends.toolkit import runs_model_py
            from edge_runner.models.config import load_config
            from edge_runner.models.loader import existing_folder

            folder = existing_folder(source.folder)
            config = load_config(folder)
            if runs_model_py(folder, config):  # its code (a toolkit's server places itself)
                compute = config.compute
        if compute is None and override is None:
            # Ollama and upstream servers place their own models: the runner uses no GPU.
            return ()
        from edge_runner.models.compute import ComputeInfo

        placement = place(compute or ComputeInfo(), report, override)
        if placement.visible is not None:
            os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # NVML's order, for the indices
            os.environ["CUDA_VISIBLE_DEVICES"] = placement.visible
        # Said at INFO only when it changes what the model sees.
        log = logger.debug if placement.visible is None else logger.info
        log("GPU placement: %s", placement.reason)
        if report.note:
            log("%s", report.note)
        chosen = placement.gpus if placement.visible is not None else report.gpus
        return tuple(
            pb.Gpu(index=g.index, uuid=g.uuid, name=g.name, memory_total_bytes=g.memory_total)
            for g in chosen
        )

    def label(self, runner_id: str, models: list[str]) -> None:
        """Name this process in the GPU process lists."""
        self._label = f"runner {runner_id} ({', '.join(models)})"
        self._owner_at = 0.0

    def watch_child(self, name: str, pid: int) -> None:
        """Report a child (``ollama serve``) with the host sample and own its GPU memory."""
        self._children[name] = pid
        self._owner_at = 0.0

    def _watched(self) -> dict[str, int]:
        return {"runner": os.getpid(), **self._children}

    def _owners(self) -> dict[int, str]:
        now = time.monotonic()
        if now - self._owner_at < _CHILDREN_TTL_S:
            return self._owner_cache
        owners = {os.getpid(): self._label}
        for name, pid in self._children.items():
            owners[pid] = f"{name} of {self._label}"
            try:
                for child in psutil.Process(pid).children(recursive=True):
                    owners[child.pid] = f"{name} of {self._label}"
            except psutil.Error:
                pass  # gone; the runner notices elsewhere
        self._owner_cache, self._owner_at = owners, now
        return owners
