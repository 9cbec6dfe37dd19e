"""A model for back-pressure benchmarks: a stream as fast as it is taken, and a quick answer."""

from __future__ import annotations

from collections.abc import Iterator

from edge_runner import ModelClass


class Firehose(ModelClass):
    """Streams as fast as the caller takes it."""

    @ModelClass.method
    def stream(self, n: int = 1_000_000, size: int = 1024) -> Iterator[str]:
        """Yield ``n`` strings of ``size`` characters, as fast as they are taken."""
        piece = "x" * size
        for _ in range(n):
            if self.cancelled():
                return
            yield piece

    @ModelClass.method
    def ping(self) -> str:
        """Answer at once."""
        return "pong"
