"""What a runner tells its local watchers: task, log and telemetry events, and its recent logs.

:class:`EventHub` fans events out to subscribers (the local API's WebSocket clients) on the event
loop; a subscriber that cannot keep up loses its oldest events, never slows the runner, and is
told how many it lost. :class:`LogBuffer` is a logging handler that keeps the last 5,000 records
(as k9s does) and publishes each one; it may be called from any thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_runner.views import LogRecordView

__all__ = ["Event", "EventHub", "LogBuffer", "Subscription", "level_number"]

LOG_CAPACITY = 5_000
_SUBSCRIBER_QUEUE = 1_000


@dataclass(frozen=True, slots=True)
class Event:
    """One event: a topic (``task``, ``log``, ``telemetry``, ``status``, ``model``) and its
    JSON data, one of the views of :data:`edge_runner.views.RunnerEvent`."""

    topic: str
    # Untyped values, not the views: Runner (runner/daemon.py) publishes plain dicts and
    # reads log records back; the views replace them once the daemon writes views.
    data: Mapping[str, Any]


@dataclass(eq=False)
class Subscription:
    """One subscriber's bounded queue of events of the topics it asked for."""

    topics: frozenset[str]
    watcher: bool = True
    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(_SUBSCRIBER_QUEUE))
    dropped: int = 0

    def offer(self, event: Event) -> None:
        """Queue an event, dropping the oldest when full."""
        if event.topic not in self.topics:
            return
        while True:
            try:
                self.queue.put_nowait(event)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self.queue.get_nowait()
                    self.dropped += 1


class EventHub:
    """Subscribers and publishing, on one event loop."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        """How many watchers (outside subscribers: local API clients) there are."""
        return sum(1 for sub in self._subscribers if sub.watcher)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop that :meth:`publish_threadsafe` hands events to."""
        self._loop = loop

    def subscribe(self, topics: frozenset[str], *, watcher: bool = True) -> Subscription:
        """Start receiving events of ``topics`` (``watcher=False``: the runner's own use)."""
        sub = Subscription(topics, watcher)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop receiving."""
        self._subscribers.discard(sub)

    def publish(self, topic: str, data: Mapping[str, object]) -> None:
        """Give an event to every subscriber of ``topic`` (on the loop)."""
        if not self._subscribers:
            return
        event = Event(topic, data)
        for sub in list(self._subscribers):
            sub.offer(event)

    def publish_threadsafe(self, topic: str, data: Mapping[str, object]) -> None:
        """:meth:`publish` from another thread (a no-op before :meth:`bind` or after the loop)."""
        loop = self._loop
        if loop is None or not self._subscribers:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: the runner stopped
            loop.call_soon_threadsafe(self.publish, topic, data)


def level_number(name: str) -> int:
    """``warning`` → 30; unknown names are an error for the caller to report.

    Raises:
        ValueError: not a logging level name.
    """
    value = logging.getLevelName(name.upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {name!r}; use debug, info, warning, error")
    return value


class LogBuffer(logging.Handler):
    """Keeps the last ``capacity`` log records as dicts and publishes each to a hub."""

    def __init__(
        self, hub: EventHub | None = None, capacity: int = LOG_CAPACITY, level: int = 0
    ) -> None:
        super().__init__(level)
        self._records: collections.deque[LogRecordView] = collections.deque(maxlen=capacity)
        self._hub = hub
        self._lock_records = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        """Keep and publish one record (never raises)."""
        try:
            entry: LogRecordView = {
                "time": record.created,
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
                "task_id": str(getattr(record, "task_id", "") or ""),
            }
        except Exception:  # a record whose message cannot be formatted
            self.handleError(record)
            return
        with self._lock_records:
            self._records.append(entry)
        if self._hub is not None:
            self._hub.publish_threadsafe("log", entry)

    def records(self, *, limit: int = 200, level: int = 0, grep: str = "") -> list[LogRecordView]:
        """The last ``limit`` records at ``level`` or above containing ``grep``, oldest first."""
        with self._lock_records:
            kept = list(self._records)
        wanted = [
            r
            for r in kept
            if level_number(r["level"]) >= level
            and (not grep or grep.lower() in f"{r['logger']} {r['message']}".lower())
        ]
        return wanted[-limit:] if limit > 0 else []
