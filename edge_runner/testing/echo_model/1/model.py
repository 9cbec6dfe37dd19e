"""edge_runner.testing's echo model: a unary method, a stream out and a stream in and out, all
without any work."""

from __future__ import annotations

from collections.abc import Iterator

from edge_runner import ModelClass


class Echo(ModelClass):
    """Returns what it is given."""

    @ModelClass.method
    def predict(self, text: str) -> str:
        """The text, unchanged."""
        return text

    @ModelClass.method
    def generate(self, text: str, n: int = 3) -> Iterator[str]:
        """The text ``n`` times, one chunk each (stops early when cancelled)."""
        for _ in range(n):
            if self.cancelled():
                return
            yield text

    @ModelClass.method
    def chat(self, messages: Iterator[str], prefix: str = "") -> Iterator[str]:
        """Each input item with ``prefix`` before it, as the items arrive."""
        for message in messages:
            yield prefix + message
