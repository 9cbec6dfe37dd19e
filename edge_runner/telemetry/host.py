"""The host's CPU, memory and disk, and the processes we care about, through psutil."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from edge_runner.views import HostProcessView, HostView

__all__ = ["HostReader", "HostSample", "ProcessSample"]


@dataclass(frozen=True)
class ProcessSample:
    """One watched process: resident memory and CPU since the previous sample (% of a core)."""

    name: str
    pid: int
    rss: int
    cpu_percent: float

    def to_dict(self) -> HostProcessView:
        """JSON-ready."""
        return {
            "name": self.name,
            "pid": self.pid,
            "rss": self.rss,
            "cpu_percent": self.cpu_percent,
        }


@dataclass(frozen=True)
class HostSample:
    """The machine at one moment."""

    cpu_percent: float
    cpu_count: int
    memory_total: int
    memory_used: int
    memory_percent: float
    disk_path: str
    disk_total: int
    disk_used: int
    processes: tuple[ProcessSample, ...] = ()
    at: float = field(default_factory=time.time)

    def to_dict(self) -> HostView:
        """JSON-ready."""
        return {
            "cpu_percent": self.cpu_percent,
            "cpu_count": self.cpu_count,
            "memory_total": self.memory_total,
            "memory_used": self.memory_used,
            "memory_percent": self.memory_percent,
            "disk_path": self.disk_path,
            "disk_total": self.disk_total,
            "disk_used": self.disk_used,
            "processes": [p.to_dict() for p in self.processes],
            "at": self.at,
        }


class HostReader:
    """Samples the host; CPU figures are over the time since the previous :meth:`read`.

    Args:
        disk: the path whose file system is reported (the data dir).
        watch: name → pid of processes to report, or a callable returning that mapping
            (the runner itself, a child ``ollama serve``).
    """

    def __init__(
        self,
        disk: Path | str = "/",
        watch: dict[str, int] | Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self.disk = str(disk)
        self._watch = watch
        self._lock = threading.Lock()
        self._procs: dict[int, psutil.Process] = {}
        psutil.cpu_percent(None)  # the first call only starts the interval

    def read(self) -> HostSample:
        """The host now."""
        with self._lock:
            memory = psutil.virtual_memory()
            try:
                disk = psutil.disk_usage(_existing(self.disk))
                disk_total, disk_used = int(disk.total), int(disk.used)
            except OSError:
                disk_total = disk_used = 0
            return HostSample(
                cpu_percent=float(psutil.cpu_percent(None)),
                cpu_count=psutil.cpu_count() or 1,
                memory_total=int(memory.total),
                memory_used=int(memory.total - memory.available),
                memory_percent=float(memory.percent),
                disk_path=self.disk,
                disk_total=disk_total,
                disk_used=disk_used,
                processes=self._processes(),
            )

    def _processes(self) -> tuple[ProcessSample, ...]:
        watch = self._watch() if callable(self._watch) else dict(self._watch or {})
        out = []
        for name, pid in watch.items():
            proc = self._procs.get(pid)
            if proc is None:
                try:
                    proc = self._procs[pid] = psutil.Process(pid)
                    proc.cpu_percent(None)  # starts its interval
                except psutil.Error:
                    continue
            try:
                with proc.oneshot():
                    out.append(ProcessSample(name, pid, proc.memory_info().rss, proc.cpu_percent()))
            except psutil.Error:
                self._procs.pop(pid, None)  # gone
        for pid in set(self._procs) - set(watch.values()):
            with contextlib.suppress(KeyError):
                del self._procs[pid]
        return tuple(out)


def _existing(path: str) -> str:
    """``path``, or its nearest parent that exists (the data dir may not exist yet)."""
    current = Path(path)
    while not current.exists() and current != current.parent:
        current = current.parent
    return str(current)
