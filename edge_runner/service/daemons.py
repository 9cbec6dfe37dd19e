"""What each long-running command tells its service manager, and when it counts as healthy.

- ``edge-runner runner``: ``READY=1`` once the control plane has registered it (its first
  ``Welcome``); watchdog pings only while it is registered and has heard from the control
  plane within three heartbeat intervals (:attr:`Runner.healthy`); a status line per state
  ("serving hello, tunnel up", "control plane unreachable: <cause>, retrying", "draining ...");
  ``STOPPING=1`` as soon as a stop signal arrives. A runner whose tunnel is down keeps retrying
  on its own; the watchdog timeout (``WatchdogSec=``, 60 s in our units, six times the backoff
  cap) is how long it may take before the service manager tries a fresh process.
- ``edge-runner control``: ``READY=1`` once its HTTP and gRPC listeners are bound; pings from
  its event loop (a wedged loop stops them); the number of connected runners as status.
- ``edge-runner up``: ``READY=1`` once both children are serving; pings while both run.

The control plane and runner types are imported for type checking only: importing this module
loads neither side.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from edge_runner.service.loop import Probe, notifications
from edge_runner.service.notify import Notifier
from edge_runner.views import RunnerSnapshot

if TYPE_CHECKING:
    from edge_runner.control import ControlPlane
    from edge_runner.runner import Runner

__all__ = [
    "control_notifications",
    "control_status",
    "runner_notifications",
    "runner_status",
    "up_notifications",
]


def runner_status(snapshot: RunnerSnapshot) -> str:
    """The one-line state of a runner, from its :meth:`Runner.snapshot`."""
    tunnel = snapshot.get("tunnel", {})
    state = str(tunnel.get("state", ""))
    error = str(tunnel.get("last_error") or "")
    api_base = str(snapshot.get("api_base", ""))
    models = list(snapshot.get("models", []))
    names = ", ".join(str(m.get("id")) for m in models) or "no models"
    if state == "connected":
        pending = [
            f"{m.get('id')} {m.get('status')}"
            for m in models
            if m.get("status") not in ("ready", None)
        ]
        extra = f" ({', '.join(pending)})" if pending else ""
        return f"serving {names}{extra}, tunnel up"
    if state == "draining":
        return f"draining: finishing {snapshot.get('busy', 0)} in-flight task(s)"
    if state == "stopping":
        return "stopping"
    if error:
        return f"control plane unreachable: {error}, retrying"
    if state == "reconnecting":
        return f"reconnecting to {api_base}"
    return f"starting: loading {names}, then connecting to {api_base}"


def control_status(api_base: str, grpc_address: str, runners: int) -> str:
    """The one-line state of a control plane."""
    return f"listening on {api_base} (tunnel grpc {grpc_address}); {runners} runner(s) connected"


@contextlib.asynccontextmanager
async def runner_notifications(notifier: Notifier, runner: Runner) -> AsyncIterator[None]:
    """Report ``runner`` to the service manager while the body runs (it runs the runner)."""
    if not notifier.enabled:
        yield
        return
    # The runner announces each state change (tunnel up or down, stop requested, model
    # readiness) on its hub; those wake the loop, so no status waits for a tick.
    changes = runner.hub.subscribe(frozenset({"status", "model"}), watcher=False)
    probe = Probe(
        # The ignore goes (mypy reports it unused) once Runner.snapshot() returns the view.
        status=lambda: runner_status(runner.snapshot()),
        ready=lambda: runner.ready,
        healthy=lambda: runner.healthy,
        stopping=lambda: runner.stop_level > 0,
        changed=changes.queue.get,
    )
    try:
        async with notifications(notifier, probe):
            yield
    finally:
        runner.hub.unsubscribe(changes)


@contextlib.asynccontextmanager
async def control_notifications(notifier: Notifier, plane: ControlPlane) -> AsyncIterator[None]:
    """Report a started (listening) control plane while the body runs."""

    def status() -> str:
        state = plane.state
        runners = len(state.dispatcher.links) if state is not None else 0
        grpc = state.grpc_address if state is not None else ""
        return control_status(plane.api_base, grpc, runners)

    probe = Probe(status=status, ready=lambda: True, healthy=lambda: True)
    async with notifications(notifier, probe):
        yield


@contextlib.asynccontextmanager
async def up_notifications(
    notifier: Notifier, status: str, alive: Callable[[], bool]
) -> AsyncIterator[None]:
    """Report ``up`` (both children serving) while the body runs; pings while ``alive()``."""
    probe = Probe(status=lambda: status, ready=lambda: True, healthy=alive)
    async with notifications(notifier, probe):
        yield
