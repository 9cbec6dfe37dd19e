"""Runner logs carried over the tunnel (``Logs`` messages), kept per runner, bounded.

Each runner's last :data:`PER_RUNNER` records are kept, for the runners of the last
:data:`RUNNERS` that sent any; followers (``GET /v2/runners/{id}/logs?follow=1``) get new
records as they come, through bounded queues that drop their oldest when a follower is slow.
Frames are bounded too: at most :data:`MAX_BATCH` records, messages cut at
:data:`MAX_MESSAGE` characters.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from dataclasses import dataclass, field

from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.views import LogRecordView

__all__ = ["MAX_BATCH", "LogFollower", "RunnerLogs"]

PER_RUNNER = 2_000
RUNNERS = 256
MAX_BATCH = 500
MAX_MESSAGE = 4_000
_FOLLOWER_QUEUE = 1_000


@dataclass(eq=False)
class LogFollower:
    """One follower of one runner's logs."""

    runner_id: str
    queue: asyncio.Queue[LogRecordView] = field(
        default_factory=lambda: asyncio.Queue(_FOLLOWER_QUEUE)
    )
    dropped: int = 0


class RunnerLogs:
    """Records by runner, and their followers (on the event loop)."""

    def __init__(self) -> None:
        self._records: collections.OrderedDict[str, collections.deque[LogRecordView]] = (
            collections.OrderedDict()
        )
        self._owners: dict[str, str] = {}
        self._followers: set[LogFollower] = set()
        self.dropped: collections.Counter[str] = collections.Counter()

    def add(self, runner_id: str, user_id: str, logs: pb.Logs) -> None:
        """Keep a batch from a runner and hand it to its followers."""
        kept = self._records.get(runner_id)
        if kept is None:
            kept = self._records[runner_id] = collections.deque(maxlen=PER_RUNNER)
            while len(self._records) > RUNNERS:
                old, _ = self._records.popitem(last=False)
                self._owners.pop(old, None)
        self._records.move_to_end(runner_id)
        self._owners[runner_id] = user_id
        self.dropped[runner_id] += logs.dropped + max(0, len(logs.records) - MAX_BATCH)
        for record in list(logs.records)[:MAX_BATCH]:
            entry: LogRecordView = {
                "time": record.unix_ms / 1000,
                "level": record.level[:16],
                "logger": record.logger[:200],
                "message": record.message[:MAX_MESSAGE],
                "task_id": record.task_id[:64],
                "runner_id": runner_id,
            }
            kept.append(entry)
            for follower in list(self._followers):
                if follower.runner_id == runner_id:
                    _offer(follower, entry)

    def owner(self, runner_id: str) -> str | None:
        """The user whose runner sent these logs."""
        return self._owners.get(runner_id)

    def records(self, runner_id: str) -> list[LogRecordView]:
        """The kept records of a runner, oldest first."""
        return list(self._records.get(runner_id, ()))

    def follow(self, runner_id: str) -> LogFollower:
        """Start following a runner's new records."""
        follower = LogFollower(runner_id)
        self._followers.add(follower)
        return follower

    def unfollow(self, follower: LogFollower) -> None:
        """Stop following."""
        self._followers.discard(follower)


def _offer(follower: LogFollower, entry: LogRecordView) -> None:
    while True:
        try:
            follower.queue.put_nowait(entry)
            return
        except asyncio.QueueFull:
            with contextlib.suppress(asyncio.QueueEmpty):
                follower.queue.get_nowait()
                follower.dropped += 1
