"""A model for recovery benchmarks: a unary wait and an endless, cancellable stream."""

from __future__ import annotations

import time
from collections.abc import Iterator

from edge_runner import ModelClass


class Slow(ModelClass):
    """Waits, or counts, until cancelled."""

    @ModelClass.method
    def wait(self, seconds: float) -> str:
        """Return 'done' after ``seconds`` (or 'cancelled' when cancelled first)."""
        end = time.monotonic() + seconds
        while not self.cancelled() and time.monotonic() < end:
            time.sleep(0.002)
        return "cancelled" if self.cancelled() else "done"

    @ModelClass.method
    def count(self) -> Iterator[int]:
        """Yield 0, 1, 2, ... every 10 ms until cancelled."""
        i = 0
        while not self.cancelled():
            yield i
            i += 1
            time.sleep(0.01)
