"""Where the dashboard's data comes from: the active context's control plane and the runner on
this machine, through edge-runner's own clients. Every method blocks (the app calls them from
thread workers) and never raises for an outage: it returns a view whose ``error`` says what is
wrong and what to run.

:class:`LiveSource` is the real one; tests hand the app a fake with the same methods.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from edge_runner.errors import EdgeRunnerError, NotFound
from edge_runner.views import (
    ContextView,
    GpuInfoView,
    HostView,
    LogRecordView,
    ModelView,
    ReplicaView,
    RunnerSnapshot,
    RunnerView,
    TaskView,
)

if TYPE_CHECKING:
    from edge_runner.client import Client
    from edge_runner.local_client import LocalClient
    from edge_runner.telemetry import GpuReader, HostReader

__all__ = ["ControlView", "DataSource", "GpuView", "LiveSource", "LocalView"]

#: how long a local snapshot answers for (seconds)
SNAPSHOT_TTL = 0.5
#: reachability checks of the contexts run at once, up to this many
_MAX_CONTEXT_CHECKS = 16


@dataclass(frozen=True)
class ControlView:
    """The active control plane, or why it cannot be read."""

    context: str
    api_base: str
    error: str = ""
    models: list[ModelView] = field(default_factory=list)
    runners: list[RunnerView] = field(default_factory=list)
    tasks: list[TaskView] = field(default_factory=list)
    #: the control plane's live replicas (one for an embedded control plane; empty from a
    #: control plane older than ``GET /v2/replicas``)
    replicas: list[ReplicaView] = field(default_factory=list)

    @property
    def reachable(self) -> bool:
        """Whether the last read worked."""
        return not self.error


@dataclass(frozen=True)
class LocalView:
    """The runner on this machine (its local API snapshot), or why there is none."""

    snapshot: RunnerSnapshot | None = None
    error: str = ""


@dataclass(frozen=True)
class GpuView:
    """This machine's GPUs and host, from the local runner's telemetry or read directly."""

    gpus: list[GpuInfoView] = field(default_factory=list)
    note: str = ""
    host: HostView | None = None


class DataSource(Protocol):
    """What the app asks for (all blocking, called off the UI thread)."""

    def now(self) -> float:
        """The time to show ages against (pinned in tests)."""

    def control(self) -> ControlView:
        """Models, runners and tasks of the active control plane."""

    def local(self) -> LocalView:
        """The local runner's snapshot."""

    def gpus(self) -> GpuView:
        """This machine's GPUs."""

    def contexts(self) -> list[ContextView]:
        """Every context, tokens masked, each with ``reachable``."""

    def use_context(self, name: str) -> None:
        """Make a context the active one."""

    def create_context(self, name: str, api_base: str, user_id: str, token: str) -> None:
        """Save a new context; its token goes to the secret store."""

    def drain(self, runner_id: str) -> str:
        """Ask a runner to drain; returns a line for the user."""

    def cancel(self, task_id: str) -> str:
        """Cancel a task; returns a line for the user."""

    def follow_logs(self, runner_id: str | None, stop: threading.Event) -> Iterator[LogRecordView]:
        """Log records as they come: the local runner's, or ``runner_id``'s from the control
        plane. Returns when ``stop`` is set or the stream ends."""


