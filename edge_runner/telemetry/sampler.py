"""A daemon thread that samples GPUs and the host once a second, off the event loop.

NVML and psutil calls block (briefly, and sometimes not briefly: a GPU falling off the bus),
so they never run on the runner's event loop. The sampler keeps the latest :class:`Sample`
for whoever asks (heartbeats, the local API) and hands each new one to its listeners. A
reading that fails is logged once and the thread carries on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_runner.telemetry.gpu import GpuReader, GpuReport
from edge_runner.telemetry.host import HostReader, HostSample
from edge_runner.views import GpuSummaryView, TelemetryView

__all__ = ["Sample", "Sampler", "gpu_summary"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """GPUs and host at one moment."""

    gpu: GpuReport
    host: HostSample | None

    def to_dict(self) -> TelemetryView:
        """JSON-ready."""
        return {"gpu": self.gpu.to_dict(), "host": self.host.to_dict() if self.host else None}


def gpu_summary(report: GpuReport) -> GpuSummaryView:
    """Count, mean utilisation and memory in use, for one line of a table or a heartbeat."""
    gpus = report.gpus
    utils = [g.utilization for g in gpus if g.utilization is not None]
    return {
        "count": len(gpus),
        "utilization": round(sum(utils) / len(utils)) if utils else None,
        "memory_used": sum(g.memory_used for g in gpus),
        "memory_total": sum(g.memory_total for g in gpus),
        "note": report.note,
    }


class Sampler:
    """Samples every ``interval`` seconds in a daemon thread until :meth:`stop`."""

    def __init__(
        self, gpu: GpuReader, host: HostReader | None = None, *, interval: float = 1.0
    ) -> None:
        self.gpu = gpu
        self.host = host
        self.interval = interval
        self._latest = Sample(GpuReport(note="no GPU data yet"), None)
        self._listeners: list[Callable[[Sample], None]] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="telemetry", daemon=True)
        self._failing = False

    @property
    def latest(self) -> Sample:
        """The most recent sample."""
        return self._latest

    def add_listener(self, listener: Callable[[Sample], None]) -> None:
        """Call ``listener`` (in the sampler's thread) with every new sample."""
        self._listeners.append(listener)

    def sample_now(self) -> Sample:
        """Take a sample in the calling thread (before the thread starts, say)."""
        sample = Sample(self.gpu.read(), self.host.read() if self.host else None)
        self._latest = sample
        return sample

    def start(self) -> None:
        """Start sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and shut NVML down."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self.gpu.close()

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stopped.is_set():
            try:
                sample = self.sample_now()
                if self._failing:
                    logger.info("telemetry works again")
                    self._failing = False
            except Exception:  # psutil on an odd system; never let it end the thread
                if not self._failing:
                    logger.warning("telemetry sampling failed; retrying", exc_info=True)
                self._failing = True
            else:
                for listener in list(self._listeners):
                    try:
                        listener(sample)
                    except Exception:
                        logger.exception("a telemetry listener failed")
            next_at += self.interval
            self._stopped.wait(max(0.0, next_at - time.monotonic()))
