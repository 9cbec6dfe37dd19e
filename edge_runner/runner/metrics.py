"""The runner's counters and histograms, and their Prometheus text exposition.

Written by hand (the format is a page of text: https://prometheus.io/docs/instrumenting/
exposition_formats/) rather than pulling a client library into every runner. Updated on the
event loop only, so no locks.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable

from edge_runner.telemetry.gpu import GpuReport

__all__ = ["Histogram", "RunnerMetrics"]

#: seconds; queue waits and run times from a millisecond to ten minutes
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 600.0)


class Histogram:
    """Cumulative buckets, a sum and a count, as Prometheus histograms have them."""

    def __init__(self, buckets: Iterable[float] = BUCKETS) -> None:
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Add one observation."""
        if math.isnan(value):
            return
        self.sum += value
        self.count += 1
        index = bisect.bisect_left(self.bounds, value)
        if index < len(self.counts):
            self.counts[index] += 1

    def lines(self, name: str) -> list[str]:
        """The exposition lines of this histogram."""
        out, running = [], 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            running += count
            out.append(f'{name}_bucket{{le="{bound:g}"}} {running}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        out.append(f"{name}_sum {self.sum:.6f}")
        out.append(f"{name}_count {self.count}")
        return out


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class RunnerMetrics:
    """Tasks by status, queue wait and run time, tunnel reconnects; GPUs at render time."""

    def __init__(self) -> None:
        self.tasks: Counter[str] = Counter()
        self.queue_wait = Histogram()
        self.run_time = Histogram()

    def task_finished(self, status: str, queue_wait: float, run_time: float) -> None:
        """Count a finished task (``ok`` or its error code)."""
        self.tasks[status] += 1
        self.queue_wait.observe(queue_wait)
        self.run_time.observe(run_time)

    def render(
        self,
        *,
        inflight: int,
        pool_size: int,
        reconnects: int,
        ready: bool,
        gpus: GpuReport | None,
    ) -> str:
        """The Prometheus text exposition (version 0.0.4)."""
        lines = [
            "# HELP edge_runner_ready 1 while the runner is registered with its control plane.",
            "# TYPE edge_runner_ready gauge",
            f"edge_runner_ready {int(ready)}",
            "# HELP edge_runner_tasks_total Tasks this runner finished, by status.",
            "# TYPE edge_runner_tasks_total counter",
            *(
                f'edge_runner_tasks_total{{status="{_label(status)}"}} {count}'
                for status, count in sorted(self.tasks.items())
            ),
            "# HELP edge_runner_tasks_inflight Tasks running now.",
            "# TYPE edge_runner_tasks_inflight gauge",
            f"edge_runner_tasks_inflight {inflight}",
            "# HELP edge_runner_pool_size Worker slots.",
            "# TYPE edge_runner_pool_size gauge",
            f"edge_runner_pool_size {pool_size}",
            "# HELP edge_runner_task_queue_wait_seconds Time tasks waited at the control plane.",
            "# TYPE edge_runner_task_queue_wait_seconds histogram",
            *self.queue_wait.lines("edge_runner_task_queue_wait_seconds"),
            "# HELP edge_runner_task_run_seconds Time from a task's arrival to its end.",
            "# TYPE edge_runner_task_run_seconds histogram",
            *self.run_time.lines("edge_runner_task_run_seconds"),
            "# HELP edge_runner_tunnel_reconnects_total Tunnels re-established after an outage.",
            "# TYPE edge_runner_tunnel_reconnects_total counter",
            f"edge_runner_tunnel_reconnects_total {reconnects}",
        ]
        if gpus is not None and gpus.gpus:
            lines += [
                "# HELP edge_runner_gpu_utilization_ratio GPU busy time, 0-1 (NVML).",
                "# TYPE edge_runner_gpu_utilization_ratio gauge",
            ]
            for g in gpus.gpus:
                if g.utilization is not None:
                    labels = f'gpu="{g.index}",uuid="{_label(g.uuid)}"'
                    lines.append(
                        f"edge_runner_gpu_utilization_ratio{{{labels}}} {g.utilization / 100:g}"
                    )
            for metric, help_text, attr in (
                ("memory_used_bytes", "GPU memory in use (NVML).", "memory_used"),
                ("memory_total_bytes", "GPU memory in all (NVML).", "memory_total"),
            ):
                lines += [
                    f"# HELP edge_runner_gpu_{metric} {help_text}",
                    f"# TYPE edge_runner_gpu_{metric} gauge",
                ]
                lines += [
                    f'edge_runner_gpu_{metric}{{gpu="{g.index}",uuid="{_label(g.uuid)}"}} '
                    f"{getattr(g, attr)}"
                    for g in gpus.gpus
                ]
        return "\n".join(lines) + "\n"