class LiveSource:
    """The real data: edge_runner.client and edge_runner.local_client.

    Args:
        context: the context to use (default: the active one).
        runner_id: the local runner to read, when several run on this machine.
    """

    def __init__(self, context: str | None = None, runner_id: str | None = None) -> None:
        self.context = context
        self.runner_id = runner_id
        self._client: Client | None = None
        self._client_key: tuple[str, str] | None = None
        self._lock = threading.Lock()
        self._gpu_reader: tuple[GpuReader, HostReader] | None = None
        self._local: LocalClient | None = None
        self._snapshot: tuple[float, LocalView] | None = None

    def now(self) -> float:
        """Wall-clock time."""
        return time.time()

    def _control_client(self) -> Client:
        from edge_runner.client import Client
        from edge_runner.config.resolve import resolve_credentials

        creds = resolve_credentials(context=self.context)
        key = (creds.api_base, creds.token)
        with self._lock:
            if self._client is None or self._client_key != key:
                if self._client is not None:
                    self._client.close()
                self._client = Client(
                    creds.api_base, creds.token, timeout=5.0, ca_file=creds.ca_file
                )
                self._client_key = key
            return self._client

    def _context_name(self) -> str:
        from edge_runner.config.contexts import ContextsFile

        if self.context:
            return self.context
        try:
            return ContextsFile.load().current or "(none)"
        except EdgeRunnerError:
            return "(unreadable)"

    def control(self) -> ControlView:
        """Models, runners and tasks; an unreachable control plane becomes ``error``."""
        name = self._context_name()
        try:
            client = self._control_client()
        except EdgeRunnerError as exc:
            return ControlView(name, "", error=str(exc))
        try:
            return ControlView(
                name,
                client.api_base,
                models=client.models(),
                runners=client.runners(),
                tasks=client.tasks(limit=200),
                replicas=_replicas(client),
            )
        except EdgeRunnerError as exc:
            return ControlView(name, client.api_base, error=str(exc))

    def local(self) -> LocalView:
        """The local runner's snapshot, or why there is none.

        The GPU poll (1 s) and the table poll (2 s) both ask; a snapshot younger than
        ``SNAPSHOT_TTL`` answers both. The client is kept between calls: building one costs an
        SSL context (httpx makes one even for plain HTTP), which was most of the dashboard's
        idle CPU.
        """
        from edge_runner.local_client import LocalClient

        now = time.monotonic()
        with self._lock:
            if self._snapshot is not None and now - self._snapshot[0] < SNAPSHOT_TTL:
                return self._snapshot[1]
        try:
            if self._local is None:
                self._local = LocalClient.find(self.runner_id)
            view = LocalView(self._local.snapshot())
        except EdgeRunnerError as exc:
            if self._local is not None:  # gone or restarted: find it afresh next time
                self._local.close()
                self._local = None
            view = LocalView(error=str(exc))
        with self._lock:
            self._snapshot = (now, view)
        return view

    def gpus(self) -> GpuView:
        """The local runner's latest telemetry; without a runner, NVML read here."""
        snapshot = self.local().snapshot
        telemetry = snapshot.get("telemetry") if snapshot else None
        if telemetry and telemetry.get("gpu"):
            gpu = telemetry["gpu"]
            return GpuView(
                list(gpu.get("gpus", [])), str(gpu.get("note", "")), telemetry.get("host")
            )
        from edge_runner.config.paths import data_dir
        from edge_runner.telemetry import GpuReader, HostReader

        if self._gpu_reader is None:
            self._gpu_reader = (GpuReader(), HostReader(data_dir()))
        reader, host = self._gpu_reader
        report = reader.read()
        return GpuView([g.to_dict() for g in report.gpus], report.note, host.read().to_dict())

    def contexts(self) -> list[ContextView]:
        """Every context with ``reachable`` (a 1 s check of each control plane, all at once, so
        ten unreachable contexts cost one second, not ten)."""
        from edge_runner.client import Client
        from edge_runner.config.resolve import context_records

        try:
            records = context_records()
        except EdgeRunnerError:
            return []

        def reachable(name: str) -> bool:
            try:
                with Client.from_context(name, timeout=1.0) as client:
                    client.info()
            except EdgeRunnerError:
                return False
            return True

        if records:
            workers = min(len(records), _MAX_CONTEXT_CHECKS)
            with ThreadPoolExecutor(workers, thread_name_prefix="dashboard-contexts") as pool:
                answers = list(pool.map(reachable, [r["name"] for r in records]))
            for record, answer in zip(records, answers, strict=True):
                record["reachable"] = answer
        return records

    def use_context(self, name: str) -> None:
        """Make ``name`` the active context (``context use``)."""
        from edge_runner.config.contexts import ContextsFile

        contexts = ContextsFile.load()
        contexts.get(name)  # unknown → an error naming the known ones
        contexts.current = name
        contexts.save()
        self.context = None  # follow the active one from now on

    def create_context(self, name: str, api_base: str, user_id: str, token: str) -> None:
        """Save a context and put its token in the secret store (``context create``)."""
        from edge_runner.config.contexts import Context, ContextsFile
        from edge_runner.config.secrets import secret_store

        contexts = ContextsFile.load()
        contexts.put(Context(name, api_base.rstrip("/"), user_id), make_current=False)
        if token:
            secret_store().set(name, token)
        contexts.save()

    def drain(self, runner_id: str) -> str:
        """``POST /v2/runners/{id}/drain``."""
        self._control_client().drain_runner(runner_id)
        return f"runner {runner_id} is draining"

    def cancel(self, task_id: str) -> str:
        """``DELETE /v2/tasks/{id}``."""
        self._control_client().cancel(task_id)
        return f"task {task_id[:12]} cancelled"

    def follow_logs(self, runner_id: str | None, stop: threading.Event) -> Iterator[LogRecordView]:
        """The local runner's log events; or ``runner_id``'s logs from the control plane."""
        from edge_runner.local_client import LocalClient

        if runner_id is None:
            with LocalClient.find(self.runner_id) as local:
                yield from local.logs(limit=500)
                for event in local.events({"log"}):
                    if stop.is_set():
                        return
                    if event["topic"] == "log":
                        yield event["data"]
            return
        client = self._control_client()
        for record in client.follow_runner_logs(runner_id, limit=500):
            if stop.is_set():
                return
            yield record


def _replicas(client: Client) -> list[ReplicaView]:
    """The replicas, or none from a control plane that predates ``GET /v2/replicas``."""
    try:
        return client.replicas()
    except NotFound:
        return []
