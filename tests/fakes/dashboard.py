"""FAKE: a dashboard data source with pinned data, for the dashboard's edge cases and snapshots.

The dashboard's pilot tests run against the real control plane and runner (tests/tui/
test_live.py); this stands in only where the real thing cannot give a stable or rare answer:
a pinned clock and ids for snapshots, a control plane that is down, eight GPUs on a machine
with none. Its records have the shapes the real APIs return (GPU dicts come from
:class:`~edge_runner.telemetry.GpuInfo` itself).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from edge_runner.telemetry.gpu import GpuInfo, GpuProcess
from edge_runner_tui.data import ControlView, GpuView, LocalView

__all__ = ["NOW", "FakeSource", "gpus"]

#: the pinned clock: 2026-06-01 12:00:00 UTC
NOW = 1_780_315_200.0
GIB = 2**30


#: utilisation swings of successive samples, so history charts have a shape
WAVE = (0, -20, -45, -30, -5, -60, -15, 0, -35, -10)


def gpus(count: int, sample: int = 0) -> list[dict[str, Any]]:
    """``count`` H100s, the even ones busy with a process each; ``sample`` moves the load."""
    out = []
    swing = WAVE[sample % len(WAVE)]
    for i in range(count):
        busy = i % 2 == 0
        used = (40 + i) * GIB if busy else GIB // 2
        info = GpuInfo(
            index=i,
            uuid=f"GPU-{i:08d}-0000-0000-0000-000000000000",
            name="NVIDIA H100 80GB HBM3",
            memory_total=80 * GIB,
            memory_used=used,
            memory_free=80 * GIB - used,
            utilization=90 - i + swing if busy else 0,
            memory_utilization=30 if busy else 0,
            temperature=60 + i if busy else 31,
            power_draw=550.0 + i + 4 * swing if busy else 70.0,
            power_limit=700.0,
            processes=(GpuProcess(4100 + i, used - GIB // 2, "edge-runner"),) if busy else (),
        )
        out.append(info.to_dict())
    return out


HOST = {
    "cpu_percent": 23.0,
    "cpu_count": 16,
    "memory_total": 128 * GIB,
    "memory_used": 41 * GIB,
    "memory_percent": 32.0,
    "disk_path": "/var/lib/edge-runner",
    "disk_total": 1000 * GIB,
    "disk_used": 200 * GIB,
    "processes": [
        {"name": "runner", "pid": 4100, "rss": 3 * GIB, "cpu_percent": 12.0},
        {"name": "ollama", "pid": 4200, "rss": 9 * GIB, "cpu_percent": 4.0},
    ],
    "at": NOW,
}


def _runner(i: int, status: str = "connected") -> dict[str, Any]:
    return {
        "id": f"runner-{i:012x}",
        "hostname": f"lab-{i}",
        "status": status,
        "nodepool": "default",
        "models": ["llama3", "hello"] if i == 1 else ["hello"],
        "busy": i % 3,
        "pool_size": 4,
        "gpus": [g | {"assigned": g["index"] < 2} for g in gpus(8 if i == 1 else 0)],
        "last_seen": NOW - 3 * i,
        "version": "0.1.0",
        "protocol": "1.1",
    }


def _task(i: int, status: str) -> dict[str, Any]:
    done = status not in ("queued", "running")
    stream_in = i % 3 == 0  # a stream-in call: its input items and output chunks so far
    doc = {
        "task_id": f"{i:08x}" + "c0ffee" * 4,
        "model": "llama3" if i % 2 else "hello",
        "method": "transcribe" if stream_in else "chat" if i % 2 else "predict",
        "status": status,
        "code": "MODEL_ERROR" if status == "failed" else "",
        "runner_id": "runner-000000000001",
        "created_at": NOW - 10 * i,
        "queue_wait_s": 0.002 * i,
        "run_time_s": 0.25 * i if done else None,
        "age_s": 10.0 * i,
        "tokens_per_s": 41.5 if i % 2 and done and not stream_in else None,
    }
    if stream_in:
        doc.update(inputs=40 * i, outputs=40 * i - (0 if done else 3))
    return doc


def _log(i: int) -> dict[str, Any]:
    level = ("INFO", "INFO", "WARNING", "ERROR", "DEBUG")[i % 5]
    return {
        "time": NOW - 60 + i,
        "level": level,
        "logger": "edge_runner.runner.daemon",
        "message": f"record {i}: {'tunnel reconnecting' if level == 'WARNING' else 'ok'}",
        "task_id": "",
    }


def _replica(i: int, runners: int) -> dict[str, Any]:
    """Replica ``i`` of a scaled control plane; the second one's bus does not answer."""
    return {
        "id": f"cp-{i}",
        "api_base": f"http://127.0.0.1:{7060 + 10 * i}",
        "tunnel": f"127.0.0.1:{7061 + 10 * i}",
        "runners": runners if i == 1 else 0,
        "tasks": 2 * i,
        "registry": "ok",
        "bus": "ok" if i == 1 else "nats: no servers available",
        "started_at": NOW - 7200,
        "last_seen": NOW,
        "self": i == 1,
    }


