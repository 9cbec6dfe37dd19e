"""The asyncio side of the notify protocol: status lines and watchdog pings for one daemon.

:func:`notifications` runs, for as long as its ``async with`` body does, a task on the daemon's
own event loop that

- sends ``STATUS=`` whenever the daemon's status line changes (and ``READY=1`` with the first
  line for which ``ready()`` holds),
- sends ``WATCHDOG=1`` every half watchdog interval while ``healthy()`` holds, and nothing
  while it does not, so a daemon that cannot recover is restarted by the service manager
  (and a wedged event loop stops the pings by itself),
- sends ``STOPPING=1`` as soon as ``stopping()`` holds, and on the way out.

It wakes on the watchdog's schedule, at least every ``tick`` seconds, and at once whenever the
daemon awaits ``changed()`` to return (a state change), so no status waits for the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from edge_runner.service.notify import Notifier, WatchdogPolicy

__all__ = ["Probe", "notifications"]

logger = logging.getLogger(__name__)

#: how often the status line is re-read when nothing wakes the loop sooner
DEFAULT_TICK = 5.0


def _never() -> bool:
    return False


@dataclass(frozen=True)
class Probe:
    """How the loop reads a daemon; every callable runs on the event loop and must be quick.

    Attributes:
        status: the daemon's status line now.
        ready: whether it is ready (``READY=1`` is sent once, the first time this holds).
        healthy: whether watchdog pings should go out now.
        stopping: whether it has begun to stop.
        changed: awaited between rounds; returning means "look again now" (None: only ticks).
    """

    status: Callable[[], str]
    ready: Callable[[], bool]
    healthy: Callable[[], bool]
    stopping: Callable[[], bool] = _never
    changed: Callable[[], Awaitable[object]] | None = None


@contextlib.asynccontextmanager
async def notifications(
    notifier: Notifier, probe: Probe, *, tick: float = DEFAULT_TICK
) -> AsyncIterator[None]:
    """Keep the service manager informed while the body runs; ``STOPPING=1`` on the way out.

    Without a service manager this does nothing at all.
    """
    if not notifier.enabled:
        yield
        return
    task = asyncio.create_task(_run(notifier, probe, tick), name="edge-runner-notify")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if notifier.claim_stopping():  # not yet said (the daemon stops without a signal)
            status = _safe(probe.status)
            notifier.notify(STOPPING="1", **({"STATUS": status} if status else {}))
        notifier.close()


async def _run(notifier: Notifier, probe: Probe, tick: float) -> None:
    policy = WatchdogPolicy(notifier.watchdog_interval)
    sent_status = ""
    ready_sent = False
    while True:
        try:
            status = probe.status()
            fields: dict[str, str] = {}
            if status != sent_status:
                fields["STATUS"] = status
            if not ready_sent and probe.ready():
                fields["READY"] = "1"
                ready_sent = True
            if probe.stopping() and notifier.claim_stopping():
                fields["STOPPING"] = "1"
            if policy.due(time.monotonic(), probe.healthy()):
                fields["WATCHDOG"] = "1"
            if fields:
                notifier.notify(**fields)
                sent_status = status
        except Exception:  # a probe bug must not end the pings' owner; log it and go on
            logger.exception("service notification round failed")
        await _wait(probe, policy.wait(time.monotonic(), tick))


async def _wait(probe: Probe, seconds: float) -> None:
    if probe.changed is None:
        await asyncio.sleep(seconds)
        return
    change = asyncio.ensure_future(probe.changed())
    try:
        await asyncio.wait({change}, timeout=seconds)
    finally:
        change.cancel()


def _safe(read: Callable[[], str]) -> str | None:
    try:
        return read()
    except Exception:
        return None
