"""A control plane process, assembled: :class:`ControlConfig` → :func:`build_control` → serve."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from edge_runner.errors import ConfigError

if TYPE_CHECKING:
    from edge_runner.control import ControlPlane
    from edge_runner.service.notify import Notifier

__all__ = ["serve_control"]

logger = logging.getLogger(__name__)


async def serve_control(
    plane: ControlPlane,
    *,
    on_ready: Callable[[ControlPlane], None] | None = None,
    notifier: Notifier | None = None,
    lifeline_fd: int | None = None,
    stop_signals: bool = False,
) -> None:
    """Start ``plane`` and serve until it is stopped (:meth:`ControlPlane.stop`, or
    SIGTERM/SIGINT with ``stop_signals``).

    Args:
        on_ready: called once both listeners are bound.
        notifier: tell a service manager (systemd) about readiness and health.
        lifeline_fd: stop when the supervisor holding this pipe goes away.
        stop_signals: install stop handlers (the main thread of a process only).

    Raises:
        ConfigError: a port is taken (the message says how to pick another).
    """
    from edge_runner.daemons.supervision import watch_lifeline
    from edge_runner.service.daemons import control_notifications
    from edge_runner.service.notify import Notifier

    try:
        await plane.__aenter__()
    except OSError as exc:
        raise ConfigError(f"{exc}; pick another with --port/--grpc-port (0 = any)") from exc
    try:
        if stop_signals:
            from edge_runner._platform import install_stop_handlers

            install_stop_handlers(asyncio.get_running_loop(), plane.stop)
        watch_lifeline(lifeline_fd, plane.stop)
        if on_ready is not None:
            on_ready(plane)
        async with control_notifications(notifier or Notifier(), plane):  # READY=1: bound
            await plane.wait_closed()
        logger.info("stopping the control plane")
    finally:
        await plane.close()
