"""FAKE: recorded NVML answers, served through the surface of the ``pynvml`` module we call.

NVIDIA hardware and drivers cannot be on CI machines, so telemetry and placement are tested
against answers recorded from real machines, kept as JSON in ``tests/fakes/nvml/``:

- ``one_gpu.json``      one H200, a process of ours on it
- ``eight_gpus.json``   an 8× A100 80GB box, some busy
- ``mig.json``          an A100 in MIG mode (utilisation and processes not supported)
- ``no_gpu.json``       the driver loads but there is no GPU
- ``driver_mismatch.json``  nvmlInit fails with NVML_ERROR_LIB_RM_VERSION_MISMATCH
- ``gpu_lost.json``     two GPUs, one fallen off the bus (NVML_ERROR_GPU_IS_LOST)

In a test: ``monkeypatch.setitem(sys.modules, "pynvml", FakeNvml.load("one_gpu"))``. A child
process gets the same with ``PYTHONPATH=tests/fakes/nvml_shim`` and ``FAKE_NVML=one_gpu``.
Values the recording marks ``"not_supported"`` raise NVMLError(NVML_ERROR_NOT_SUPPORTED), as a
real GPU does. Field changes the tests make (``fake.gpus[0]["utilization"] = ...``) show in the
next read.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

__all__ = ["FIXTURES", "FakeNvml", "NVMLError"]

FIXTURES = Path(__file__).resolve().parent / "nvml"

NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_GPU_IS_LOST = 15


class NVMLError(Exception):
    """As pynvml's: the NVML return code in ``value``."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return f"NVML error {self.value}"


class FakeNvml:
    """A stand-in for the ``pynvml`` module, answering from one recording."""

    NVMLError = NVMLError
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, recording: dict[str, Any]) -> None:
        self.recording = recording
        self.gpus: list[dict[str, Any]] = recording.get("gpus", [])
        self.initialized = False
        self.calls: list[str] = []

    @classmethod
    def load(cls, name: str) -> FakeNvml:
        """The recording ``tests/fakes/nvml/NAME.json``."""
        return cls(json.loads((FIXTURES / f"{name}.json").read_text()))

    # -- the pynvml surface -----------------------------------------------------------------

    def nvmlInit(self) -> None:
        self.calls.append("nvmlInit")
        error = self.recording.get("init_error")
        if error is not None:
            raise NVMLError(int(error))
        self.initialized = True

    def nvmlShutdown(self) -> None:
        self.initialized = False

    def nvmlSystemGetDriverVersion(self) -> str:
        self._check()
        return str(self.recording.get("driver", ""))

    def nvmlDeviceGetCount(self) -> int:
        self._check()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._check()
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return str(self._field(handle, "name")).encode()  # old bindings answer bytes

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return str(self._field(handle, "uuid"))

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(**self._field(handle, "memory"))

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(**self._field(handle, "utilization"))

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        del sensor
        return int(self._field(handle, "temperature"))

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return int(self._field(handle, "power_mw"))

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: int) -> int:
        return int(self._field(handle, "power_limit_mw"))

    def nvmlDeviceGetMigMode(self, handle: int) -> list[int]:
        return list(self._field(handle, "mig_mode"))

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        return [
            SimpleNamespace(pid=p["pid"], usedGpuMemory=p.get("used"))
            for p in self._field(handle, "processes")
        ]

    # -- internals --------------------------------------------------------------------------

    def _check(self) -> None:
        if not self.initialized:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _field(self, handle: int, name: str) -> Any:
        self._check()
        gpu = self.gpus[handle]
        if gpu.get("lost"):
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        value = gpu.get(name, "not_supported")
        if value == "not_supported":
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return value
