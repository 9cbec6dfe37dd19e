"""What a runner shows of itself: its snapshot (the local API's ``/v1/snapshot``), the events
its watchers get, its Prometheus metrics, and its log records forwarded to the control plane.

Read-only views of a :class:`~edge_runner.runner.daemon.Runner`; only the event publishing and
the metrics counters change anything, and only what is shown.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING

from edge_runner._version import __version__
from edge_runner.errors import ErrorCode
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import SessionState
from edge_runner.protocol.records import TaskKey
from edge_runner.runner.connection import Connection
from edge_runner.runner.events import EventHub
from edge_runner.runner.ledger import HeldTask, Outcome, ResultOut
from edge_runner.runner.metrics import RunnerMetrics
from edge_runner.telemetry.sampler import Sampler
from edge_runner.views import LocalModelView, LocalTaskView, RunnerSnapshot

if TYPE_CHECKING:
    from edge_runner.runner.daemon import Runner

__all__ = [
    "forward_logs",
    "gpu_samples",
    "metrics_text",
    "publish_status",
    "snapshot",
    "task_finished",
    "task_started",
    "tunnel_state",
]

#: log records go to the control plane at most this often, this many to a frame
_LOG_BATCH_S = 0.5
_LOG_BATCH_MAX = 200


def tunnel_state(stop_level: int, connection: Connection) -> str:
    """``connected``, ``connecting``, ``reconnecting``, ``draining`` or ``stopping``."""
    if stop_level:
        return "draining" if connection.connected else "stopping"
    if connection.connected:
        return "connected"
    return "reconnecting" if connection.reconnects or connection.outage_since else "connecting"


def snapshot(runner: Runner) -> RunnerSnapshot:
    """Everything a person asks about a runner, as JSON."""
    now = time.monotonic()
    statuses = {s.model_id: s for s in runner.backend.statuses()}
    models: list[LocalModelView] = []
    for spec in runner.backend.specs():
        status = statuses.get(spec.model_id)
        state = "ready" if status is None else pb.ModelState.Name(status.state).lower()
        models.append(
            {
                "id": spec.model_id,
                "backend": spec.backend,
                "status": state,
                "message": status.message if status else "",
                "progress": round(status.progress, 4) if status else 0.0,
            }
        )
    tasks: list[LocalTaskView] = []
    for key, held in runner.ledger.items():
        if held.unwanted:
            continue
        task: LocalTaskView = {
            "task_id": key[0],
            "attempt": key[1],
            "model": held.model_id,
            "method": held.method,
            "age_s": round(now - held.started, 3),
            "queue_wait_s": round(held.queue_wait, 6),
            "finished": held.finished,
        }
        if held.input_stream:
            task["inputs"] = held.inputs
            task["outputs"] = held.next_seq
        tasks.append(task)
    connection = runner.connection
    sample = runner.sampler.latest.to_dict() if runner.sampler is not None else None
    return {
        "runner_id": runner.runner_id,
        "pid": os.getpid(),
        "version": __version__,
        "api_base": runner.settings.api_base,
        "transport": runner.settings.transport.value,
        "ready": runner.ready,
        "tunnel": {
            "state": runner.tunnel_state(),
            "connected_since": connection.connected_since,
            "reconnects": connection.reconnects,
            "last_error": connection.last_error,
        },
        "models": models,
        "pool_size": runner.settings.pool_size,
        "busy": runner.busy,
        "tasks": tasks,
        "started": runner.started,
        "watchers": len(runner.hub),
        "telemetry": sample,
    }


def metrics_text(runner: Runner) -> str:
    """The Prometheus exposition of a runner."""
    return runner.metrics.render(
        inflight=runner.busy,
        pool_size=runner.settings.pool_size,
        reconnects=runner.connection.reconnects,
        ready=runner.ready,
        gpus=runner.sampler.latest.gpu if runner.sampler is not None else None,
    )


def publish_status(runner: Runner) -> None:
    """Tell watchers (and the service manager) the tunnel's state."""
    runner.hub.publish(
        "status",
        {
            "state": runner.tunnel_state(),
            "ready": runner.ready,
            "reconnects": runner.connection.reconnects,
        },
    )


def task_started(hub: EventHub, key: TaskKey, held: HeldTask) -> None:
    """Announce a task that arrived."""
    task_id, attempt = key
    hub.publish(
        "task",
        {
            "event": "started",
            "task_id": task_id,
            "attempt": attempt,
            "model": held.model_id,
            "method": held.method,
            "queue_wait_s": round(held.queue_wait, 6),
        },
    )


def task_finished(
    hub: EventHub, metrics: RunnerMetrics, key: TaskKey, held: HeldTask, outcome: Outcome
) -> None:
    """Count and announce a task's end, once (a task given up counts as ``CANCELLED``)."""
    if held.timed:
        return
    held.timed = True
    run_time = time.monotonic() - held.started
    status = "ok" if isinstance(outcome, ResultOut) else str(getattr(outcome, "code", "?"))
    if held.unwanted:
        status = ErrorCode.CANCELLED
    metrics.task_finished(status, held.queue_wait, run_time)
    task_id, attempt = key
    event: dict[str, object] = {
        "event": "finished",
        "task_id": task_id,
        "attempt": attempt,
        "model": held.model_id,
        "method": held.method,
        "status": status,
        "queue_wait_s": round(held.queue_wait, 6),
        "run_time_s": round(run_time, 6),
    }
    usage = outcome.usage if isinstance(outcome, ResultOut) else None
    if usage is not None and usage.completion_tokens and run_time > 0:
        event["completion_tokens"] = usage.completion_tokens
        event["tokens_per_s"] = round(usage.completion_tokens / run_time, 2)
    hub.publish("task", event)


def gpu_samples(sampler: Sampler | None) -> tuple[list[pb.GpuSample], str]:
    """The GPUs as a heartbeat carries them, and the sampler's note (why none, if none)."""
    if sampler is None:
        return [], ""
    report = sampler.latest.gpu
    samples = [
        pb.GpuSample(
            index=g.index,
            utilization=g.utilization,
            memory_used_bytes=g.memory_used,
            memory_total_bytes=g.memory_total,
            temperature=g.temperature,
        )
        for g in report.gpus
    ]
    return samples, report.note


async def forward_logs(hub: EventHub, connection: Connection) -> None:
    """Send the runner's log records to the control plane in batches (bounded), forever."""
    sub = hub.subscribe(frozenset({"log"}), watcher=False)
    reported = unsent = 0
    try:
        while True:
            batch = [(await sub.queue.get()).data]
            await asyncio.sleep(_LOG_BATCH_S)  # let a burst gather into one frame
            while not sub.queue.empty() and len(batch) < _LOG_BATCH_MAX:
                batch.append(sub.queue.get_nowait().data)
            session = connection.session
            if session is None or session.state not in (SessionState.OPEN, SessionState.DRAINING):
                unsent += len(batch)  # no tunnel: the local API still has them
                continue
            records = [
                pb.LogRecord(
                    unix_ms=int(float(r["time"]) * 1000),
                    level=str(r["level"]),
                    logger=str(r["logger"]),
                    message=str(r["message"]),
                    task_id=str(r.get("task_id") or ""),
                )
                for r in batch
            ]
            session.send_logs(records, dropped=unsent + sub.dropped - reported)
            reported, unsent = sub.dropped, 0
            connection.flush()
    finally:
        hub.unsubscribe(sub)