@dataclass
class FakeSource:
    """Pinned answers; ``control_error``/``local_error`` simulate outages, ``gpu_count`` the GPUs.

    Actions are recorded in ``calls`` so tests can see what the app asked for.
    """

    gpu_count: int = 1
    runners: int = 3
    replicas: int = 2
    tasks: int = 6
    control_error: str = ""
    local_error: str = ""
    gpu_note: str = ""
    logs: list[dict[str, Any]] = field(default_factory=lambda: [_log(i) for i in range(20)])
    calls: list[tuple[str, ...]] = field(default_factory=list)
    fail_actions: str = ""
    active: str = "lab"
    samples: int = 0
    reads: int = 0
    log_error: str = ""

    def now(self) -> float:
        """The pinned clock, two seconds on per table read (the real refresh), so rates exist."""
        return NOW + 2.0 * self.reads

    def control(self) -> ControlView:
        if self.control_error:
            return ControlView(self.active, "http://127.0.0.1:7070", error=self.control_error)
        self.reads += 1
        served = 120 + sum(WAVE[k % len(WAVE)] + 60 for k in range(self.reads))
        statuses = ("running", "queued", "done", "failed", "cancelled", "done")
        return ControlView(
            self.active,
            "http://127.0.0.1:7070",
            models=[
                {"id": "hello", "status": "online", "requests": served, "errors": self.reads // 3},
                {"id": "llama3", "status": "loading", "progress": 0.4, "requests": 7, "errors": 0},
            ]
            if self.runners
            else [],
            runners=[_runner(i + 1) for i in range(self.runners)],
            tasks=[_task(i + 1, statuses[i % len(statuses)]) for i in range(self.tasks)],
            replicas=[_replica(i + 1, self.runners) for i in range(self.replicas)],
        )

    def local(self) -> LocalView:
        if self.local_error:
            return LocalView(error=self.local_error)
        return LocalView(
            {
                "runner_id": "runner-000000000001",
                "pid": 4100,
                "version": "0.1.0",
                "tunnel": {
                    "state": "connected",
                    "connected_since": NOW - 3600,
                    "reconnects": 2,
                    "last_error": "control plane closed the stream (restart)",
                },
                "busy": 1,
                "pool_size": 4,
            }
        )

    def gpus(self) -> GpuView:
        self.samples += 1
        if not self.gpu_count:
            return GpuView([], self.gpu_note or "no GPU data: no NVIDIA driver here", HOST)
        return GpuView(gpus(self.gpu_count, self.samples), self.gpu_note, HOST)

    def contexts(self) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "api_base": base,
                "user_id": "local",
                "token": "er_p…ab12",
                "active": name == self.active,
                "reachable": name == "lab" and not self.control_error,
            }
            for name, base in (("lab", "http://127.0.0.1:7070"), ("edge", "http://127.0.0.1:7071"))
        ]

    def use_context(self, name: str) -> None:
        self.calls.append(("use_context", name))
        if name not in ("lab", "edge"):
            raise ValueError(f"no context {name!r}")
        self.active = name

    def create_context(self, name: str, api_base: str, user_id: str, token: str) -> None:
        self.calls.append(("create_context", name, api_base, user_id, token))

    def drain(self, runner_id: str) -> str:
        self.calls.append(("drain", runner_id))
        if self.fail_actions:
            raise RuntimeError(self.fail_actions)
        return f"runner {runner_id} is draining"

    def cancel(self, task_id: str) -> str:
        self.calls.append(("cancel", task_id))
        if self.fail_actions:
            raise RuntimeError(self.fail_actions)
        return f"task {task_id[:12]} cancelled"

    def follow_logs(self, runner_id: str | None, stop: threading.Event) -> Iterator[dict[str, Any]]:
        self.calls.append(("follow_logs", runner_id or ""))
        if self.log_error:
            raise ConnectionError(self.log_error)
        yield from self.logs
        stop.wait()
