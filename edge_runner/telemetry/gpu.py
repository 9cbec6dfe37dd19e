"""NVIDIA GPUs through NVML (``pynvml`` from the ``nvidia-ml-py`` package; ``[gpu]`` extra).

The only module that imports ``pynvml``. Every NVML failure degrades to a report with no GPUs
and a ``note`` that says why ("no GPU data: NVIDIA driver/library version mismatch ...") and
never raises: no driver, a mismatched driver, no GPU, a GPU that fell off the bus, MIG mode,
fields a GPU does not support. Static fields (name, UUID, total memory, power limit, MIG mode)
are read once per ``static_ttl`` seconds; the rest on every :meth:`GpuReader.read`.

AMD and Apple GPUs are not read: their machines get CPU-only reports with a note.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from edge_runner.views import GpuInfoView, GpuProcessView, GpuReportView, RunnerGpuView

__all__ = ["GpuInfo", "GpuProcess", "GpuReader", "GpuReport", "accelerator_names", "gpu_share"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: NVML error codes (nvml.h) we explain; the bindings define the same numbers
_NOT_SUPPORTED = 3
_NO_PERMISSION = 4
_DRIVER_NOT_LOADED = 9
_LIBRARY_NOT_FOUND = 12
_GPU_IS_LOST = 15
_LIB_RM_VERSION_MISMATCH = 18
_REASONS = {
    _LIBRARY_NOT_FOUND: "no NVIDIA driver here (libnvidia-ml not found)",
    _DRIVER_NOT_LOADED: "the NVIDIA driver is not loaded (is the kernel module in? `nvidia-smi`)",
    _LIB_RM_VERSION_MISMATCH: (
        "NVIDIA driver/library version mismatch (the driver was upgraded: reboot, or reload "
        "the nvidia kernel modules)"
    ),
    _NO_PERMISSION: "no permission to read the NVIDIA devices (/dev/nvidia*)",
}
_RETRY_INIT_S = 30.0


@dataclass(frozen=True)
class GpuProcess:
    """A process holding GPU memory; ``owner`` names it when it is ours."""

    pid: int
    used_memory: int | None
    owner: str = ""

    def to_dict(self) -> GpuProcessView:
        """JSON-ready."""
        return {"pid": self.pid, "used_memory": self.used_memory, "owner": self.owner}


@dataclass(frozen=True)
class GpuInfo:
    """One GPU, as NVML reported it. A field the GPU does not support is None."""

    index: int
    uuid: str
    name: str
    memory_total: int
    memory_used: int
    memory_free: int
    utilization: int | None = None
    memory_utilization: int | None = None
    temperature: int | None = None
    power_draw: float | None = None
    power_limit: float | None = None
    mig: bool = False
    processes: tuple[GpuProcess, ...] = ()

    def to_dict(self) -> GpuInfoView:
        """JSON-ready (``-o json``, the local API)."""
        return {
            "index": self.index,
            "uuid": self.uuid,
            "name": self.name,
            "memory_total": self.memory_total,
            "memory_used": self.memory_used,
            "memory_free": self.memory_free,
            "utilization": self.utilization,
            "memory_utilization": self.memory_utilization,
            "temperature": self.temperature,
            "power_draw": self.power_draw,
            "power_limit": self.power_limit,
            "mig": self.mig,
            "processes": [p.to_dict() for p in self.processes],
        }


@dataclass(frozen=True)
class GpuReport:
    """All GPUs at one moment, or none with the reason in ``note``."""

    gpus: tuple[GpuInfo, ...] = ()
    driver: str = ""
    note: str = ""
    at: float = field(default_factory=time.time)

    def to_dict(self) -> GpuReportView:
        """JSON-ready."""
        return {
            "gpus": [g.to_dict() for g in self.gpus],
            "driver": self.driver,
            "note": self.note,
            "at": self.at,
        }


def accelerator_names(gpu_name: str) -> tuple[str, ...]:
    """The names ``accelerator_type`` patterns match: ``NVIDIA H200`` → ``NVIDIA-H200``.

    Older cards report ``Tesla T4``; they also match as ``NVIDIA-Tesla-T4``.
    """
    dashed = "-".join(gpu_name.split())
    if dashed.upper().startswith("NVIDIA"):
        return (dashed,)
    return (dashed, f"NVIDIA-{dashed}")


@dataclass
class _Static:
    uuid: str
    name: str
    memory_total: int
    power_limit: float | None
    mig: bool


class GpuReader:
    """Reads NVML; thread-safe; never raises from :meth:`read`.

    Args:
        static_ttl: seconds the slow fields are cached.
        owners: pid → label for processes that are ours (the runner, its Ollama), or a callable
            returning that mapping.
    """

    def __init__(
        self,
        *,
        static_ttl: float = 5.0,
        owners: dict[int, str] | Callable[[], dict[int, str]] | None = None,
    ) -> None:
        self.static_ttl = static_ttl
        self._owners = owners
        self._lock = threading.Lock()
        self._nvml: Any = None
        self._driver = ""
        self._failed_note = ""
        self._failed_at = 0.0
        self._static: dict[int, _Static] = {}
        self._static_at = 0.0

    def read(self) -> GpuReport:
        """The GPUs now, or none with a note."""
        with self._lock:
            try:
                return self._read()
            except Exception as exc:  # a binding bug or an odd driver must not stop the daemon
                logger.debug("reading NVML failed", exc_info=True)
                return GpuReport(note=f"no GPU data: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        """Shut NVML down."""
        with self._lock:
            if self._nvml is not None:
                with contextlib.suppress(Exception):
                    self._nvml.nvmlShutdown()
                self._nvml = None

    # -- internals (under the lock) ---------------------------------------------------------

    def _init(self) -> Any:
        if self._nvml is not None:
            return self._nvml
        if self._failed_note and time.monotonic() - self._failed_at < _RETRY_INIT_S:
            return None
        try:
            import pynvml
        except ImportError:
            return self._fail(_no_bindings_note())
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            return self._fail("no GPU data: " + _REASONS.get(exc.value, f"NVML: {exc}"))
        except OSError as exc:
            return self._fail(f"no GPU data: NVML could not be loaded ({exc})")
        self._nvml = pynvml
        self._failed_note = ""
        self._driver = _text(_call(pynvml, pynvml.nvmlSystemGetDriverVersion) or "")
        return pynvml

    def _fail(self, note: str) -> None:
        if note != self._failed_note:
            logger.debug("%s", note)  # callers show the note where a person reads it
        self._failed_note = note
        self._failed_at = time.monotonic()
        return None

    def _read(self) -> GpuReport:
        nvml = self._init()
        if nvml is None:
            return GpuReport(note=self._failed_note)
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as exc:
            return GpuReport(driver=self._driver, note=f"no GPU data: NVML: {exc}")
        if count == 0:
            return GpuReport(driver=self._driver, note="no GPU data: no NVIDIA GPU found")
        if time.monotonic() - self._static_at > self.static_ttl:
            self._static = {}
            self._static_at = time.monotonic()
        owners = self._owners() if callable(self._owners) else dict(self._owners or {})
        gpus, notes = [], []
        for index in range(count):
            try:
                gpus.append(self._gpu(nvml, index, owners))
            except nvml.NVMLError as exc:
                why = "it fell off the bus" if exc.value == _GPU_IS_LOST else f"NVML: {exc}"
                notes.append(f"GPU {index} cannot be read: {why}")
        mig = [g.index for g in gpus if g.mig]
        if mig:
            notes.append(
                f"MIG is on for GPU {', '.join(map(str, mig))}: utilisation and processes are "
                "per instance, which NVML does not give here"
            )
        return GpuReport(tuple(gpus), self._driver, "; ".join(notes))

    def _gpu(self, nvml: Any, index: int, owners: dict[int, str]) -> GpuInfo:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        static = self._static.get(index)
        if static is None:
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            limit = _call(nvml, nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
            mode = _call(nvml, nvml.nvmlDeviceGetMigMode, handle)
            static = self._static[index] = _Static(
                uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                name=_text(nvml.nvmlDeviceGetName(handle)),
                memory_total=int(memory.total),
                power_limit=None if limit is None else limit / 1000,
                mig=bool(mode and mode[0] == 1),
            )
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        rates = None if static.mig else _call(nvml, nvml.nvmlDeviceGetUtilizationRates, handle)
        power = _call(nvml, nvml.nvmlDeviceGetPowerUsage, handle)
        temperature = _call(nvml, nvml.nvmlDeviceGetTemperature, handle, 0)  # NVML_TEMPERATURE_GPU
        processes: tuple[GpuProcess, ...] = ()
        if not static.mig:
            running = _call(nvml, nvml.nvmlDeviceGetComputeRunningProcesses, handle) or []
            processes = tuple(
                GpuProcess(
                    int(p.pid),
                    None if p.usedGpuMemory is None else int(p.usedGpuMemory),
                    owners.get(int(p.pid), ""),
                )
                for p in running
            )
        return GpuInfo(
            index=index,
            uuid=static.uuid,
            name=static.name,
            memory_total=static.memory_total,
            memory_used=int(memory.used),
            memory_free=int(memory.free),
            utilization=None if rates is None else int(rates.gpu),
            memory_utilization=None if rates is None else int(rates.memory),
            temperature=None if temperature is None else int(temperature),
            power_draw=None if power is None else power / 1000,
            power_limit=static.power_limit,
            mig=static.mig,
            processes=processes,
        )


def _call(nvml: Any, fn: Callable[..., _T], *args: object) -> _T | None:
    """``fn(*args)``, or None when the GPU does not support it (or we may not ask)."""
    try:
        return fn(*args)
    except nvml.NVMLError as exc:
        if exc.value in (_NOT_SUPPORTED, _NO_PERMISSION):
            return None
        raise


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _no_bindings_note() -> str:
    if sys.platform == "darwin":
        return "no GPU data: Apple GPUs are not read (CPU only)"
    if os.path.exists("/dev/kfd"):
        return "no GPU data: AMD GPUs are not read yet (CPU only)"
    return (
        "no GPU data: the NVML bindings are not installed "
        "(pip install 'edge-runner[gpu]' for NVIDIA GPUs)"
    )


def gpu_share(gpus: Sequence[RunnerGpuView]) -> tuple[int, int, float | None]:
    """Of a runner's machine's GPUs (``GET /v2/runners``): how many its model was given, how
    many there are, and the given ones' mean utilisation (None when none reports it)."""
    mine = [g for g in gpus if g.get("assigned")]
    utils = [u for g in mine if (u := g.get("utilization")) is not None]
    return len(mine), len(gpus), (sum(utils) / len(utils) if utils else None)
