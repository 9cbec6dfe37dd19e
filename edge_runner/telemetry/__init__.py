"""Telemetry: NVIDIA GPUs (NVML, in :mod:`.gpu` only), the host (psutil), and the sampler."""

from __future__ import annotations

from edge_runner.telemetry.gpu import GpuInfo, GpuProcess, GpuReader, GpuReport
from edge_runner.telemetry.host import HostReader, HostSample
from edge_runner.telemetry.sampler import Sample, Sampler, gpu_summary

__all__ = [
    "GpuInfo",
    "GpuProcess",
    "GpuReader",
    "GpuReport",
    "HostReader",
    "HostSample",
    "Sample",
    "Sampler",
    "gpu_summary",
]
